"""pneumo.cli.progress: a bar on a terminal, a timed line in a log, one summary line at the end."""

import io

import pytest

from pneumo.cli.progress import Progress, duration


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    """A stream that says it is a terminal, so Progress draws tqdm's bar on it."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("seconds, words", [
    (0, "0 s"), (-3, "0 s"), (59.4, "59 s"), (75.2, "1 min 15 s"), (3599, "59 min 59 s"),
    (3600, "1 h 0 min"), (3725, "1 h 2 min"),
])
def test_duration(seconds, words):
    assert duration(seconds) == words


def test_a_log_gets_a_line_at_most_every_few_seconds_and_always_the_last():
    clock, stream = Clock(), io.StringIO()
    progress = Progress("predict", 40, stream=stream, every=5.0, bar=False, clock=clock)
    for at in [101.0, 104.0, 106.0, 108.0, 110.9, 111.0]:  # one film at each; then the rest at once
        clock.now = at
        progress.advance()
    clock.now = 120.0
    progress.advance(34)
    assert stream.getvalue().splitlines() == [
        "predict: 3 of 40 films (8%), 2 s per film, about 1 min 14 s left",   # 6 s after the start
        "predict: 6 of 40 films (15%), 2 s per film, about 1 min 2 s left",   # 5 s after that
        "predict: 40 of 40 films (100%), 2.0 films/s",                        # the last, whatever the time
    ]


@pytest.mark.parametrize("done, seconds, shown", [
    (50, 10.0, "50 of 200 films (25%), 5.0 films/s, about 30 s left"),
    (150, 10.0, "150 of 200 films (75%), 15 films/s, about 3 s left"),
    (3, 120.0, "3 of 28 films (11%), 40 s per film, about 16 min 40 s left"),
    (0, 10.0, "0 of 200 films (0%)"),
])
def test_the_status_line_gives_the_rate_and_the_time_left(done, seconds, shown):
    total = 28 if done == 3 else 200
    clock = Clock(0.0)
    progress = Progress("predict", total, stream=io.StringIO(), every=1e9, bar=False, clock=clock)
    progress.advance(done)
    assert progress.status_line(now=seconds) == shown


def test_the_summary_counts_the_tallies_and_says_where_the_output_went():
    clock, stream = Clock(), io.StringIO()
    progress = Progress("predict", 3, stream=stream, every=1e9, bar=False, clock=clock)
    progress.advance(1, ok=1)
    progress.advance(1, rejected=1)
    progress.advance(1, ok=1)
    progress.note("a film was refused")
    clock.now = 175.0
    summary = progress.close("wrote rows.csv")
    assert summary == "done: 3 films (2 ok, 1 rejected) in 1 min 15 s; wrote rows.csv"
    assert stream.getvalue().splitlines()[-2:] == ["predict: a film was refused", f"predict: {summary}"]


def test_a_terminal_gets_the_bar_and_no_timed_lines():
    stream = Terminal()
    progress = Progress("fit-guard", 3, stream=stream, every=0.0)
    for _ in range(3):
        progress.advance(1, ok=1)
    progress.note("guard: fitting")
    progress.close("guard saved")
    text = stream.getvalue()
    assert "fit-guard:" in text and "0/3" in text  # tqdm's bar: the command, then done/total
    assert "fit-guard: guard: fitting" in text
    assert "of 3 films" not in text  # no timed lines beside a bar
    assert text.splitlines()[-1].startswith("fit-guard: done: 3 films (3 ok) in ")
    assert text.rstrip().endswith("; guard saved")


def test_nothing_to_do_shows_no_bar_and_still_a_summary():
    stream = Terminal()
    progress = Progress("train-cv", 0, things="epochs", stream=stream)
    progress.advance(0)
    assert progress.close("all folds already done").startswith("done: 0 epochs in 0 s")
    assert stream.getvalue().splitlines() == ["train-cv: done: 0 epochs in 0 s; all folds already done"]

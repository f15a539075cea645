"""How a long command shows where it is: a bar on a terminal, a line every few seconds in a log,
and one summary line at the end.

:class:`Progress` is what ``predict``, ``evaluate``, ``explain-eval``, ``fit-guard``,
``calibrate-site``, ``train``, ``train-cv`` and ``train-subtype`` report through. On a terminal
(stderr is a TTY) it draws a tqdm bar with the rate and the time left; otherwise (a log file, a
pipe, CI) it prints ``predict: 400 of 5216 films (8%), 52 films/s, about 1 min 32 s left`` at
most every ``every`` seconds, and always the last. Progress goes to stderr, so stdout keeps the results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from pneumo.cli.common import PROGRESS_SECONDS


def duration(seconds: float) -> str:
    """``75.2`` -> ``"1 min 15 s"``; under a minute, whole seconds; hours from an hour."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class Progress:
    """Counts done out of ``total``, shown as a bar (terminal) or as timed lines (log).

    Args:
        command: the command's name, which starts every line (``"predict"``).
        total: how many things there are to do (0 is allowed: nothing to show).
        things: what they are, plural (``"films"``, ``"epochs"``).
        stream: where to write; default stderr, looked up when the progress is made.
        every: the least seconds between two log lines.
        bar: force the bar on (True) or off (False); default: on when ``stream`` is a TTY.
        clock: seconds, monotonic (tests give their own).
    """

    def __init__(self, command: str, total: int, things: str = "films", stream: TextIO | None = None,
                 every: float = PROGRESS_SECONDS, bar: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.command = command
        self.total = max(0, int(total))
        self.things = things
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.clock = clock
        self.started = clock()
        self._shown_at = self.started
        self.done = 0
        self.counts: dict[str, int] = {}
        use_bar = bar if bar is not None else _is_terminal(self.stream)
        self._bar = None
        if use_bar and self.total:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit=things.rstrip("s") or things, desc=command,
                             file=self.stream, dynamic_ncols=True, leave=False)

    def elapsed(self) -> float:
        """Seconds since the progress was made."""
        return self.clock() - self.started

    def advance(self, n: int = 1, **counts: int) -> None:
        """Count ``n`` more done; ``counts`` (``ok=3, rejected=1``) add to the named tallies."""
        self.done += n
        for name, value in counts.items():
            self.counts[name] = self.counts.get(name, 0) + value
        if self._bar is not None:
            self._bar.update(n)
            if self.counts:
                self._bar.set_postfix(self.counts, refresh=False)
            return
        now = self.clock()
        if self.total and (self.done >= self.total or now - self._shown_at >= self.every):
            self._shown_at = now
            self._line(self.status_line(now))

    def status_line(self, now: float | None = None) -> str:
        """``400 of 5216 films (8%), 52 films/s, about 1 min 32 s left`` (``41 s per epoch`` when slow)."""
        elapsed = (now if now is not None else self.clock()) - self.started
        share = self.done / self.total if self.total else 1.0
        text = f"{self.done} of {self.total} {self.things} ({share:.0%})"
        if elapsed > 0 and self.done:
            rate = self.done / elapsed
            if rate < 1:  # epochs: "41 s per epoch" reads better than "0.0 epochs/s"
                text += f", {duration(1 / rate)} per {self.things.rstrip('s') or self.things}"
            else:
                text += f", {rate:.1f} {self.things}/s" if rate < 10 else f", {rate:.0f} {self.things}/s"
            if self.done < self.total:
                text += f", about {duration((self.total - self.done) / rate)} left"
        return text

    def note(self, message: str) -> None:
        """A line of its own (a warning, a stage), above the bar when there is one."""
        if self._bar is not None:
            self._bar.write(f"{self.command}: {message}", file=self.stream)
        else:
            self._line(message)

    def close(self, summary: str = "") -> str:
        """Remove the bar and print the summary line: what was done, the tallies, the time taken.

        Returns the summary line (without the command's name).
        """
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        tallies = ", ".join(f"{value} {name}" for name, value in self.counts.items())
        line = f"done: {self.done} {self.things}" + (f" ({tallies})" if tallies else "")
        line += f" in {duration(self.elapsed())}"
        if summary:
            line += f"; {summary}"
        self._line(line)
        return line

    def _line(self, message: str) -> None:
        print(f"{self.command}: {message}", file=self.stream, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False

"""Several users at once: eight browser sessions uploading different films at the same
moment each get their own correct result, and memory stays flat over 200 predictions.

The work is done by tests/support/sessions.py and tests/support/memory.py
(``python -m scripts.load_check`` prints the same figures); these tests assert on what they
measure and print their summaries (see them with ``-s``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pneumo import store
from tests.support import memory, sessions
from tests.support.app_server import serve_app
from tests.support.browser import CHROMIUM

pytestmark = pytest.mark.slow

SESSIONS = 8
PREDICTIONS = 200


@pytest.fixture(scope="module")
def loaded() -> store.LoadedModel:
    """The store's default model, as the app loads it."""
    try:
        return store.load()
    except store.ModelStoreError as error:
        pytest.skip(f"needs a model in the store: {error}")


@pytest.mark.browser
def test_eight_sessions_at_once_each_get_their_own_result(loaded: store.LoadedModel, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} (make debian-tools)")
    pytest.importorskip("playwright.async_api")
    from pneumo.inference.predict import Classifier

    started = time.perf_counter()
    films = sessions.expected_results(Classifier(loaded), SESSIONS)
    with serve_app(tmp_path / "server.log") as server:
        run = sessions.run_sessions(server, films)
    elapsed = time.perf_counter() - started
    # The time is reported, not asserted: on a shared 2-core machine it swings by tens of seconds;
    # `python -m scripts.load_check` is the benchmark.
    print(f"\n{sessions.format_sessions(run)}\n  whole test {elapsed:.1f} s")
    assert sorted(r.film for r in run.results) == sorted(f.path.name for f in films)
    # Each page: exactly its own film's probability, its own name and no other's, no traceback,
    # no error alert, no JavaScript error (SessionResult.problems says which failed).
    assert {r.film: r.problems for r in run.results if r.problems} == {}
    assert [r.shown for r in run.results] == [[f.probability] for f in films]
    assert run.log_problems == []


def test_memory_stays_flat_over_200_predictions(loaded: store.LoadedModel) -> None:
    run = memory.memory_check(loaded, PREDICTIONS)
    print(f"\n{memory.format_memory(run)}")
    assert run.predictions == PREDICTIONS
    assert run.growth_mb < memory.GROWTH_LIMIT_MB

"""Load check: several browser sessions at once, and memory over many predictions.

Run it from the repository root, with the project's environment::

    .venv/bin/python -m scripts.load_check                 # 8 sessions, then 200 predictions
    .venv/bin/python -m scripts.load_check --sessions 4 --predictions 50
    .venv/bin/python -m scripts.load_check --no-browser    # the memory check only

Sessions (:mod:`tests.support.sessions`): one Streamlit server, one Debian Chromium and one
browser context per session; all upload a different real film at the same moment, and each
page must show exactly its own film's probability and name, with no traceback or error.

Memory (:mod:`tests.support.memory`): resident memory of this process over consecutive
predictions like the app's, on real films enlarged to a clinical size, must stay flat.

Prints a summary; exits 0 when every check passed, 1 otherwise. tests/test_concurrency.py
runs the same checks under pytest; this file only parses the command line and prints.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pneumo import store
from pneumo.environment import quiet_tensorflow
from tests.support.app_server import serve_app
from tests.support.memory import (
    GROWTH_LIMIT_MB,
    PREDICTIONS,
    WARMUP,
    format_memory,
    memory_check,
)
from tests.support.sessions import (
    SESSIONS,
    expected_results,
    format_sessions,
    run_sessions,
)

if TYPE_CHECKING:
    from pneumo.store import LoadedModel


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.load_check", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=SESSIONS, help="browser sessions at once")
    parser.add_argument("--predictions", type=int, default=PREDICTIONS, help="predictions after the warm-up")
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--growth-limit-mb", type=float, default=GROWTH_LIMIT_MB)
    parser.add_argument("--no-browser", action="store_true", help="skip the browser sessions")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory check")
    return parser.parse_args(argv)


def check_sessions(loaded: LoadedModel, count: int) -> bool:
    """Serve the app, run the sessions, print the summary; True when all passed."""
    from pneumo.inference.predict import Classifier

    films = expected_results(Classifier(loaded), count)
    with tempfile.TemporaryDirectory(prefix="load-check-") as folder:
        with serve_app(Path(folder) / "server.log") as server:
            run = run_sessions(server, films)
        print(format_sessions(run), flush=True)
    return run.ok


def check_memory(loaded: LoadedModel, predictions: int, warmup: int, limit_mb: float) -> bool:
    """Run the memory check, print the summary; True when the growth stayed under the limit."""
    run = memory_check(loaded, predictions, warmup)
    passed = run.growth_mb < limit_mb
    print(format_memory(run) + f"\n  limit {limit_mb:.0f} MB: {'ok' if passed else 'FAILED'}", flush=True)
    return passed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks asked for; 0 when all passed."""
    quiet_tensorflow()
    args = parse_args(argv)
    loaded = store.load()
    passed = True
    if not args.no_browser:
        passed &= check_sessions(loaded, args.sessions)
    if not args.no_memory:
        passed &= check_memory(loaded, args.predictions, args.warmup, args.growth_limit_mb)
    print("load check passed" if passed else "load check FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

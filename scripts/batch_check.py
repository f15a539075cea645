"""Batch check: memory over a long ``predict`` run, and the Ray engine against the local one.

Run it from the repository root, with the project's environment::

    .venv/bin/python -m scripts.batch_check memory                 # 20,000 files, RSS stays flat
    .venv/bin/python -m scripts.batch_check memory --files 5000
    .venv/bin/python -m scripts.batch_check engines                # local vs Ray (2 workers), films/s
    .venv/bin/python -m scripts.batch_check engines --runtime onnx # needs 'export --format onnx'

``memory`` links the training films (``$PNEUMO_DATA_DIR/train``) under new names in a
temporary folder until there are ``--files`` of them, runs ``python -m pneumo predict FOLDER
--out results.csv`` and samples the process's resident memory (VmRSS) as rows reach the file:
the RSS at the end must be within 10% of the RSS once the first 1,000 films are on file.

``engines`` scores the training films with the local engine and with Ray (``--workers``),
one after the other on this machine, and prints each one's films/s and their ratio; Ray's
start-up (the cluster, then one model per actor) is timed apart, as the per-worker overhead.

Each prints a summary line and exits 0 when its check passed, 1 otherwise. The figures are
measurements of this machine at this moment, not assertions of the test suite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pneumo.data import default_data_dir
from pneumo.io import find_film_files
from tests.support.memory import rss_mb

FIRST_SAMPLE = 1000
GROWTH_LIMIT = 0.10


def link_films(source: Path, folder: Path, count: int) -> int:
    """``count`` links to the films under ``source``, cycling through them under new names."""
    films = find_film_files([source])
    for i in range(count):
        film = films[i % len(films)]
        (folder / f"{i:06d}-{film.name}").symlink_to(film.resolve())
    return count


def rows_on_file(path: Path) -> int:
    try:
        return max(0, path.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def check_memory(files: int, runtime: str) -> bool:
    """Run predict over ``files`` links and compare its RSS at the end with after the first 1,000."""
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "films"
        folder.mkdir()
        link_films(default_data_dir() / "train", folder, files)
        out = Path(work) / "results.csv"
        process = subprocess.Popen([sys.executable, "-m", "pneumo", "predict", str(folder), "--out", str(out),
                                    "--runtime", runtime], stderr=subprocess.PIPE, text=True)
        samples: list[tuple[int, float]] = []
        while process.poll() is None:
            done = rows_on_file(out)
            try:
                samples.append((done, rss_mb(process.pid)))
            except (FileNotFoundError, RuntimeError):
                break
            if len(samples) % 50 == 0:
                print(f"memory: {done} of {files} films, RSS {samples[-1][1]:.0f} MB", flush=True)
            time.sleep(0.5)
        process.communicate()
        if process.returncode != 0 or rows_on_file(out) != files:
            print(f"memory: predict failed (exit {process.returncode}, {rows_on_file(out)} rows)")
            return False
    first = next(rss for done, rss in samples if done >= FIRST_SAMPLE)
    last = [rss for done, rss in samples if done >= files - 200][-1]
    peak = max(rss for _, rss in samples)
    growth = (last - first) / first
    print(f"memory: {files} files ({runtime}); RSS {first:.0f} MB after {FIRST_SAMPLE} films, {last:.0f} MB at "
          f"the end ({growth:+.1%}), peak {peak:.0f} MB; {'flat' if growth <= GROWTH_LIMIT else 'GROWING'}")
    return growth <= GROWTH_LIMIT


def timed_predict(argv: list[str]) -> tuple[float, str]:
    """Seconds a ``predict`` run takes, and its stderr."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pneumo", "predict", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return time.monotonic() - started, done.stderr


def check_engines(workers: int, runtime: str) -> bool:
    """The training films with the local engine and with Ray; films/s of each and their ratio."""
    train = default_data_dir() / "train"
    films = len(find_film_files([train]))
    with tempfile.TemporaryDirectory() as work:
        local_s, _ = timed_predict([str(train), "--out", f"{work}/local.csv", "--runtime", runtime])
        ray_s, _ = timed_predict([str(train), "--out", f"{work}/ray.csv", "--runtime", runtime,
                                  "--engine", "ray", "--workers", str(workers)])
        small = Path(work) / "one"
        small.mkdir()
        link_films(train, small, 1)
        startup_s, _ = timed_predict([str(small), "--out", f"{work}/one.csv", "--runtime", runtime,
                                      "--engine", "ray", "--workers", str(workers)])
        local_one_s, _ = timed_predict([str(small), "--out", f"{work}/one-local.csv", "--runtime", runtime])
    overhead = startup_s - local_one_s
    print(f"engines: {films} films ({runtime}); local {films / local_s:.0f} films/s ({local_s:.0f} s); Ray with "
          f"{workers} workers {films / ray_s:.0f} films/s ({ray_s:.0f} s); Ray / local = {local_s / ray_s:.2f}; "
          f"Ray's start-up over the local engine's: {overhead:.0f} s for {workers} workers")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.batch_check", description=__doc__.splitlines()[0])
    checks = parser.add_subparsers(dest="check", required=True)
    memory = checks.add_parser("memory", help="RSS over a long run")
    memory.add_argument("--files", type=int, default=20000)
    memory.add_argument("--runtime", default="keras")
    engines = checks.add_parser("engines", help="local against Ray on the training films")
    engines.add_argument("--workers", type=int, default=2)
    engines.add_argument("--runtime", default="keras")
    args = parser.parse_args(argv)
    if not (default_data_dir() / "train").is_dir():
        print(f"batch_check: no training films at {default_data_dir() / 'train'}", file=sys.stderr)
        return 2
    passed = check_memory(args.files, args.runtime) if args.check == "memory" else check_engines(
        args.workers, args.runtime)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

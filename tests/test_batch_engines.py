"""The batch engines on real films: local and Ray give the same rows; vanished files, bad addresses
and interrupted runs are handled without losing or doubling a film."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pneumo.batch import engines
from pneumo.batch.results import RESULT_FIELDS, ResultsFile, model_id
from pneumo.store import read_card, store_dir
from scripts.batch_check import rows_on_file
from tests.support.films import assert_one_sentence

FILMS_PER_CLASS = 12


@pytest.fixture(scope="module")
def film_folder(train_dir, tmp_path_factory) -> Path:
    """Real training films of both classes (links), a noise image the guard refuses, an unreadable file."""
    folder = tmp_path_factory.mktemp("films")
    for class_name in ("NORMAL", "PNEUMONIA"):
        for source in sorted((train_dir / class_name).iterdir())[:FILMS_PER_CLASS]:
            (folder / f"{class_name}-{source.name}").symlink_to(source)
    noise = np.random.default_rng(3).integers(0, 255, (400, 400), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "noise.png")
    (folder / "notes.png").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def spec() -> engines.ScoringSpec:
    card = read_card(None)
    name = (store_dir() / "DEFAULT").read_text().strip()
    return engines.ScoringSpec(model=name, store=str(store_dir().resolve()), tag=model_id(name, card["sha256"]))


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def predict(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pneumo", "predict", *argv], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_local_and_ray_engines_write_the_same_rows(film_folder, tmp_path):
    local = predict(str(film_folder), "--out", str(tmp_path / "local.csv"))
    assert local.returncode == 0, local.stderr
    ray = predict(str(film_folder), "--out", str(tmp_path / "ray.parquet"), "--engine", "ray", "--workers", "2")
    assert ray.returncode == 0, ray.stderr
    assert "scoring on 2 Ray workers" in ray.stderr
    import pandas as pd

    on_ray = pd.read_parquet(tmp_path / "ray.parquet")
    by_local = {row["path"]: row for row in read_rows(tmp_path / "local.csv")}
    assert list(on_ray["path"]) == list(by_local)  # the same films, in the same order
    assert len(by_local) == 2 * FILMS_PER_CLASS + 2
    for row in on_ray.to_dict("records"):
        mine = by_local[row["path"]]
        assert row["status"] == mine["status"] and row["label"] == mine["label"]
        assert row["sha256"] == mine["sha256"] and row["model"] == mine["model"]
        if mine["p_pneumonia"]:
            assert abs(row["p_pneumonia"] - float(mine["p_pneumonia"])) <= 1e-4
    statuses = {Path(path).name: row["status"] for path, row in by_local.items()}
    assert statuses["noise.png"] == "rejected" and statuses["notes.png"] == "error"
    assert sum(status == "ok" for status in statuses.values()) == 2 * FILMS_PER_CLASS
    # The summary line says what was done and where it went.
    assert f"done: {2 * FILMS_PER_CLASS + 2} films ({2 * FILMS_PER_CLASS} ok, 1 rejected, 1 error)" in ray.stderr
    assert f"results in {tmp_path / 'ray.parquet'}" in ray.stderr.splitlines()[-1]


def test_a_file_that_vanishes_mid_run_gets_one_sentence_and_the_run_goes_on(film_folder, spec, tmp_path):
    folder = tmp_path / "films"
    folder.mkdir()
    paths = []
    for source in sorted(film_folder.iterdir())[:8]:
        (folder / source.name).symlink_to(source.resolve() if source.is_symlink() else source)
        paths.append(str(folder / source.name))
    results = ResultsFile(tmp_path / "out.csv", spec.tag)
    seen = []

    def advance(rows):  # after the first batch, a later film is deleted
        seen.extend(rows)
        if len(seen) == 4:
            os.unlink(paths[6])

    engines.run_local(spec, paths, results, advance, batch_size=4)
    rows = read_rows(tmp_path / "out.csv")
    assert [row["path"] for row in rows] == paths
    gone = rows[6]
    assert gone["status"] == "error" and gone["sha256"] == ""
    assert gone["message"] == f"The file {paths[6]} vanished before it could be read."
    assert_one_sentence(gone["message"])
    assert all(row["status"] != "error" for i, row in enumerate(rows) if i != 6 and "notes" not in row["path"])


def test_score_blobs_keeps_the_order_and_checksums_the_bytes(film_folder, spec):
    classifier = spec.classifier()
    film = sorted(film_folder.glob("NORMAL-*"))[0]
    data = film.read_bytes()
    rows = engines.score_blobs(classifier, [("a", data, ""), ("b", None, "The file b vanished."), ("c", data, "")],
                               spec.tag)
    assert [row["path"] for row in rows] == ["a", "b", "c"]
    assert list(rows[0]) == list(RESULT_FIELDS)
    import hashlib

    assert rows[0]["sha256"] == hashlib.sha256(data).hexdigest() and rows[1]["sha256"] == ""
    assert rows[0]["p_pneumonia"] == rows[2]["p_pneumonia"] != ""
    assert rows[1]["status"] == "error" and rows[1]["message"] == "The file b vanished."
    assert engines.tallies(rows) == {"ok": 2, "rejected": 0, "error": 1}


@pytest.mark.parametrize("address, words", [
    ("127.0.0.1:1", "No Ray cluster answers at 127.0.0.1:1"),
    ("headnode", "give the head node as HOST:PORT"),
])
def test_a_bad_ray_address_is_one_sentence_before_any_work(address, words):
    with pytest.raises(engines.EngineError) as caught:
        engines.check_ray_address(address, timeout=2)
    assert words in str(caught.value)
    assert_one_sentence(str(caught.value))


def test_predict_with_a_dead_ray_address_exits_2_with_one_line(film_folder, tmp_path):
    done = predict(str(film_folder), "--engine", "ray", "--address", "127.0.0.1:1", "--out",
                   str(tmp_path / "r.csv"), timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "pneumo predict: No Ray cluster answers at 127.0.0.1:1 (Connection refused); start one with "
        "'ray start --head' there, or leave out --address to run Ray on this machine."]
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("argv, words", [
    (["--address", "127.0.0.1:6379"], "--address and --workers are options of --engine ray."),
    (["--out", "/no/such/folder/r.csv"], "no such folder /no/such/folder."),
    (["--out", "results.txt"], "must end in .csv or .parquet."),
])
def test_predict_refuses_a_mistake_in_one_line_before_scoring(film_folder, argv, words):
    done = predict(str(film_folder), *argv, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert words in done.stderr


def interrupt_halfway(argv: list[str], out: Path, total: int, sig: int) -> subprocess.CompletedProcess:
    """Start ``predict``, send ``sig`` once half the films are on file, and wait for it to end."""
    # A shell's background job starts with SIGINT ignored, and Python keeps it so: give the run
    # the default disposition, as a terminal's foreground command has.
    process = subprocess.Popen([sys.executable, "-m", "pneumo", "predict", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 600
    while rows_on_file(out) < total // 2:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run did not reach half way in 10 minutes"
        time.sleep(0.2)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_an_interrupted_run_resumes_with_every_film_exactly_once(train_dir, tmp_path, sig):
    from pneumo.io import find_film_files

    films = [str(p) for p in find_film_files([train_dir])]
    assert len(films) >= 5000
    out = tmp_path / "results.csv"
    stopped = interrupt_halfway([str(train_dir), "--out", str(out)], out, len(films), sig)
    if sig == signal.SIGINT:
        assert stopped.returncode == 130
        assert "interrupted" in stopped.stderr.splitlines()[-1]
        assert "rerun the same command to score the rest" in stopped.stderr
    else:
        assert stopped.returncode == -signal.SIGKILL
    kept = len({row["path"] for row in ResultsFile(out, read_rows(out)[0]["model"]).rows()})
    assert len(films) // 2 <= kept < len(films)

    finished = predict(str(train_dir), "--out", str(out))
    assert finished.returncode == 0, finished.stderr
    assert f"{kept} films already in {out} are kept; {len(films) - kept} to score." in finished.stderr
    assert f"done: {len(films) - kept} films" in finished.stderr  # none scored twice
    rows = read_rows(out)
    assert sorted(row["path"] for row in rows) == sorted(films)  # every film exactly once
    assert all(row["sha256"] for row in rows)

"""The batch results file: whole rows on file, resumable by path and checksum, never half-written."""

from __future__ import annotations

import csv
import os
import re

import pytest

from pneumo.batch.results import (
    RESULT_FIELDS,
    ResultsError,
    ResultsFile,
    StreamedResults,
    bytes_sha256,
    model_id,
)
from pneumo.inference.predict import CSV_FIELDS
from tests.support.films import assert_one_sentence

MODEL = model_id("cnn160x5", "1e7e360fec10" + "0" * 52)


def row_for(path, data: bytes, p: float = 0.25, site: str = "", model: str = MODEL) -> dict:
    """A results row as an engine writes it, for a file with bytes ``data``."""
    return {"path": str(path), "status": "ok", "p_pneumonia": f"{p:.4f}", "label": "NORMAL", "p_bacterial": "",
            "pattern": "", "message": "", "site": site, "model": model, "sha256": bytes_sha256(data)}


@pytest.fixture
def films(tmp_path):
    """Three small files standing in for films (only their bytes matter here)."""
    paths = []
    for i in range(3):
        path = tmp_path / f"film{i}.png"
        path.write_bytes(bytes([i]) * 100)
        paths.append(str(path))
    return paths


def read_rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_columns_are_predicts_then_the_model_and_the_files_checksum():
    assert RESULT_FIELDS == (*CSV_FIELDS, "model", "sha256")
    assert model_id("cnn160x5", "ab" * 32) == "cnn160x5@" + "ab" * 6


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_rerun_skips_what_is_on_file_and_scores_a_changed_file_again(tmp_path, films, suffix):
    out = tmp_path / f"results{suffix}"
    first = ResultsFile(out, MODEL)
    assert first.plan(films).todo == films
    first.append([row_for(path, open(path, "rb").read()) for path in films[:2]])
    first.finish()

    again = ResultsFile(out, MODEL)
    plan = again.plan(films)
    assert (plan.todo, plan.skipped, plan.changed) == (films[2:], 2, [])

    with open(films[0], "wb") as handle:  # the file changed since its row was written
        handle.write(b"other bytes")
    third = ResultsFile(out, MODEL)
    plan = third.plan(films)
    assert plan.todo == [films[0], films[2]] and plan.changed == [films[0]] and plan.skipped == 1
    third.append([row_for(films[0], b"other bytes", p=0.75), row_for(films[2], open(films[2], "rb").read())])
    third.finish()
    rows = ResultsFile(out, MODEL).rows()
    assert sorted(row["path"] for row in rows) == films  # each film exactly once
    assert {row["path"]: row["p_pneumonia"] for row in rows}[films[0]] == "0.7500"


def test_a_rerun_finds_a_films_row_however_its_path_is_spelt(tmp_path, films, monkeypatch):
    out = tmp_path / "results.csv"
    first = ResultsFile(out, MODEL)
    first.append([row_for(path, open(path, "rb").read()) for path in films])  # absolute paths
    first.finish()
    monkeypatch.chdir(tmp_path)
    relative = [os.path.relpath(path) for path in films]  # "film0.png", as typed from the folder
    assert relative[0] == "film0.png"
    plan = ResultsFile(out, MODEL).plan(relative)
    assert (plan.todo, plan.skipped) == ([], 3)
    with open(films[1], "wb") as handle:
        handle.write(b"changed")
    again = ResultsFile(out, MODEL)
    plan = again.plan(relative)
    assert plan.todo == plan.changed == ["film1.png"]
    assert sorted(row["path"] for row in again.rows()) == [films[0], films[2]]  # the old spelling's row is gone


def test_a_csv_results_file_is_readable_after_every_batch_and_a_torn_last_line_is_cut(tmp_path, films):
    out = tmp_path / "results.csv"
    results = ResultsFile(out, MODEL)
    results.append([row_for(films[0], b"x")])
    assert [row["path"] for row in read_rows(out)] == [films[0]]  # on disk before the run ends
    results.append([row_for(films[1], b"y")])
    with open(out, "ab") as handle:  # a kill in the middle of writing a row
        handle.write(b"/a/torn/row.png,ok,0.12")
    resumed = ResultsFile(out, MODEL)
    assert [row["path"] for row in resumed.rows()] == films[:2]
    resumed.append([row_for(films[2], b"z")])
    assert [row["path"] for row in read_rows(out)] == films  # parses whole, the torn bytes are gone
    assert out.read_text().count("\n") == 4


def test_a_damaged_middle_line_is_refused_in_one_sentence_naming_it(tmp_path, films):
    out = tmp_path / "results.csv"
    results = ResultsFile(out, MODEL)
    results.append([row_for(path, b"x") for path in films])
    results.finish()
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2] + ["/a/torn/row.png,ok,0.12\n"] + lines[2:]))  # an edit gone wrong
    with pytest.raises(ResultsError, match=rf"^Line 3 of {re.escape(str(out))} is damaged \(it does not have "
                                           rf"the file's {len(RESULT_FIELDS)} columns\)"):
        ResultsFile(out, MODEL)


def test_a_parquet_file_is_written_whole_and_an_unfinished_run_is_taken_up(tmp_path, films):
    import pyarrow.parquet as pq

    out = tmp_path / "results.parquet"
    results = ResultsFile(out, MODEL)
    results.append([row_for(films[0], open(films[0], "rb").read(), p=0.5)])
    assert not out.exists()  # until the run ends, the rows are in the journal only
    journal = tmp_path / ".results.parquet.partial.csv"
    assert journal.exists()
    # The process dies here: no finish(). The next run takes the journal up.
    resumed = ResultsFile(out, MODEL)
    assert resumed.plan(films).todo == films[1:]
    resumed.append([row_for(films[1], open(films[1], "rb").read())])
    resumed.finish()
    table = pq.read_table(out)
    assert table.column_names == list(RESULT_FIELDS)
    assert table.column("p_pneumonia").to_pylist() == [0.5, 0.25]
    assert table.column("p_bacterial").to_pylist() == [None, None]
    assert not journal.exists()


def test_rows_with_a_line_break_stay_one_row(tmp_path, films):
    out = tmp_path / "results.csv"
    row = {**row_for(films[0], b"x"), "message": "first line\nsecond line"}
    ResultsFile(out, MODEL).append([row])
    assert read_rows(out)[0]["message"] == "first line second line"


@pytest.mark.parametrize("existing, model, site, words", [
    ("other-model", "cnn160x5@000000000000", "", "holds results of model"),
    ("other-site", MODEL, "north", "site calibration"),
    ("not-results", MODEL, "", "is not a results file"),
])
def test_a_file_of_another_model_site_or_kind_is_refused_in_one_sentence(tmp_path, films, existing, model,
                                                                         site, words):
    out = tmp_path / "results.csv"
    if existing == "not-results":
        out.write_text("path,probability\nx.png,0.5\n")
    else:
        ResultsFile(out, MODEL).append([row_for(films[0], b"x", site="north" if existing == "other-model" else "")])
        if existing == "other-model":
            site = "north"
    with pytest.raises(ResultsError) as caught:
        ResultsFile(out, model, site)
    assert words in str(caught.value)
    assert_one_sentence(str(caught.value))


@pytest.mark.parametrize("name, words", [
    ("results.txt", "must end in .csv or .parquet"),
    ("no/such/folder/results.csv", "no such folder"),
    ("", "is a folder"),
])
def test_an_unusable_output_path_is_one_sentence(tmp_path, name, words):
    target = tmp_path / name if name else tmp_path
    if not name:
        target = tmp_path / "folder.csv"
        target.mkdir()
    with pytest.raises(ResultsError) as caught:
        ResultsFile(target, MODEL)
    assert words in str(caught.value)
    assert_one_sentence(str(caught.value))


def test_a_folder_that_refuses_writes_is_one_sentence_when_the_first_batch_is_written(films):
    results = ResultsFile("/proc/pneumo-results.csv", MODEL)  # /proc takes no new files, even from root
    with pytest.raises(ResultsError) as caught:
        results.append([row_for(films[0], b"x")])
    assert "cannot be written" in str(caught.value)
    assert_one_sentence(str(caught.value))


def test_streamed_results_write_the_same_columns_and_resume_nothing(films):
    import io

    stream = io.StringIO()
    results = StreamedResults(stream)
    assert results.plan(films).todo == films
    results.append([row_for(films[0], b"x")])
    lines = stream.getvalue().splitlines()
    assert lines[0] == ",".join(RESULT_FIELDS) and lines[1].startswith(films[0] + ",ok,0.2500,NORMAL")

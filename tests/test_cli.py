"""The command line as a user meets it: exit codes, one-sentence errors, the CSV contract."""

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest

from pneumo.cli import main


@pytest.fixture
def use_tiny_store(tiny_store, monkeypatch):
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tiny_store))
    return tiny_store


@pytest.fixture(scope="module")
def small_split(tmp_path_factory, train_dir):
    """A split folder of 6 real films per class (copied to a temporary folder, never the repo)."""
    root = tmp_path_factory.mktemp("split") / "test"
    for name in ("NORMAL", "PNEUMONIA"):
        (root / name).mkdir(parents=True)
        for film in sorted((train_dir / name).iterdir())[:6]:
            shutil.copy(film, root / name / film.name)
    return root


def test_predict_csv_contract_with_a_broken_file_mid_batch(use_tiny_store, tmp_path, normal_film,
                                                             pneumonia_film, capsys):
    folder = tmp_path / "films"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(normal_film, folder / "a.jpeg")
    (folder / "b_broken.png").write_bytes(b"not an image at all")
    shutil.copy(pneumonia_film, folder / "nested" / "c.jpeg")
    out = tmp_path / "rows.csv"
    before = sorted(p.name for p in folder.rglob("*"))
    assert main(["predict", str(folder), "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["path", "status", "p_pneumonia", "label", "message", "site"]
    assert {r["site"] for r in rows} == {""}
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert rows[1]["p_pneumonia"] == "" and "not an image" in rows[1]["message"]
    assert rows[2]["path"].endswith("nested/c.jpeg") and rows[2]["label"] in ("NORMAL", "PNEUMONIA")
    assert sorted(p.name for p in folder.rglob("*")) == before  # nothing written beside the films


def test_predict_prints_csv_to_stdout(use_tiny_store, normal_film, capsys):
    assert main(["predict", str(normal_film)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and rows[0]["status"] == "ok"


@pytest.mark.parametrize("argv, message", [
    (["predict", "/no/such/film.png"], "No such file or folder"),
    (["predict", "{empty}"], "No films found"),
    (["predict", "{film}", "--model", "nope"], "Unknown model 'nope'"),
    (["evaluate", "--data", "/no/such/folder"], "No such data folder"),
    (["profile", "--data", "{empty}"], "No films found"),
])
def test_user_mistakes_are_one_sentence_and_exit_2(use_tiny_store, tmp_path, normal_film, capsys,
                                                    argv, message):
    (tmp_path / "empty").mkdir()
    argv = [a.format(empty=tmp_path / "empty", film=normal_film) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_no_traceback_from_a_real_process(use_tiny_store):
    done = subprocess.run([sys.executable, "-m", "pneumo", "predict", "/no/such/film.png"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "No such file or folder: /no/such/film.png" in done.stderr


def test_evaluate_reports_the_literature_table(use_tiny_store, small_split, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--data", str(small_split), "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["n"] == 12 and figures["per_class"]["NORMAL"]["support"] == 6
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc", "pr_auc", "ece", "brier",
                "confusion_matrix", "recall_by_subtype"):
        assert key in figures
    printed = capsys.readouterr().out
    assert "precision" in printed and "ROC AUC" in printed


def test_evaluate_uses_the_test_split_of_a_kaggle_root(use_tiny_store, small_split, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--data", str(small_split.parent), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["n"] == 12


def test_profile_counts_films_and_patients(small_split, tmp_path, capsys):
    out = tmp_path / "profile.json"
    assert main(["profile", "--data", str(small_split), "--json", str(out)]) == 0
    profile = json.loads(out.read_text())
    assert profile["films"] == {"test": {"NORMAL": 6, "PNEUMONIA": 6}}
    assert profile["n_films"] == 12 and len(profile["image_sizes"]["width"]) == 12
    assert "12 films" in capsys.readouterr().out


def test_bench_json_line(use_tiny_store, capsys):
    assert main(["bench", "--runs", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("predict_ms_p50", "gradcam_ms_p50", "throughput_img_s", "peak_rss_mb"):
        assert result[key] > 0

"""The command line as a user meets it: exit codes, one-sentence errors, the CSV contract."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pneumo.cli import EXIT_BROKEN_PIPE, main


@pytest.fixture
def use_tiny_store(tiny_store, monkeypatch):
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tiny_store))
    return tiny_store


@pytest.fixture(scope="module")
def small_split(tmp_path_factory, train_dir):
    """A split folder of 6 real films per class, each of another patient (copied to a temporary
    folder, never the repo), enough for 5 patient-grouped folds."""
    from pneumo import data

    root = tmp_path_factory.mktemp("split") / "test"
    for name in ("NORMAL", "PNEUMONIA"):
        (root / name).mkdir(parents=True)
    chosen: dict[str, dict[str, object]] = {"NORMAL": {}, "PNEUMONIA": {}}
    for record in data.find_films(train_dir):
        if len(chosen[record.class_name]) < 6:
            chosen[record.class_name].setdefault(record.patient, record.path)
    for name, films in chosen.items():
        for film in films.values():
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
    assert list(rows[0]) == ["path", "status", "p_pneumonia", "label", "p_bacterial", "pattern", "message", "site",
                             "model", "sha256"]
    assert {r["site"] for r in rows} == {""}
    assert {r["pattern"] for r in rows} == {r["p_bacterial"] for r in rows} == {""}  # no subtype model here
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert rows[1]["p_pneumonia"] == "" and "not an image" in rows[1]["message"]
    assert rows[2]["path"].endswith("nested/c.jpeg") and rows[2]["label"] in ("NORMAL", "PNEUMONIA")
    assert sorted(p.name for p in folder.rglob("*")) == before  # nothing written beside the films


def test_a_file_name_that_is_not_utf8_gets_its_row_and_the_batch_goes_on(use_tiny_store, tmp_path, normal_film):
    folder = tmp_path / "share"
    folder.mkdir()
    latin = os.fsdecode(b"M\xfcller.jpeg")  # a Latin-1 name from an old file share
    shutil.copy(normal_film, folder / latin)
    shutil.copy(normal_film, folder / "plain.jpeg")
    out = tmp_path / "rows.csv"
    assert main(["predict", str(folder), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))  # the file is plain UTF-8
    assert sorted(Path(r["path"]).name for r in rows) == ["M\\xfcller.jpeg", "plain.jpeg"]
    assert {r["status"] for r in rows} == {"ok"}
    assert main(["predict", str(folder), "--out", str(out)]) == 0  # a rerun finds both rows
    assert len(list(csv.DictReader(out.open(encoding="utf-8")))) == 2


def test_predict_into_a_closed_pipe_stops_quietly(use_tiny_store, normal_film):
    reader = subprocess.Popen([sys.executable, "-m", "pneumo", "predict", str(normal_film)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader.stdout.close()  # as `| head` does once it has what it wants
    _, errors = reader.communicate(timeout=120)
    assert reader.returncode == EXIT_BROKEN_PIPE
    assert b"Traceback" not in errors and b"BrokenPipeError" not in errors


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
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc", "average_precision", "ece", "brier",
                "confusion_matrix", "recall_by_subtype"):
        assert key in figures
    printed = capsys.readouterr().out
    assert "precision" in printed and "ROC AUC" in printed
    assert figures["training_films"] == 0 and "carry the names" not in printed  # the tiny card lists none


def test_evaluate_on_films_the_shipped_ensemble_learned_from_says_its_figures_are_in_sample(
        small_split, tmp_path, capsys, monkeypatch):
    from pneumo import store

    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(store.REPO_STORE))
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--data", str(small_split), "--json", str(out)]) == 0  # 12 copies of training films
    assert json.loads(out.read_text())["training_films"] == 12
    assert ("12 of these 12 films carry the names of films the model learned from: on them these figures are "
            "in-sample (optimistic)") in capsys.readouterr().out


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


# -- the options and their effective defaults ------------------------------------------------------

OPTIONS = {
    "train": ["--architecture", "--batch-size", "--border-allowance", "--border-penalty", "--checkpoint-dir",
              "--data", "--epochs", "--horizontal-flip", "--input-size", "--label-smoothing",
              "--learning-rate", "--limit", "--max-minutes", "--out", "--patience", "--seed", "--start-from",
              "--val-fraction", "--weights", "--width"],
    "train-cv": ["--border-allowance", "--border-penalty", "--data", "--epochs", "--folds", "--input-size",
                 "--label-smoothing", "--learning-rate", "--min-sensitivity", "--out", "--resamples",
                 "--run-dir", "--schemes", "--seed", "--ship", "--width"],
    "evaluate": ["--data", "--json", "--model", "--runtime", "--site", "--split"],
    "predict": ["--address", "--batch-size", "--csv", "--engine", "--model", "--out", "--runtime", "--site",
                "--workers"],
    "calibrate-site": ["--data", "--min-sensitivity", "--model", "--name"],
    "profile": ["--data", "--json"],
    "bench": ["--json", "--model", "--runs"],
    "explain-eval": ["--canvas", "--data", "--json", "--limit", "--model", "--random-models", "--save",
                     "--seed", "--split", "--steps"],
    "operating-point": ["--data", "--min-sensitivity", "--model"],
    "fit-guard": ["--data", "--limit", "--max-train", "--model", "--per-kind", "--seed"],
    "train-subtype": ["--data", "--epochs", "--learning-rate", "--model", "--run-dir", "--seed", "--ship-below-floor"],
    "dicom-listener": ["--ae-title", "--allow", "--forward", "--host", "--keep-accession", "--keep-overlays",
                       "--model", "--port", "--retry-delay", "--site", "--work-dir"],
    "export": ["--format", "--model", "--out"],
}
"""Every command and its options, as users and scripts know them."""


def test_every_command_keeps_its_options():
    from pneumo.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    found = {name: sorted(o for a in sub._actions for o in a.option_strings if o not in ("-h", "--help"))
             for name, sub in commands.items()}
    assert found == {name: sorted([*options, "--verbose"]) for name, options in OPTIONS.items()}


class Stop(Exception):
    """Raised by a captured owner, so the command stops before the long work."""


@pytest.fixture
def capture(monkeypatch):
    """``capture(module, name)``: replace a function; its call's arguments, defaults applied, land in the dict."""
    import functools
    import inspect

    calls = {}

    def replace(module, name):
        original = getattr(module, name)
        signature = inspect.signature(original)

        @functools.wraps(original)  # keeps the signature, whose defaults a command may read
        def fake(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            calls[name] = dict(bound.arguments)
            raise Stop

        monkeypatch.setattr(module, name, fake)
        return calls

    return replace


@pytest.fixture
def own_split(monkeypatch, small_split):
    """The tiny model's own (training, validation) films: the small split's films, both sides."""
    from pneumo import data, folds

    records = data.find_films(small_split)
    monkeypatch.setattr(folds, "training_records", lambda card, root: (records, records))
    return records


def test_train_defaults_are_the_training_configuration(capture, small_split, tmp_path):
    from pneumo.modeling.augment import AugmentConfig
    from pneumo.training import train

    calls = capture(train, "train")
    with pytest.raises(Stop):
        main(["train", "--data", str(small_split), "--out", str(tmp_path / "model")])
    config = calls["train"]["config"]
    assert config == train.TrainConfig(data=str(small_split), out=str(tmp_path / "model"))
    assert (config.architecture, config.input_size, config.width, config.epochs, config.batch_size,
            config.learning_rate, config.label_smoothing, config.val_fraction, config.seed, config.patience,
            config.max_minutes, config.weights, config.limit, config.border_penalty, config.border_allowance,
            config.start_from, config.checkpoint_dir) == (
        "cnn", 192, 32, 28, 32, 2e-3, 0.05, 0.2, 0, 8, 58.0, None, None, 0.0, 0.0, None, None)
    assert config.augment == AugmentConfig(horizontal_flip=False)


def test_train_options_reach_the_configuration(capture, small_split, tmp_path):
    from pneumo.training import train

    calls = capture(train, "train")
    with pytest.raises(Stop):
        main(["train", "--data", str(small_split), "--out", str(tmp_path / "m"), "--epochs", "3",
              "--horizontal-flip", "--border-penalty", "0.1", "--architecture", "resnet50"])
    config = calls["train"]["config"]
    assert (config.epochs, config.augment.horizontal_flip, config.border_penalty, config.architecture) == (
        3, True, 0.1, "resnet50")


def test_train_cv_defaults_are_the_shipped_recipe(capture, monkeypatch, small_split, tmp_path):
    from pneumo.training import crossval

    trained = []
    monkeypatch.setattr(crossval, "finished_folds", lambda run_dir, scheme, k: list(range(k)))
    monkeypatch.setattr(crossval, "train_folds", lambda config, scheme, k, run_dir, **_: trained.append((scheme, k)))
    calls = capture(crossval, "assemble")
    with pytest.raises(Stop):
        main(["train-cv", "--data", str(small_split), "--out", str(tmp_path / "cv"),
              "--run-dir", str(tmp_path / "runs")])
    call = calls["assemble"]
    config = call["config"]
    assert (config.input_size, config.width, config.epochs, config.learning_rate, config.label_smoothing,
            config.border_penalty, config.border_allowance, config.min_sensitivity, config.seed,
            config.max_minutes) == (160, 24, 8, 2e-3, 0.05, 0.05, 0.15, 0.95, 0, 24 * 60.0)
    assert (call["k"], call["ship"], call["schemes"], call["resamples"]) == (5, "random", ("block", "random"), 1000)
    assert trained == [("block", 5), ("random", 5)]


def test_explain_eval_defaults_are_the_faithfulness_configuration(use_tiny_store, capture, small_split):
    from pneumo.evaluation import faithfulness

    calls = capture(faithfulness, "measure")
    with pytest.raises(Stop):
        main(["explain-eval", "--data", str(small_split)])
    config = calls["measure"]["config"]
    assert config == faithfulness.FaithfulnessConfig()
    assert (config.steps, config.canvas, config.seed, config.randomization_models) == (24, "mean", 0, 5)


def test_fit_guard_defaults(use_tiny_store, capture, own_split, small_split):
    from pneumo.guard import fit

    calls = capture(fit, "fit_and_store_guard")
    with pytest.raises(Stop):
        main(["fit-guard", "--data", str(small_split)])
    call = calls["fit_and_store_guard"]
    assert (call["max_train"], call["per_kind"], call["seed"]) == (2000, 60, 0)


@pytest.mark.parametrize("argv, module, name", [
    (["calibrate-site", "--data", "{split}", "--name", "north"], "pneumo.inference.sites", "calibrate_site"),
    (["operating-point", "--data", "{split}"], "pneumo.training.train", "choose_operating_point"),
])
def test_the_minimum_sensitivity_is_095_by_default(use_tiny_store, capture, own_split, small_split,
                                                    argv, module, name):
    import importlib

    calls = capture(importlib.import_module(module), name)
    with pytest.raises(Stop):
        main([a.replace("{split}", str(small_split)) for a in argv])
    assert calls[name]["min_sensitivity"] == 0.95


def test_bench_runs_30_by_default(use_tiny_store, capture):
    from pneumo.evaluation import bench

    calls = capture(bench, "run")
    with pytest.raises(Stop):
        main(["bench"])
    assert calls["run"]["runs"] == 30


# -- mistakes found before the work ----------------------------------------------------------------

@pytest.fixture
def one_class(tmp_path, train_dir):
    """A split folder holding 3 pneumonia films and no normal one."""
    root = tmp_path / "pneumonia_only" / "test"
    (root / "PNEUMONIA").mkdir(parents=True)
    for film in sorted((train_dir / "PNEUMONIA").iterdir())[:3]:
        shutil.copy(film, root / "PNEUMONIA" / film.name)
    return root


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fail the test if a command loads its model before refusing."""
    from pneumo import store

    def load(*_, **__):
        raise AssertionError("the model was loaded before the mistake was found")

    monkeypatch.setattr(store, "load", load)


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--data", "{split}", "--model", "nope"], "Unknown model 'nope'"),
    (["evaluate", "--data", "{split}", "--site", "nowhere"], "Unknown site 'nowhere'"),
    (["evaluate", "--data", "{split}", "--split", "val"], "is a split folder itself"),
    (["evaluate", "--data", "{split}/..", "--split", "val"], "has no split folder 'val'"),
    (["predict", "{film}", "--site", "nowhere"], "Unknown site 'nowhere'"),
    (["evaluate", "--data", "{split}", "--json", "{tmp}/no/such/folder/eval.json"], "no such folder"),
    (["predict", "{film}", "--csv", "{tmp}"], "is a folder"),
    (["profile", "--data", "{split}", "--json", "{tmp}/missing/profile.json"], "no such folder"),
    (["explain-eval", "--data", "{one_class}", "--canvas", "normal"], "canvas needs normal films"),
    (["explain-eval", "--data", "{one_class}"], "canvas needs normal films"),
    (["explain-eval", "--data", "{split}", "--json", "{tmp}/no/such/folder/x.json"], "no such folder"),
    (["train", "--data", "{one_class}", "--out", "{tmp}/m"], "holds no NORMAL films"),
    (["train", "--data", "{split}", "--out", "{tmp}/m", "--architecture", "vgg16"], "Unknown architecture 'vgg16'"),
    (["train", "--data", "{split}", "--out", "{film}"], "is a file"),
    (["train-cv", "--data", "{split}", "--out", "{tmp}/m", "--schemes", "random", "--ship", "block"],
     "--schemes must name schemes"),
    (["train-cv", "--data", "{one_class}", "--out", "{tmp}/m"], "holds no NORMAL films"),
    (["train-cv", "--data", "{split}", "--out", "{tmp}/m", "--min-sensitivity", "1.5"],
     "--min-sensitivity must be between 0 and 1"),
    (["fit-guard", "--data", "{split}", "--limit", "5"], "--limit must be at least 10"),
    (["fit-guard", "--data", "{split}", "--limit", "20"], "name the model with --model"),
    (["fit-guard", "--data", "{split}", "--model", "nope"], "Unknown model 'nope'"),
    (["bench", "--runs", "0"], "--runs must be at least 1"),
    (["evaluate", "--data", "{split}", "--json", "/proc/figures.json"], "the folder /proc is not writable"),
    (["train-cv", "--data", "{split}", "--out", "{tmp}/m", "--run-dir", "/proc/cv-run"],
     "/proc is not a writable folder"),
    (["train", "--data", "{split}", "--out", "{tmp}/m", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["train", "--data", "{split}", "--out", "{tmp}/m", "--epochs", "0"], "--epochs must be at least 1"),
    (["train-cv", "--data", "{split}", "--out", "{tmp}/m", "--folds", "1"], "--folds must be at least 2"),
    (["train-subtype", "--data", "{split}", "--epochs", "0"], "--epochs must be at least 1"),
    (["fit-guard", "--data", "{split}", "--per-kind", "-1"], "--per-kind must be at least 1"),
    (["fit-guard", "--data", "{split}", "--max-train", "0"], "--max-train must be at least 1"),
    (["calibrate-site", "--data", "{split}", "--name", "north", "--min-sensitivity", "0"],
     "--min-sensitivity must be between 0 and 1"),
    (["calibrate-site", "--data", "{split}", "--name", "north", "--model", "nope"], "Unknown model 'nope'"),
    (["operating-point", "--data", "{split}", "--model", "nope"], "Unknown model 'nope'"),
])
def test_mistakes_are_refused_before_the_model_is_loaded(use_tiny_store, no_model_loading, small_split,
                                                          one_class, normal_film, tmp_path, capsys,
                                                          argv, message):
    argv = [a.format(split=small_split, one_class=one_class, film=normal_film, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_operating_point_on_an_ensemble_says_so_before_it_looks_at_the_folder(no_model_loading, small_split,
                                                                              monkeypatch, capsys):
    from pneumo import store

    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(store.REPO_STORE))
    name = store.default_model_name(store.REPO_STORE)
    assert main(["operating-point", "--data", str(small_split)]) == 2  # not the ensemble's training folder
    assert capsys.readouterr().err.strip() == (
        f"pneumo operating-point: Model {name!r} is an ensemble whose operating point is chosen on its "
        "out-of-fold probabilities; run 'python -m pneumo train-cv' again with --min-sensitivity (the folds "
        "finished in its --run-dir are reused).")


@pytest.mark.parametrize("command, words", [
    ("train", "5 patient-grouped parts (one held out for validation): it has 3 NORMAL patients and each of the 5 "
              "needs one; give more films."),
    ("train-cv", "5 patient-grouped folds: it has 3 NORMAL patients and each of the 5 needs one; give more films "
                 "or fewer --folds."),
])
def test_too_few_patients_to_hold_out_are_refused_before_any_film_is_decoded(no_model_loading, train_dir,
                                                                            tmp_path, monkeypatch, capsys,
                                                                            command, words):
    from pneumo import data

    root = tmp_path / "tiny"
    for name in ("NORMAL", "PNEUMONIA"):
        (root / name).mkdir(parents=True)
        for film in sorted((train_dir / name).iterdir())[:3]:
            (root / name / film.name).symlink_to(film)
    monkeypatch.setattr(data, "load_inputs", lambda *a, **k: pytest.fail("films were decoded"))
    monkeypatch.chdir(tmp_path)
    assert main([command, "--data", str(root), "--out", str(tmp_path / "m"), "--epochs", "1"]) == 2
    assert capsys.readouterr().err.strip() == f"pneumo {command}: {root} holds too few films for {words}"


@pytest.mark.parametrize("argv", [
    ["evaluate", "--data", "{split}", "--model", "nope"],
    ["predict", "{split}", "--site", "nowhere"],
])
def test_a_refused_command_never_starts_tensorflow(use_tiny_store, small_split, argv):
    argv = [a.format(split=small_split) for a in argv]
    script = ("import sys; from pneumo.cli import main; code = main(sys.argv[1:]); "
              "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False", "False"], done.stderr


# -- progress and the summary line (the work itself replaced; real runs: test_sites, test_guard, ...) --

VALIDATION = {"roc_auc": 0.91, "sensitivity": 0.96, "specificity": 0.7, "ece": 0.03}
EPOCH = {"loss": 0.25, "val_loss": 0.6, "val_auc": 0.9, "val_accuracy": 0.8, "val_border_share": 0.1}


def write_card(folder, **card) -> None:
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps({"threshold": 0.4, "validation": VALIDATION, **card}))


def test_train_notes_each_epoch_and_ends_with_a_summary(monkeypatch, small_split, tmp_path, capsys):
    from pneumo.training import train as module

    def train(config, log=print, on_epoch=None):
        log("12 films; training on 9, validating on 3 (patient-grouped, seed 0)")
        for epoch in (1, 2):
            on_epoch(epoch, EPOCH)
        write_card(tmp_path / "m", training={"best_epoch": 2, "epochs_run": 2})
        return tmp_path / "m"

    monkeypatch.setattr(module, "train", train)
    assert main(["train", "--data", str(small_split), "--out", str(tmp_path / "m"), "--epochs", "2"]) == 0
    out, err = capsys.readouterr()
    *lines, summary = err.splitlines()
    assert out == "" and lines[0] == "train: 12 films; training on 9, validating on 3 (patient-grouped, seed 0)"
    assert ("train: epoch 2/2: loss 0.2500; validation loss 0.6000, AUC 0.9000, accuracy 0.800, "
            "border share 0.100") in lines
    assert summary.startswith("train: done: 2 epochs in ")
    assert summary.endswith(f"; saved {tmp_path / 'm'}; validation: ROC AUC 0.9100, sensitivity 0.960, "
                            "specificity 0.700 at threshold 0.400; ECE 0.0300; epoch 2 of 2 kept")


def test_train_cv_counts_the_epochs_of_the_folds_it_trains(monkeypatch, small_split, tmp_path, capsys):
    from pneumo.training import crossval

    def train_folds(config, scheme, k, run_dir, log=print, records=None, inputs=None, on_epoch=None):
        for fold in range(k):
            log(f"{scheme} fold {fold + 1}/{k}: training")
            on_epoch(1, EPOCH)

    def assemble(config, run_dir, k=5, ship="random", schemes=(), resamples=1000, log=print):
        write_card(tmp_path / "cv", ensemble={"members": k},
                   validation={**VALIDATION, "kind": "out-of-fold (random folds)"})
        return tmp_path / "cv"

    monkeypatch.setattr(crossval, "train_folds", train_folds)
    monkeypatch.setattr(crossval, "assemble", assemble)
    assert main(["train-cv", "--data", str(small_split), "--out", str(tmp_path / "cv"), "--run-dir",
                 str(tmp_path / "runs"), "--folds", "2", "--schemes", "random", "--epochs", "1",
                 "--input-size", "32"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("cv: 2 members; out-of-fold (random folds): ROC AUC 0.9100")
    assert "train-cv: random fold 2/2: training" in err
    assert "train-cv: epoch 1/1: loss 0.2500; held-out loss 0.6000" in err
    summary = err.splitlines()[-1]
    assert summary.startswith("train-cv: done: 2 epochs in ")
    assert summary.endswith(f"; 2 of 2 folds trained (the others were done already); saved {tmp_path / 'cv'}")


@pytest.mark.parametrize("auc, ship, shipped", [(0.86, False, True), (0.80, False, False), (0.80, True, True)])
def test_train_subtype_counts_the_epochs_of_the_folds_it_fine_tunes(monkeypatch, tiny_store, small_split,
                                                                    tmp_path, capsys, auc, ship, shipped):
    from pneumo import store
    from pneumo.training import subtype

    root = tmp_path / "store"
    shutil.copytree(tiny_store, root)
    card = store.read_card("tiny", root)
    store.write_card("tiny", {**card, "ensemble": {"members": 2}, "out_of_fold": {}}, root)
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(root))

    def train_subtype_folds(loaded, data_dir, run_dir, config, log=print, on_epoch=None):
        for fold in range(2):
            for epoch in range(config.epochs):
                log(f"  epoch {epoch + 1}/{config.epochs}: loss 0.5000 (1 s)")
                on_epoch(epoch + 1, {"loss": 0.5})

    section = {"validation": {"figures": {"roc_auc": {"value": auc}, "accuracy": {"value": 0.82}},
                              "accuracy_with_main_model": {"value": 0.81}},
               "threshold": 0.5, "file": "subtype.keras"}
    asked = []
    monkeypatch.setattr(subtype, "train_subtype_folds", train_subtype_folds)
    monkeypatch.setattr(subtype, "assemble", lambda loaded, data_dir, run_dir, log=print, ship_below_floor=False:
                        asked.append(ship_below_floor) or section)
    assert main(["train-subtype", "--data", str(small_split), "--run-dir", str(tmp_path / "run"),
                 "--epochs", "2"] + (["--ship-below-floor"] if ship else [])) == 0
    assert asked == [ship]
    out, err = capsys.readouterr()
    assert out.startswith(f"subtype model of tiny: out-of-fold ROC AUC {auc:.4f}")
    assert ("not shipped, out-of-fold ROC AUC 0.800 is below 0.85" in out) is not shipped
    summary = err.splitlines()[-1]
    assert summary.startswith("train-subtype: done: 4 epochs in ")
    written = root / "tiny" / "subtype.keras" if shipped else tmp_path / "run" / "subtype.keras"
    assert summary.endswith(f"; 2 of 2 folds fine-tuned (the others were done already); wrote {written}"
                            + ("" if shipped else " (held back, below the floor)"))

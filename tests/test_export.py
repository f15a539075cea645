"""Exporting a stored model (ONNX, SavedModel) and scoring under ONNX Runtime: the same answers as Keras.

The shipped model is exported once, into a temporary copy of its store folder (never the
repository's); the tiny subtype store covers the subtype files.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pneumo import store
from pneumo.cli import main
from pneumo.inference import export
from pneumo.inference.predict import STATUS_OK, STATUS_REJECTED, Classifier
from pneumo.preprocess import to_model_input
from tests.support.films import assert_one_sentence

FILMS_PER_CLASS = 15
HINT = "python -m pneumo export --format onnx"


@pytest.fixture(scope="module")
def shipped_copy(tmp_path_factory) -> Path:
    """A store holding a copy of the shipped default model (its DEFAULT too)."""
    name = store.default_model_name(store.REPO_STORE)
    root = tmp_path_factory.mktemp("shipped_store")
    shutil.copytree(store.REPO_STORE / name, root / name)
    (root / store.DEFAULT_FILE).write_text(name + "\n")
    return root


@pytest.fixture(scope="module")
def use_store():
    """``use_store(root)``: point ``PNEUMO_MODEL_STORE`` at ``root`` for the rest of the module."""
    with pytest.MonkeyPatch.context() as patch:
        yield lambda root: patch.setenv("PNEUMO_MODEL_STORE", str(root))


@pytest.fixture(scope="module")
def exported(shipped_copy, use_store) -> Path:
    """The shipped copy after ``python -m pneumo export --format onnx`` (run once)."""
    use_store(shipped_copy)
    assert main(["export", "--format", "onnx"]) == 0
    return shipped_copy


@pytest.fixture(scope="module")
def loaded(exported):
    return store.load(None, exported)


@pytest.fixture(scope="module")
def keras_classifier(loaded):
    return Classifier(loaded)


@pytest.fixture(scope="module")
def onnx_classifier(loaded):
    return Classifier(loaded, runtime="onnx")


def noise_png() -> bytes:
    """A seeded noise image: not a film, so the guard refuses it."""
    pixels = np.random.default_rng(3).integers(0, 256, (300, 300), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def items(train_dir) -> list[tuple[str, Path | bytes]]:
    """15 normal and 15 pneumonia training films spread over each folder, then a noise PNG."""
    chosen = []
    for name in ("NORMAL", "PNEUMONIA"):
        files = sorted((train_dir / name).iterdir())
        chosen += files[:: len(files) // FILMS_PER_CLASS][:FILMS_PER_CLASS]
    return [(str(path), path) for path in chosen] + [("noise.png", noise_png())]


def inputs_of(items, size: int) -> np.ndarray:
    """Four films of each class as model inputs (8, size, size, 1) in 0-255."""
    from pneumo.io import read_film

    paths = [source for _, source in items[:4] + items[FILMS_PER_CLASS:FILMS_PER_CLASS + 4]]
    return np.stack([to_model_input(read_film(path), size) for path in paths])


# -- ONNX on the shipped ensemble ----------------------------------------------------------------


@pytest.mark.slow
def test_onnx_gives_keras_statuses_labels_and_probabilities(keras_classifier, onnx_classifier, items):
    assert onnx_classifier.guard is not None  # the guard reads the ONNX graph's pooled features
    under_keras = list(keras_classifier.assess_many(items))
    under_onnx = list(onnx_classifier.assess_many(items))
    assert [a.status for a in under_onnx] == [a.status for a in under_keras]
    assert [a.label for a in under_onnx] == [a.label for a in under_keras]
    np.testing.assert_allclose([a.p_pneumonia for a in under_onnx], [a.p_pneumonia for a in under_keras],
                               atol=1e-4)
    statuses = {a.status for a in under_keras}
    assert under_keras[-1].status == STATUS_REJECTED and STATUS_OK in statuses
    assert {a.label for a in under_keras if a.status == STATUS_OK} == {"NORMAL", "PNEUMONIA"}


@pytest.mark.slow
def test_scoring_under_onnx_needs_no_keras_network(exported, onnx_classifier, items, tmp_path):
    from pneumo.batch.engines import ScoringSpec

    scoring_only = store.load(None, exported, keras_model=False)
    assert scoring_only.model is None and scoring_only.card == onnx_classifier.loaded.card
    worker = ScoringSpec(model=scoring_only.name, store=str(exported), runtime="onnx").classifier()
    assert worker.loaded.model is None  # a batch worker under ONNX loads no Keras network
    expected = [a.p_pneumonia for a in onnx_classifier.assess_many(items)]
    assert [a.p_pneumonia for a in Classifier(scoring_only, runtime="onnx").assess_many(items)] == expected
    assert [a.p_pneumonia for a in worker.assess_many(items)] == expected
    with pytest.raises(ValueError, match="without its Keras network"):
        Classifier(scoring_only)
    copy = tmp_path / scoring_only.name
    shutil.copytree(scoring_only.path, copy)
    with open(copy / "model.keras", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(store.ModelStoreError):  # the file is still verified against its card
        store.load(scoring_only.name, tmp_path, keras_model=False)


@pytest.mark.slow
def test_the_card_records_the_shipped_models_onnx_file(exported, loaded):
    section = loaded.card["onnx"]
    folder = exported / loaded.name
    assert section["file"] == export.ONNX_FILE and section["folder"] == "."
    assert section["sha256"] == store.file_sha256(folder / export.ONNX_FILE)
    assert section["source_sha256"] == loaded.card["sha256"] == store.file_sha256(folder / store.MODEL_FILE)
    assert section["outputs"] == {"p_pneumonia": [None, 1], "pooled": [None, 960]}
    assert "subtype" not in section  # the shipped model has no subtype model
    assert max(section["max_abs_difference"].values()) < 1e-4


# -- ONNX on the tiny model and its subtype model ---------------------------------------------------


@pytest.fixture(scope="module")
def subtype_copy(tiny_subtype_store, tmp_path_factory) -> Path:
    """A copy of the tiny subtype store after ``export --format onnx``."""
    root = tmp_path_factory.mktemp("subtype_export")
    shutil.copytree(tiny_subtype_store, root, dirs_exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PNEUMO_MODEL_STORE", str(root))
        assert main(["export", "--format", "onnx"]) == 0
    return root


def test_the_card_records_both_onnx_files_and_their_sources(subtype_copy):
    import onnxruntime
    import tf2onnx

    folder = subtype_copy / "tiny"
    card = store.read_card("tiny", subtype_copy)
    section = card["onnx"]
    assert section["file"] == export.ONNX_FILE and section["folder"] == "."
    assert section["sha256"] == store.file_sha256(folder / export.ONNX_FILE)
    assert section["source_sha256"] == card["sha256"] == store.file_sha256(folder / store.MODEL_FILE)
    assert section["opset"] == export.ONNX_OPSET
    assert (section["tf2onnx"], section["onnxruntime"]) == (tf2onnx.__version__, onnxruntime.__version__)
    subtype = section["subtype"]
    assert subtype["file"] == export.SUBTYPE_ONNX_FILE
    assert subtype["sha256"] == store.file_sha256(folder / export.SUBTYPE_ONNX_FILE)
    assert subtype["source_sha256"] == card["subtype"]["sha256"] == store.file_sha256(folder / store.SUBTYPE_FILE)
    assert not list(folder.glob(".*.tmp"))  # the temporary names were renamed away


def test_the_tiny_models_answers_are_the_same_under_onnx(subtype_copy, items):
    loaded = store.load("tiny", subtype_copy)
    inputs = inputs_of(items, loaded.input_size)
    keras, onnx = Classifier(loaded), Classifier(loaded, runtime="onnx")
    assert onnx.subtype is not None and onnx.subtype_error == ""
    np.testing.assert_allclose(onnx.predict_inputs(inputs), keras.predict_inputs(inputs), atol=1e-5)
    np.testing.assert_allclose(onnx.predict_subtype_inputs(inputs), keras.predict_subtype_inputs(inputs), atol=1e-5)


@pytest.mark.parametrize("file", [export.ONNX_FILE, export.SUBTYPE_ONNX_FILE])
def test_a_tampered_onnx_file_is_refused_with_a_sentence(subtype_copy, tampered_copy, file):
    copy = tampered_copy(subtype_copy, "tiny", file)
    loaded = store.load("tiny", copy)
    if file == export.ONNX_FILE:
        with pytest.raises(store.ModelStoreError, match="integrity check") as refused:
            Classifier(loaded, runtime="onnx")
        message = str(refused.value)
    else:  # as with a failing subtype.keras: films are still read, without a pattern, and the reason kept
        classifier = Classifier(loaded, runtime="onnx")
        assert classifier.subtype is None
        message = classifier.subtype_error
    assert "integrity check" in message and HINT in message
    assert_one_sentence(message)


def test_an_onnx_file_of_another_keras_file_is_refused(subtype_copy):
    loaded = store.load("tiny", subtype_copy)
    stale = {**loaded.card, "onnx": {**loaded.card["onnx"], "source_sha256": "0" * 64}}
    with pytest.raises(store.ModelStoreError, match="converted from another model.keras") as refused:
        Classifier(store.LoadedModel(loaded.name, loaded.path, loaded.model, stale), runtime="onnx")
    assert HINT in str(refused.value)
    assert_one_sentence(str(refused.value))


def test_a_model_without_onnx_export_is_refused_under_onnx(tiny_model):
    with pytest.raises(store.ModelStoreError, match="no ONNX export") as refused:
        Classifier(tiny_model, runtime="onnx")
    assert HINT in str(refused.value)
    assert_one_sentence(str(refused.value))


def test_under_onnx_a_subtype_without_its_onnx_file_is_left_out_with_its_reason(subtype_copy):
    loaded = store.load("tiny", subtype_copy)
    onnx_section = {key: value for key, value in loaded.card["onnx"].items() if key != "subtype"}
    without = store.LoadedModel(loaded.name, loaded.path, loaded.model, {**loaded.card, "onnx": onnx_section})
    classifier = Classifier(without, runtime="onnx")
    assert classifier.subtype is None and HINT in classifier.subtype_error


def test_an_unknown_runtime_is_refused(tiny_model):
    with pytest.raises(ValueError, match="unknown runtime 'tflite'"):
        Classifier(tiny_model, runtime="tflite")


# -- SavedModel ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_saved_model_serves_the_classifiers_probability(exported, loaded, keras_classifier, items):
    import tensorflow as tf

    film_inputs = inputs_of(items, loaded.input_size)
    assert main(["export", "--format", "saved-model"]) == 0
    card = store.read_card(None, exported)
    section = card["saved_model"]
    folder = exported / card["name"] / section["folder"]
    assert section["folder"] == "serving/1" and section["signatures"] == ["serving_default"]
    assert section["source_sha256"] == card["sha256"] and card["onnx"]  # the ONNX record is kept
    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
    served = signature(film=tf.constant(film_inputs, dtype=tf.float32))
    assert set(served) == {"p_pneumonia"}  # no subtype model
    np.testing.assert_allclose(served["p_pneumonia"].numpy(), keras_classifier.predict_inputs(film_inputs),
                               atol=1e-5)


def test_the_saved_model_gives_the_pattern_with_a_subtype_model(subtype_copy, tmp_path, items):
    import tensorflow as tf

    out = tmp_path / "serving" / "7"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PNEUMO_MODEL_STORE", str(subtype_copy))
        assert main(["export", "--format", "saved-model", "--out", str(out)]) == 0
    loaded = store.load("tiny", subtype_copy)
    assert loaded.card["saved_model"]["folder"] == str(out.resolve())
    inputs = inputs_of(items, 64)
    served = tf.saved_model.load(str(out)).signatures["serving_default"](film=tf.constant(inputs))
    keras = Classifier(loaded)
    np.testing.assert_allclose(served["p_pneumonia"].numpy(), keras.predict_inputs(inputs), atol=1e-5)
    np.testing.assert_allclose(served["p_bacterial"].numpy(), keras.predict_subtype_inputs(inputs), atol=1e-5)


# -- the command line ------------------------------------------------------------------------------


@pytest.fixture
def use_tiny_store(tiny_store, monkeypatch):
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tiny_store))
    return tiny_store


@pytest.mark.parametrize("argv, message", [
    (["export", "--model", "nosuch", "--format", "onnx"], "Unknown model 'nosuch'"),
    (["export", "--format", "tflite"], "Unknown format 'tflite'"),
    (["export", "--format", "onnx", "--out", "{file}"], "is a file"),
    (["export", "--format", "saved-model", "--out", "{busy}"], "holds files that are not a SavedModel"),
    (["evaluate", "--data", "{split}", "--runtime", "onnx"], HINT),
])
def test_export_mistakes_are_one_sentence_and_exit_2(use_tiny_store, tmp_path, capsys, train_dir, argv, message):
    (tmp_path / "file").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    split = tmp_path / "split"
    for name in ("NORMAL", "PNEUMONIA"):
        (split / name).mkdir(parents=True)
        shutil.copy(min((train_dir / name).iterdir()), split / name)
    argv = [a.format(file=tmp_path / "file", busy=tmp_path / "busy", split=split) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"


def test_bench_reports_both_runtimes_and_leaves_the_store_alone(use_tiny_store, capsys):
    card_before = (use_tiny_store / "tiny" / store.CARD_FILE).read_text()
    assert main(["bench", "--runs", "2", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert set(result["runtimes"]) == {"keras", "onnx"} and result["onnx_file"] == "temporary export"
    for runtime in result["runtimes"].values():
        assert runtime["predict_ms_p50"] > 0 and runtime["throughput_img_s"] > 0
        assert runtime["throughput_img_s_per_core"] == pytest.approx(runtime["throughput_img_s"] / result["cores"],
                                                                     abs=0.1)
    assert set(result["onnx_over_keras"]) == {"predict_ms_p50", "predict_ms_p95", "throughput_img_s",
                                              "throughput_img_s_per_core"}
    assert "onnx/keras" in captured.err  # the table, on stderr with --json
    assert not (use_tiny_store / "tiny" / export.ONNX_FILE).exists()
    assert (use_tiny_store / "tiny" / store.CARD_FILE).read_text() == card_before


def test_evaluate_under_onnx_gives_the_keras_figures(subtype_copy, train_dir, tmp_path, monkeypatch):
    split = tmp_path / "split"
    for name in ("NORMAL", "PNEUMONIA"):
        (split / name).mkdir(parents=True)
        for film in sorted((train_dir / name).iterdir())[:3]:
            shutil.copy(film, split / name)
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(subtype_copy))
    figures = {}
    for runtime in export.RUNTIMES:
        out = tmp_path / f"{runtime}.json"
        assert main(["evaluate", "--data", str(split), "--runtime", runtime, "--json", str(out)]) == 0
        figures[runtime] = json.loads(out.read_text())
    assert figures["onnx"]["n"] == figures["keras"]["n"] == 6
    assert figures["onnx"]["confusion_matrix"] == figures["keras"]["confusion_matrix"]
    for key in ("accuracy", "roc_auc", "brier"):
        assert figures["onnx"][key] == pytest.approx(figures["keras"][key], abs=1e-4)

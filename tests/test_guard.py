"""The out-of-scope guard: each kind it names is refused with its reason, real films pass."""

import csv
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from sklearn.covariance import LedoitWolf

from pneumo import data, store
from pneumo.cli import main
from pneumo.guard import detector, evaluation_set, features, fit, persist, thresholds, transforms
from pneumo.inference.predict import STATUS_OK, STATUS_REJECTED, Classifier
from pneumo.io import read_film

N_TRAIN, N_VAL = 150, 60


@pytest.fixture(scope="module")
def split_inputs(train_dir, tiny_model):
    """Real films at the tiny model's size: a patient-grouped (train, validation) pair, with patients."""
    train, val = data.split_by_patient(data.find_films(train_dir), 0.2, 0)
    train, val = train[:: len(train) // N_TRAIN][:N_TRAIN], val[:: len(val) // N_VAL][:N_VAL]
    size = tiny_model.input_size
    return data.load_inputs(train, size), data.load_inputs(val, size), [r.patient for r in val]


@pytest.fixture(scope="module")
def fitted(tiny_model, split_inputs):
    x_train, x_val, groups = split_inputs
    return fit.fit_guard(tiny_model, x_train, x_val, val_groups=groups, log=lambda line: None)


@pytest.fixture(scope="module")
def guarded_store(tiny_store, fitted, tmp_path_factory):
    """A copy of the tiny store whose model has a saved guard."""
    root = tmp_path_factory.mktemp("guarded") / "store"
    shutil.copytree(tiny_store, root)
    persist.save_guard(root / "tiny", fitted)
    return root


@pytest.fixture(scope="module")
def classifier(guarded_store):
    return Classifier(store.load("tiny", guarded_store))


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def held_out_films(split_inputs, count: int) -> list[np.ndarray]:
    """Validation films (never fitted on) as uint8 (S, S) images."""
    return [x[..., 0] for x in split_inputs[1][:count]]


def out_of_scope_image(kind: str, split_inputs) -> bytes:
    """An uploaded file of the given kind, made from real films where the kind needs one."""
    import skimage.data

    films = held_out_films(split_inputs, 12)
    rng = np.random.default_rng(3)
    makers = {
        "colour": lambda: skimage.data.astronaut(),
        "blank": lambda: np.full((300, 300), 17, np.uint8),
        "noise": lambda: rng.integers(0, 256, (300, 300), dtype=np.uint8),
        "document": lambda: evaluation_set._text_pages(rng, count=1)["text-page-0"],
        "rotated": lambda: np.rot90(films[1]),
        "upside_down": lambda: np.rot90(films[2], 2),
        "inverted": lambda: 255 - films[3],
        "collage": lambda: np.round(transforms.collage([f / 255.0 for f in films[4:8]], 2, 2) * 255).astype(np.uint8),
        "unfamiliar": lambda: skimage.data.camera(),
    }
    return png_bytes(np.ascontiguousarray(makers[kind]()))


@pytest.mark.parametrize("kind", ["colour", "blank", "noise", "document", "rotated", "upside_down",
                                  "inverted", "collage", "unfamiliar"])
def test_each_kind_is_refused_with_its_reason(classifier, split_inputs, kind):
    result = classifier.assess(out_of_scope_image(kind, split_inputs), name=f"{kind}.png")
    assert result.status == STATUS_REJECTED, kind
    assert result.message == result.out_of_scope_reason == detector.REASONS[kind]
    assert result.label is None and 0.0 <= result.p_pneumonia <= 1.0  # kept for "show anyway"
    row = result.row()
    assert row["status"] == "rejected" and row["p_pneumonia"] == "" and row["label"] == ""


def test_real_films_pass(classifier, split_inputs, normal_film, pneumonia_film):
    held_out = [png_bytes(film) for film in held_out_films(split_inputs, 12)]
    items = [("n", normal_film), ("p", pneumonia_film)] + [(f"v{i}", b) for i, b in enumerate(held_out)]
    results = list(classifier.assess_many(items))
    refused = [r.source for r in results if r.status != STATUS_OK]
    assert len(refused) <= 1, refused  # thresholds allow 1.5% of validation films; 14 here
    assert all(r.scope_checked and r.label in ("NORMAL", "PNEUMONIA") for r in results if r.status == STATUS_OK)


def test_colourfulness_tells_photographs_from_tinted_films(normal_film):
    gray = np.asarray(Image.open(normal_film).convert("L"), dtype=np.float64) / 255.0
    sepia = np.stack([gray, 0.9 * gray, 0.7 * gray], axis=-1)
    assert read_film(png_bytes(np.round(sepia * 255).astype(np.uint8))).colourfulness < 0.01
    import skimage.data

    assert read_film(png_bytes(skimage.data.coffee())).colourfulness > 0.1
    assert read_film(normal_film).colourfulness == pytest.approx(0.0, abs=1e-6)


def test_thresholds_keep_the_refusal_and_flag_targets_on_validation(fitted, split_inputs):
    settings = fitted.settings
    assert settings["validation"]["rejection_rate"] <= thresholds.TARGET_REJECTION <= 0.02
    assert settings["validation"]["flag_rate"] <= thresholds.TARGET_FLAG
    assert settings["validation"]["n"] == len(split_inputs[1])
    for name, floor in thresholds.FLOORS.items():
        assert settings["checks"][name]["threshold"] >= floor
    assert set(settings["checks"]) == set(detector.CHECKS)
    for name in detector.FLAG_CHECKS:  # a flag is a lower bar than a refusal
        assert settings["checks"][name]["flag"] <= settings["checks"][name]["threshold"]


def test_flagged_films_stay_in_scope_with_a_warning(tiny_model, fitted, split_inputs):
    x_val = split_inputs[1]
    _, pooled = features.model_outputs(features.feature_model(tiny_model.model), x_val)
    verdicts = fitted.judge(x_val, pooled, features.films_of(x_val))
    flagged = [v for v in verdicts if v.warning]
    assert 0 < len(flagged) == fitted.settings["validation"]["flagged"]
    for verdict in flagged:
        assert verdict.in_scope and verdict.warning == detector.WARNING and verdict.kind == ""
        assert set(verdict.flagged) <= set(detector.FLAG_CHECKS) and verdict.flagged
    assert all(v.warning == "" and v.flagged == () for v in verdicts if not v.in_scope)
    # With the flag thresholds at the refusal thresholds nothing is flagged.
    checks = {name: {**row, "flag": row["threshold"]} if "flag" in row else row
              for name, row in fitted.settings["checks"].items()}
    strict = detector.Guard(fitted.arrays, {**fitted.settings, "checks": checks})
    assert not any(v.warning for v in strict.judge(x_val, pooled, features.films_of(x_val)))


def test_a_guard_fitted_before_the_symmetry_check_and_flags_still_judges(tiny_model, fitted, split_inputs):
    checks = {name: {k: v for k, v in row.items() if k not in ("flag", "beta")}
              for name, row in fitted.settings["checks"].items() if name != "symmetry"}
    older = detector.Guard(fitted.arrays, {**fitted.settings, "checks": checks})
    x = split_inputs[1][:6]
    _, pooled = features.model_outputs(features.feature_model(tiny_model.model), x)
    for verdict in older.judge(x, pooled, features.films_of(x)):
        assert "symmetry" not in verdict.fired and verdict.warning == "" and verdict.flagged == ()


def test_mahalanobis_on_pooled_features(tiny_model, fitted, split_inputs):
    x_train, x_val = split_inputs[0], split_inputs[1][:5]
    two_headed = features.feature_model(tiny_model.model)
    _, pooled = features.model_outputs(two_headed, x_val)
    scores, _ = fitted.scores(x_val, pooled, features.films_of(x_val))
    # The distance to the training films (all of them: fewer than max_train) as scikit-learn gives it.
    _, train_pooled = features.model_outputs(two_headed, x_train)
    squared = LedoitWolf().fit(train_pooled).mahalanobis(pooled)
    np.testing.assert_allclose(scores["features"], np.sqrt(squared), rtol=1e-6)
    # White noise is far from the training films in the model's own features.
    noise = np.random.default_rng(0).uniform(0, 255, (3, *x_val.shape[1:])).astype(np.float32)
    _, noise_pooled = features.model_outputs(two_headed, noise)
    noise_scores, _ = fitted.scores(noise, noise_pooled, features.films_of(noise))
    assert (noise_scores["features"] > fitted.thresholds["features"]).all()


def test_layout_classifier_knows_upright_films(fitted, split_inputs):
    films = [f / 255.0 for f in held_out_films(split_inputs, 20)]
    upright = np.stack([features.layout_vector(f) for f in films])
    turned = np.stack([features.layout_vector(np.rot90(f)) for f in films])
    np.testing.assert_allclose(fitted.layout.predict_proba(upright).sum(axis=1), 1.0)
    assert np.mean(fitted.layout.predict(upright) == 0) >= 0.9
    assert np.mean(fitted.layout.predict(turned) == transforms.LAYOUTS.index("rotated")) >= 0.9


def test_persistence_round_trip(guarded_store, fitted, split_inputs):
    loaded = store.load("tiny", guarded_store)
    section = loaded.card["guard"]
    assert section["sha256"] == store.file_sha256(guarded_store / "tiny" / persist.GUARD_FILE)
    restored = persist.load_guard(loaded)
    for key, value in fitted.arrays.items():
        np.testing.assert_array_equal(restored.arrays[key], value)
    with np.load(guarded_store / "tiny" / persist.GUARD_FILE, allow_pickle=False) as stored:
        assert all(stored[key].dtype == np.float64 for key in stored.files)
    original = detector.Guard(fitted.arrays, section)
    x = split_inputs[1][:4]
    _, pooled = features.model_outputs(features.feature_model(loaded.model), x)
    films = features.films_of(x)
    assert restored.judge(x, pooled, films) == original.judge(x, pooled, films)
    json.dumps(section)  # the card section is plain JSON


def test_an_altered_guard_file_is_refused(guarded_store, tampered_copy):
    copy = tampered_copy(guarded_store, "tiny", persist.GUARD_FILE)
    with pytest.raises(store.ModelStoreError, match="integrity check"):
        Classifier(store.load("tiny", copy))


def test_a_model_without_guard_checks_nothing_and_says_so(tiny_model, normal_film):
    assert persist.load_guard(tiny_model) is None
    plain = Classifier(tiny_model)
    assert plain.guard is None and plain.check_scope([read_film(normal_film)]) is None
    result = plain.assess(normal_film)
    assert result.status == STATUS_OK and not result.scope_checked


def test_fit_refuses_inputs_of_the_wrong_size(tiny_model):
    with pytest.raises(ValueError, match="shape"):
        fit.fit_guard(tiny_model, np.zeros((20, 32, 32, 1)), np.zeros((20, 32, 32, 1)))


def test_cli_predict_rejects_a_colour_photo(guarded_store, normal_film, tmp_path, monkeypatch):
    import skimage.data

    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(guarded_store))
    folder = tmp_path / "films"
    folder.mkdir()
    (folder / "a_photo.png").write_bytes(png_bytes(skimage.data.chelsea()))
    shutil.copy(normal_film, folder / "b_film.jpeg")
    out = tmp_path / "rows.csv"
    assert main(["predict", str(folder), "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["status"] for r in rows] == ["rejected", "ok"]
    assert rows[0]["message"] == detector.REASONS["colour"]
    assert rows[0]["p_pneumonia"] == "" and rows[0]["label"] == ""


def test_cli_fit_guard_needs_the_models_split(tiny_store, train_dir, monkeypatch, capsys):
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tiny_store))
    assert main(["fit-guard", "--data", str(train_dir)]) == 2
    assert "records no training split" in capsys.readouterr().err


def test_cli_fit_guard_writes_guard_and_figures(tiny_store, train_dir, tmp_path, monkeypatch, capsys):
    root = tmp_path / "store"
    shutil.copytree(tiny_store, root)
    card_path = root / "tiny" / store.CARD_FILE
    card = json.loads(card_path.read_text())
    card["training"] = {"split": {"val_fraction": 0.2, "seed": 0}}
    card_path.write_text(json.dumps(card))
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(root))
    assert main(["fit-guard", "--data", str(train_dir), "--model", "tiny", "--limit", "40", "--per-kind", "4"]) == 0
    section = store.read_card("tiny", root)["guard"]
    assert (root / "tiny" / persist.GUARD_FILE).is_file()
    figures = section["out_of_scope"]
    assert set(figures["by_kind"]) == set(evaluation_set.EXPECTED) and 0.5 <= figures["auroc"] <= 1.0
    assert figures["notes"] == [] and figures["by_kind"]["colour photograph"]["detected"] == 1.0
    assert section["validation"]["n"] == 40
    out, err = capsys.readouterr()
    assert "AUROC" in out
    summary = err.splitlines()[-1]
    assert summary.startswith("fit-guard: done: 80 films in ")  # 40 training and 40 validation films read
    assert summary.endswith(f"; guard saved to {root / 'tiny' / persist.GUARD_FILE}; "
                            f"{section['validation']['rejected']} of 40 validation films refused")
    assert persist.load_guard(store.load("tiny", root)) is not None


def test_the_warning_states_the_flag_rate_it_is_fitted_to():
    from pneumo.guard import thresholds

    assert f"about 1 in {round(1 / thresholds.TARGET_FLAG)} of those films" in detector.WARNING

"""Bacterial or viral: the subtype model in the store, the Classifier, the CSV, ``evaluate``, and its training selection."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn import metrics as skm

from pneumo import data, store
from pneumo.inference.predict import CSV_FIELDS, STATUS_OK, Assessment, Classifier
from pneumo.inference.sites import Site
from pneumo.io import read_film
from pneumo.preprocess import to_model_input

PNEUMONIA = "PNEUMONIA"


def with_thresholds(loaded, main: float | None = None):
    """The same loaded model with another main threshold (the card only; the file is unchanged)."""
    card = dict(loaded.card)
    if main is not None:
        card["threshold"] = main
    return dataclasses.replace(loaded, card=card)


def named_films(train_dir, bacterial: int, viral: int, normal: int):
    pneumonia = sorted((train_dir / PNEUMONIA).iterdir())
    return ([p for p in pneumonia if "_bacteria_" in p.name][:bacterial]
            + [p for p in pneumonia if "_virus_" in p.name][:viral]
            + sorted((train_dir / "NORMAL").iterdir())[:normal])


@pytest.fixture(scope="module")
def subtype(tiny_subtype_model):
    return store.load_subtype(tiny_subtype_model)


@pytest.fixture(scope="module")
def films(train_dir):
    return named_films(train_dir, 3, 3, 2)


@pytest.fixture(scope="module")
def main_probs(tiny_subtype_model, films):
    inputs = np.stack([to_model_input(read_film(p), 64) for p in films])
    return np.asarray(tiny_subtype_model.model(inputs))[:, 0]


def test_the_store_loads_the_subtype_model_and_its_operating_point(tiny_subtype_model, subtype, tiny_model):
    assert subtype.threshold == 0.5 and subtype.temperature == 1.2
    assert subtype.classes == ["viral", "bacterial"] and subtype.explain_layer == "last_conv"
    assert subtype.input_size == 64 and subtype.version == tiny_subtype_model.card["subtype"]["sha256"][:12]
    assert subtype.pattern_for(0.5) == "bacterial" and subtype.pattern_for(0.4999) == "viral"
    assert store.load_subtype(tiny_model) is None  # a card without a subtype section: no subtype model


@pytest.mark.parametrize("damage", ["tamper", "remove"])
def test_a_tampered_or_missing_subtype_file_is_one_sentence_and_films_are_still_read(
        tiny_subtype_store, tampered_copy, pneumonia_film, damage, tmp_path):
    if damage == "tamper":
        copy = tampered_copy(tiny_subtype_store, "tiny", store.SUBTYPE_FILE)
    else:
        copy = tmp_path / "store"
        shutil.copytree(tiny_subtype_store, copy)
        (copy / "tiny" / store.SUBTYPE_FILE).unlink()
    loaded = store.load("tiny", copy)  # the main model is intact and still loads
    with pytest.raises(store.ModelStoreError) as err:
        store.load_subtype(loaded)
    message = str(err.value)
    assert "subtype" in message and message.count(". ") == 0 and message.endswith(".")
    assert ("integrity check" in message) == (damage == "tamper")
    classifier = Classifier(dataclasses.replace(loaded, card={**loaded.card, "threshold": 0.0}))
    assert classifier.subtype is None and classifier.subtype_error == message
    result = classifier.assess(pneumonia_film)
    assert result.label == PNEUMONIA and result.pattern == "" and result.p_bacterial is None
    with pytest.raises(ValueError, match="integrity check|not in its folder"):
        classifier.predict_subtype_inputs(np.zeros((1, 64, 64, 1)))


def test_pattern_is_given_exactly_when_the_verdict_is_pneumonia(tiny_subtype_model, films, main_probs, subtype):
    between = float(np.median(main_probs))  # about half the films read as pneumonia
    items = [(p.name, p) for p in films] + [("broken.png", b"not an image")]
    for threshold in (0.0, between, 1.01):
        classifier = Classifier(with_thresholds(tiny_subtype_model, threshold))
        results = list(classifier.assess_many(items, batch_size=3))
        assert [r.status for r in results] == [STATUS_OK] * len(films) + ["error"]
        for result in results:
            pneumonia = result.status == STATUS_OK and result.label == PNEUMONIA
            assert bool(result.pattern) == pneumonia and (result.p_bacterial is not None) == pneumonia
            if pneumonia:
                assert result.pattern == subtype.pattern_for(result.p_bacterial)
        read = sum(r.label == PNEUMONIA for r in results)
        assert read == {0.0: len(films), 1.01: 0}.get(threshold, read)
        assert 0 < read < len(films) or threshold != between


def test_p_bacterial_is_the_subtype_models_own_output_whatever_the_batch(tiny_subtype_model, films, subtype):
    classifier = Classifier(with_thresholds(tiny_subtype_model, 0.0))
    inputs = np.stack([to_model_input(read_film(p), 64) for p in films])
    direct = np.asarray(subtype.model.predict(inputs, verbose=0))[:, 0]  # Keras, not the traced graph
    np.testing.assert_allclose(classifier.predict_subtype_inputs(inputs), direct, atol=1e-5)
    batched = [r.p_bacterial for r in classifier.assess_many([(p.name, p) for p in films], batch_size=4)]
    single = [classifier.assess(p).p_bacterial for p in films]
    np.testing.assert_allclose(batched, direct, atol=1e-5)
    np.testing.assert_allclose(single, direct, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        classifier.predict_subtype_inputs(np.zeros((1, 32, 32, 1)))


def test_the_subtype_model_runs_only_on_the_pneumonia_films(tiny_subtype_model, films, main_probs):
    classifier = Classifier(with_thresholds(tiny_subtype_model, float(np.median(main_probs))))
    seen = []
    call = classifier._subtype_call
    classifier._subtype_call = lambda inputs: seen.append(len(inputs)) or call(inputs)
    results = list(classifier.assess_many([(p.name, p) for p in films]))
    assert seen == [sum(r.label == PNEUMONIA for r in results)]
    normal = [(p.name, p) for p, prob in zip(films, main_probs) if prob < classifier.threshold]
    seen.clear()
    assert all(r.pattern == "" for r in classifier.assess_many(normal)) and seen == []


def test_a_site_calibration_leaves_p_bacterial_alone(tiny_subtype_model, films):
    own = Classifier(with_thresholds(tiny_subtype_model, 0.0))
    site = Site(name="north", model_sha256=tiny_subtype_model.card["sha256"], temperature=3.0, threshold=0.0,
                min_sensitivity=0.95, digest="0" * 64, record={})
    at_site = Classifier(with_thresholds(tiny_subtype_model, 0.0), site=site)
    for path in films[:3]:
        a, b = own.assess(path), at_site.assess(path)
        assert b.site == "north" and b.p_pneumonia != pytest.approx(a.p_pneumonia, abs=1e-6)
        assert b.p_bacterial == pytest.approx(a.p_bacterial, abs=1e-6) and b.pattern == a.pattern


def test_csv_columns_and_p_bacterial_only_with_a_pattern():
    assert CSV_FIELDS == ("path", "status", "p_pneumonia", "label", "p_bacterial", "pattern", "message", "site")
    with_pattern = Assessment("a.png", STATUS_OK, 0.9, PNEUMONIA, p_bacterial=0.812345, pattern="bacterial").row()
    assert list(with_pattern) == list(CSV_FIELDS)
    assert with_pattern["p_bacterial"] == "0.8123" and with_pattern["pattern"] == "bacterial"
    normal = Assessment("b.png", STATUS_OK, 0.1, "NORMAL", p_bacterial=0.7).row()  # a stray value is not written
    assert normal["p_bacterial"] == "" and normal["pattern"] == ""
    refused = Assessment("c.png", "rejected", 0.9, message="Not a chest film.").row()
    assert refused["p_bacterial"] == refused["pattern"] == ""


def test_predict_writes_the_pattern_columns(tiny_subtype_store, tmp_path, films, monkeypatch, capsys):
    from pneumo.cli import main

    copy = tmp_path / "store"
    shutil.copytree(tiny_subtype_store, copy)
    card = store.read_card("tiny", copy)
    store.write_card("tiny", {**card, "threshold": 0.0}, copy)  # every readable film reads as pneumonia
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(copy))
    folder = tmp_path / "films"
    folder.mkdir()
    shutil.copy(films[0], folder / "a.jpeg")
    (folder / "b.png").write_bytes(b"broken")
    assert main(["predict", str(folder), "--csv", str(tmp_path / "rows.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert list(rows[0]) == [*CSV_FIELDS, "model", "sha256"]
    assert rows[0]["pattern"] in ("bacterial", "viral") and len(rows[0]["p_bacterial"].split(".")[1]) == 4
    assert rows[1]["status"] == "error" and rows[1]["pattern"] == rows[1]["p_bacterial"] == ""
    assert "pattern" not in capsys.readouterr().err  # an intact subtype model: no note


def test_predict_says_once_why_no_pattern_is_given(tiny_subtype_store, tampered_copy, films, monkeypatch, capsys):
    from pneumo.cli import main

    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tampered_copy(tiny_subtype_store, "tiny", store.SUBTYPE_FILE)))
    assert main(["predict", str(films[0])]) == 0
    out, err = capsys.readouterr()
    notes = [line for line in err.splitlines() if "bacterial-or-viral" in line]
    assert len(notes) == 1 and "integrity check" in notes[0]
    assert list(csv.DictReader(out.splitlines()))[0]["pattern"] == ""


def test_evaluate_reports_the_subtype_figures_computed_independently(tiny_subtype_store, train_dir, tmp_path,
                                                                      monkeypatch, capsys):
    from pneumo.cli import main

    chosen = named_films(train_dir, 5, 4, 3)
    root = tmp_path / "data" / "test"
    for path in chosen:
        (root / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / path.parent.name / path.name)
    copy = tmp_path / "store"
    shutil.copytree(tiny_subtype_store, copy)
    loaded = store.load("tiny", copy)
    subtype = store.load_subtype(loaded)
    pneumonia = [p for p in chosen if p.parent.name == PNEUMONIA]
    inputs = np.stack([to_model_input(read_film(p), 64) for p in pneumonia])
    p_main = np.asarray(loaded.model(inputs))[:, 0]
    p_bact = np.asarray(subtype.model(inputs))[:, 0]
    # Thresholds between the films' own values, so some pneumonia films read as normal and both patterns occur.
    main_threshold = float(np.sort(p_main)[2])
    sub_threshold = float(np.median(p_bact))
    card = loaded.card
    store.write_card("tiny", {**card, "threshold": main_threshold,
                              "subtype": {**card["subtype"], "threshold": sub_threshold}}, copy)
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(copy))
    assert main(["evaluate", "--data", str(tmp_path / "data"), "--json", str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())["subtype"]

    truth = np.array(["_bacteria_" in p.name for p in pneumonia], dtype=int)
    given = p_main >= main_threshold
    called = given & (p_bact >= sub_threshold)  # bacterial
    correct = given & (called == truth.astype(bool))
    scored = np.where(given, p_bact, 1 - truth)  # no pattern: the wrong pattern, fully confident
    figures = report["figures"]
    assert report["n"] == 9 and report["bacterial"] == 5 and report["viral"] == 4
    assert report["given_no_pattern"] == 2 == int((~given).sum())
    assert figures["accuracy"]["value"] == pytest.approx(correct.mean())
    assert figures["sensitivity"]["value"] == pytest.approx(correct[truth == 1].mean())
    assert figures["specificity"]["value"] == pytest.approx(correct[truth == 0].mean())
    assert figures["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(truth, scored), abs=1e-6)
    assert figures["confusion_matrix"] == skm.confusion_matrix(truth, scored >= sub_threshold).tolist()
    bins = np.clip(np.digitize(scored, np.linspace(0, 1, 16)[1:-1], right=True), 0, 14)
    ece = sum(abs((scored[bins == b] - truth[bins == b]).sum()) for b in range(15)) / len(truth)
    assert figures["ece"]["value"] == pytest.approx(ece, abs=1e-6)
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc", "ece"):
        assert figures[key]["low"] <= figures[key]["value"] <= figures[key]["high"]
    assert report["given_pattern"]["n"] == int(given.sum())
    assert report["given_pattern"]["roc_auc"]["value"] == pytest.approx(
        skm.roc_auc_score(truth[given], p_bact[given]), abs=1e-6)
    printed = capsys.readouterr().out
    assert "bacterial or viral, on the 9 pneumonia films" in printed and "2 given no pattern" in printed
    assert f"accuracy     {correct.mean():.4f} (95% " in printed


def test_evaluate_without_a_subtype_model_reports_none(tiny_store, train_dir, tmp_path, monkeypatch, capsys):
    from pneumo.cli import main

    root = tmp_path / "data"
    for path in named_films(train_dir, 1, 1, 1):
        (root / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / path.parent.name / path.name)
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tiny_store))
    assert main(["evaluate", "--data", str(root), "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["subtype"] is None
    assert "bacterial or viral" not in capsys.readouterr().out


# --- the training selection, on the real training films and the shipped card ---


@pytest.fixture(scope="module")
def shipped_card():
    return store.read_card("cnn160x5", store.REPO_STORE)


@pytest.fixture(scope="module")
def real_folds(shipped_card, train_dir):
    """The training films and each one's fold, as the subtype training gets them."""
    from pneumo.folds import held_out_records

    return held_out_records(shipped_card, train_dir.parent)


def card_fold(card: dict) -> dict:
    """Each film's fold as the card's out-of-fold list records it (``split/CLASS/name`` -> fold)."""
    oof = card["out_of_fold"]
    return dict(zip(oof["films"], oof["random_fold"]))


def film_name(record) -> str:
    return f"{record.split}/{record.path.parent.name}/{record.path.name}"


def test_subtype_labels_are_the_named_pneumonia_films_only(real_folds):
    from pneumo.training.subtype import subtype_labels

    records, _ = real_folds
    index, labels = subtype_labels(records)
    chosen = [records[i] for i in index]
    assert all(r.label == 1 and r.path.parent.name == PNEUMONIA for r in chosen)
    assert [r.subtype == "bacteria" for r in chosen] == labels.astype(bool).tolist()
    named = [r for r in records if r.path.parent.name == PNEUMONIA and ("_bacteria_" in r.path.name
                                                                        or "_virus_" in r.path.name)]
    assert len(index) == len(named) and int(labels.sum()) == sum("_bacteria_" in r.path.name for r in named)
    assert len(index) >= 3800  # 2,530 bacterial and 1,345 viral in the Kaggle training split


def test_the_folds_are_the_shipped_members_and_group_patients(real_folds, shipped_card):
    records, folds = real_folds
    recorded = card_fold(shipped_card)
    assert [recorded[film_name(r)] for r in records] == folds.tolist()  # fold k: the films member k never saw
    patient_folds = {}
    for record, fold in zip(records, folds):
        patient_folds.setdefault(record.patient, set()).add(int(fold))
    assert all(len(f) == 1 for f in patient_folds.values())


def test_each_fold_is_trained_on_no_normal_film_and_no_patient_it_holds_out(shipped_card, train_dir, tmp_path,
                                                                            monkeypatch):
    """Run the real fold loop with the networks replaced: which films reach each fold's fine-tuning."""
    from pneumo.training import subtype as module

    loaded_records = {}

    def load_inputs(records, size):
        loaded_records["list"] = list(records)
        return np.arange(len(records), dtype=np.float32)[:, None, None, None]  # a film's position, as its input

    trained, held_out = {}, {}

    class FakeModel:
        def __init__(self, fold):
            self.fold = fold

        def save(self, path):
            path.write_bytes(b"fake")

    def fine_tune(model, inputs, labels, config, log=print, on_epoch=None):
        trained[model.fold] = (inputs[:, 0, 0, 0].astype(int), labels)
        return model

    def logits_of(model, inputs):
        held_out[model.fold] = inputs[:, 0, 0, 0].astype(int)
        return np.zeros(len(inputs))

    monkeypatch.setattr(module.data, "load_inputs", load_inputs)
    monkeypatch.setattr(module, "member_model", lambda ensemble, index, size, width: FakeModel(index))
    monkeypatch.setattr(module, "fine_tune", fine_tune)
    monkeypatch.setattr(module, "logits_of", logits_of)
    pool = SimpleNamespace(output=SimpleNamespace(shape=(None, 5 * 8 * 24)))
    loaded = SimpleNamespace(card=shipped_card, input_size=160, model=SimpleNamespace(get_layer=lambda name: pool))
    module.train_subtype_folds(loaded, train_dir.parent, tmp_path / "run", module.SubtypeConfig(), log=lambda *a: None)

    films = loaded_records["list"]
    recorded = card_fold(shipped_card)  # the card's own record of which member never saw a film
    fold_of = {r.path: int(recorded[film_name(r)]) for r in films}
    assert sorted(trained) == list(range(5))
    assert all(r.label == 1 and r.subtype in module.PATTERNS for r in films)  # only named pneumonia films loaded
    for fold, (positions, labels) in trained.items():
        train = [films[i] for i in positions]
        held = [films[i] for i in held_out[fold]]
        assert all(fold_of[r.path] != fold for r in train) and all(fold_of[r.path] == fold for r in held)
        assert not {r.patient for r in train} & {r.patient for r in held}
        assert labels.tolist() == [float(r.subtype == "bacteria") for r in train]
        assert len(train) + len(held) == len(films)
        stored = np.load(tmp_path / "run" / f"fold{fold}" / "oof.npz")
        assert stored["index"].tolist() == held_out[fold].tolist()


def test_assemble_chooses_on_the_out_of_fold_logits_and_ships_fold_zero(shipped_card, real_folds, train_dir,
                                                                        tmp_path):
    """The folds' stored logits become the card's temperature, threshold and figures; fold 0's model ships."""
    from pneumo.stats import calibration
    from pneumo.training import subtype as module

    copy = tmp_path / "store" / "cnn160x5"
    shutil.copytree(store.REPO_STORE / "cnn160x5", copy)
    loaded = store.load("cnn160x5", copy.parent)
    records, folds = real_folds
    index, labels = module.subtype_labels(records)
    rng = np.random.default_rng(0)
    logits = (2 * labels - 1) * 1.2 + rng.normal(0, 1.5, len(index))  # informative, imperfect
    run = tmp_path / "run"
    for fold in range(5):
        held = np.flatnonzero(folds[index] == fold)
        (run / f"fold{fold}").mkdir(parents=True)
        np.savez(run / f"fold{fold}" / "oof.npz", index=held, logit=logits[held])
        (run / f"fold{fold}" / module.FOLD_DONE).write_text(json.dumps({"fold": fold, "recipe": {}}))
    module.member_model(loaded.model, 0, 160, 24).save(run / "fold0" / "model.keras")

    before = (copy / store.CARD_FILE).read_bytes()
    held = module.assemble(loaded, train_dir.parent, run, resamples=50, log=lambda *a: None)
    # Below the product's floor nothing ships: the store is untouched, the part is kept in the run.
    assert module.shortfalls(held) and held["validation"]["accuracy_with_main_model"]["value"] < 0.80
    assert (copy / store.CARD_FILE).read_bytes() == before and not (copy / store.SUBTYPE_FILE).exists()
    assert json.loads((run / module.HELD_BACK_SECTION).read_text())["sha256"] == store.file_sha256(
        run / store.SUBTYPE_FILE) == held["sha256"]

    section = module.assemble(loaded, train_dir.parent, run, resamples=50, log=lambda *a: None,
                              ship_below_floor=True)
    assert section["validation"]["figures"] == held["validation"]["figures"]

    temperature = calibration.fit_temperature(logits, labels)
    probs = calibration.sigmoid(logits / temperature)
    assert section["temperature"] == pytest.approx(temperature)
    balanced = [((probs[labels == 1] >= t).mean() + (probs[labels == 0] < t).mean()) / 2 for t in probs]
    assert (((probs[labels == 1] >= section["threshold"]).mean() + (probs[labels == 0] < section["threshold"]).mean())
            / 2) == pytest.approx(max(balanced))
    figures = section["validation"]["figures"]
    assert figures["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(labels, probs))
    # A pneumonia film the main model reads as normal (out of fold) has no pattern: wrong.
    main_p = calibration.sigmoid(np.asarray(shipped_card["out_of_fold"]["random_logit"])[index]
                                 / shipped_card["temperature"])
    right = (main_p >= shipped_card["threshold"]) & ((probs >= section["threshold"]) == labels.astype(bool))
    assert section["validation"]["accuracy_with_main_model"]["value"] == pytest.approx(right.mean())
    assert section["validation"]["label"] == labels.astype(int).tolist()
    # The card on disk has the section, and the shipped file is fold 0's with the temperature applied.
    on_disk = store.load("cnn160x5", copy.parent)
    assert on_disk.card["subtype"]["sha256"] == section["sha256"]
    shipped = store.load_subtype(on_disk)
    x = np.asarray(to_model_input(read_film(records[index[0]].path), 160))[np.newaxis]
    raw = module.logits_of(shipped.model, x)[0]
    assert float(shipped.model(x)[0, 0]) == pytest.approx(float(calibration.sigmoid(raw / temperature)), abs=1e-5)

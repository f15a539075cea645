"""The Streamlit app through AppTest: every page renders, uploads are judged, bad files warn.

The tests use the default model of the store in effect (``$PNEUMO_MODEL_STORE`` or the
repository's ``model_store``) and never its name or its probability values, except to
check that the app shows exactly the number Classifier gives for the same film.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from pneumo import store
from pneumo.render import model_card
from pneumo.render.wording import DISCLAIMER, format_probability
from pneumo.store import ModelStoreError
from tests.support.data import real_films
from tests.support.dicom_films import IDENTIFIERS, encode_dicom, make_dicom

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT_S = 90
PAGES = ("app_pages/home.py", "app_pages/diagnose.py", "app_pages/explorer.py", "app_pages/model.py",
         "app_pages/worklist.py", "app_pages/demo.py")


def _default_model_or_skip() -> tuple[str, Path]:
    try:
        name = store.default_model_name()
    except ModelStoreError as err:
        pytest.skip(f"no model in the store in effect: {err}")
    return name, store.store_dir() / name


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "title", "header", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _open(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    assert not at.exception
    if page != PAGES[0]:
        at.switch_page(page).run()
    assert not at.exception
    return at


def _upload(at: AppTest, *files: tuple[str, bytes, str]) -> AppTest:
    at.file_uploader(key="uploader").set_value(list(files) if len(files) > 1 else files[0]).run()
    assert not at.exception
    return at


@pytest.fixture(scope="module")
def model_name() -> str:
    return _default_model_or_skip()[0]


@pytest.fixture(scope="module")
def film() -> tuple[str, bytes, str]:
    path = real_films("PNEUMONIA", 1)[0]
    return path.name, path.read_bytes(), "image/jpeg"


BROKEN = ("broken.png", b"\x89PNG\r\n\x1a\n this is not a film", "image/png")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_disclaimer_and_model(page: str, model_name: str) -> None:
    at = _open(page)
    captions = "\n".join(c.value for c in at.caption)
    assert DISCLAIMER in captions
    assert model_name in captions
    # the sidebar names the threshold as the verdict words and the charts do
    assert f"own threshold {100 * store.load(keras_model=False).threshold:.1f}%" in captions


def test_home_says_what_the_tool_is_not(model_name: str) -> None:
    text = _texts(_open(PAGES[0]))
    assert "does not diagnose" in text
    assert "one to five" in text
    assert "never written to" in text


def test_diagnose_shows_classifier_probability_bars_and_overlay(model_name, film) -> None:
    from pneumo.inference.predict import Classifier

    at = _upload(_open(PAGES[1]), film)
    expected = Classifier(store.load()).assess(film[1], name=film[0]).p_pneumonia
    assert f"P(pneumonia) = **{format_probability(expected)}**" in _texts(at)
    bars = [c for c in _charts(at) if any(t.get("name") == "probability" for t in c["data"])]
    assert len(bars) == 1
    assert bars[0]["data"][0]["x"] == pytest.approx([1 - expected, expected])
    # how the training films scored close to this one turned out, counted from the card in the test
    card = store.load(keras_model=False).card
    predictions = card["validation"]["predictions"]
    edges = sorted({k / 10 for k in range(11)} | {card["threshold"], 0.5})
    low, high = next((a, b) for a, b in zip(edges, edges[1:]) if a <= expected < b or b == 1.0)
    near = [label for label, p in zip(predictions["labels"], predictions["p_pneumonia"])
            if low <= p < high or (high == 1.0 and p == 1.0)]
    assert near and any(c.value.startswith(f"Measured {card['validation']['kind']}: of the {len(near):,} training "
                                           "films scored between ") and f"), {sum(near):,} (" in c.value
                        for c in at.caption)
    captions = [caption for image in at.image for caption in image.captions]
    assert any("as the model saw it" in c for c in captions)
    assert any("where the model looked" in c for c in captions)
    labels = [b.label for b in at.get("download_button")]
    assert "Overlay (PNG)" in labels and "Case report (PDF)" in labels


def test_diagnose_methods_and_opacity_rerun_without_error(model_name, film) -> None:
    from pneumo.evaluation.faithfulness_results import read_explanations
    from pneumo.render.faithfulness_words import method_caveat

    at = _upload(_open(PAGES[1]), film)
    assert not any("changed little when the model's weights were made random" in c.value for c in at.caption)
    at.radio(key="cam_method").set_value("gradcam_pp").run()
    assert not at.exception
    at.slider(key="opacity").set_value(0.9).run()
    assert not at.exception
    assert any("Grad-CAM++" in c for image in at.image for c in image.captions)
    loaded = store.load(keras_model=False)
    caveat = method_caveat(read_explanations(loaded.path, loaded.card["sha256"]), "gradcam_pp")
    assert caveat and caveat in [c.value for c in at.caption]  # its maps failed the randomisation check


def test_only_a_film_read_as_normal_gets_the_map_note(model_name, film) -> None:
    from pneumo.inference.predict import Classifier
    from pneumo.render.wording import NORMAL_MAP_WORDS

    normal = real_films("NORMAL", 1)[0]
    classifier = Classifier(store.load())
    assert classifier.assess(normal, name=normal.name).p_pneumonia < classifier.threshold
    at = _upload(_open(PAGES[1]), (normal.name, normal.read_bytes(), "image/jpeg"))
    assert NORMAL_MAP_WORDS in [i.value for i in at.info]
    assert classifier.assess(film[1], name=film[0]).p_pneumonia >= classifier.threshold
    assert NORMAL_MAP_WORDS not in [i.value for i in _upload(_open(PAGES[1]), film).info]


def test_attention_outside_the_lungs_is_flagged(model_name, film, monkeypatch: pytest.MonkeyPatch) -> None:
    from pneumo.inference import explain

    monkeypatch.setattr(explain, "border_share", lambda heatmap, *args, **kwargs: 0.9)
    at = _upload(_open(PAGES[1]), film)
    assert explain.ATTENTION_WARNING in [w.value for w in at.warning]


def test_broken_file_gives_a_warning_not_an_exception(model_name) -> None:
    at = _upload(_open(PAGES[1]), BROKEN)
    warnings = [w.value for w in at.warning]
    assert any("broken.png" in w and "not an image" in w for w in warnings)
    assert not at.get("plotly_chart") or all(
        not any(t.get("name") == "probability" for t in c["data"]) for c in _charts(at))


def test_batch_table_csv_and_broken_file_in_place(model_name, film) -> None:
    second = real_films("NORMAL", 1)[0]
    at = _upload(_open(PAGES[1]), film, BROKEN, (second.name, second.read_bytes(), "image/jpeg"))
    table = at.dataframe[0].value
    assert list(table["file"]) == [film[0], "broken.png", second.name]
    assert list(table["status"]) == ["ok", "error", "ok"]
    assert np.isnan(table["p_pneumonia"][1])
    assert any("broken.png" in w.value for w in at.warning)
    assert "Results (CSV)" in [b.label for b in at.get("download_button")]
    assert any("where the model looked" in c for image in at.image for c in image.captions)


def test_dicom_shows_safe_metadata_only(model_name) -> None:
    film = np.asarray(Image.open(real_films("NORMAL", 1)[0]).convert("L"), dtype=np.uint16) * 16  # 12-bit
    at = _upload(_open(PAGES[1]), ("film.dcm", make_dicom(film), "application/dicom"))
    text = _texts(at)
    assert "DICOM header" in text and "**AP**" in text and "**DX**" in text and "20240315" in text
    for secret in ("Doe", *IDENTIFIERS.values()):
        assert secret not in text


def test_a_header_outside_the_intended_use_is_refused_with_its_reason(model_name) -> None:
    film = np.asarray(Image.open(real_films("NORMAL", 1)[0]).convert("L"))
    lateral = encode_dicom(film, ViewPosition="LL")
    adult = encode_dicom(film, PatientAge="081Y")
    at = _upload(_open(PAGES[1]), ("lateral.dcm", lateral, "application/dicom"))
    assert not at.exception and not at.image and not at.toggle  # no model ran: nothing to show anyway
    assert any("`lateral.dcm` was not assessed" in w.value and "lateral view" in w.value for w in at.warning)
    at = _upload(_open(PAGES[1]), ("adult.dcm", adult, "application/dicom"), ("lateral.dcm", lateral,
                                                                               "application/dicom"))
    table = at.dataframe[0].value
    assert list(table["status"]) == ["rejected", "rejected"]
    assert "adult (18 years or over)" in table["message"][0] and "081" not in table["message"][0]


def test_a_child_older_than_the_trained_ages_is_read_with_a_warning(model_name) -> None:
    film = np.asarray(Image.open(real_films("NORMAL", 1)[0]).convert("L"))
    at = _upload(_open(PAGES[1]), ("older.dcm", encode_dicom(film, PatientAge="010Y"), "application/dicom"))
    assert not at.exception and at.image
    assert any("6 to 11 years" in w.value for w in at.warning)


def _kaggle_folder(root: Path) -> Path:
    """A tiny Kaggle-layout data set: train and val, both classes, one patient in both splits."""
    normal, pneumonia = real_films("NORMAL", 4), real_films("PNEUMONIA", 4)
    for split, picks in (("train", slice(0, 3)), ("val", slice(2, 4))):
        for class_name, films in (("NORMAL", normal), ("PNEUMONIA", pneumonia)):
            folder = root / split / class_name
            folder.mkdir(parents=True, exist_ok=True)
            for path in films[picks]:
                shutil.copy(path, folder / path.name)
    return root


def test_explorer_stored_profile_draws_charts(model_name) -> None:
    at = _open(PAGES[2])
    if store.read_profile() is None:
        assert any("without a profile" in i.value for i in at.info)
        return
    titles = [c["layout"].get("title", {}).get("text", "") for c in _charts(at)]
    for expected in ("Films per class and split", "Pneumonia subtypes", "Patients per class",
                     "Films per patient", "Image sizes", "Aspect ratios", "Pixel intensities"):
        assert any(expected in t for t in titles)


def test_explorer_profiles_a_folder_with_gallery_and_leakage(tmp_path: Path) -> None:
    root = _kaggle_folder(tmp_path / "chest_xray")
    at = _open(PAGES[2])
    at.radio(key="explorer_source").set_value("folder").run()
    at.text_input(key="data_dir").set_value(str(root)).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 7
    assert any(m.label == "Patients in several splits" and int(m.value) > 0 for m in at.metric)
    assert any("more than one split" in w.value for w in at.warning)
    gallery = [c for image in at.image for c in image.captions]
    assert any(c.startswith("IM-") for c in gallery) and any(c.startswith("person") for c in gallery)
    at.run()  # a cache hit replays the progress bar without error
    assert not at.exception


def test_explorer_bad_folder_warns(tmp_path: Path) -> None:
    at = _open(PAGES[2])
    at.radio(key="explorer_source").set_value("folder").run()
    at.text_input(key="data_dir").set_value(str(tmp_path / "missing")).run()
    assert not at.exception
    assert any("No such data folder" in w.value for w in at.warning)


def test_explorer_profiles_a_zip_in_memory(tmp_path: Path) -> None:
    root = _kaggle_folder(tmp_path / "chest_xray")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*.jpeg")):
            archive.write(path, Path("chest_xray") / path.relative_to(root))
        archive.writestr("__MACOSX/chest_xray/train/NORMAL/._junk.jpeg", b"resource fork")
    at = _open(PAGES[2])
    at.radio(key="explorer_source").set_value("zip").run()
    at.file_uploader(key="zip_uploader").set_value(("data.zip", buffer.getvalue(), "application/zip")).run()
    assert not at.exception
    films = len(list(root.rglob("*.jpeg")))
    assert any(m.label == "Films" and m.value == str(films) for m in at.metric)
    assert len(at.get("plotly_chart")) >= 7


def test_model_card_curves_and_threshold_explorer(model_name) -> None:
    at = _open(PAGES[3])
    titles = [c["layout"].get("title", {}).get("text", "") for c in _charts(at)]
    for expected in ("Confusion matrix", "ROC curve", "Precision-recall", "Reliability", "every threshold"):
        assert any(expected in t for t in titles), expected
    slider = at.slider[0]
    before = {m.label: m.value for m in at.metric}
    slider.set_value(0.05).run()
    assert not at.exception
    after = {m.label: m.value for m in at.metric}
    assert float(after["Sensitivity"]) >= float(before["Sensitivity"])
    assert "Known limits" in _texts(at)


def _copy_model(source: Path, target_store: Path, name: str) -> Path:
    shutil.copytree(source, target_store / name)
    return target_store / name


def test_card_with_predictions_uses_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, folder = _default_model_or_skip()
    copy = _copy_model(folder, tmp_path, "with_predictions")
    card = json.loads((copy / "card.json").read_text())
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    probs = np.clip(labels * 0.5 + rng.random(200) * 0.5, 0, 1)
    card["validation"]["predictions"] = {"labels": labels.tolist(), "p_pneumonia": probs.tolist()}
    (copy / "card.json").write_text(json.dumps(card))
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tmp_path))
    at = _open(PAGES[3])
    assert "probabilities of the films the card was checked on" in "\n".join(c.value for c in at.caption)


def test_picker_switches_the_model_for_every_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, folder = _default_model_or_skip()
    for name in ("model_a", "model_b"):
        _copy_model(folder, tmp_path, name)
    (tmp_path / "DEFAULT").write_text("model_a\n")
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tmp_path))
    at = _open(PAGES[3])
    at.selectbox(key="model_picker").set_value("model_b").run()
    assert not at.exception
    at.switch_page(PAGES[0]).run()
    assert "Model **model_b**" in "\n".join(c.value for c in at.caption)


@pytest.mark.parametrize("damage", ["empty store", "corrupt model file"])
def test_broken_model_store_says_what_to_do(damage: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    if damage == "corrupt model file":
        _, folder = _default_model_or_skip()
        copy = _copy_model(folder, tmp_path, "damaged")
        (copy / "model.keras").write_bytes(b"not a keras archive")
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tmp_path))
    for page in PAGES:
        at = _open(page)
        assert any("cannot be used" in e.value for e in at.error)
        assert "What to do" in _texts(at)


def test_minimal_card_renders_every_page(tiny_store: Path, film, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose card has no validation, profile, intended use or limits still gets every page."""
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tiny_store))
    for page in PAGES:
        at = _open(page)
        if page == PAGES[1]:
            _upload(at, film)
            assert any("where the model looked" in c for image in at.image for c in image.captions)
        if page == PAGES[3]:
            assert any("no validation figures" in i.value for i in at.info)


def test_an_out_of_scope_image_is_withheld_until_an_expert_asks(model_name) -> None:
    from pneumo.guard import persist

    if persist.load_guard(store.load(model_name)) is None:
        pytest.skip(f"model {model_name!r} has no out-of-scope guard")
    skimage_data = pytest.importorskip("skimage.data")
    buffer = io.BytesIO()
    Image.fromarray(skimage_data.astronaut()).save(buffer, "PNG")
    at = _open(PAGES[1])
    at.file_uploader(key="uploader").set_value(("astronaut.png", buffer.getvalue(), "image/png")).run()
    assert not at.exception
    assert any("colour photograph" in w.value for w in at.warning)
    assert not at.image  # nothing of the result is shown until asked for
    at.toggle[0].set_value(True).run()
    assert not at.exception
    assert any("OUT OF SCOPE" in e.value for e in at.error)


def test_model_card_shows_the_stored_explanation_figures(model_name) -> None:
    from pneumo.evaluation.faithfulness_results import read_explanations

    loaded = store.load(model_name)
    stored = read_explanations(loaded.path, loaded.card["sha256"])
    at = _open(PAGES[3])
    assert not at.exception
    if stored is None:
        assert any("No explanation measurements" in i.value for i in at.info)
        return
    table = next(d for d in at.dataframe if "deletion_auc" in d.value.columns)
    assert list(table.value["method"])[0] == "Grad-CAM"
    assert table.value["deletion_auc"].iloc[0] == pytest.approx(stored["gradcam"]["deletion_auc"])


# -- bacterial or viral: the pattern of a film read as pneumonia -----------------------------------

def _subtype_store_at(source: Path, target: Path, threshold: float) -> Path:
    """A copy of the tiny subtype store whose main threshold reads every film as pneumonia (0) or normal (1)."""
    shutil.copytree(source, target)
    card = store.read_card("tiny", target)
    store.write_card("tiny", {**card, "threshold": threshold}, target)
    return target


def test_a_film_read_as_pneumonia_shows_its_pattern_caveat_and_a_selectable_map(
        tiny_subtype_store: Path, film, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pneumo.inference.predict import Classifier
    from pneumo.render.wording import PATTERN_CAVEAT, format_percent

    root = _subtype_store_at(tiny_subtype_store, tmp_path / "store", 0.0)
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(root))
    expected = Classifier(store.load("tiny", root)).assess(film[1], name=film[0])
    assert expected.pattern in ("bacterial", "viral")
    at = _upload(_open(PAGES[1]), film)
    texts = _texts(at)
    assert f"Pattern: **{expected.pattern}**, P(bacterial) = {format_percent(expected.p_bacterial)}" in texts
    assert PATTERN_CAVEAT in texts
    bars = [t for c in _charts(at) for t in c["data"] if t.get("name") == "probability"]
    assert [list(t["y"]) for t in bars] == [["NORMAL", "PNEUMONIA"], ["viral", "bacterial"]]
    assert any("looked for pneumonia" in c for image in at.image for c in image.captions)
    at.radio(key="map_target").set_value("subtype").run()
    assert not at.exception
    assert any("looked for a bacterial pattern" in c for image in at.image for c in image.captions)
    assert any("towards a bacterial pattern" in c.value for c in at.caption)  # the legend follows the map
    at.radio(key="cam_method").set_value("scorecam").run()
    assert not at.exception


def test_a_film_read_as_normal_shows_nothing_about_a_pattern(
        tiny_subtype_store: Path, film, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pneumo.inference.predict import Classifier
    from pneumo.render.wording import PATTERN_CAVEAT

    root = _subtype_store_at(tiny_subtype_store, tmp_path / "store", 1.0)
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(root))
    read = Classifier(store.load("tiny", root)).assess(film[1], name=film[0])
    assert read.label == "NORMAL" and read.pattern == "" and read.p_bacterial is None
    at = _upload(_open(PAGES[1]), film)
    texts = _texts(at)
    assert "where the model looked for pneumonia" in "\n".join(c for image in at.image for c in image.captions)
    assert "Pattern:" not in texts and PATTERN_CAVEAT not in texts and "P(bacterial)" not in texts
    assert not [r for r in at.radio if r.key == "map_target"]
    assert all("bacterial" not in str(t.get("y")) for c in _charts(at) for t in c["data"])


def test_batch_table_has_a_pattern_column_for_pneumonia_rows_only(
        tiny_subtype_store: Path, film, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(_subtype_store_at(tiny_subtype_store, tmp_path / "store", 0.0)))
    at = _upload(_open(PAGES[1]), film, BROKEN)
    table = at.dataframe[0].value
    assert list(table.columns[:5]) == ["file", "p_pneumonia", "verdict", "pattern", "p_bacterial"]
    assert table["pattern"][0] in ("bacterial", "viral") and table["pattern"][1] == ""
    assert 0 <= table["p_bacterial"][0] <= 1 and np.isnan(table["p_bacterial"][1])


def test_model_page_has_a_bacterial_or_viral_section(tiny_subtype_store: Path, tiny_store: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from pneumo.render import model_card

    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tiny_subtype_store))
    at = _open(PAGES[3])
    assert "Bacterial or viral" in [h.value for h in at.header]
    assert model_card.SUBTYPE_CAVEAT in [i.value for i in at.info]
    figures = next(d.value for d in at.dataframe if "Figure" in d.value.columns)
    assert list(figures["Figure"]) == [words for _, words in model_card.SUBTYPE_FIGURE_WORDS]
    titles = [c.get("layout", {}).get("title", {}).get("text", "") for c in _charts(at)]
    assert "Reliability diagram" in titles and any(t.startswith("ROC curve") for t in titles)
    before = [m.value for m in at.metric if "bacterial" in m.label.lower()]
    at.slider(key="subtype_threshold_tiny").set_value(0.9).run()
    assert not at.exception
    assert [m.value for m in at.metric if "bacterial" in m.label.lower()] != before
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tiny_store))
    assert model_card.NO_SUBTYPE in [c.value for c in _open(PAGES[3]).caption]


@pytest.mark.parametrize("page", [PAGES[1], PAGES[3]])
def test_the_review_band_is_explained_with_what_the_card_measured_in_it(page: str) -> None:
    loaded = store.load()
    had, films, kind = model_card.review_band_outcomes(loaded.card, loaded.threshold)
    text = _texts(_open(page))
    assert f"Measured {kind}: of the {films} training films in this band, {had} ({had / films:.0%}) had pneumonia." in text
    assert "less likely than not" not in text

"""pneumo.render.diagnosis: what the diagnose page shows about one film, without Streamlit."""

import numpy as np
import pytest

from pneumo import data
from pneumo.inference import explain
from pneumo.inference.predict import STATUS_OK, Assessment, Classifier
from pneumo.io import Film
from pneumo.preprocess import to_display
from pneumo.render import diagnosis, wording

SIZE = 64


def _heatmap(where: str) -> np.ndarray:
    """A map whose warm weight lies at the centre of the film or in its border band."""
    heat = np.zeros((SIZE, SIZE), dtype=np.float32)
    if where == "centre":
        heat[24:40, 24:40] = 1.0
    else:
        heat[:4, :] = 1.0
        heat[30:34, 30:34] = 0.6
    return heat


@pytest.fixture(scope="module")
def film() -> Film:
    return data.synthetic_film(200, seed=3)


def test_film_view_paints_the_overlay_as_explain_does(film):
    heat = _heatmap("centre")
    view = diagnosis.film_view(film, heat, SIZE, "gradcam_pp", 0.7, p_pneumonia=0.9, threshold=0.2112)
    shown = to_display(film, SIZE)
    assert view.film.shape == (SIZE, SIZE) and view.film.dtype == np.uint8
    assert np.array_equal(view.film, shown)
    assert np.array_equal(view.overlay, explain.overlay(shown, heat, 0.7))
    assert view.overlay.shape == (SIZE, SIZE, 3)
    assert (view.method, view.method_name) == ("gradcam_pp", "Grad-CAM++")
    assert view.film_caption == "The film as the model saw it (64 x 64)"
    assert view.overlay_caption == "Grad-CAM++: where the model looked for pneumonia"
    assert view.warning is None and view.note is None  # read as pneumonia, map on the thorax


def test_film_view_warns_when_the_map_lies_at_the_border(film):
    heat = _heatmap("border")
    assert explain.border_share(heat, floor=explain.WARM_FLOOR) > explain.WARM_BORDER_LIMIT
    view = diagnosis.film_view(film, heat, SIZE, "gradcam", 0.5, p_pneumonia=0.9, threshold=0.2112)
    assert view.warning == explain.ATTENTION_WARNING


@pytest.mark.parametrize(("p", "note"), [(0.1, wording.NORMAL_MAP_WORDS), (0.3, wording.REVIEW_MAP_WORDS),
                                         (0.6, None)])
def test_film_view_says_what_the_map_of_a_film_means(film, p, note):
    assert diagnosis.film_view(film, _heatmap("centre"), SIZE, "gradcam", 0.5, p, 0.2112).note == note


def test_probability_text_names_the_threshold_the_site_and_the_interval():
    assert diagnosis.probability_text(0.81234, 0.2112, (0.7, 0.9)) == (
        "P(pneumonia) = **0.8123** · operating threshold 0.2112 · 10-90% interval under mild "
        "test-time changes 0.7000 to 0.9000")
    assert "threshold 0.3000 (site north_ward) ·" in diagnosis.probability_text(0.5, 0.3, (0.4, 0.6), "north_ward")
    # no interval measured (a worklist film whose result was not forwarded): none is made up
    assert diagnosis.probability_text(0.81234, 0.2112, None) == "P(pneumonia) = **0.8123** · operating threshold 0.2112"


def test_metadata_text_names_the_safe_fields():
    assert diagnosis.metadata_text({}) is None
    assert diagnosis.metadata_text({"view": "AP", "study_date": "20240315", "other": "x"}) == (
        "DICOM header: View: **AP** · Study date: **20240315** · other: **x**")


def test_case_report_carries_what_the_page_shows(tiny_model, film):
    classifier = Classifier(tiny_model, guard=None)
    heat = _heatmap("border")
    view = diagnosis.film_view(film, heat, classifier.size, "scorecam", 0.5, 0.48, classifier.threshold)
    item = Assessment("film.png", STATUS_OK, 0.48, "NORMAL",
                      film=Film(film.pixels, "PNG", "L", metadata={"view": "AP"}))
    report = diagnosis.case_report(view, item, classifier, (0.4, 0.55))
    assert report.film is view.film and report.overlay is view.overlay
    assert (report.p_pneumonia, report.threshold, report.interval) == (0.48, classifier.threshold, (0.4, 0.55))
    assert (report.model_name, report.model_version) == ("tiny", tiny_model.version)
    assert report.method == "Score-CAM" and report.classes == ("NORMAL", "PNEUMONIA")
    assert report.metadata == {"view": "AP"} and report.attention_outside and report.site == ""
    from pneumo.render.model_card import nearby_words
    assert report.scored_alike == (nearby_words(tiny_model.card, 0.48, classifier.threshold) or "")


def test_film_view_of_the_bacterial_pattern_map(film):
    heat = _heatmap("centre")
    view = diagnosis.film_view(film, heat, SIZE, "gradcam", 0.5, 0.9, 0.2112, "subtype", "viral")
    assert view.target == "subtype" and view.legend == wording.SUBTYPE_CAM_WORDS
    assert view.overlay_caption == "Grad-CAM: where the subtype model looked for a bacterial pattern"
    assert view.note == wording.VIRAL_MAP_WORDS
    assert diagnosis.film_view(film, heat, SIZE, "gradcam", 0.5, 0.9, 0.2112, "subtype", "bacterial").note is None
    with pytest.raises(ValueError, match="only for a film read as pneumonia"):
        diagnosis.film_view(film, heat, SIZE, "gradcam", 0.5, 0.1, 0.2112, "subtype", "")
    with pytest.raises(ValueError, match="unknown map target"):
        diagnosis.film_view(film, heat, SIZE, "gradcam", 0.5, 0.9, 0.2112, "lungs")


def test_pattern_line_only_with_a_pattern():
    assert diagnosis.pattern_line(Assessment("a.png", STATUS_OK, 0.9, "PNEUMONIA", p_bacterial=0.81,
                                             pattern="bacterial")) == "Pattern: **bacterial**, P(bacterial) = 81%"
    assert diagnosis.pattern_line(Assessment("b.png", STATUS_OK, 0.1, "NORMAL")) is None


def test_case_report_carries_the_pattern(tiny_subtype_model, film):
    from pneumo import store

    classifier = Classifier(tiny_subtype_model, guard=None)
    subtype = store.load_subtype(tiny_subtype_model)
    view = diagnosis.film_view(film, _heatmap("centre"), classifier.size, "gradcam", 0.5, 0.9,
                               classifier.threshold, "subtype", "viral")
    item = Assessment("film.png", STATUS_OK, 0.9, "PNEUMONIA", film=film, p_bacterial=0.3, pattern="viral")
    report = diagnosis.case_report(view, item, classifier, (0.8, 0.95))
    assert (report.pattern, report.p_bacterial, report.map_target) == ("viral", 0.3, "subtype")
    assert report.subtype_threshold == subtype.threshold
    plain = diagnosis.case_report(diagnosis.film_view(film, _heatmap("centre"), classifier.size, "gradcam", 0.5,
                                                      0.1, classifier.threshold),
                                  Assessment("n.png", STATUS_OK, 0.1, "NORMAL", film=film), classifier, (0.0, 0.2))
    assert (plain.pattern, plain.p_bacterial, plain.subtype_threshold, plain.map_target) == ("", None, None,
                                                                                         "pneumonia")

"""pneumo.render.wording: one wording for verdicts, numbers, tables and reports."""

import csv
import io

import pytest

from pneumo.inference.predict import STATUS_ERROR, STATUS_OK, Assessment, review_band
from pneumo.render import wording
from pneumo.render.palette import CLASS_COLOURS, NEUTRAL_COLOUR, REVIEW_COLOUR


@pytest.mark.parametrize(("p", "text"), [(0.0, "<1%"), (0.004, "<1%"), (0.12, "12%"), (0.5, "50%"),
                                         (0.97, "97%"), (0.995, ">99%"), (1.0, ">99%")])
def test_percent_never_claims_certainty(p, text):
    assert wording.format_percent(p) == text


@pytest.mark.parametrize(("value", "digits", "text"), [(None, 3, "n/a"), (0.98149, 3, "0.981"),
                                                       (0.0, 3, "0.000"), (0.99913966, 4, "0.9991"),
                                                       (1, 2, "1.00")])
def test_format_number_says_n_a_for_a_missing_figure(value, digits, text):
    assert wording.format_number(value, digits) == text


def test_verdict_at_the_threshold_is_pneumonia():
    likely = wording.verdict_for(0.74, threshold=0.74)
    assert likely.label == "PNEUMONIA" and likely.text == "Pneumonia likely, 74%"
    assert likely.colour == CLASS_COLOURS["PNEUMONIA"]
    clear = wording.verdict_for(0.12, threshold=0.74)
    assert clear.label == "NORMAL" and clear.text == "No pneumonia detected, 12%"
    assert clear.colour == CLASS_COLOURS["NORMAL"]


def test_map_note_only_beside_films_read_as_normal():
    assert wording.map_note(0.12, threshold=0.74) == wording.NORMAL_MAP_WORDS
    assert wording.map_note(0.74, threshold=0.74) is None  # at the threshold: pneumonia
    assert wording.map_note(0.99, threshold=0.74) is None


def test_border_training_note_reads_the_card():
    card = {"training": {"config": {"border_penalty": 1.0}, "best_epoch": 2,
                         "history": {"val_border_share": [0.31, 0.087, 0.05]}}}
    note = wording.border_training_note(card)
    assert "outer 12% band" in note and "(weight 1)" in note
    assert "that share was 9% on the films held out while training (in-distribution)" in note  # epoch 2's, not the last one's
    card["training"]["config"]["border_allowance"] = 0.1
    assert "where markers and text sit, exceeds 10% (weight 1)" in wording.border_training_note(card)
    del card["training"]["history"]
    assert "validation films" not in wording.border_training_note(card)
    card["training"]["config"]["border_penalty"] = 0.0
    assert wording.border_training_note(card) is None
    assert wording.border_training_note({}) is None


def test_training_run_text_names_the_model_a_run_continued_from():
    training = {"epochs_run": 21, "best_epoch": 18, "seconds": 3037.7}
    assert wording.training_run_text(training) == "Trained from scratch for 21 epochs (best: 18) in 51 minutes."
    training.update(epochs_run=8, best_epoch=8, seconds=1260,
                    start_from={"name": "cnn192", "created": "2026-11-22T01:43:11+00:00", "sha256": "ab" * 32})
    text = wording.training_run_text(training)
    assert text.startswith("Continued from model cnn192 (created 2026-11-22, model file sha256 abababababab...)")
    assert "for 8 more epochs in 21 minutes; the last epoch is kept." in text
    assert wording.training_run_text({}) == "Trained from scratch for ? epochs (best: ?) in 0 minutes."


def test_rows_and_csv_keep_order_and_errors():
    items = [Assessment("a.png", STATUS_OK, 0.91234, "PNEUMONIA"),
             Assessment("b.png", STATUS_ERROR, message="The file is empty."),
             Assessment("c.png", STATUS_OK, 0.1, "NORMAL")]
    rows = wording.results_rows(items, threshold=0.5)
    assert [r["file"] for r in rows] == ["a.png", "b.png", "c.png"]
    assert rows[0]["p_pneumonia"] == 0.91234 and rows[1]["p_pneumonia"] is None
    assert rows[1]["verdict"] == "" and rows[1]["message"] == "The file is empty."
    table = list(csv.DictReader(io.StringIO(wording.results_csv(items).decode())))
    assert list(table[0]) == ["path", "status", "p_pneumonia", "label", "p_bacterial", "pattern", "message", "site"]
    assert table[0]["site"] == ""  # no site calibration: the model's own operating point
    assert table[0]["p_pneumonia"] == "0.9123" and table[1]["status"] == STATUS_ERROR


def test_verdict_cells_take_the_verdict_colour():
    assert CLASS_COLOURS["PNEUMONIA"] in wording.verdict_colour_css("Pneumonia likely, 80%")
    assert CLASS_COLOURS["NORMAL"] in wording.verdict_colour_css("No pneumonia detected, 3%")
    assert NEUTRAL_COLOUR in wording.verdict_colour_css("")


def test_disclaimer_prints_in_a_core_pdf_font():
    wording.DISCLAIMER.encode("latin-1")
    wording.CAM_WORDS.encode("latin-1")


def test_problem_text_names_the_file_and_the_reason():
    from pneumo.inference.predict import STATUS_REJECTED

    broken = Assessment("b.png", STATUS_ERROR, message="The file is empty.")
    assert wording.problem_text(broken) == "`b.png` could not be read: The file is empty."
    refused = Assessment("cat.jpg", STATUS_REJECTED, 0.3, message="Not a chest film.")
    assert wording.problem_text(refused) == "`cat.jpg` was not assessed: Not a chest film."


SHIPPED_LIKE = 0.2112  # an operating threshold below 50%, as the shipped model's


@pytest.mark.parametrize(("p", "label", "text", "colour"), [
    (0.2111, "NORMAL", "No pneumonia detected, 21%", CLASS_COLOURS["NORMAL"]),   # just below
    (0.2112, "PNEUMONIA", "Possible pneumonia: review, 21%", REVIEW_COLOUR),      # at the threshold
    (0.48, "PNEUMONIA", "Possible pneumonia: review, 48%", REVIEW_COLOUR),        # inside the band
    (0.5, "PNEUMONIA", "Pneumonia likely, 50%", CLASS_COLOURS["PNEUMONIA"]),      # at 50%
    (0.97, "PNEUMONIA", "Pneumonia likely, 97%", CLASS_COLOURS["PNEUMONIA"]),
])
def test_words_agree_with_the_number_below_a_low_threshold(p, label, text, colour):
    verdict = wording.verdict_for(p, SHIPPED_LIKE)
    assert (verdict.label, verdict.text, verdict.colour) == (label, text, colour)
    assert verdict.review == (colour == REVIEW_COLOUR)


def test_a_threshold_of_50_percent_has_no_review_band():
    assert review_band(0.5) is None
    assert wording.verdict_for(0.4999, 0.5).text == "No pneumonia detected, 50%"
    assert wording.verdict_for(0.5, 0.5).text == "Pneumonia likely, 50%"
    assert [b.words for b in wording.verdict_bands(0.5)] == ["No pneumonia detected", "Pneumonia likely"]
    assert not any("review" in line for line in wording.band_explanation(0.5))


def test_above_50_percent_the_band_lies_between_50_percent_and_the_threshold():
    assert review_band(0.74) == (0.5, 0.74)
    assert wording.verdict_for(0.49, 0.74).text == "No pneumonia detected, 49%"
    inside = wording.verdict_for(0.6, 0.74)
    assert inside.text == "Possible pneumonia: review, 60%" and inside.label == "NORMAL" and inside.review
    assert wording.verdict_for(0.74, 0.74).text == "Pneumonia likely, 74%"


def test_bands_cover_the_scale_in_their_colours():
    bands = wording.verdict_bands(SHIPPED_LIKE)
    assert [(b.start, b.end) for b in bands] == [(0.0, SHIPPED_LIKE), (SHIPPED_LIKE, 0.5), (0.5, 1.0)]
    assert [b.colour for b in bands] == [CLASS_COLOURS["NORMAL"], REVIEW_COLOUR,
                                         CLASS_COLOURS["PNEUMONIA"]]
    assert len(set(CLASS_COLOURS.values()) | {REVIEW_COLOUR, NEUTRAL_COLOUR}) == 4


def test_band_explanation_in_plain_words():
    lines = wording.band_explanation(SHIPPED_LIKE)
    assert lines[0] == ('Below 21.1% (the operating threshold): "No pneumonia detected"; '
                        "the film is labelled NORMAL.")
    assert lines[1] == ('From 21.1% up to 50%: "Possible pneumonia: review". The film is labelled '
                        "PNEUMONIA at the threshold, but the model is unsure: a clinician should look again.")
    assert lines[2] == '50% and above: "Pneumonia likely"; the film is labelled PNEUMONIA.'
    assert "few pneumonias are missed" in lines[3]
    above = wording.band_explanation(0.74)
    assert above[1].startswith('From 50% up to 74.0% (the operating threshold): "Possible pneumonia: review"')
    assert "labelled NORMAL" in above[1]
    measured = wording.band_explanation(SHIPPED_LIKE, (51, 58, "out-of-fold (block folds)"))
    assert measured[1] == lines[1] + (" Measured out-of-fold (block folds): of the 58 training films in this "
                                      "band, 51 (88%) had pneumonia.")
    assert wording.band_explanation(SHIPPED_LIKE, (0, 0, "out-of-fold")) == lines  # no films: nothing to say
    for line in lines + above + measured:
        line.encode("latin-1")  # printable in the PDF's core font
    assert wording.bands_text(SHIPPED_LIKE) == ("below 0.2112: No pneumonia detected; 0.2112 to below 0.5000: "
                                                "Possible pneumonia: review; 0.5000 and above: Pneumonia likely")


def test_review_band_in_the_table_while_the_csv_label_stays_at_the_threshold():
    items = [Assessment("a.png", STATUS_OK, 0.48, "PNEUMONIA"), Assessment("b.png", STATUS_OK, 0.2, "NORMAL")]
    rows = wording.results_rows(items, threshold=SHIPPED_LIKE)
    assert [r["verdict"] for r in rows] == ["Possible pneumonia: review, 48%", "No pneumonia detected, 20%"]
    assert REVIEW_COLOUR in wording.verdict_colour_css(rows[0]["verdict"])
    table = list(csv.DictReader(io.StringIO(wording.results_csv(items).decode())))
    assert [r["label"] for r in table] == ["PNEUMONIA", "NORMAL"]


def test_map_note_in_the_review_band():
    assert wording.map_note(0.2, SHIPPED_LIKE) == wording.NORMAL_MAP_WORDS
    assert wording.map_note(0.48, SHIPPED_LIKE) == wording.REVIEW_MAP_WORDS
    assert wording.map_note(0.6, 0.74) == wording.REVIEW_MAP_WORDS  # labelled NORMAL, but not "read as normal"
    assert wording.map_note(0.5, SHIPPED_LIKE) is None


def test_rows_show_a_pattern_only_for_a_film_read_as_pneumonia():
    items = [Assessment("a.png", STATUS_OK, 0.91, "PNEUMONIA", p_bacterial=0.8, pattern="bacterial"),
             Assessment("b.png", STATUS_OK, 0.1, "NORMAL"),
             Assessment("c.png", STATUS_ERROR, message="The file is empty.")]
    rows = wording.results_rows(items, threshold=0.5)
    assert [(r["pattern"], r["p_bacterial"]) for r in rows] == [("bacterial", 0.8), ("", None), ("", None)]
    assert list(rows[0])[:5] == ["file", "p_pneumonia", "verdict", "pattern", "p_bacterial"]
    assert wording.pattern_text("viral", 0.123) == "Pattern: **viral**, P(bacterial) = 12%"
    assert wording.subtype_map_note("viral") == wording.VIRAL_MAP_WORDS and wording.subtype_map_note("bacterial") is None

"""pneumo.present: one wording and one palette for verdicts, tables and reports."""

import csv
import io

import pytest

from pneumo import present
from pneumo.predict import STATUS_ERROR, STATUS_OK, Assessment


@pytest.mark.parametrize(("p", "text"), [(0.0, "<1%"), (0.004, "<1%"), (0.12, "12%"), (0.5, "50%"),
                                         (0.97, "97%"), (0.995, ">99%"), (1.0, ">99%")])
def test_percent_never_claims_certainty(p, text):
    assert present.format_percent(p) == text


def test_verdict_at_the_threshold_is_pneumonia():
    likely = present.verdict_for(0.74, threshold=0.74)
    assert likely.label == "PNEUMONIA" and likely.text == "Pneumonia likely, 74%"
    assert likely.colour == present.CLASS_COLOURS["PNEUMONIA"]
    clear = present.verdict_for(0.12, threshold=0.74)
    assert clear.label == "NORMAL" and clear.text == "No pneumonia detected, 12%"
    assert clear.colour == present.CLASS_COLOURS["NORMAL"]


def test_map_note_only_beside_films_read_as_normal():
    assert present.map_note(0.12, threshold=0.74) == present.NORMAL_MAP_WORDS
    assert present.map_note(0.74, threshold=0.74) is None  # at the threshold: pneumonia
    assert present.map_note(0.99, threshold=0.74) is None


def test_border_training_note_reads_the_card():
    card = {"training": {"config": {"border_penalty": 1.0}, "best_epoch": 2,
                         "history": {"val_border_share": [0.31, 0.087, 0.05]}}}
    note = present.border_training_note(card)
    assert "outer 12% band" in note and "(weight 1)" in note
    assert "that share was 9% on the validation films" in note  # epoch 2's, not the last one's
    card["training"]["config"]["border_allowance"] = 0.1
    assert "where markers and text sit, exceeds 10% (weight 1)" in present.border_training_note(card)
    del card["training"]["history"]
    assert "validation films" not in present.border_training_note(card)
    card["training"]["config"]["border_penalty"] = 0.0
    assert present.border_training_note(card) is None
    assert present.border_training_note({}) is None


def test_training_run_text_names_the_model_a_run_continued_from():
    training = {"epochs_run": 21, "best_epoch": 18, "seconds": 3037.7}
    assert present.training_run_text(training) == "Trained from scratch for 21 epochs (best: 18) in 51 minutes."
    training.update(epochs_run=8, best_epoch=8, seconds=1260,
                    start_from={"name": "cnn192", "created": "2026-11-22T01:43:11+00:00", "sha256": "ab" * 32})
    text = present.training_run_text(training)
    assert text.startswith("Continued from model cnn192 (created 2026-11-22, model file sha256 abababababab...)")
    assert "for 8 more epochs in 21 minutes; the last epoch is kept." in text
    assert present.training_run_text({}) == "Trained from scratch for ? epochs (best: ?) in 0 minutes."


def test_rows_and_csv_keep_order_and_errors():
    items = [Assessment("a.png", STATUS_OK, 0.91234, "PNEUMONIA"),
             Assessment("b.png", STATUS_ERROR, message="The file is empty."),
             Assessment("c.png", STATUS_OK, 0.1, "NORMAL")]
    rows = present.results_rows(items, threshold=0.5)
    assert [r["file"] for r in rows] == ["a.png", "b.png", "c.png"]
    assert rows[0]["p_pneumonia"] == 0.91234 and rows[1]["p_pneumonia"] is None
    assert rows[1]["verdict"] == "" and rows[1]["message"] == "The file is empty."
    table = list(csv.DictReader(io.StringIO(present.results_csv(items).decode())))
    assert list(table[0]) == ["path", "status", "p_pneumonia", "label", "message"]
    assert table[0]["p_pneumonia"] == "0.9123" and table[1]["status"] == STATUS_ERROR


def test_verdict_cells_take_the_verdict_colour():
    assert present.CLASS_COLOURS["PNEUMONIA"] in present.verdict_colour_css("Pneumonia likely, 80%")
    assert present.CLASS_COLOURS["NORMAL"] in present.verdict_colour_css("No pneumonia detected, 3%")
    assert present.NEUTRAL_COLOUR in present.verdict_colour_css("")


def test_disclaimer_prints_in_a_core_pdf_font():
    present.DISCLAIMER.encode("latin-1")
    present.CAM_WORDS.encode("latin-1")


def test_problem_text_names_the_file_and_the_reason():
    from pneumo.predict import STATUS_REJECTED

    broken = Assessment("b.png", STATUS_ERROR, message="The file is empty.")
    assert present.problem_text(broken) == "`b.png` could not be read: The file is empty."
    refused = Assessment("cat.jpg", STATUS_REJECTED, 0.3, message="Not a chest film.")
    assert present.problem_text(refused) == "`cat.jpg` was not assessed: Not a chest film."

"""How results are put into words and colours for people: one wording, one palette, everywhere.

The app, its figures and the PDF case report all take their verdict text, class
colours and the disclaimer from here, so a film is described the same way on
screen and on paper.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pneumo.predict import STATUS_OK, STATUS_REJECTED, Assessment

DISCLAIMER = (
    "Pneumo assists a clinician; it does not diagnose. It estimates how likely pneumonia is on a "
    "frontal (anterior-posterior) chest film of a child aged one to five, the population it was "
    "trained on. A film it calls normal does not rule pneumonia out."
)
"""Shown on every page and printed on every report (plain ASCII, so any PDF font can print it)."""

CLASS_COLOURS = {"NORMAL": "#2e7d5b", "PNEUMONIA": "#b3261e"}
"""Class name -> colour, used for verdicts, probability bars and dataset charts alike."""

NEUTRAL_COLOUR = "#5f6b73"
"""For rows without a verdict (files that could not be read)."""

VERDICT_WORDS = {"NORMAL": "No pneumonia detected", "PNEUMONIA": "Pneumonia likely"}

CAM_WORDS = (
    "Warm colours (yellow to red) mark the regions that weighed most towards pneumonia; cool, "
    "nearly transparent colours (blue) mark regions that weighed little. The map shows where the "
    "model looked, not where disease is."
)
"""What the overlay's colour scale means, next to its legend."""

NORMAL_MAP_WORDS = (
    "This film is read as normal, so there is little evidence of pneumonia for the map to show. "
    "Each map is scaled to its own strongest region: here its warm spots are the faintest traces, "
    "not a finding."
)
"""Beside the overlay of a film below the threshold (see :func:`map_note`)."""


def map_note(p_pneumonia: float, threshold: float) -> str | None:
    """What to say beside a film's overlay about how much its map means, or None.

    Maps are scaled per film, so a film read as normal still shows a warm spot; the
    note keeps a reader from taking that spot for a finding.
    """
    return NORMAL_MAP_WORDS if p_pneumonia < threshold else None


def training_run_text(training: dict) -> str:
    """One sentence on how long a model trained and which epoch it kept, from its card's ``training``."""
    epochs, minutes = training.get("epochs_run", "?"), (training.get("seconds") or 0) / 60
    parent = training.get("start_from")
    if not parent:
        best = training.get("best_epoch", "?")
        return f"Trained from scratch for {epochs} epochs (best: {best}) in {minutes:.0f} minutes."
    created = str(parent.get("created") or "?")[:10]
    return (f"Continued from model {parent.get('name', '?')} (created {created}, model file sha256 "
            f"{str(parent.get('sha256') or '?')[:12]}...), trained on the same films, for {epochs} more "
            f"epochs in {minutes:.0f} minutes; the last epoch is kept.")


def border_training_note(card: dict) -> str | None:
    """How the model was taught to keep its evidence off the film's border, from its card, or None."""
    from pneumo.explain import BORDER_MARGIN

    training = card.get("training") or {}
    weight = (training.get("config") or {}).get("border_penalty")
    if not weight:
        return None
    allowance = (training.get("config") or {}).get("border_allowance") or 0.0
    band = f"the film's outer {BORDER_MARGIN:.0%} band, where markers and text sit"
    share = f"the share of its Grad-CAM map in {band}"
    measure = f"how far {share}, exceeds {allowance:.0%}" if allowance else share
    text = ("Trained to take its evidence from the thorax: its training loss adds, for each film, "
            f"{measure} (weight {weight:g}).")
    shares, best = (training.get("history") or {}).get("val_border_share") or [], training.get("best_epoch")
    if isinstance(best, int) and 0 < best <= len(shares):
        text += f" At the epoch kept, that share was {shares[best - 1]:.0%} on the validation films."
    return text


@dataclass(frozen=True)
class Verdict:
    """A probability judged at the model's operating threshold.

    Attributes:
        label: the class name at the threshold ("NORMAL" or "PNEUMONIA").
        text: the verdict in words with the probability, e.g. "Pneumonia likely, 97%".
        colour: the class colour as a hex string.
    """

    label: str
    text: str
    colour: str


def format_percent(p: float) -> str:
    """A probability as a whole percentage that never claims certainty: "<1%", "37%", ">99%"."""
    if p < 0.005:
        return "<1%"
    if p >= 0.995:
        return ">99%"
    return f"{p * 100:.0f}%"


def format_probability(p: float) -> str:
    """A probability to four decimals, exactly as ``python -m pneumo predict`` prints it."""
    return f"{p:.4f}"


def verdict_for(p_pneumonia: float, threshold: float,
                classes: Sequence[str] = ("NORMAL", "PNEUMONIA")) -> Verdict:
    """The verdict at the operating threshold (``p >= threshold`` is pneumonia).

    Args:
        p_pneumonia: the calibrated probability of pneumonia.
        threshold: the model's operating threshold.
        classes: the model's class names in label order.

    Returns:
        The :class:`Verdict`; its percentage is always P(pneumonia).
    """
    label = classes[1] if p_pneumonia >= threshold else classes[0]
    words = VERDICT_WORDS.get(label, label)
    return Verdict(label=label, text=f"{words}, {format_percent(p_pneumonia)}",
                   colour=CLASS_COLOURS.get(label, NEUTRAL_COLOUR))


def results_rows(assessments: Iterable[Assessment], threshold: float,
                 classes: Sequence[str] = ("NORMAL", "PNEUMONIA")) -> list[dict]:
    """One row per file for the results table: file, probability, verdict, status, message.

    The probability is the float Classifier returned (None for files that could not be read).
    """
    rows = []
    for item in assessments:
        ok = item.status == STATUS_OK and item.p_pneumonia is not None
        rows.append({
            "file": item.source,
            "p_pneumonia": item.p_pneumonia if ok else None,
            "verdict": verdict_for(item.p_pneumonia, threshold, classes).text if ok else "",
            "status": item.status,
            "message": item.message,
        })
    return rows


def results_csv(assessments: Iterable[Assessment]) -> bytes:
    """The batch as CSV bytes, in the same columns as ``python -m pneumo predict --csv``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["path", "status", "p_pneumonia", "label", "message"])
    writer.writeheader()
    for item in assessments:
        writer.writerow(item.row())
    return buffer.getvalue().encode("utf-8")


def problem_text(item: Assessment) -> str:
    """Why a file got no verdict, in one sentence naming the file (markdown: the name in backticks)."""
    if item.status == STATUS_REJECTED:
        return f"`{item.source}` was not assessed: {item.message}"
    return f"`{item.source}` could not be read: {item.message}"


def verdict_colour_css(verdict_text: str) -> str:
    """CSS for a results-table cell holding a verdict text (coloured as the verdict)."""
    for label, words in VERDICT_WORDS.items():
        if verdict_text.startswith(words):
            return f"color: {CLASS_COLOURS[label]}; font-weight: 600"
    return f"color: {NEUTRAL_COLOUR}"

"""How results are put into words for people: one wording, everywhere.

The app, its charts and the PDF case report all take their verdict text, its colour
(from :mod:`pneumo.render.palette`), numbers and the disclaimer from here, so a film is
described the same way on screen and on paper. The verdict rule itself (threshold and
review band) is :mod:`pneumo.inference.predict`'s, so the CLI's label and these words agree.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pneumo.inference.predict import (
    STATUS_OK,
    STATUS_REJECTED,
    Assessment,
    in_review_band,
    label_at,
    review_band,
    write_csv,
)
from pneumo.inference.sites import Site
from pneumo.render.palette import CLASS_COLOURS, NEUTRAL_COLOUR, REVIEW_COLOUR

DISCLAIMER = (
    "Pneumo assists a clinician; it does not diagnose. It estimates how likely pneumonia is on a "
    "frontal (anterior-posterior) chest film of a child aged one to five, the population it was "
    "trained on. A film it calls normal does not rule pneumonia out."
)
"""Shown on every page and printed on every report (plain ASCII, so any PDF font can print it)."""

VERDICT_WORDS = {"NORMAL": "No pneumonia detected", "PNEUMONIA": "Pneumonia likely"}

REVIEW_WORDS = "Possible pneumonia: review"
"""The verdict between the operating threshold and 50%, whichever side of 50% the threshold is."""

NO_SITE_WORDS = "none (model's own operating point)"
"""How the absence of a site calibration is named wherever the active site is shown."""

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
"""Beside the overlay of a film read as normal (see :func:`map_note`)."""

REVIEW_MAP_WORDS = (
    "This film is in the review band: the evidence of pneumonia is weak either way. Each map is "
    "scaled to its own strongest region, so its warm spots may be faint traces rather than a finding."
)
"""Beside the overlay of a film in the review band (see :func:`map_note`)."""


PATTERN_CAVEAT = ("The bacterial and viral labels are the graders' reading of the film, not a culture "
                  "result: the pattern supports, never replaces, the decision on antibiotics.")
"""Said wherever a pattern or its figures are shown: the diagnose page, the PDF, the model page."""

SUBTYPE_CAM_WORDS = (
    "Warm colours (yellow to red) mark the regions that weighed most towards a bacterial pattern; "
    "cool, nearly transparent colours (blue) mark regions that weighed little. The map shows where "
    "the subtype model looked, not where disease is."
)
"""What the overlay's colour scale means when the map explains the bacterial pattern."""

VIRAL_MAP_WORDS = (
    "This film's pattern reads viral, so there is little evidence of a bacterial pattern for the map "
    "to show. Each map is scaled to its own strongest region: here its warm spots are the faintest "
    "traces, not a finding."
)
"""Beside the bacterial-pattern map of a film whose pattern reads viral."""


def pattern_text(pattern: str, p_bacterial: float) -> str:
    """``Pattern: bacterial, P(bacterial) = 81%`` (markdown: the pattern in bold)."""
    return f"Pattern: **{pattern}**, P(bacterial) = {format_percent(p_bacterial)}"


def subtype_map_note(pattern: str) -> str | None:
    """What to say beside a bacterial-pattern map: :data:`VIRAL_MAP_WORDS` for a viral pattern, else None."""
    return VIRAL_MAP_WORDS if pattern == "viral" else None


def map_note(p_pneumonia: float, threshold: float) -> str | None:
    """What to say beside a film's overlay about how much its map means, or None.

    Maps are scaled per film, so a film read as normal still shows a warm spot; the
    note keeps a reader from taking that spot for a finding. A film in the review
    band (see :func:`pneumo.inference.predict.review_band`) gets a milder note; a film
    read as pneumonia none.
    """
    verdict = verdict_for(p_pneumonia, threshold)
    if verdict.review:
        return REVIEW_MAP_WORDS
    return NORMAL_MAP_WORDS if verdict.label == "NORMAL" else None


def training_run_text(training: dict) -> str:
    """One sentence on how long a model trained and which epoch it kept, from its card's ``training``."""
    epochs, minutes = training.get("epochs_run", "?"), (training.get("seconds") or 0) / 60
    parent = training.get("start_from")
    folds = training.get("cross_validation")
    if folds:
        return (f"{folds.get('k', '?')} members, each trained from scratch on the films of the other "
                f"folds for {epochs} epochs (the last kept, so nothing was chosen on its held-out "
                f"films); both fold schemes took {minutes:.0f} minutes in all.")
    if not parent:
        best = training.get("best_epoch", "?")
        return f"Trained from scratch for {epochs} epochs (best: {best}) in {minutes:.0f} minutes."
    created = str(parent.get("created") or "?")[:10]
    return (f"Continued from model {parent.get('name', '?')} (created {created}, model file sha256 "
            f"{str(parent.get('sha256') or '?')[:12]}...), trained on the same films, for {epochs} more "
            f"epochs in {minutes:.0f} minutes; the last epoch is kept.")


def border_training_note(card: dict) -> str | None:
    """How the model was taught to keep its evidence off the film's border, from its card, or None."""
    from pneumo.inference.explain import BORDER_MARGIN

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
        text += (f" At the epoch kept, that share was {shares[best - 1]:.0%} on the films held out while "
                 "training (in-distribution).")
    return text


@dataclass(frozen=True)
class Verdict:
    """A probability judged at the model's operating threshold.

    Attributes:
        label: the class name at the threshold ("NORMAL" or "PNEUMONIA"), as the CSV writes it.
        text: the verdict in words with the probability, e.g. "Pneumonia likely, 97%" or, in the
            review band, "Possible pneumonia: review, 48%".
        colour: the class colour, or :data:`REVIEW_COLOUR` in the review band, as a hex string.
        review: whether the probability lies in the review band
            (see :func:`pneumo.inference.predict.review_band`).
    """

    label: str
    text: str
    colour: str
    review: bool = False


@dataclass(frozen=True)
class VerdictBand:
    """A stretch of P(pneumonia), [start, end), and the words and colour its films get."""

    start: float
    end: float
    words: str
    colour: str


def format_number(value: float | None, digits: int = 3) -> str:
    """A figure to ``digits`` decimals, or ``n/a`` when it is missing (None): ``0.981``, ``n/a``."""
    return "n/a" if value is None else f"{value:.{digits}f}"


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


def verdict_bands(threshold: float, classes: Sequence[str] = ("NORMAL", "PNEUMONIA")) -> list[VerdictBand]:
    """The 0-1 scale of P(pneumonia) cut into its verdicts, lowest first (two or three bands)."""
    normal, pneumonia = classes[0], classes[1]
    band = review_band(threshold)
    low, high = band if band is not None else (float(threshold), float(threshold))
    bands = [VerdictBand(0.0, low, VERDICT_WORDS.get(normal, normal), CLASS_COLOURS.get(normal, NEUTRAL_COLOUR))]
    if band is not None:
        bands.append(VerdictBand(low, high, REVIEW_WORDS, REVIEW_COLOUR))
    bands.append(VerdictBand(high, 1.0, VERDICT_WORDS.get(pneumonia, pneumonia),
                             CLASS_COLOURS.get(pneumonia, NEUTRAL_COLOUR)))
    return bands


def format_threshold(threshold: float) -> str:
    """A threshold as the verdict's words and the charts' percentage axes give it: ``34.0%``."""
    return f"{threshold * 100:.1f}%"


def band_explanation(threshold: float, observed: tuple[int, int, str] | None = None) -> list[str]:
    """How a probability is put into words at this operating threshold, one sentence per band.

    Args:
        threshold: the operating threshold in effect (the model's or the active site's).
        observed: of the model's out-of-fold films shown in the review band, how many had
            pneumonia, how many there were and the figures' kind
            (:func:`pneumo.render.model_card.band_outcomes`); None to leave it out.

    Returns:
        Plain sentences, lowest band first, then one on why the review band exists (when it does).
    """
    band = review_band(threshold)
    cut = format_threshold(threshold)
    if band is None:
        return [f'Below {cut} (the operating threshold): "{VERDICT_WORDS["NORMAL"]}"; the film is '
                "labelled NORMAL.",
                f'{cut} and above: "{VERDICT_WORDS["PNEUMONIA"]}"; the film is labelled PNEUMONIA.']
    seen = ""
    if observed is not None and observed[1]:
        had, films, kind = observed
        seen = f" Measured {kind}: of the {films} training films in this band, {had} ({had / films:.0%}) had pneumonia."
    if threshold < 0.5:
        return [f'Below {cut} (the operating threshold): "{VERDICT_WORDS["NORMAL"]}"; the film is '
                "labelled NORMAL.",
                f'From {cut} up to 50%: "{REVIEW_WORDS}". The film is labelled PNEUMONIA at the '
                "threshold, but the model is unsure: a clinician should look again." + seen,
                f'50% and above: "{VERDICT_WORDS["PNEUMONIA"]}"; the film is labelled PNEUMONIA.',
                "The threshold sits below 50% so that few pneumonias are missed; the review band "
                "names the films between it and 50%, where the model is least sure."]
    return [f'Below 50%: "{VERDICT_WORDS["NORMAL"]}"; the film is labelled NORMAL.',
            f'From 50% up to {cut} (the operating threshold): "{REVIEW_WORDS}". The film is below the '
            "threshold and labelled NORMAL, but the model is unsure: a clinician should look again." + seen,
            f'{cut} and above: "{VERDICT_WORDS["PNEUMONIA"]}"; the film is labelled PNEUMONIA.']


def bands_text(threshold: float) -> str:
    """The verdict bands on one line, e.g. for a report: "below 0.2112: No pneumonia detected; ..."."""
    parts = []
    for band in verdict_bands(threshold):
        if band.start == 0.0:
            parts.append(f"below {format_probability(band.end)}: {band.words}")
        elif band.end == 1.0:
            parts.append(f"{format_probability(band.start)} and above: {band.words}")
        else:
            parts.append(f"{format_probability(band.start)} to below {format_probability(band.end)}: "
                         f"{band.words}")
    return "; ".join(parts)


def verdict_for(p_pneumonia: float, threshold: float,
                classes: Sequence[str] = ("NORMAL", "PNEUMONIA")) -> Verdict:
    """The verdict at the operating threshold (``p >= threshold`` is pneumonia), in words that agree with P.

    Between the threshold and 50% (see :func:`pneumo.inference.predict.review_band`) the words
    are :data:`REVIEW_WORDS` in the review colour; the label stays the class at the threshold.

    Args:
        p_pneumonia: the calibrated probability of pneumonia.
        threshold: the operating threshold in effect (the model's or the active site's).
        classes: the model's class names in label order.

    Returns:
        The :class:`Verdict`; its percentage is always P(pneumonia).
    """
    label = label_at(p_pneumonia, threshold, classes)
    if in_review_band(p_pneumonia, threshold):
        return Verdict(label=label, text=f"{REVIEW_WORDS}, {format_percent(p_pneumonia)}",
                       colour=REVIEW_COLOUR, review=True)
    words = VERDICT_WORDS.get(label, label)
    return Verdict(label=label, text=f"{words}, {format_percent(p_pneumonia)}",
                   colour=CLASS_COLOURS.get(label, NEUTRAL_COLOUR))


def results_rows(assessments: Iterable[Assessment], threshold: float,
                 classes: Sequence[str] = ("NORMAL", "PNEUMONIA")) -> list[dict]:
    """One row per file for the results table: file, probability, verdict, pattern, status, message.

    The probability is the float Classifier returned (None for files that could not be read);
    the pattern and P(bacterial) are there only for films read as pneumonia (else "" and None).
    """
    rows = []
    for item in assessments:
        ok = item.status == STATUS_OK and item.p_pneumonia is not None
        rows.append({
            "file": item.source,
            "p_pneumonia": item.p_pneumonia if ok else None,
            "verdict": verdict_for(item.p_pneumonia, threshold, classes).text if ok else "",
            "pattern": item.pattern if ok else "",
            "p_bacterial": item.p_bacterial if ok and item.pattern else None,
            "status": item.status,
            "message": item.message,
        })
    return rows


def results_csv(assessments: Iterable[Assessment]) -> bytes:
    """The batch as CSV bytes, in the same columns as ``python -m pneumo predict --csv``."""
    buffer = io.StringIO()
    write_csv(buffer, assessments)
    return buffer.getvalue().encode("utf-8")


def problem_text(item: Assessment) -> str:
    """Why a file got no verdict, in one sentence naming the file (markdown: the name in backticks)."""
    if item.status == STATUS_REJECTED:
        return f"`{item.source}` was not assessed: {item.message}"
    return f"`{item.source}` could not be read: {item.message}"


def verdict_colour_css(verdict_text: str) -> str:
    """CSS for a results-table cell holding a verdict text (coloured as the verdict)."""
    colours = {REVIEW_WORDS: REVIEW_COLOUR,
               **{words: CLASS_COLOURS[label] for label, words in VERDICT_WORDS.items()}}
    for words, colour in colours.items():
        if verdict_text.startswith(words):
            return f"color: {colour}; font-weight: 600"
    return f"color: {NEUTRAL_COLOUR}"


def site_text(site: Site | None) -> str:
    """One sentence naming a site calibration and its operating point, or that none is active.

    Args:
        site: the active site calibration, or None for the model's own operating point.
    """
    if site is None:
        return f"Site calibration: {NO_SITE_WORDS}."
    films = sum((site.record.get("films", {}).get("used") or {}).values())
    made = str(site.record.get("created") or "?")[:10]
    return (f"Site calibration {site.name} (made {made} on {films:,} films of the site): threshold "
            f"{format_probability(site.threshold)} in effect instead of the model's own, temperature {site.temperature:.3f}, chosen for "
            f"sensitivity of at least {site.min_sensitivity:g}.")

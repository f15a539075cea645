"""Choosing an operating point on out-of-fold probabilities, and figures with 95% intervals.

Three threshold rules are compared (:data:`RULES`). Each is judged the way a new
period of films would meet it: chosen on all blocks but one and applied to the one
left out (:func:`transfer_by_block`), so a rule that sits on the edge of the score
distribution shows up as sensitivity or specificity lost on the block it never saw.
Intervals come from a bootstrap that resamples patients, not films.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from pneumo.stats import calibration, metrics

RULES = {
    "youden_wilson": "highest Youden index among thresholds whose 95% lower (Wilson) bound of "
                     "sensitivity meets the target sensitivity",
    "sensitivity_bound": "the highest threshold whose 95% lower (Wilson) bound of sensitivity "
                         "still meets the target sensitivity",
    "logit_midpoint": "the midpoint, in logit space, between the normal films' 95th percentile "
                      "and the pneumonia films' 5th percentile",
}
"""Threshold rule key -> what it does, in words for the card."""

FIGURES = ("roc_auc", "sensitivity", "specificity", "accuracy", "ece")
"""The figures given with a 95% interval."""
INTERVAL_LEVEL = 0.95
_CHUNK = 100  # bootstrap resamples computed at once (bounds memory on large sets)
_ECE_BINS = 15  # as pneumo.stats.metrics.expected_calibration_error


def threshold_by_rule(rule: str, labels: np.ndarray, probs: np.ndarray, min_sensitivity: float = 0.95) -> float:
    """The threshold ``rule`` (a key of :data:`RULES`) picks on calibrated probabilities.

    Raises:
        ValueError: unknown rule, or no pneumonia films.
    """
    labels, probs = np.asarray(labels).astype(int), np.asarray(probs, dtype=float)
    if not (labels == 1).any():
        raise ValueError("choosing a threshold needs pneumonia films among the labels")
    if rule == "youden_wilson":
        return metrics.choose_threshold(labels, probs, min_sensitivity)
    if rule == "sensitivity_bound":
        positives = np.sort(probs[labels == 1])
        caught = positives.size - np.arange(positives.size)
        feasible = np.flatnonzero([metrics.wilson_lower_bound(int(c), positives.size) >= min_sensitivity
                                   for c in caught])
        if feasible.size == 0:
            return float(positives[int(np.floor((1 - min_sensitivity) * positives.size + 1e-9))])
        return float(positives[feasible[-1]])
    if rule == "logit_midpoint":
        logits = _logit(probs)
        if not (labels == 0).any():
            raise ValueError("the logit midpoint needs normal films among the labels")
        middle = 0.5 * (np.percentile(logits[labels == 0], 95) + np.percentile(logits[labels == 1], 5))
        return float(calibration.sigmoid(middle))
    raise ValueError(f"unknown threshold rule {rule!r}; choose from {list(RULES)}")


def transfer_by_block(labels: np.ndarray, logits: np.ndarray, blocks: np.ndarray, rule: str,
                      min_sensitivity: float = 0.95) -> list[dict]:
    """Temperature and threshold chosen on the other blocks, measured on each block in turn.

    Args:
        labels: (n,) 0/1.
        logits: (n,) out-of-fold logits (temperature 1).
        blocks: (n,) block of each film.
        rule: a key of :data:`RULES`.

    Returns:
        One row per block: block, n, temperature, threshold, sensitivity, specificity,
        accuracy, roc_auc and ece on that block.
    """
    labels, logits, blocks = np.asarray(labels).astype(int), np.asarray(logits, float), np.asarray(blocks)
    rows = []
    for block in sorted(set(blocks.tolist())):
        rest, held = blocks != block, blocks == block
        temperature = calibration.fit_temperature(logits[rest], labels[rest])
        threshold = threshold_by_rule(rule, labels[rest], calibration.sigmoid(logits[rest] / temperature),
                                      min_sensitivity)
        probs = calibration.sigmoid(logits[held] / temperature)
        figures = metrics.at_threshold(labels[held], probs, threshold)
        rows.append({"block": int(block), "n": int(held.sum()), "temperature": temperature,
                     "threshold": threshold, "sensitivity": figures["sensitivity"],
                     "specificity": figures["specificity"], "accuracy": figures["accuracy"],
                     "roc_auc": roc_auc(labels[held], probs),
                     "ece": metrics.expected_calibration_error(labels[held], probs)})
    return rows


def patient_weights(patients: Sequence[str], resamples: int, seed: int) -> np.ndarray:
    """How often each film is drawn in each resample of a patient-grouped bootstrap.

    Each resample draws as many patients as there are, with replacement; a patient's
    films all come with it.

    Returns:
        float (resamples, n films) counts.
    """
    _, film_patient = np.unique(np.asarray(patients, dtype=str), return_inverse=True)
    count = int(film_patient.max()) + 1 if len(film_patient) else 0
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(count, np.full(count, 1.0 / max(count, 1)), size=resamples)  # (B, patients)
    return drawn[:, film_patient].astype(np.float64)


def weighted_figures(labels: np.ndarray, probs: np.ndarray, threshold: float,
                     weights: np.ndarray) -> dict[str, np.ndarray]:
    """ROC AUC, sensitivity, specificity, accuracy and ECE for films counted with weights.

    With integer weights this equals :func:`pneumo.stats.metrics.evaluate` on the films repeated
    that often (ties in AUC count half; ECE in 15 equal-width bins), computed for many
    weightings at once.

    Args:
        labels: (n,) 0/1.
        probs: (n,) P(pneumonia).
        threshold: pneumonia when ``probs >= threshold``.
        weights: (B, n) non-negative weights, one row per resample.

    Returns:
        Each figure as a (B,) array; NaN where a resample has no film of a class.
    """
    labels = np.asarray(labels).astype(bool)
    probs = np.asarray(probs, dtype=np.float64)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    called = probs >= threshold
    positives, negatives = weights[:, labels].sum(axis=1), weights[:, ~labels].sum(axis=1)
    tp, tn = weights[:, labels & called].sum(axis=1), weights[:, ~labels & ~called].sum(axis=1)
    total = positives + negatives
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity, specificity, accuracy = tp / positives, tn / negatives, (tp + tn) / total
        # AUC: for each pneumonia film, the weight of normal films scored below it (ties half).
        order = np.argsort(probs, kind="stable")
        sorted_p = probs[order]
        below_negative = np.concatenate([np.zeros((len(weights), 1)),
                                         np.cumsum(weights[:, order] * ~labels[order], axis=1)], axis=1)
        first = np.searchsorted(sorted_p, probs[labels], side="left")
        past = np.searchsorted(sorted_p, probs[labels], side="right")
        beaten = below_negative[:, first] + 0.5 * (below_negative[:, past] - below_negative[:, first])
        roc_auc = (weights[:, labels] * beaten).sum(axis=1) / (positives * negatives)
        edges = np.linspace(0.0, 1.0, _ECE_BINS + 1)
        which = np.clip(np.digitize(probs, edges[1:-1], right=True), 0, _ECE_BINS - 1)
        gaps = np.zeros((len(weights), _ECE_BINS))
        for index in range(_ECE_BINS):
            members = which == index
            if members.any():
                gaps[:, index] = weights[:, members] @ (probs[members] - labels[members])
        ece = np.abs(gaps).sum(axis=1) / total
    return {"roc_auc": roc_auc, "sensitivity": sensitivity, "specificity": specificity,
            "accuracy": accuracy, "ece": ece}


def figures_with_intervals(labels: np.ndarray, probs: np.ndarray, threshold: float,
                           groups: Sequence[str] | None = None, resamples: int = 1000, seed: int = 0,
                           weights: np.ndarray | None = None) -> dict:
    """The :data:`FIGURES` at one operating point, each ``{"value", "low", "high"}``.

    Values come from :func:`pneumo.stats.metrics.evaluate`; the 95% interval is the 2.5th to
    97.5th percentile over a bootstrap that resamples the patients ``groups`` (see
    :func:`patient_weights`), or over the given bootstrap ``weights``.
    """
    if weights is None:
        if groups is None:
            raise ValueError("figures_with_intervals needs the films' patients or bootstrap weights")
        weights = patient_weights(groups, resamples, seed)
    point = metrics.evaluate(labels, probs, threshold)
    spread = {key: [] for key in FIGURES}
    for start in range(0, len(weights), _CHUNK):
        for key, values in weighted_figures(labels, probs, threshold, weights[start:start + _CHUNK]).items():
            spread[key].append(values)
    tail = (1 - INTERVAL_LEVEL) / 2 * 100
    result = {"threshold": float(threshold), "n": int(len(labels)),
              "confusion_matrix": point["confusion_matrix"]}
    for key in FIGURES:
        values = np.concatenate(spread[key]) if spread[key] else np.zeros(0)
        values = values[np.isfinite(values)]
        low, high = np.percentile(values, [tail, 100 - tail]) if values.size else (np.nan, np.nan)
        result[key] = {"value": point[key], "low": _number(low), "high": _number(high)}
    return result


def subtype_figures(bacterial: np.ndarray, p_bacterial: Sequence[float | None], threshold: float,
                    patients: Sequence[str], resamples: int = 1000, seed: int = 0) -> dict:
    """Bacterial-or-viral figures on pneumonia films of known subtype, with 95% patient-bootstrap intervals.

    A film given no pattern (``p_bacterial`` None: read as normal, refused, unreadable) counts as
    wrong: it is scored as the other pattern with full confidence (P(bacterial) 0 for a bacterial
    film, 1 for a viral one), in every figure. ``given_pattern`` has the same figures on the films
    that were given a pattern only (None when there are none).

    Args:
        bacterial: (n,) 1 for a bacterial film, 0 for a viral one.
        p_bacterial: (n,) P(bacterial | pneumonia), None where the film was given no pattern.
        threshold: bacterial when ``p_bacterial >= threshold``.
        patients: (n,) each film's patient, for the bootstrap.

    Returns:
        ``n``, ``bacterial``, ``viral``, ``given_no_pattern``, ``threshold``, ``figures``
        (:func:`figures_with_intervals`: sensitivity is bacterial called bacterial, specificity
        viral called viral; confusion matrix [[viral as viral, viral as bacterial],
        [bacterial as viral, bacterial as bacterial]]) and ``given_pattern``.
    """
    labels = np.asarray(bacterial).astype(int)
    given = np.array([p is not None for p in p_bacterial], dtype=bool)
    probs = np.array([p if p is not None else 0.0 for p in p_bacterial], dtype=np.float64)
    scored = np.where(given, probs, 1.0 - labels)  # no pattern: the wrong pattern, fully confident
    patients = np.asarray(patients, dtype=str)
    result = {"n": int(labels.size), "bacterial": int(labels.sum()), "viral": int(labels.size - labels.sum()),
              "given_no_pattern": int((~given).sum()), "threshold": float(threshold),
              "figures": figures_with_intervals(labels, scored, threshold, patients, resamples, seed),
              "given_pattern": None}
    if given.any():
        result["given_pattern"] = figures_with_intervals(labels[given], probs[given], threshold,
                                                         patients[given], resamples, seed)
    return result


def summarise_transfer(rows: list[dict]) -> dict:
    """The mean and the worst block of :func:`transfer_by_block` rows."""
    summary = {}
    for key in ("sensitivity", "specificity", "accuracy", "roc_auc", "ece"):
        values = [r[key] for r in rows if r[key] is not None]
        worst = max(values) if key == "ece" else min(values)
        summary[key] = {"mean": float(np.mean(values)), "worst": float(worst)}
    return summary


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present."""
    return float(skm.roc_auc_score(labels, probs)) if len(np.unique(labels)) == 2 else None


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _logit(probs: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(probs, dtype=float), 1e-12, 1 - 1e-12)
    return np.log(clipped / (1 - clipped))

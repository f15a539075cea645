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

from pneumo import calibration, metrics

RULES = {
    "youden_wilson": "highest Youden index among thresholds whose 95% lower (Wilson) bound of "
                     "sensitivity meets the target sensitivity",
    "sensitivity_bound": "the highest threshold whose 95% lower (Wilson) bound of sensitivity "
                         "still meets the target sensitivity",
    "logit_midpoint": "the midpoint, in logit space, between the normal films' 95th percentile "
                      "and the pneumonia films' 5th percentile",
}
"""Threshold rule key -> what it does, in words for the card."""


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
                     "roc_auc": _auc(labels[held], probs),
                     "ece": metrics.expected_calibration_error(labels[held], probs)})
    return rows


def figures_with_intervals(labels: np.ndarray, probs: np.ndarray, threshold: float, groups: Sequence[str],
                           resamples: int = 1000, seed: int = 0) -> dict:
    """ROC AUC, sensitivity, specificity, accuracy and ECE with patient-grouped bootstrap 95% intervals.

    Returns:
        ``{figure: {"value": v, "low": lo, "high": hi}}`` plus ``n`` and ``confusion_matrix``.
    """
    labels, probs = np.asarray(labels).astype(int), np.asarray(probs, dtype=float)
    point = _figures(labels, probs, threshold)
    patients, members = np.unique(np.asarray(groups), return_inverse=True)
    by_patient = [np.flatnonzero(members == p) for p in range(len(patients))]
    rng = np.random.default_rng(seed)
    draws = {key: [] for key in point}
    for _ in range(resamples):
        chosen = rng.integers(0, len(patients), len(patients))
        index = np.concatenate([by_patient[p] for p in chosen])
        for key, value in _figures(labels[index], probs[index], threshold).items():
            if value is not None:
                draws[key].append(value)
    result = {key: {"value": value,
                    "low": float(np.percentile(draws[key], 2.5)) if draws[key] else None,
                    "high": float(np.percentile(draws[key], 97.5)) if draws[key] else None}
              for key, value in point.items()}
    result["n"] = int(labels.size)
    result["confusion_matrix"] = metrics.at_threshold(labels, probs, threshold)["confusion_matrix"]
    return result


def summarise_transfer(rows: list[dict]) -> dict:
    """The mean and the worst block of :func:`transfer_by_block` rows."""
    summary = {}
    for key in ("sensitivity", "specificity", "accuracy", "roc_auc", "ece"):
        values = [r[key] for r in rows if r[key] is not None]
        worst = max(values) if key == "ece" else min(values)
        summary[key] = {"mean": float(np.mean(values)), "worst": float(worst)}
    return summary


def _figures(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    at = metrics.at_threshold(labels, probs, threshold)
    return {"roc_auc": _auc(labels, probs), "sensitivity": at["sensitivity"],
            "specificity": at["specificity"], "accuracy": at["accuracy"],
            "ece": metrics.expected_calibration_error(labels, probs)}


def _auc(labels: np.ndarray, probs: np.ndarray) -> float | None:
    return float(skm.roc_auc_score(labels, probs)) if len(np.unique(labels)) == 2 else None


def _logit(probs: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(probs, dtype=float), 1e-12, 1 - 1e-12)
    return np.log(clipped / (1 - clipped))

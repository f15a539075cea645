"""Figures of merit for a binary pneumonia classifier, on top of scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from pneumo.data import CLASSES


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width bins.

    Computed on P(pneumonia) as a binary reliability diagram: per bin, the absolute
    gap between the mean predicted probability and the observed pneumonia rate,
    weighted by the bin's share of films.
    """
    labels, probs = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(probs[mask].mean() - labels[mask].mean())
    return float(total)


def reliability_curve(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> dict:
    """Mean predicted probability, observed rate and count per non-empty bin."""
    labels, probs = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1], right=True), 0, bins - 1)
    rows = [(probs[which == b].mean(), labels[which == b].mean(), int((which == b).sum()))
            for b in range(bins) if (which == b).any()]
    return {"predicted": [r[0] for r in rows], "observed": [r[1] for r in rows],
            "count": [r[2] for r in rows]}


def at_threshold(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """Accuracy, sensitivity, specificity, PPV and NPV when ``probs >= threshold`` is pneumonia."""
    labels = np.asarray(labels).astype(int)
    predicted = (np.asarray(probs) >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    return {
        "threshold": float(threshold),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "confusion_matrix": [[int(tn), int(fp)], [int(fn), int(tp)]],
    }


def _ratio(a: int, b: int) -> float | None:
    return float(a / b) if b else None


def choose_threshold(labels: np.ndarray, probs: np.ndarray, min_sensitivity: float = 0.95) -> float:
    """The highest threshold whose sensitivity is at least ``min_sensitivity``.

    The highest such threshold gives the best specificity that still keeps the
    promised sensitivity. Raises ValueError without pneumonia films.
    """
    labels, probs = np.asarray(labels).astype(int), np.asarray(probs, dtype=float)
    positives = np.sort(probs[labels == 1])
    if positives.size == 0:
        raise ValueError("choosing a threshold needs pneumonia films among the labels")
    # With threshold t = positives[k], the k lowest positives are missed.
    allowed_misses = int(np.floor((1 - min_sensitivity) * positives.size + 1e-9))
    return float(positives[allowed_misses])


def evaluate(labels: np.ndarray, probs: np.ndarray, threshold: float,
             subtypes: Sequence[str | None] | None = None) -> dict:
    """All the figures a model card and ``pneumo evaluate`` report.

    Returns:
        n, accuracy, sensitivity, specificity, ppv, npv, roc_auc, pr_auc, ece,
        brier, confusion_matrix [[tn, fp], [fn, tp]], per_class precision / recall /
        f1 / support, and recall per pneumonia subtype when ``subtypes`` are given.
    """
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=float)
    predicted = (probs >= threshold).astype(int)
    both = len(np.unique(labels)) == 2
    report = skm.classification_report(labels, predicted, labels=[0, 1], target_names=list(CLASSES),
                                       output_dict=True, zero_division=0)
    result = {
        "n": int(labels.size),
        **at_threshold(labels, probs, threshold),
        "roc_auc": float(skm.roc_auc_score(labels, probs)) if both else None,
        "pr_auc": float(skm.average_precision_score(labels, probs)) if both else None,
        "ece": expected_calibration_error(labels, probs),
        "brier": float(skm.brier_score_loss(labels, probs)) if both else float(np.mean((probs - labels) ** 2)),
        "per_class": {name: {k: float(v) if k != "support" else int(v)
                             for k, v in report[name].items()} for name in CLASSES},
    }
    if subtypes is not None:
        by_subtype = {}
        for subtype in sorted({s for s in subtypes if s}):
            mask = np.array([s == subtype for s in subtypes]) & (labels == 1)
            if mask.any():
                by_subtype[subtype] = {"recall": float(predicted[mask].mean()), "support": int(mask.sum())}
        result["recall_by_subtype"] = by_subtype
    return result


def curves(labels: np.ndarray, probs: np.ndarray, max_points: int = 200) -> dict:
    """ROC and precision-recall curves, thinned to at most ``max_points`` each."""
    fpr, tpr, roc_thresholds = skm.roc_curve(labels, probs)
    precision, recall, pr_thresholds = skm.precision_recall_curve(labels, probs)

    def thin(*arrays):
        keep = np.unique(np.linspace(0, len(arrays[0]) - 1, min(max_points, len(arrays[0]))).astype(int))
        return [np.asarray(a)[keep].round(5).tolist() for a in arrays]

    fpr, tpr, roc_thresholds = thin(fpr, tpr, np.clip(roc_thresholds, 0, 1))
    precision, recall = thin(precision, recall)
    return {"roc": {"fpr": fpr, "tpr": tpr, "threshold": roc_thresholds},
            "pr": {"precision": precision, "recall": recall},
            "reliability": reliability_curve(labels, probs)}

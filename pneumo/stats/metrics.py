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


def wilson_lower_bound(successes: int, total: int, z: float = 1.96) -> float:
    """Lower end of the Wilson score interval of a proportion (95% for z = 1.96)."""
    if total == 0:
        return 0.0
    share = successes / total
    centre = share + z * z / (2 * total)
    spread = z * np.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    return float((centre - spread) / (1 + z * z / total))


def choose_threshold(labels: np.ndarray, probs: np.ndarray, min_sensitivity: float = 0.95) -> float:
    """The operating threshold: sensitivity first, then the best balance.

    Candidates are the thresholds at which the lower 95% (Wilson) bound of
    validation sensitivity is at least ``min_sensitivity``, so the promise holds
    with a margin rather than on the knife edge of one sample; among them the one
    with the highest Youden index (sensitivity + specificity - 1) is taken, the
    lowest threshold on ties. When no threshold meets the bound (few pneumonia
    films), the highest threshold whose observed sensitivity meets the target is
    taken. Raises ValueError without pneumonia films.
    """
    labels, probs = np.asarray(labels).astype(int), np.asarray(probs, dtype=float)
    positives = np.sort(probs[labels == 1])
    negatives = np.sort(probs[labels == 0])
    if positives.size == 0:
        raise ValueError("choosing a threshold needs pneumonia films among the labels")
    # With threshold t = positives[k], the k lowest positives are missed.
    caught = positives.size - np.arange(positives.size)
    feasible = np.array([wilson_lower_bound(int(c), positives.size) >= min_sensitivity for c in caught])
    if not feasible.any():
        allowed_misses = int(np.floor((1 - min_sensitivity) * positives.size + 1e-9))
        return float(positives[allowed_misses])
    cleared = np.searchsorted(negatives, positives, side="left")  # negatives below each threshold
    youden = caught / positives.size + cleared / max(negatives.size, 1) - 1
    youden = np.where(feasible, youden, -np.inf)
    return float(positives[int(np.argmax(youden))])  # argmax takes the first: the lowest threshold


def sensitivity_bound_met(labels: np.ndarray, probs: np.ndarray, threshold: float, min_sensitivity: float) -> bool:
    """Whether the lower 95% (Wilson) bound of sensitivity at ``threshold`` reaches ``min_sensitivity``
    (it cannot with few pneumonia films: :func:`choose_threshold` then keeps to the observed one)."""
    labels, probs = np.asarray(labels).astype(int), np.asarray(probs, dtype=float)
    positives = probs[labels == 1]
    return bool(positives.size) and wilson_lower_bound(int((positives >= threshold).sum()),
                                                       positives.size) >= min_sensitivity


def evaluate(labels: np.ndarray, probs: np.ndarray, threshold: float,
             subtypes: Sequence[str | None] | None = None) -> dict:
    """All the figures a model card and ``pneumo evaluate`` report.

    Returns:
        n, accuracy, sensitivity, specificity, ppv, npv, roc_auc, average_precision (the area
        under the precision-recall curve's steps, AP), ece,
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
        "average_precision": float(skm.average_precision_score(labels, probs)) if both else None,
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


def rates_from_roc(roc: dict, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) read off a ROC curve for ``p >= threshold``.

    ``roc`` is ``{"fpr": [...], "tpr": [...], "threshold": [...]}`` with thresholds in
    descending order, as :func:`curves` stores it. The rates are exact at the curve's
    stored thresholds and interpolated linearly in the threshold between them (a stored
    curve keeps only its corners, and is thinned), so between points they are an estimate.
    """
    thresholds = np.asarray(roc["threshold"], dtype=float)[::-1]
    tpr = np.interp(threshold, thresholds, np.asarray(roc["tpr"], dtype=float)[::-1])
    fpr = np.interp(threshold, thresholds, np.asarray(roc["fpr"], dtype=float)[::-1])
    return float(tpr), float(1.0 - fpr)


def figures_from_rates(sensitivity: float, specificity: float, positives: int, negatives: int,
                       threshold: float) -> dict:
    """The :func:`at_threshold` figures from rates and class counts.

    PPV and NPV follow from sensitivity, specificity and the prevalence
    ``positives / (positives + negatives)``; the confusion matrix is rounded to whole films.
    """
    tp, tn = sensitivity * positives, specificity * negatives
    fn, fp = positives - tp, negatives - tn
    total = positives + negatives
    return {
        "threshold": float(threshold),
        "accuracy": float((tp + tn) / total) if total else None,
        "sensitivity": float(sensitivity) if positives else None,
        "specificity": float(specificity) if negatives else None,
        "ppv": float(tp / (tp + fp)) if tp + fp > 0 else None,
        "npv": float(tn / (tn + fn)) if tn + fn > 0 else None,
        "confusion_matrix": [[int(round(tn)), int(round(fp))], [int(round(fn)), int(round(tp))]],
    }


def validation_at_threshold(validation: dict, threshold: float) -> dict:
    """Sensitivity, specificity, PPV and NPV on a model card's validation films at any threshold.

    Uses the card's per-film ``validation["predictions"]`` (``{"labels": [...],
    "p_pneumonia": [...]}``) when present, which is exact; otherwise the card's own figures
    at its operating threshold, and at any other threshold reads the rates off
    ``validation["curves"]["roc"]`` (see :func:`rates_from_roc`) and takes the class
    counts from ``validation["confusion_matrix"]``.

    Args:
        validation: the ``validation`` section of a model card.
        threshold: the threshold on P(pneumonia) to judge at.

    Returns:
        The keys of :func:`at_threshold` plus ``basis``: ``"predictions"``, ``"card"`` or ``"roc"``.

    Raises:
        ValueError: the section has neither predictions nor a ROC curve with a confusion matrix.
    """
    predictions = validation.get("predictions") or {}
    if predictions.get("labels") and predictions.get("p_pneumonia"):
        figures = at_threshold(predictions["labels"], predictions["p_pneumonia"], threshold)
        return {**figures, "basis": "predictions"}
    matrix = validation.get("confusion_matrix")
    if matrix and validation.get("threshold") is not None and np.isclose(threshold, validation["threshold"]):
        keys = ("accuracy", "sensitivity", "specificity", "ppv", "npv")
        return {"threshold": float(threshold), **{k: validation.get(k) for k in keys},
                "confusion_matrix": matrix, "basis": "card"}
    roc = (validation.get("curves") or {}).get("roc")
    if not roc or not roc.get("threshold") or not matrix:
        raise ValueError("the validation section holds neither per-film predictions nor a ROC "
                         "curve with thresholds and a confusion matrix")
    (tn, fp), (fn, tp) = matrix
    sensitivity, specificity = rates_from_roc(roc, threshold)
    return {**figures_from_rates(sensitivity, specificity, fn + tp, tn + fp, threshold), "basis": "roc"}


def threshold_sweep(validation: dict, points: int = 101) -> dict:
    """:func:`validation_at_threshold` over evenly spaced thresholds from 0 to 1.

    Returns:
        Lists ``threshold``, ``sensitivity``, ``specificity``, ``ppv``, ``npv`` (None where
        undefined) and the ``basis`` used.
    """
    thresholds = np.linspace(0.0, 1.0, points)
    rows = [validation_at_threshold(validation, float(t)) for t in thresholds]
    keys = ("sensitivity", "specificity", "ppv", "npv")
    return {"threshold": thresholds.round(4).tolist(), **{k: [r[k] for r in rows] for k in keys},
            "basis": rows[0]["basis"] if rows else "roc"}

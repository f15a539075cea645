"""The heatmaps' faithfulness results: figures from curves and maps, the product's targets, the stored file.

:func:`pneumo.evaluation.faithfulness.measure` gives the curves and maps; here they
become the figures a person reads (areas under the curves, rank correlations, border
shares, film by film and summarised per map), are checked against :data:`TARGETS`,
and are written to and read from ``explanations.json`` beside the model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pneumo.inference import explain

if TYPE_CHECKING:  # the measurement imports this module, not the other way round
    from pneumo.evaluation.faithfulness import FaithfulnessConfig

EXPLANATIONS_FILE = "explanations.json"
"""Written beside ``card.json`` in a model's folder by :func:`save_explanations`."""

BASELINES = {"random": "Random map", "gaussian": "Centred Gaussian"}
"""Baseline key -> name shown to people; every method is compared with each."""

TARGETS = {"gradcam": {"deletion_beats_random": 0.9, "insertion_beats_random": 0.9,
                       "randomization_spearman_max": 0.3, "border_share_median_max": 0.15}}
"""What the product asks of Grad-CAM on the shipped model's validation films."""

BASELINE_TARGETS = {"gradcam": {"deletion_auc": "gaussian"}}
"""Method -> {figure: baseline whose figure it must beat}. Grad-CAM's deletion AUC must be
below the centred Gaussian's: a map that does no better than "the middle of the film"
shows a prior, not the evidence of this film."""


# --- figures of each film -----------------------------------------------------------------


def trapezoid_auc(scores: Sequence[float]) -> float:
    """Area under a curve sampled at evenly spaced fractions from 0 to 1 (trapezoid rule)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or len(scores) < 2:
        raise ValueError(f"a curve needs at least two points, got shape {scores.shape}")
    return float(np.trapezoid(scores, dx=1.0 / (len(scores) - 1)))


def rank_correlations(maps_a: np.ndarray, maps_b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of maps, (n, h, w) twice -> (n,).

    A constant map has no ranks to correlate: its entry is NaN.
    """
    from scipy.stats import spearmanr

    values = []
    for a, b in zip(maps_a, maps_b):
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            values.append(math.nan)
        else:
            values.append(float(spearmanr(a.ravel(), b.ravel()).statistic))
    return np.asarray(values)


def per_film_figures(maps: dict[str, np.ndarray], random_maps: Sequence[dict[str, np.ndarray]],
                     curves: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """Per map name, the figures of each film.

    Returns:
        name -> {"deletion_auc", "insertion_auc"} over the curve films, and
        {"border_share", "warm_border_share", "attention_warning"} over all films; for
        maps with random-weights counterparts also "randomization_spearman_by_model"
        (models, n) and its mean over the models, "randomization_spearman" (n,).
    """
    films = {}
    for name, stack in maps.items():
        figures = {f"{kind}_auc": np.array([trapezoid_auc(c) for c in curves[name][kind]])
                   for kind in ("deletion", "insertion")}
        figures["border_share"] = np.array([explain.border_share(m) for m in stack])
        figures["warm_border_share"] = np.array([explain.border_share(m, floor=explain.WARM_FLOOR)
                                                 for m in stack])
        figures["attention_warning"] = np.array([explain.attention_warning(m) is not None for m in stack])
        if random_maps and name in random_maps[0]:
            by_model = np.stack([rank_correlations(stack, model_maps[name]) for model_maps in random_maps])
            figures["randomization_spearman_by_model"] = by_model  # (models, n)
            # Mean over the models that gave a map; NaN (no warning) where none did.
            figures["randomization_spearman"] = np.ma.masked_invalid(by_model).mean(axis=0).filled(np.nan)
        films[name] = figures
    return films


# --- summaries ----------------------------------------------------------------------------


def summarize(maps: dict[str, np.ndarray], random_maps: Sequence[dict[str, np.ndarray]],
              baselines: dict[str, np.ndarray], curves: dict[str, dict[str, np.ndarray]],
              labels: np.ndarray, canvas_p: Sequence[float], config: FaithfulnessConfig,
              size: int) -> dict:
    """The results as JSON-ready values: one object per method, plus baselines and settings."""
    films = per_film_figures(maps | baselines, random_maps, curves)
    result: dict = {"n_films": len(labels), "n_pneumonia": int((labels == 1).sum()),
                    "n_normal": int((labels == 0).sum())}
    for method in maps:
        result[method] = summarize_method(films[method], films)
    result["baselines"] = {name: _summarize_common(films[name]) for name in baselines}
    result["curves"] = {"fraction": np.linspace(0, 1, config.steps + 1).round(4).tolist(),
                        **{name: {kind: _round(c.mean(axis=0)) if len(c) else None
                                  for kind, c in pair.items()} for name, pair in curves.items()}}
    result["per_film"] = {"label": labels.astype(int).tolist(),
                          "curve_films": np.flatnonzero(labels == 1).tolist(),
                          **{name: {key: _round(values) for key, values in figures.items()}
                             for name, figures in films.items()}}
    p_film = [float(c[0]) for c in next(iter(curves.values()))["deletion"]] if curves else []
    result["settings"] = {
        **asdict(config), "methods": list(config.methods), "input_size": size, "target": "PNEUMONIA",
        "score": "P(pneumonia) from the model's own output",
        "curves_on": "pneumonia films (per_film.curve_films)", "border_margin": explain.BORDER_MARGIN,
        "warm_floor": explain.WARM_FLOOR,
        "random_map": "uniform random values on the explained layer's grid, one map per film",
        "randomization": (f"mean Spearman rho against {config.randomization_models} models of the "
                          f"same architecture with random weights (seeds {config.seed} to "
                          f"{config.seed + config.randomization_models - 1})"),
        "canvas_p_pneumonia": _mean(canvas_p), "film_p_pneumonia": _mean(p_film)}
    return result


def summarize_method(own: dict[str, np.ndarray], films: dict[str, dict[str, np.ndarray]]) -> dict:
    """The figures of one method; its AUCs are compared film by film with each baseline's."""
    figures = _summarize_common(own)
    for baseline in BASELINES:
        other = films[baseline]
        figures[f"deletion_beats_{baseline}"] = _share(own["deletion_auc"] < other["deletion_auc"])
        figures[f"insertion_beats_{baseline}"] = _share(own["insertion_auc"] > other["insertion_auc"])
    rho = own["randomization_spearman"]
    defined = rho[~np.isnan(rho)]
    by_model = [_mean(row[~np.isnan(row)]) for row in own["randomization_spearman_by_model"]]
    figures.update({
        "randomization_spearman": _mean(defined),
        "randomization_spearman_median": float(np.median(defined)) if len(defined) else None,
        "randomization_spearman_by_model": by_model,
        "randomization_spearman_max_model": max((v for v in by_model if v is not None), default=None),
        "randomization_undefined": int(np.isnan(rho).sum()),
        "n_films": len(rho),
        "n_curve_films": len(own["deletion_auc"]),
    })
    return figures


def _summarize_common(figures: dict[str, np.ndarray]) -> dict:
    """Means of the AUCs and medians of the border shares: what methods and baselines share."""
    return {"deletion_auc": _mean(figures["deletion_auc"]),
            "insertion_auc": _mean(figures["insertion_auc"]),
            "border_share_median": float(np.median(figures["border_share"])),
            "border_share_mean": float(figures["border_share"].mean()),
            "warm_border_share_median": float(np.median(figures["warm_border_share"])),
            "attention_warning_rate": _share(figures["attention_warning"])}


def check_targets(result: dict) -> dict[str, dict]:
    """Each product target of :data:`TARGETS` with the measured value and whether it is met."""
    checks = {}
    for method, targets in TARGETS.items():
        figures = result.get(method)
        if not figures:
            continue
        for key, target in targets.items():
            field, at_most = (key[:-4], True) if key.endswith("_max") else (key, False)
            value = figures.get(field)
            met = None if value is None else (value < target if at_most else value >= target)
            checks[f"{method}.{key}"] = {"value": value, "target": target, "met": met}
        for field, baseline in BASELINE_TARGETS.get(method, {}).items():
            value = figures.get(field)
            target = (result.get("baselines", {}).get(baseline) or {}).get(field)
            met = None if value is None or target is None else value < target
            checks[f"{method}.{field}_below_{baseline}"] = {"value": value, "target": target, "met": met}
    return checks


# --- the stored file ----------------------------------------------------------------------


def save_explanations(result: dict, model_folder: str | Path) -> Path:
    """Write results to ``explanations.json`` beside the model's ``card.json``.

    A file of its own rather than a card field: the card is the training record,
    written once with the model file's sha256, and this measurement can be rerun
    (new films, new settings) without rewriting it. The results carry the
    ``model_sha256`` they were measured on, so :func:`read_explanations` can ignore
    figures of a replaced model.

    Raises:
        ValueError: the results do not name the model's sha256.
    """
    if not result.get("model_sha256"):
        raise ValueError("the results must carry the model_sha256 they were measured on")
    path = Path(model_folder) / EXPLANATIONS_FILE
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def read_explanations(model_folder: str | Path, model_sha256: str | None = None) -> dict | None:
    """The stored results of a model, or None when absent, unreadable or for another model file."""
    path = Path(model_folder) / EXPLANATIONS_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if model_sha256 is not None and result.get("model_sha256") != model_sha256:
        return None
    return result


# --- helpers ------------------------------------------------------------------------------


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else None


def _share(flags: np.ndarray) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


def _round(values, digits: int = 4) -> list:
    """Rounded floats for JSON (nested lists for 2-D values), with None where a value is NaN."""
    values = np.asarray(values, dtype=np.float64)
    rounded = np.round(values, digits).astype(object)
    rounded[np.isnan(values)] = None
    return rounded.tolist()

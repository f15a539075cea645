"""Where each check refuses: thresholds set on the patient-grouped validation split.

Each check's threshold is its validation quantile at one common level, the largest at
which at most 1% of validation films are refused, counted on all of them and cross-fitted
between two halves of the patients; the named cheap checks also have a fixed floor, so they
fire only on what their name says.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pneumo.guard.detector import CHECKS

TARGET_REJECTION = 0.01
"""At most this share of real validation films is refused."""

# Bounds that make a named check mean what its name says; a threshold is never below its
# floor (for "blank", the score is minus the intensity spread: below 0.2 of the range).
FLOORS = {"colour": 0.03, "blank": -0.2, "noise": 0.5, "document": 0.1}


def thresholds_at(val_scores: dict[str, np.ndarray], alpha: float) -> dict[str, float]:
    """Each check's (1 - alpha) validation quantile, never below its floor (:data:`FLOORS`)."""
    return {name: max(FLOORS.get(name, -np.inf), float(np.quantile(val_scores[name], 1 - alpha)))
            for name in CHECKS}


def refused_by(scores: dict[str, np.ndarray], limits: dict[str, float]) -> np.ndarray:
    """Which images any check refuses at the given thresholds; (n,) bool."""
    return np.any([scores[name] > limits[name] for name in CHECKS], axis=0)


def patient_halves(groups: Sequence[str], seed: int) -> np.ndarray:
    """A seeded split of the validation films into two halves by patient; True for the first."""
    groups = np.asarray(groups).astype(str)
    names = np.unique(groups)
    return np.isin(groups, np.random.default_rng(seed).permutation(names)[: len(names) // 2])


def _patients_or_films(groups: Sequence[str] | None, n: int) -> Sequence[str]:
    """The patients, or each of the n films as its own patient when they are not known."""
    return groups if groups is not None else np.arange(n).astype(str)


def cross_fitted_rate(val_scores: dict[str, np.ndarray], half: np.ndarray, alpha: float) -> float:
    """Refusals among one half's films at thresholds set on the other half, both ways."""
    refused = []
    for fit_part in (half, ~half):
        limits = thresholds_at({k: v[fit_part] for k, v in val_scores.items()}, alpha)
        refused.append(refused_by({k: v[~fit_part] for k, v in val_scores.items()}, limits))
    return float(np.concatenate(refused).mean())


def choose_thresholds(val_scores: dict[str, np.ndarray], groups: Sequence[str] | None = None,
                      seed: int = 0, target: float = TARGET_REJECTION) -> dict:
    """Thresholds at one common validation quantile level, the largest that keeps the target.

    The level alpha (each check's threshold is its (1 - alpha) validation quantile, never
    below its floor) is found by bisection so that at most ``target`` of the validation films
    are refused, both counted on all of them and cross-fitted between two halves of the
    patients (thresholds from one half, refusals counted on the other), so the rate holds
    for films the thresholds never saw. The colour score is not observed on validation
    inputs; its threshold is its floor.

    Returns:
        check -> {"threshold", "scale" (threshold minus validation median), "floor", "alpha"}.
    """
    n = len(next(iter(val_scores.values())))
    half = patient_halves(_patients_or_films(groups, n), seed)

    def keeps_target(alpha: float) -> bool:
        in_sample = refused_by(val_scores, thresholds_at(val_scores, alpha)).mean()
        return in_sample <= target and cross_fitted_rate(val_scores, half, alpha) <= target

    low, high = 0.0, target
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if keeps_target(middle) else (low, middle)
    limits = thresholds_at(val_scores, low)
    checks = {}
    for name in CHECKS:
        scale = limits[name] - float(np.median(val_scores[name]))
        checks[name] = {"threshold": limits[name], "scale": scale if scale > 1e-9 else 1.0,
                        "floor": FLOORS.get(name), "alpha": low}
    return checks


def validation_figures(val_scores: dict[str, np.ndarray], checks: dict,
                       groups: Sequence[str] | None, seed: int) -> dict:
    """How many validation films the thresholds refuse, in all and per check, and cross-fitted."""
    fired = {name: val_scores[name] > checks[name]["threshold"] for name in CHECKS}
    refused = np.any(list(fired.values()), axis=0)
    n = len(refused)
    half = patient_halves(_patients_or_films(groups, n), seed)
    alpha = checks[CHECKS[0]]["alpha"]
    return {"n": n, "rejected": int(refused.sum()), "rejection_rate": float(refused.mean()),
            "cross_fitted_rejection_rate": cross_fitted_rate(val_scores, half, alpha),
            "rejected_by_check": {name: int(value.sum()) for name, value in fired.items()}}

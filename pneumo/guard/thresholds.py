"""Where each check refuses or flags: thresholds set on the patient-grouped validation split.

Each check's threshold is its validation quantile at one common level, the largest at
which at most 1.5% of validation films are refused, counted on all of them and cross-fitted
between two halves of the patients; the named cheap checks also have a fixed floor, so they
fire only on what their name says. The population checks (``FLAG_CHECKS``) also get a lower
flag threshold, again at one common level, the largest at which at most 5% of the validation
films in scope are flagged (in sample and cross-fitted).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pneumo.guard.detector import CHECKS, FLAG_CHECKS

TARGET_REJECTION = 0.015
"""At most this share of real validation films is refused (the product allows 2%)."""
TARGET_FLAG = 0.05
"""At most this share of real validation films is flagged with a warning (one in twenty)."""

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


def flags_at(val_scores: dict[str, np.ndarray], limits: dict[str, float], beta: float) -> dict[str, float]:
    """Each flag check's (1 - beta) validation quantile, never above its refusal threshold."""
    return {name: min(limits[name], float(np.quantile(val_scores[name], 1 - beta))) for name in FLAG_CHECKS}


def flagged_by(scores: dict[str, np.ndarray], limits: dict[str, float], flags: dict[str, float]) -> np.ndarray:
    """Which images are in scope but above a flag threshold; (n,) bool."""
    return ~refused_by(scores, limits) & np.any([scores[name] > flags[name] for name in FLAG_CHECKS], axis=0)


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


def cross_fitted_flag_rate(val_scores: dict[str, np.ndarray], half: np.ndarray, alpha: float,
                           beta: float) -> float:
    """Flags among one half's films at thresholds and flag thresholds set on the other half."""
    flagged = []
    for fit_part in (half, ~half):
        part = {k: v[fit_part] for k, v in val_scores.items()}
        limits = thresholds_at(part, alpha)
        flagged.append(flagged_by({k: v[~fit_part] for k, v in val_scores.items()}, limits,
                                  flags_at(part, limits, beta)))
    return float(np.concatenate(flagged).mean())


def _bisect(keeps_target, high: float) -> float:
    """The largest level in [0, high] that keeps the target (30 halvings)."""
    low = 0.0
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if keeps_target(middle) else (low, middle)
    return low


def choose_thresholds(val_scores: dict[str, np.ndarray], groups: Sequence[str] | None = None,
                      seed: int = 0, target: float = TARGET_REJECTION,
                      flag_target: float = TARGET_FLAG) -> dict:
    """Thresholds at one common validation quantile level, the largest that keeps the target.

    The level alpha (each check's threshold is its (1 - alpha) validation quantile, never
    below its floor) is found by bisection so that at most ``target`` of the validation films
    are refused, both counted on all of them and cross-fitted between two halves of the
    patients (thresholds from one half, refusals counted on the other), so the rate holds
    for films the thresholds never saw. The colour score is not observed on validation
    inputs; its threshold is its floor. The flag level beta is found the same way, for at most
    ``flag_target`` of the films flagged (in scope, a flag check above its flag threshold).

    Returns:
        check -> {"threshold", "scale" (threshold minus validation median), "floor", "alpha"},
        and for a flag check also "flag" (its flag threshold) and "beta".
    """
    n = len(next(iter(val_scores.values())))
    half = patient_halves(_patients_or_films(groups, n), seed)

    def keeps_target(alpha: float) -> bool:
        in_sample = refused_by(val_scores, thresholds_at(val_scores, alpha)).mean()
        return in_sample <= target and cross_fitted_rate(val_scores, half, alpha) <= target

    low = _bisect(keeps_target, target)
    limits = thresholds_at(val_scores, low)

    def keeps_flag_target(beta: float) -> bool:
        in_sample = flagged_by(val_scores, limits, flags_at(val_scores, limits, beta)).mean()
        return in_sample <= flag_target and cross_fitted_flag_rate(val_scores, half, low, beta) <= flag_target

    beta = _bisect(keeps_flag_target, 2 * flag_target)
    flags = flags_at(val_scores, limits, beta)
    checks = {}
    for name in CHECKS:
        scale = limits[name] - float(np.median(val_scores[name]))
        checks[name] = {"threshold": limits[name], "scale": scale if scale > 1e-9 else 1.0,
                        "floor": FLOORS.get(name), "alpha": low}
        if name in flags:
            checks[name].update(flag=flags[name], beta=beta)
    return checks


def validation_figures(val_scores: dict[str, np.ndarray], checks: dict,
                       groups: Sequence[str] | None, seed: int) -> dict:
    """How many validation films the thresholds refuse and flag, in all and per check, and cross-fitted."""
    fired = {name: val_scores[name] > checks[name]["threshold"] for name in CHECKS}
    refused = np.any(list(fired.values()), axis=0)
    n = len(refused)
    half = patient_halves(_patients_or_films(groups, n), seed)
    alpha = checks[CHECKS[0]]["alpha"]
    limits = {name: checks[name]["threshold"] for name in CHECKS}
    flags = {name: checks[name]["flag"] for name in FLAG_CHECKS}
    flagged = flagged_by(val_scores, limits, flags)
    beta = checks[FLAG_CHECKS[0]]["beta"]
    return {"n": n, "rejected": int(refused.sum()), "rejection_rate": float(refused.mean()),
            "cross_fitted_rejection_rate": cross_fitted_rate(val_scores, half, alpha),
            "rejected_by_check": {name: int(value.sum()) for name, value in fired.items()},
            "flagged": int(flagged.sum()), "flag_rate": float(flagged.mean()),
            "cross_fitted_flag_rate": cross_fitted_flag_rate(val_scores, half, alpha, beta),
            "flagged_by_check": {name: int((flagged & (val_scores[name] > flags[name])).sum())
                                 for name in FLAG_CHECKS}}

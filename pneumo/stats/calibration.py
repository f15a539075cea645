"""Temperature scaling (Guo et al., 2017): one number that makes probabilities honest."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The logistic function in float64 (SciPy's ``expit``: stable at any logit)."""
    return expit(np.asarray(logits, dtype=np.float64))


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean binary cross-entropy of ``sigmoid(logits / temperature)`` against ``labels``."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    y = np.asarray(labels, dtype=np.float64)
    # log(1 + exp(-|z|)) + max(z, 0) - y z, the stable form of binary cross-entropy.
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.05, 20] that minimises validation negative log-likelihood."""
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, float(np.exp(log_t))),
        bounds=(np.log(0.05), np.log(20.0)), method="bounded",
    )
    return float(np.exp(result.x))

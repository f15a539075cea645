"""The guard's learned parts, as small scikit-learn-style estimators.

Each one is fitted by scikit-learn (``fit``) and keeps only the fitted arrays, which is what
``guard.npz`` stores; ``from_params`` rebuilds it from them without scikit-learn. As in
scikit-learn, ``score_samples`` is higher for rows more like the training rows (the guard's
check scores are its negative). ``tests/test_guard_estimators.py`` holds each one to the
scikit-learn estimator it stands for.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax


class _FromParams:
    """An estimator that can be rebuilt from its fitted arrays alone, named in ``_PARAMS``."""

    _PARAMS: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, *arrays: np.ndarray):
        """The estimator with these fitted arrays, in the order of ``_PARAMS`` (its fitting
        settings keep their defaults: they are not needed to score)."""
        estimator = cls()
        for name, value in zip(cls._PARAMS, arrays, strict=True):
            setattr(estimator, name, np.asarray(value))
        return estimator


class ShrunkMahalanobis(_FromParams):
    """Mahalanobis distance to the training rows under a Ledoit-Wolf shrunk covariance.

    Attributes (once fitted):
        location_: (D,) the training rows' mean.
        precision_: (D, D) the inverse of their shrunk covariance.
    """

    _PARAMS = ("location_", "precision_")

    def fit(self, X: np.ndarray) -> ShrunkMahalanobis:
        """Fit ``sklearn.covariance.LedoitWolf`` on rows X (n, D) and keep its mean and precision."""
        from sklearn.covariance import LedoitWolf

        fitted = LedoitWolf().fit(X)
        self.location_, self.precision_ = fitted.location_, fitted.precision_
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Minus each row's Mahalanobis distance (not squared) to the training mean; (n,)."""
        centred = np.asarray(X) - self.location_
        squared = np.einsum("ij,jk,ik->i", centred, self.precision_, centred)
        return -np.sqrt(np.clip(squared, 0.0, None))


class PCAResidual(_FromParams):
    """Reconstruction error of a PCA fitted on the training rows (a linear autoencoder).

    Attributes (once fitted):
        mean_: (D,) the training rows' mean.
        components_: (k, D) the principal axes.
    """

    _PARAMS = ("mean_", "components_")

    def __init__(self, n_components: int = 16, random_state: int | None = None):
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> PCAResidual:
        """Fit ``sklearn.decomposition.PCA`` on rows X (n, D) and keep its mean and components."""
        from sklearn.decomposition import PCA

        pca = PCA(n_components=self.n_components, random_state=self.random_state).fit(X)
        self.mean_ = pca.mean_.astype(np.float64)
        self.components_ = pca.components_.astype(np.float64)
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Minus each row's squared distance to its PCA reconstruction; (n,)."""
        centred = np.asarray(X) - self.mean_
        rest = centred - (centred @ self.components_.T) @ self.components_
        return -(rest ** 2).sum(axis=1)


class MultinomialLogistic(_FromParams):
    """A multinomial (softmax) logistic regression over classes 0 .. k-1, for three or more classes
    (with two, scikit-learn keeps a single row of weights).

    Attributes (once fitted):
        coef_: (k, D) the weights.
        intercept_: (k,) the biases.
    """

    _PARAMS = ("coef_", "intercept_")

    def __init__(self, C: float = 1.0, max_iter: int = 100):
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: np.ndarray, y: np.ndarray) -> MultinomialLogistic:
        """Fit ``sklearn.linear_model.LogisticRegression`` on rows X (n, D), labels y in 0 .. k-1."""
        from sklearn.linear_model import LogisticRegression

        fitted = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(X, y)
        self.coef_ = fitted.coef_.astype(np.float64)
        self.intercept_ = fitted.intercept_.astype(np.float64)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The probability of each class for each row; (n, k)."""
        return softmax(np.asarray(X) @ self.coef_.T + self.intercept_, axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most likely class of each row; (n,) int."""
        return np.argmax(self.predict_proba(X), axis=1)

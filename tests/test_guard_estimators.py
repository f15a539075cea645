"""The guard's learned parts against the scikit-learn estimators they stand for."""

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from pneumo.guard.estimators import MultinomialLogistic, PCAResidual, ShrunkMahalanobis


def correlated_rows(rng: np.random.Generator, n: int, d: int, dtype=np.float64) -> np.ndarray:
    """Rows with unequal, correlated columns (a covariance far from the identity)."""
    return (rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)).astype(dtype)


def test_mahalanobis_is_ledoit_wolfs():
    rng = np.random.default_rng(0)
    train, rows = correlated_rows(rng, 200, 30), correlated_rows(rng, 25, 30) * 1.5
    ours, theirs = ShrunkMahalanobis().fit(train), LedoitWolf().fit(train)
    np.testing.assert_allclose(-ours.score_samples(rows), np.sqrt(theirs.mahalanobis(rows)), rtol=1e-9)
    np.testing.assert_array_equal(ours.location_, theirs.location_)
    np.testing.assert_array_equal(ours.precision_, theirs.precision_)
    rebuilt = ShrunkMahalanobis.from_params(ours.location_, ours.precision_)
    np.testing.assert_array_equal(rebuilt.score_samples(rows), ours.score_samples(rows))


@pytest.mark.parametrize("n, d, k", [(120, 40, 5), (300, 600, 16)])  # full and randomized SVD
def test_pca_residual_is_the_distance_to_pcas_reconstruction(n, d, k):
    rng = np.random.default_rng(1)
    train, rows = correlated_rows(rng, n, d), correlated_rows(rng, 20, d)
    ours = PCAResidual(n_components=k, random_state=7).fit(train)
    pca = PCA(n_components=k, random_state=7).fit(train)
    expected = ((rows - pca.inverse_transform(pca.transform(rows))) ** 2).sum(axis=1)
    np.testing.assert_allclose(-ours.score_samples(rows), expected, rtol=1e-9)
    rebuilt = PCAResidual.from_params(ours.mean_, ours.components_)
    np.testing.assert_array_equal(rebuilt.score_samples(rows), ours.score_samples(rows))


@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-12), (np.float32, 1e-6)])  # the guard's are float32
def test_layout_classifier_is_logistic_regressions(dtype, atol):
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(5, 20)) * 0.8
    labels = rng.integers(0, 5, 400)
    train = (centres[labels] + rng.normal(size=(400, 20))).astype(dtype)
    rows = (centres[rng.integers(0, 5, 50)] + rng.normal(size=(50, 20))).astype(dtype)
    ours = MultinomialLogistic(C=0.1, max_iter=3000).fit(train, labels)
    theirs = LogisticRegression(C=0.1, max_iter=3000).fit(train, labels)
    np.testing.assert_allclose(ours.predict_proba(rows), theirs.predict_proba(rows), atol=atol)
    np.testing.assert_array_equal(ours.predict(rows), theirs.predict(rows))
    rebuilt = MultinomialLogistic.from_params(ours.coef_, ours.intercept_)
    np.testing.assert_array_equal(rebuilt.predict_proba(rows), ours.predict_proba(rows))

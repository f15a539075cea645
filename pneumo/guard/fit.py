"""Fitting the guard: its learned parts on training films, its thresholds on validation films,
and for a stored model the whole job (fit, measure on the out-of-scope set, save)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pneumo.guard.detector import Guard
from pneumo.guard.estimators import MultinomialLogistic, PCAResidual, ShrunkMahalanobis
from pneumo.guard.evaluation_set import out_of_scope_figures
from pneumo.guard.features import POOL_LAYER, feature_model, film_statistics, films_of, layout_vector, model_outputs
from pneumo.guard.persist import save_guard
from pneumo.guard.thresholds import TARGET_FLAG, TARGET_REJECTION, choose_thresholds, validation_figures
from pneumo.guard.transforms import layout_examples
from pneumo.store import LoadedModel

PCA_COMPONENTS = 16


def fit_guard(loaded: LoadedModel, train_inputs: np.ndarray, val_inputs: np.ndarray, *,
              val_groups: Sequence[str] | None = None, max_train: int | None = 2000,
              max_layout: int = 1500, seed: int = 0, log: Callable[[str], None] = print,
              val_pooled: np.ndarray | None = None) -> Guard:
    """Fit the guard on training films and set its thresholds on validation films.

    Args:
        loaded: the model whose pooled features the guard reads.
        train_inputs: training films as model inputs (n, S, S, 1) in 0-255 (uint8 is fine).
        val_inputs: validation films, the same way; never used for fitting, only thresholds.
        val_groups: the patient of each validation film, for the cross-fitted rejection rate.
        max_train: at most this many training films (drawn with ``seed``) are used.
        max_layout: at most this many of those make the layout classifier's examples.
        seed: seeds the draws and the fits.
        log: where progress lines go.
        val_pooled: the validation films' pooled features, when already computed.

    Returns:
        The guard; its ``arrays`` are the contents of ``guard.npz``, its ``settings`` the card's
        ``guard`` section (thresholds, scales, validation rejection rates).

    Raises:
        ValueError: inputs of the wrong shape, or too few films to fit.
    """
    size = loaded.input_size
    for name, inputs in (("train_inputs", train_inputs), ("val_inputs", val_inputs)):
        if np.ndim(inputs) != 4 or tuple(np.shape(inputs)[1:]) != (size, size, 1):
            raise ValueError(f"{name} must have shape (n, {size}, {size}, 1), got {np.shape(inputs)}")
    if len(train_inputs) < 10 or len(val_inputs) < 10:
        raise ValueError(f"the guard needs at least 10 training and 10 validation films, got "
                         f"{len(train_inputs)} and {len(val_inputs)}")
    rng = np.random.default_rng(seed)
    chosen = np.arange(len(train_inputs))
    if max_train and len(chosen) > max_train:
        chosen = np.sort(rng.choice(len(chosen), max_train, replace=False))
    two_headed = feature_model(loaded.model)
    log(f"guard: fitting on {len(chosen)} training films, thresholds on {len(val_inputs)} "
        "validation films")
    _, train_pooled = model_outputs(two_headed, train_inputs[chosen])
    if val_pooled is None:
        _, val_pooled = model_outputs(two_headed, val_inputs)
    films = np.asarray(train_inputs[chosen], dtype=np.float32)[..., 0] / 255.0
    arrays = fit_learned_parts(films, train_pooled, rng, max_layout)
    settings = {"version": 2, "input_size": size, "pool_layer": POOL_LAYER}
    val_scores, _ = Guard(arrays, settings).scores(val_inputs, val_pooled, films_of(val_inputs))
    checks = choose_thresholds(val_scores, val_groups, seed)
    settings = {
        **settings,
        "target_rejection_rate": TARGET_REJECTION,
        "target_flag_rate": TARGET_FLAG,
        "checks": checks,
        "validation": validation_figures(val_scores, checks, val_groups, seed),
        "fitted_on": {"n_train": int(len(chosen)), "n_train_layout": int(min(len(chosen), max_layout)),
                      "n_val": int(len(val_inputs)), "seed": seed},
    }
    log(f"guard: {settings['validation']['rejected']} of {len(val_inputs)} validation films refused "
        f"({settings['validation']['rejection_rate']:.2%}; cross-fitted "
        f"{settings['validation']['cross_fitted_rejection_rate']:.2%}); "
        f"{settings['validation']['flagged']} flagged ({settings['validation']['flag_rate']:.2%}; "
        f"cross-fitted {settings['validation']['cross_fitted_flag_rate']:.2%})")
    return Guard(arrays, settings)


def fit_learned_parts(films: np.ndarray, pooled: np.ndarray, rng: np.random.Generator,
                      max_layout: int = 1500) -> dict[str, np.ndarray]:
    """The learned parts, from training films only.

    Args:
        films: (n, S, S) float in [0, 1].
        pooled: their pooled features (n, D).
        rng: the random generator (layout examples, PCA).
        max_layout: at most this many films make layout examples.

    Returns:
        The contents of ``guard.npz``: Mahalanobis means and precisions (pool, statistics), PCA
        mean and components (appearance), layout classifier coefficients and intercepts.
    """
    statistics = np.stack([film_statistics(film) for film in films])
    vectors = np.stack([layout_vector(film) for film in films])
    features, film_stats = ShrunkMahalanobis().fit(pooled), ShrunkMahalanobis().fit(statistics)
    appearance = PCAResidual(n_components=min(PCA_COMPONENTS, len(films) - 1),
                             random_state=int(rng.integers(2**31))).fit(vectors)
    layout_films = films[np.sort(rng.choice(len(films), min(len(films), max_layout), replace=False))]
    examples, labels = layout_examples(layout_films, rng)
    layout = MultinomialLogistic(C=0.1, max_iter=3000).fit(examples, labels)
    return {
        "pool_mean": features.location_, "pool_precision": features.precision_,
        "statistics_mean": film_stats.location_, "statistics_precision": film_stats.precision_,
        "appearance_mean": appearance.mean_, "appearance_components": appearance.components_,
        "layout_coef": layout.coef_, "layout_intercept": layout.intercept_,
    }


def fit_and_store_guard(loaded: LoadedModel, train_inputs: np.ndarray, val_inputs: np.ndarray, *,
                        val_groups: Sequence[str] | None = None, max_train: int | None = 2000,
                        per_kind: int = 60, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """Fit a stored model's guard, measure it on the out-of-scope set, and save both beside the model.

    The three steps every caller (training, cross-validation, ``fit-guard``) needs, sharing the
    validation films' pooled features: :func:`fit_guard`,
    :func:`pneumo.guard.evaluation_set.out_of_scope_figures` and
    :func:`pneumo.guard.persist.save_guard`.

    Args:
        loaded: the model in its store folder (``loaded.path``).
        train_inputs, val_inputs: training and validation films as model inputs.
        val_groups: the patient of each validation film.
        max_train: at most this many training films are used for fitting.
        per_kind: transformed validation films per kind in the out-of-scope set.
        seed: seeds every draw.
        log: where progress lines go.

    Returns:
        The card's ``guard`` section as written.
    """
    two_headed = feature_model(loaded.model)
    _, val_pooled = model_outputs(two_headed, val_inputs)
    guard = fit_guard(loaded, train_inputs, val_inputs, val_groups=val_groups, max_train=max_train,
                      seed=seed, log=log, val_pooled=val_pooled)
    figures = out_of_scope_figures(guard, two_headed, val_inputs, per_kind=per_kind, seed=seed,
                                   val_pooled=val_pooled)
    log(f"guard: out-of-scope AUROC {figures['auroc']:.4f} over {figures['n_out_of_scope']} images; "
        + ", ".join(f"{kind} {row['detected']:.0%}" for kind, row in figures["by_kind"].items()))
    return save_guard(loaded.path, guard, extra={"out_of_scope": figures})

"""How fast the shipped model answers on this machine: latency, throughput and memory."""

from __future__ import annotations

import resource
import sys
import timeit
from collections.abc import Callable

import numpy as np

from pneumo.inference.explain import Explainer
from pneumo.inference.predict import Classifier
from pneumo.io import Film
from pneumo.preprocess import to_model_input
from pneumo.store import LoadedModel


def _timings_ms(call: Callable[[], object], runs: int, warmup: int = 3) -> np.ndarray:
    """Milliseconds of ``runs`` single calls, after ``warmup`` untimed ones (``timeit``: garbage collection paused)."""
    for _ in range(warmup):
        call()
    return np.asarray(timeit.repeat(call, number=1, repeat=runs)) * 1000


def _paired_timings_ms(first: Callable[[], object], second: Callable[[], object],
                       runs: int, warmup: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Milliseconds of ``runs`` calls of each of two callables, taken in turns."""
    for _ in range(warmup):
        first(), second()
    pairs = [(timeit.timeit(first, number=1), timeit.timeit(second, number=1)) for _ in range(runs)]
    return np.asarray(pairs)[:, 0] * 1000, np.asarray(pairs)[:, 1] * 1000


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024


def run(loaded: LoadedModel, film: Film, runs: int = 30, batch: int = 64) -> dict:
    """Time one model on one decoded film.

    ``predict`` is a warm single-film prediction from decoded film to probability
    (resize included); ``gradcam`` is one Grad-CAM map of that film; throughput
    predicts batches of ``batch`` inputs.

    With a subtype model, ``predict_with_pattern_ms_p50`` is what a film read as pneumonia
    costs (probability and pattern), and ``pattern_cost_ratio`` its ratio to the probability
    alone, both timed in turns in the same run.

    Returns:
        predict_ms_p50/p95, gradcam_ms_p50/p95, throughput_img_s, peak_rss_mb and the setting.
    """
    classifier = Classifier(loaded)
    explainer = Explainer(loaded)
    predict_ms = _timings_ms(lambda: classifier.predict_film(film), runs)
    model_input = to_model_input(film, loaded.input_size)
    gradcam_ms = _timings_ms(lambda: explainer.heatmap(model_input, "gradcam"), runs)
    pattern = {}
    if classifier.subtype is not None:
        # A film read as pneumonia also gets its pattern: the two timed in turns, so that the
        # machine's noise falls on both alike and their ratio is what the pattern costs.
        alone, with_pattern = _paired_timings_ms(
            lambda: classifier.predict_film(film),
            lambda: (classifier.predict_film(film), classifier.predict_subtype_inputs(model_input[np.newaxis])),
            runs)
        pattern = {"predict_with_pattern_ms_p50": round(float(np.percentile(with_pattern, 50)), 2),
                   "pattern_cost_ratio": round(float(np.median(with_pattern) / np.median(alone)), 3)}
    inputs = np.repeat(model_input[np.newaxis], batch, axis=0)
    rounds = max(3, runs // 10)
    batch_ms = _timings_ms(lambda: classifier.predict_inputs(inputs, batch_size=batch), rounds, warmup=1)
    return {
        "model": loaded.name,
        "input_size": loaded.input_size,
        "runs": runs,
        "predict_ms_p50": round(float(np.percentile(predict_ms, 50)), 2),
        "predict_ms_p95": round(float(np.percentile(predict_ms, 95)), 2),
        **pattern,
        "gradcam_ms_p50": round(float(np.percentile(gradcam_ms, 50)), 2),
        "gradcam_ms_p95": round(float(np.percentile(gradcam_ms, 95)), 2),
        "throughput_img_s": round(float(batch / (np.median(batch_ms) / 1000)), 1),
        "batch": batch,
        "peak_rss_mb": round(peak_memory_mb(), 1),
    }

"""How fast the shipped model answers on this machine: latency, throughput and memory, under Keras
and under ONNX Runtime side by side."""

from __future__ import annotations

import resource
import sys
import tempfile
import timeit
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from pneumo.inference.explain import Explainer
from pneumo.inference.export import cpu_cores, write_onnx
from pneumo.inference.predict import Classifier
from pneumo.io import Film
from pneumo.preprocess import to_model_input
from pneumo.store import LoadedModel, ModelStoreError


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


def onnx_classifier(classifier: Classifier, folder: str | Path) -> tuple[Classifier, str]:
    """``classifier``'s model under ONNX Runtime, and where its ``model.onnx`` came from.

    The stored ``model.onnx`` when it passes its checks; otherwise one exported into ``folder``
    (a temporary folder: the store is never written).
    """
    loaded = classifier.loaded
    subtype = classifier.subtype
    try:
        return Classifier(loaded, guard=classifier.guard, subtype=subtype, runtime="onnx"), "stored"
    except ModelStoreError:
        section = write_onnx(loaded, subtype, folder)
        exported = replace(loaded, card={**loaded.card, "onnx": section})  # a copy: the shared card is not changed
        return Classifier(exported, guard=classifier.guard, subtype=subtype, runtime="onnx"), "temporary export"


def _runtime_figures(predict_ms: np.ndarray, batch_ms: np.ndarray, batch: int, cores: int) -> dict:
    throughput = batch / (np.median(batch_ms) / 1000)
    return {"predict_ms_p50": round(float(np.percentile(predict_ms, 50)), 2),
            "predict_ms_p95": round(float(np.percentile(predict_ms, 95)), 2),
            "throughput_img_s": round(float(throughput), 1),
            "throughput_img_s_per_core": round(float(throughput / cores), 1)}


def _ratios(predict_ms: np.ndarray, onnx_predict_ms: np.ndarray, batch_ms: np.ndarray,
            onnx_batch_ms: np.ndarray) -> dict:
    """ONNX Runtime's figures over Keras's, from the unrounded timings (throughput: the inverse of time)."""
    speedup = float(np.median(batch_ms) / np.median(onnx_batch_ms))
    return {"predict_ms_p50": round(float(np.median(onnx_predict_ms) / np.median(predict_ms)), 3),
            "predict_ms_p95": round(float(np.percentile(onnx_predict_ms, 95) / np.percentile(predict_ms, 95)), 3),
            "throughput_img_s": round(speedup, 3), "throughput_img_s_per_core": round(speedup, 3)}


def run(loaded: LoadedModel, film: Film, runs: int = 30, batch: int = 64) -> dict:
    """Time one model on one decoded film, under Keras and under ONNX Runtime.

    ``predict`` is a warm single-film prediction from decoded film to probability
    (resize included); ``gradcam`` is one Grad-CAM map of that film (Keras); throughput
    predicts batches of ``batch`` inputs, and per core divides it by the cores this process
    may use (:func:`~pneumo.inference.export.cpu_cores`). The two runtimes are timed in turns,
    so the machine's noise falls on both alike; ``onnx_over_keras`` holds the ratios of their
    medians. Without a usable stored ``model.onnx`` one is exported to a temporary folder.

    With a subtype model, ``predict_with_pattern_ms_p50`` is what a film read as pneumonia
    costs (probability and pattern), and ``pattern_cost_ratio`` its ratio to the probability
    alone, both timed in turns in the same run (Keras).

    Returns:
        predict_ms_p50/p95, throughput_img_s and throughput_img_s_per_core (Keras, the default
        runtime), gradcam_ms_p50/p95, peak_rss_mb, ``runtimes`` ({"keras": ..., "onnx": ...}
        with those four figures each), ``onnx_over_keras`` (ONNX's figure over Keras's for each
        of the four), ``onnx_file`` ("stored" or "temporary export"), ``cores`` and the setting.
    """
    classifier = Classifier(loaded)
    explainer = Explainer(loaded)
    with tempfile.TemporaryDirectory(prefix="pneumo-bench-") as folder:
        onnx, onnx_file = onnx_classifier(classifier, folder)
        return {**_run(classifier, onnx, explainer, film, runs, batch), "onnx_file": onnx_file}


def _run(classifier: Classifier, onnx: Classifier, explainer: Explainer, film: Film, runs: int, batch: int) -> dict:
    loaded = classifier.loaded
    predict_ms, onnx_predict_ms = _paired_timings_ms(lambda: classifier.predict_film(film),
                                                     lambda: onnx.predict_film(film), runs)
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
    batch_ms, onnx_batch_ms = _paired_timings_ms(lambda: classifier.predict_inputs(inputs, batch_size=batch),
                                                 lambda: onnx.predict_inputs(inputs, batch_size=batch),
                                                 rounds, warmup=1)
    cores = cpu_cores()
    keras_figures = _runtime_figures(predict_ms, batch_ms, batch, cores)
    return {
        "model": loaded.name,
        "input_size": loaded.input_size,
        "runs": runs,
        **{key: keras_figures[key] for key in ("predict_ms_p50", "predict_ms_p95")},
        **pattern,
        "gradcam_ms_p50": round(float(np.percentile(gradcam_ms, 50)), 2),
        "gradcam_ms_p95": round(float(np.percentile(gradcam_ms, 95)), 2),
        **{key: keras_figures[key] for key in ("throughput_img_s", "throughput_img_s_per_core")},
        "batch": batch,
        "cores": cores,
        "runtimes": {"keras": keras_figures,
                     "onnx": _runtime_figures(onnx_predict_ms, onnx_batch_ms, batch, cores)},
        "onnx_over_keras": _ratios(predict_ms, onnx_predict_ms, batch_ms, onnx_batch_ms),
        "peak_rss_mb": round(peak_memory_mb(), 1),
    }

"""Resident memory over many predictions like the app's: what an upload could leave behind.

In this process, what the app computes for an upload (``Classifier.assess``, the 10-90%
interval and a Grad-CAM map) for consecutive different real films, each enlarged to a
clinical size (the shared films are 224 pixels a side); resident memory after a warm-up and
at the end must differ by less than a generous bound.
"""

from __future__ import annotations

import gc
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.data import film_sequence

if TYPE_CHECKING:
    from pneumo.inference.explain import Explainer
    from pneumo.inference.predict import Classifier
    from pneumo.store import LoadedModel

PREDICTIONS = 200
WARMUP = 20
GROWTH_LIMIT_MB = 150.0
SAMPLE_EVERY = 50


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB, from /proc/PID/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS line in /proc/{pid}/status")


def settled_rss_mb() -> float:
    """This process's resident memory after a garbage collection."""
    gc.collect()
    return rss_mb()


@dataclass
class MemoryRun:
    """Resident memory of this process over consecutive predictions."""

    predictions: int
    before_mb: float  # after the warm-up
    after_mb: float
    samples: list[tuple[int, float]]  # (predictions done after the warm-up, RSS MB)
    seconds: float

    @property
    def growth_mb(self) -> float:
        return self.after_mb - self.before_mb


def clinical_size_jpeg(path: Path, index: int) -> bytes:
    """A film enlarged to a clinical size, as JPEG bytes; the size differs from film to film.

    The shared films are 224 pixels a side, films from a clinic two to three thousand, and
    what an upload could leave behind grows with its size: at 224 pixels a leaked film is too
    small to see. Sizes vary so that anything cached per image shape would show too.
    """
    from PIL import Image

    width, height = 1800 + index * 97 % 700, 2000 + index * 61 % 600
    with Image.open(path) as image:
        enlarged = image.convert("L").resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    enlarged.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def predict_like_the_app(classifier: Classifier, explainer: Explainer, name: str, upload: bytes) -> None:
    """What the diagnose page computes for one upload: assessment, interval and Grad-CAM map."""
    from pneumo.preprocess import to_model_input

    assessment = classifier.assess(upload, name=name)
    if assessment.film is not None:
        classifier.uncertainty(assessment.film)
        explainer.heatmap(to_model_input(assessment.film, explainer.size), "gradcam")


def memory_check(loaded: LoadedModel, predictions: int = PREDICTIONS, warmup: int = WARMUP) -> MemoryRun:
    """Predict like the app for ``warmup`` films, read RSS, then for ``predictions`` more.

    Each film is a different real one, enlarged to a clinical size (:func:`clinical_size_jpeg`).
    """
    from pneumo.inference.explain import Explainer
    from pneumo.inference.predict import Classifier

    classifier, explainer = Classifier(loaded), Explainer(loaded)
    films = film_sequence(warmup + predictions)

    def predict(index: int) -> None:
        predict_like_the_app(classifier, explainer, films[index].name,
                             clinical_size_jpeg(films[index], index))

    for index in range(warmup):
        predict(index)
    before = settled_rss_mb()
    samples: list[tuple[int, float]] = [(0, before)]
    start = time.perf_counter()
    for done in range(1, predictions + 1):
        predict(warmup + done - 1)
        if done % SAMPLE_EVERY == 0 or done == predictions:
            samples.append((done, settled_rss_mb()))
    return MemoryRun(predictions, before, samples[-1][1], samples, time.perf_counter() - start)


def format_memory(run: MemoryRun) -> str:
    """The memory check as a few lines of text."""
    trail = ", ".join(f"{done}: {mb:.0f}" for done, mb in run.samples)
    return (f"memory over {run.predictions} predictions (clinical-size JPEGs; assess + interval + Grad-CAM, "
            f"{run.seconds / run.predictions * 1000:.0f} ms each): RSS {run.before_mb:.0f} MB after the "
            f"warm-up, {run.after_mb:.0f} MB at the end ({run.growth_mb:+.0f} MB)\n  RSS by predictions "
            f"done: {trail}")

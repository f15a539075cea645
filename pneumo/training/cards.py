"""What a model's card says about it: intended use, limits, the fields every card has.

The card (``card.json`` beside the model file) travels with the model: the app and the
command line read labels, input size, threshold and limits from it, never from constants
of their own. Training (:mod:`pneumo.training.train`, :mod:`pneumo.training.crossval`)
writes it with these pieces.
"""

from __future__ import annotations

import platform
import shlex
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from pneumo import data
from pneumo.modeling import models
from pneumo.stats import calibration, metrics

if TYPE_CHECKING:
    from pneumo.training.train import TrainConfig

INTENDED_USE = (
    "Decision support for clinicians reading frontal (anterior-posterior) chest films of "
    "children aged about one to five: an estimate of how likely pneumonia is, with the regions "
    "the model weighed. It assists a clinician; it does not diagnose, and a film it calls "
    "normal does not rule pneumonia out."
)
LIMITS = [
    "Trained on 5,216 films from a single centre (Guangzhou Women and Children's Medical Center); "
    "films from other hospitals, machines and periods are expected to score lower than the card's "
    "figures: 'python -m pneumo calibrate-site' measures the model on a site's own labelled films and "
    "adapts its temperature and threshold.",
    "Children aged one to five only; not for adults, neonates, lateral views or CT. A DICOM header that "
    "says otherwise (another modality or body part, a lateral or oblique view, raw detector data, an "
    "age of 18 or over) is refused before the model runs; an age under 1 or of 6 to 17 is read with a "
    "warning. Without such a header only the image checks stand guard, and they pass many adult films.",
    "Two classes only (normal, pneumonia); other findings (effusion, pneumothorax, foreign body, "
    "lines and tubes, cardiomegaly) are neither detected nor excluded.",
    "Bacterial and viral pneumonia are not told apart.",
    "The films are shrunk to the model's input size (the card's input) before it sees them; fine detail "
    "is not used.",
    "Labels are two physicians' reading of the film, not microbiological or clinical confirmation.",
    "The operating threshold was chosen on films the model never saw, to miss few pneumonias (the card's "
    "operating point gives the rule); on new data both sensitivity and specificity can be lower.",
]


def card_basics(config: TrainConfig, name: str, threshold: float, temperature: float, parameters: int) -> dict:
    """The card fields every model has: what it takes, what it gives, its operating point."""
    return {
        "name": name,
        "architecture": config.architecture,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": {"size": config.input_size, "channels": 1, "range": [0, 255],
                  "shape": [config.input_size, config.input_size, 1]},
        "classes": list(data.CLASSES),
        "output": "p_pneumonia: calibrated probability of pneumonia (temperature already applied)",
        "threshold": threshold,
        "temperature": temperature,
        "explain_layer": models.explain_layer(config.architecture),
        "parameters": parameters,
        "preprocessing": (
            "pneumo.io.read_film: grayscale in [0, 1] (EXIF orientation applied; DICOM: modality "
            "LUT, VOI window, MONOCHROME1 inverted, first frame); pneumo.preprocess.to_model_input: "
            f"bilinear resize to {config.input_size} x {config.input_size}, times 255, rounded to whole "
            "grey levels; the model divides by 255 in its first layer ('scale')."
        ),
    }


def training_command() -> str | None:
    """The command line that ran, when it was ``python -m pneumo``."""
    if sys.argv[0].endswith(("pneumo", "__main__.py")):
        return "python -m pneumo " + shlex.join(sys.argv[1:])
    return None


def validation_report(labels: np.ndarray, probs: np.ndarray, temperature: float,
                      subtypes: list[str | None], min_sensitivity: float,
                      threshold: float | None = None) -> tuple[float, dict]:
    """The operating threshold and the card's ``validation`` section from validation probabilities.

    ``probs`` are calibrated (temperature applied); the ECE before calibration is
    recovered from them through the temperature. ``threshold``, when given, is used
    instead of :func:`pneumo.stats.metrics.choose_threshold`'s.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if threshold is None:
        threshold = metrics.choose_threshold(labels, probs, min_sensitivity)
    validation = metrics.evaluate(labels, probs, threshold, subtypes)
    clipped = np.clip(probs, 1e-12, 1 - 1e-12)
    uncalibrated = calibration.sigmoid(temperature * np.log(clipped / (1 - clipped)))
    validation["ece_uncalibrated"] = metrics.expected_calibration_error(labels, uncalibrated)
    validation["curves"] = metrics.curves(labels, probs)
    validation["predictions"] = {"labels": np.asarray(labels).astype(int).tolist(),
                                 "p_pneumonia": np.round(probs, 5).tolist()}
    return threshold, validation


def library_versions() -> dict:
    import keras
    import numpy
    import PIL
    import sklearn
    import tensorflow as tf

    """The versions of the libraries a model was trained with."""
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__, "pillow": PIL.__version__,
            "scikit-learn": sklearn.__version__}


def ensemble_operating_point_words(name: str) -> str:
    """Why ``operating-point`` does not apply to an ensemble, and what to run instead."""
    return (f"Model {name!r} is an ensemble whose operating point is chosen on its out-of-fold probabilities; "
            "run 'python -m pneumo train-cv' again with --min-sensitivity (the folds finished in its --run-dir "
            "are reused).")

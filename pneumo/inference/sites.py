"""Site calibration: a site's own temperature and threshold for a stored model, never a new model file.

A stored model answers ``p = sigmoid(z / T_model)``, its card's temperature
``T_model`` already applied, so its raw logit is ``z = T_model * logit(p)``. A site
calibration fits a temperature ``T_site`` of its own on the site's labelled films
(:func:`pneumo.stats.calibration.fit_temperature` on the raw logits) and a threshold
(:func:`pneumo.stats.metrics.choose_threshold` on the site's probabilities
``sigmoid(z / T_site)``). Both are kept in ``model_store/<model>/sites/<SITE>.json``
with the figures before and after, each with a 95% interval from a patient-grouped
bootstrap. The model file, its checksum and its card are never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pneumo import data
from pneumo.stats import calibration, metrics
from pneumo.stats.operating import (
    FIGURES,
    INTERVAL_LEVEL,
    figures_with_intervals,
    patient_weights,
)
from pneumo.store import LoadedModel

SITES_FOLDER = "sites"
"""Site files live in this folder inside the model's folder of the store."""

SITE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MIN_FILMS_PER_CLASS = 50
DEFAULT_MIN_SENSITIVITY = 0.95
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 20181122

FORMAT_VERSION = 1
_P_EDGE = 1e-7  # float32 cannot hold a probability nearer 0 or 1 than this, so logits stop here


class SiteError(ValueError):
    """A site calibration that cannot be made or used; the message is one sentence, naming what exists."""


@dataclass(frozen=True)
class Site:
    """A site's operating point for one model file.

    Attributes:
        name: the site's name (letters, digits, ``-`` and ``_``).
        model_sha256: the sha256 of the model file it was made for.
        temperature: the site's temperature on the model's raw logit.
        threshold: the site's threshold on its own probabilities.
        min_sensitivity: the sensitivity the threshold was chosen to keep.
        digest: sha256 of the site file (a recalibrated site is a new site to caches).
        record: the whole site file, figures included.
    """

    name: str
    model_sha256: str
    temperature: float
    threshold: float
    min_sensitivity: float
    digest: str
    record: dict

    def probabilities(self, p_model: np.ndarray, model_temperature: float) -> np.ndarray:
        """The site's P(pneumonia) from the model's, ``sigmoid(T_model * logit(p) / T_site)``."""
        return recalibrate(p_model, model_temperature, self.temperature)


def recalibrate(p_model: np.ndarray, model_temperature: float, site_temperature: float) -> np.ndarray:
    """Probabilities through another temperature: ``sigmoid(model_temperature * logit(p) / site_temperature)``.

    Args:
        p_model: the model's probabilities, its own temperature applied.
        model_temperature: that temperature (the card's).
        site_temperature: the temperature to apply instead.

    Returns:
        float64 probabilities of the same shape.
    """
    return calibration.sigmoid(raw_logits(p_model, model_temperature) / float(site_temperature))


def raw_logits(p_model: np.ndarray, model_temperature: float) -> np.ndarray:
    """The model's logits before its temperature, ``model_temperature * logit(p)``."""
    p = np.clip(np.asarray(p_model, dtype=np.float64), _P_EDGE, 1 - _P_EDGE)
    return float(model_temperature) * np.log(p / (1 - p))


def check_name(name: str) -> str:
    """The site name if it is 1 to 64 letters, digits, ``-`` or ``_``.

    Raises:
        SiteError: any other name (it would become a file name).
    """
    if not isinstance(name, str) or not SITE_NAME.fullmatch(name):
        raise SiteError(f"A site name is 1 to 64 letters, digits, '-' or '_', got {name!r}.")
    return name


def sites_folder(loaded: LoadedModel) -> Path:
    """The folder holding a model's site files: ``<model folder>/sites``."""
    return Path(loaded.path) / SITES_FOLDER


def site_path(loaded: LoadedModel, name: str) -> Path:
    """Where the site file of ``name`` for this model lives (whether or not it exists)."""
    return sites_folder(loaded) / f"{check_name(name)}.json"


def list_sites(loaded: LoadedModel) -> list[str]:
    """Names of the sites calibrated for this model file (files for another model file are left out)."""
    folder = sites_folder(loaded)
    if not folder.is_dir():
        return []
    names = []
    for path in sorted(folder.glob("*.json")):
        if not SITE_NAME.fullmatch(path.stem):
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(record, dict) and record.get("model_sha256") == loaded.card.get("sha256"):
            names.append(path.stem)
    return names


def _choices(loaded: LoadedModel) -> str:
    names = list_sites(loaded)
    if names:
        return f"sites for model {loaded.name!r}: {', '.join(names)}"
    return (f"model {loaded.name!r} has no site calibrations yet (make one with "
            "'python -m pneumo calibrate-site --data DIR --name SITE')")


def load_site(loaded: LoadedModel, name: str) -> Site:
    """A site's calibration for this model file.

    Args:
        loaded: the model the site is to be used with.
        name: the site's name.

    Returns:
        The :class:`Site`.

    Raises:
        SiteError: a bad name, no such site, a file made for another model file, or a file
            that cannot be read; the message names the sites that exist.
    """
    path = site_path(loaded, name)
    if not path.is_file():
        raise SiteError(f"Unknown site {name!r}; {_choices(loaded)}.")
    try:
        raw = path.read_bytes()
        record = json.loads(raw)
        site = Site(name=name, model_sha256=str(record["model_sha256"]),
                    temperature=float(record["temperature"]), threshold=float(record["threshold"]),
                    min_sensitivity=float(record["min_sensitivity"]),
                    digest=hashlib.sha256(raw).hexdigest(), record=record)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise SiteError(f"The site file {path.name} of model {loaded.name!r} cannot be read "
                        f"({type(err).__name__}: {err}); calibrate the site again; {_choices(loaded)}.") from err
    expected = str(loaded.card.get("sha256", ""))
    if site.model_sha256 != expected:
        raise SiteError(f"Site {name!r} was calibrated for another model file (sha256 "
                        f"{site.model_sha256[:12]}..., not {expected[:12]}... of model {loaded.name!r}); "
                        f"calibrate it again for this model; {_choices(loaded)}.")
    if not site.temperature > 0 or not 0 <= site.threshold <= 1:
        raise SiteError(f"The site file {path.name} of model {loaded.name!r} holds temperature "
                        f"{site.temperature} and threshold {site.threshold}, which cannot be used; "
                        "calibrate the site again.")
    return site


def save_site(loaded: LoadedModel, record: dict) -> Path:
    """Write a site file beside the model (atomically; an earlier file of that name is replaced).

    Args:
        loaded: the model the site was calibrated for.
        record: what :func:`calibrate_site` returned.

    Returns:
        The file's path.

    Raises:
        SiteError: the record was made for another model file.
    """
    if record.get("model_sha256") != loaded.card.get("sha256"):
        raise SiteError(f"This site calibration was made for another model file than model "
                        f"{loaded.name!r}'s; nothing was written.")
    path = site_path(loaded, record["site"])
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(json.dumps(record, indent=2) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


# -- figures with intervals ---------------------------------------------------------------------

def fit_site(labels: np.ndarray, p_model: np.ndarray, patients: Sequence[str], model_temperature: float,
             model_threshold: float, min_sensitivity: float = DEFAULT_MIN_SENSITIVITY,
             resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """A site's temperature and threshold from its films, with figures before and after.

    Args:
        labels: (n,) 0/1, the site's reading of each film.
        p_model: (n,) the model's P(pneumonia), its own temperature applied.
        patients: (n,) which patient each film belongs to (the bootstrap draws patients).
        model_temperature: the card's temperature.
        model_threshold: the card's threshold (the "before" operating point).
        min_sensitivity: the sensitivity the site's threshold must keep (lower 95% bound).
        resamples: bootstrap resamples.
        seed: the bootstrap's seed.

    Returns:
        ``temperature``, ``threshold``, ``bound_met`` (whether the lower 95% bound of sensitivity
        reaches ``min_sensitivity`` at it, or only the observed sensitivity does), ``figures``
        ({"before": ..., "after": ...}, see :func:`figures_with_intervals`) and ``bootstrap``
        (how the intervals were made).
    """
    labels = np.asarray(labels).astype(int)
    logits = raw_logits(p_model, model_temperature)
    temperature = calibration.fit_temperature(logits, labels)
    p_site = calibration.sigmoid(logits / temperature)
    threshold = metrics.choose_threshold(labels, p_site, min_sensitivity)
    weights = patient_weights(patients, resamples, seed)
    before = figures_with_intervals(labels, np.asarray(p_model, dtype=np.float64), model_threshold,
                                    weights=weights)
    after = figures_with_intervals(labels, p_site, threshold, weights=weights)
    return {
        "temperature": float(temperature), "threshold": float(threshold),
        "bound_met": metrics.sensitivity_bound_met(labels, p_site, threshold, min_sensitivity),
        "figures": {"before": {"temperature": float(model_temperature), **before},
                    "after": {"temperature": float(temperature), **after}},
        "bootstrap": {"resamples": int(resamples), "seed": int(seed), "grouped_by": "patient",
                      "patients": int(len(set(patients))), "level": INTERVAL_LEVEL},
    }


# -- a site's folder in, a site file's record out -----------------------------------------------

def _class_counts(labels: Sequence[int]) -> dict[str, int]:
    labels = list(labels)
    return {name: int(sum(1 for label in labels if label == index)) for index, name in enumerate(data.CLASSES)}


def _check_counts(counts: dict[str, int], root: str | Path, left_out: str = "") -> None:
    if min(counts.values()) >= MIN_FILMS_PER_CLASS:
        return
    held = " and ".join(f"{n} {name}" for name, n in counts.items())
    single = " (one class only)" if min(counts.values()) == 0 else ""
    raise SiteError(f"{root} holds {held} films{single}{left_out}; a site calibration needs at least "
                    f"{MIN_FILMS_PER_CLASS} films of each class; nothing was written.")


def calibrate_site(loaded: LoadedModel, root: str | Path, name: str,
                   min_sensitivity: float = DEFAULT_MIN_SENSITIVITY,
                   progress: Callable[[int, int, str | None], None] | None = None,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """Score a site's labelled folder with the model and fit the site's operating point.

    Every film of ``root`` is used (all splits of a Kaggle-layout root). Films the model's
    out-of-scope guard refuses, and files that cannot be read, are counted and left out.
    Nothing is written: save the result with :func:`save_site`.

    Args:
        loaded: the model.
        root: a Kaggle-layout root or a folder with ``NORMAL`` and ``PNEUMONIA``.
        name: the site's name.
        min_sensitivity: see :func:`fit_site`.
        progress: called with (films scored, films in all, the film's status): once with
            ``(0, n, None)`` before scoring, then per film with its status (``"ok"``,
            ``"rejected"`` by the guard, ``"error"`` unreadable).
        resamples: bootstrap resamples.
        seed: the bootstrap's seed.

    Returns:
        The site file's record.

    Raises:
        SiteError: a bad name, one class only, or fewer than :data:`MIN_FILMS_PER_CLASS`
            films of a class (before or after leaving refused films out).
        ValueError: no films in ``root``, or ``min_sensitivity`` outside (0, 1).
        FileNotFoundError: ``root`` does not exist.
    """
    from pneumo.inference.predict import STATUS_OK, STATUS_REJECTED, Classifier

    check_name(name)
    if not 0 < min_sensitivity < 1:
        raise SiteError(f"The minimum sensitivity must be between 0 and 1, got {min_sensitivity}.")
    records = data.find_films(root)
    found = _class_counts(r.label for r in records)
    _check_counts(found, root)
    classifier = Classifier(loaded, subtype=None)  # the site fits P(pneumonia) only
    kept, probs, refused, unreadable = [], [], 0, 0
    if progress is not None:
        progress(0, len(records), None)
    for index, (record, item) in enumerate(zip(records, classifier.assess_many(
            (str(r.path), r.path) for r in records))):
        if item.status == STATUS_OK:
            kept.append(record)
            probs.append(item.p_pneumonia)
        elif item.status == STATUS_REJECTED:
            refused += 1
        else:
            unreadable += 1
        if progress is not None:
            progress(index + 1, len(records), item.status)
    used = _class_counts(r.label for r in kept)
    left_out = (f" after leaving out {refused} films the out-of-scope guard refused and {unreadable} "
                f"that could not be read (of {len(records)} found)")
    _check_counts(used, root, left_out if refused or unreadable else "")
    fitted = fit_site(data.labels_of(kept), np.asarray(probs), [r.patient for r in kept],
                      float(loaded.card["temperature"]), loaded.threshold, min_sensitivity, resamples, seed)
    return {
        "format": FORMAT_VERSION,
        "site": name,
        "model": loaded.name,
        "model_sha256": loaded.card["sha256"],
        "model_temperature": float(loaded.card["temperature"]),
        "model_threshold": loaded.threshold,
        "temperature": fitted["temperature"],
        "threshold": fitted["threshold"],
        "min_sensitivity": float(min_sensitivity),
        "threshold_rule": (BOUND_RULE if fitted["bound_met"] else OBSERVED_RULE),
        "bound_met": fitted["bound_met"],
        "films": {"found": found, "used": used, "refused_by_guard": refused, "unreadable": unreadable,
                  "guard_checked": classifier.guard is not None,
                  "patients": fitted["bootstrap"]["patients"]},
        "figures": fitted["figures"],
        "bootstrap": fitted["bootstrap"],
        "measured_on": "the site's films the temperature and threshold were fitted on (in-sample)",
        "data_manifest_sha256": data.manifest_sha256(records, root),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


BOUND_RULE = ("highest Youden index among thresholds whose 95% lower (Wilson) bound of sensitivity meets "
              "min_sensitivity (pneumo.stats.metrics.choose_threshold)")
OBSERVED_RULE = ("highest threshold whose observed sensitivity meets min_sensitivity: no threshold's 95% lower "
                 "(Wilson) bound could, with this few pneumonia films (pneumo.stats.metrics.choose_threshold)")


def format_summary(record: dict) -> str:
    """A site calibration's figures before and after, with their intervals, as a short table."""
    films, before, after = record["films"], record["figures"]["before"], record["figures"]["after"]
    used = films["used"]
    lines = [f"site {record['site']} for model {record['model']} (model file {record['model_sha256'][:12]}...)",
             f"{sum(used.values())} films used: " + ", ".join(f"{n} {k}" for k, n in used.items())
             + f"; {films['patients']} patients; {films['refused_by_guard']} refused by the out-of-scope "
               f"guard{'' if films.get('guard_checked', True) else ' (the model has none)'}, "
               f"{films['unreadable']} unreadable, left out",
             f"temperature {before['temperature']:.3f} -> {after['temperature']:.3f}; threshold "
             f"{before['threshold']:.4f} -> {after['threshold']:.4f} " + (
                 f"(chosen so that the lower 95% bound of sensitivity is at least {record['min_sensitivity']:g})"
                 if record.get("bound_met", True) else
                 f"(too few pneumonia films for the lower 95% bound of sensitivity to reach "
                 f"{record['min_sensitivity']:g} at any threshold, so chosen so that the observed sensitivity "
                 "is at least that; more pneumonia films give the margin)"), "",
             f"{'':<13}{'model operating point':>26}{'site calibration':>26}"]
    labels = {"roc_auc": "ROC AUC", "sensitivity": "sensitivity", "specificity": "specificity",
              "accuracy": "accuracy", "ece": "ECE"}
    for key in FIGURES:
        lines.append(f"{labels[key]:<13}{_with_interval(before[key]):>26}{_with_interval(after[key]):>26}")
    boot = record["bootstrap"]
    lines += ["", f"95% intervals: bootstrap over patients, {boot['resamples']} resamples. The site's "
                  "figures are measured on the films it was fitted on, so they are optimistic: check "
                  f"them on other films of the site with 'evaluate --site {record['site']}'."]
    return "\n".join(lines)


def _with_interval(figure: dict) -> str:
    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    return f"{fmt(figure['value'])} ({fmt(figure['low'])}-{fmt(figure['high'])})"

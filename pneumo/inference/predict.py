"""Applying a model: from a file (path or bytes) to a calibrated probability and a verdict.

The CLI and the app both go through :class:`Classifier`, so a film gets the same
number wherever it is shown. With a site calibration (:mod:`pneumo.inference.sites`) the
probabilities, labels and intervals follow the site's temperature and threshold.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np

from pneumo.guard.detector import Guard, ScopeVerdict
from pneumo.guard.features import feature_model, model_outputs
from pneumo.guard.header import check_header
from pneumo.guard.persist import load_guard
from pneumo.inference.export import P_PNEUMONIA, RUNTIMES, load_onnx, load_subtype_onnx
from pneumo.inference.sites import Site, SiteError, load_site
from pneumo.io import Film, FilmReadError, read_film
from pneumo.modeling.augment import AugmentConfig, make_augment
from pneumo.preprocess import to_model_input
from pneumo.store import LoadedModel, ModelStoreError, SubtypeModel, load_subtype

STATUS_OK, STATUS_REJECTED, STATUS_ERROR = "ok", "rejected", "error"

CSV_FIELDS = ("path", "status", "p_pneumonia", "label", "p_bacterial", "pattern", "message", "site")
"""The columns of ``python -m pneumo predict`` and of the app's CSV download, in order."""

REVIEW_EDGE = 0.5
"""The review band's other edge: where pneumonia becomes more likely than not."""


def label_at(p_pneumonia: float, threshold: float, classes: Sequence[str] = ("NORMAL", "PNEUMONIA")) -> str:
    """The class at the operating threshold: ``classes[1]`` (pneumonia) when ``p_pneumonia >= threshold``."""
    return classes[1] if p_pneumonia >= threshold else classes[0]


def review_band(threshold: float) -> tuple[float, float] | None:
    """The review band: P(pneumonia) between the operating threshold and 50%, as [low, high).

    Below both, a film reads "No pneumonia detected"; at or above both, "Pneumonia likely";
    in between, the label at the threshold and the odds disagree, so the film is to be
    reviewed. None when the threshold is exactly 50% (no band).
    """
    low, high = sorted((float(threshold), REVIEW_EDGE))
    return (low, high) if low < high else None


def in_review_band(p_pneumonia: float, threshold: float) -> bool:
    """Whether P(pneumonia) lies in the :func:`review_band` of this threshold."""
    band = review_band(threshold)
    return band is not None and band[0] <= p_pneumonia < band[1]


# Mild changes a film could plausibly show from one exposure to the next; the spread
# of the model's answer over them is the uncertainty interval shown beside it.
TTA_CONFIG = AugmentConfig(rotation_deg=5.0, shear=0.04, zoom=0.06, shift=0.04, brightness=0.05,
                           contrast=0.12, gamma=0.12, noise=0.0, border_erase=0.0)
TTA_SAMPLES = 16
TTA_SEED = (20181122, 7)


@dataclass(frozen=True)
class Assessment:
    """What the product says about one file.

    ``film`` is kept in memory for display and explanation; it is never written anywhere.
    A ``rejected`` film (out of scope) has no label, its reason in ``message`` and in
    ``out_of_scope_reason``; when the image guard refused it, its ``p_pneumonia`` is still
    computed, for an expert's "show anyway", but never written to the CSV row. A film its
    DICOM header puts outside the intended use (:mod:`pneumo.guard.header`) is refused
    before the model runs: no ``p_pneumonia`` at all. ``warnings`` are sentences to show
    beside a result (an age outside the trained range); they lead ``message`` too.

    ``p_bacterial`` (P(bacterial | pneumonia), calibrated) and ``pattern`` (``"bacterial"`` or
    ``"viral"``) are set exactly when the film is ``ok``, its label is pneumonia (review band
    included) and the model has a subtype model; otherwise None and "".
    """

    source: str
    status: str
    p_pneumonia: float | None = None
    label: str | None = None
    message: str = ""
    film: Film | None = None
    out_of_scope_reason: str = ""
    scope_checked: bool = False  # False when the model has no guard (nothing was checked)
    site: str = ""  # the site calibration in effect, "" for the model's own operating point
    warnings: tuple[str, ...] = ()
    p_bacterial: float | None = None
    pattern: str = ""

    def row(self) -> dict:
        """The CSV row (:data:`CSV_FIELDS`): p_pneumonia for ``ok`` rows only, p_bacterial with a pattern only."""
        shown = self.status == STATUS_OK and self.p_pneumonia is not None
        return {"path": self.source, "status": self.status,
                "p_pneumonia": f"{self.p_pneumonia:.4f}" if shown else "",
                "label": self.label or "",
                "p_bacterial": f"{self.p_bacterial:.4f}" if self.pattern and self.p_bacterial is not None else "",
                "pattern": self.pattern, "message": self.message, "site": self.site}


def write_csv(handle: TextIO, assessments: Iterable[Assessment]) -> None:
    """Write assessments to an open text file as CSV (:data:`CSV_FIELDS`), flushing after each row.

    The header comes first; each row is :meth:`Assessment.row`, written as soon as its
    assessment arrives, so a long batch can be followed as it goes.
    """
    writer = csv.DictWriter(handle, fieldnames=list(CSV_FIELDS))
    writer.writeheader()
    for assessment in assessments:
        writer.writerow(assessment.row())
        handle.flush()


USE_STORED_GUARD = "stored"
USE_STORED_SUBTYPE = "stored"


def compiled(model, size: int):
    """``model`` as one traced TensorFlow graph for inputs (n, size, size, 1), inference mode.

    Called eagerly, Keras runs a model layer by layer from Python; an ensemble has five
    times the layers, and for a single film that dispatch, not the arithmetic, is most
    of the time. One trace serves every batch size.
    """
    import tensorflow as tf

    # autograph=False: nothing to convert, and autograph would write its converted source to a temp file.
    @tf.function(input_signature=[tf.TensorSpec((None, size, size, 1), tf.float32)], autograph=False)
    def call(inputs):
        return model(inputs, training=False)

    return lambda inputs, training=False: call(tf.convert_to_tensor(np.asarray(inputs, dtype=np.float32)))


class Classifier:
    """A loaded model with its card: films in, calibrated probabilities out.

    With a guard (by default the one stored beside the model, see
    :func:`pneumo.guard.persist.load_guard`), films out of scope come back ``rejected`` with
    the reason; ``guard`` is None when the model has none or ``guard=None`` is given.

    With a ``site`` (a :class:`pneumo.inference.sites.Site` or a site's name), every probability is
    the site's, ``sigmoid(T_model * logit(p) / T_site)``, and labels use the site's
    threshold; without one the model's own operating point applies.

    With a subtype model (by default the one stored beside the model, see
    :func:`pneumo.store.load_subtype`; ``subtype=None`` for none), every ``ok`` film labelled
    pneumonia (review band included) also gets ``p_bacterial`` and ``pattern``; the subtype
    model runs on those films only, and a site calibration does not change it. A subtype
    file that fails its check leaves ``subtype`` None and its one-sentence reason in
    ``subtype_error``: films are still read, without a pattern, and whoever shows the results
    says so.

    ``runtime`` is what runs the models: ``"keras"`` (traced TensorFlow graphs) or ``"onnx"``
    (ONNX Runtime sessions on ``model.onnx`` and ``subtype.onnx``, written by ``python -m pneumo
    export --format onnx`` and checked against the card). Either way the guard, the site
    calibration and the subtype read the same outputs; the Keras model stays loaded for
    Grad-CAM and the uncertainty interval, unless ``loaded`` came from ``store.load(...,
    keras_model=False)`` (a batch worker that only scores). Under ONNX a subtype model without
    its ONNX file is left out as a failing subtype file is, its reason in ``subtype_error``.

    Raises:
        SiteError: an unknown site, or a site calibrated for another model file.
        ModelStoreError: ``runtime="onnx"`` and ``model.onnx`` is missing, altered or stale.
        ValueError: an unknown runtime.
    """

    def __init__(self, loaded: LoadedModel, guard: Guard | None | str = USE_STORED_GUARD,
                 site: Site | str | None = None, subtype: SubtypeModel | None | str = USE_STORED_SUBTYPE,
                 runtime: str = "keras"):
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; choose from {list(RUNTIMES)}")
        if runtime == "keras" and loaded.model is None:
            raise ValueError(f"model {loaded.name!r} was loaded without its Keras network (for ONNX Runtime "
                             "only); load it with store.load(name) for the Keras runtime")
        self.runtime = runtime
        self.loaded = loaded
        self.model = loaded.model
        self.size = loaded.input_size
        self.site = load_site(loaded, site) if isinstance(site, str) and site else (site or None)
        if self.site is not None and self.site.model_sha256 != loaded.card.get("sha256"):
            raise SiteError(f"Site {self.site.name!r} was calibrated for another model file than "
                            f"model {loaded.name!r}'s.")
        self.threshold = self.site.threshold if self.site is not None else loaded.threshold
        self.classes = loaded.classes
        # Everything is built here: one Classifier is shared by every session and never changes.
        self._tta = make_augment(TTA_CONFIG)
        self.guard = load_guard(loaded) if guard == USE_STORED_GUARD else guard
        if runtime == "onnx":
            graph = load_onnx(loaded)  # one session: (P(pneumonia), pooled features) in one pass
            self._call = graph.only(P_PNEUMONIA)
            self._two_headed = graph if self.guard is not None else None
        else:
            self._call = compiled(self.model, self.size)
            self._two_headed = compiled(feature_model(self.model), self.size) if self.guard is not None else None
        self.subtype_error = ""
        if subtype == USE_STORED_SUBTYPE:
            try:
                subtype = load_subtype(loaded)
            except ModelStoreError as err:
                subtype, self.subtype_error = None, str(err)
        self._subtype_call = None
        if subtype is not None and runtime == "onnx":
            try:
                self._subtype_call = load_subtype_onnx(loaded, subtype)
            except ModelStoreError as err:
                subtype, self.subtype_error = None, str(err)
        elif subtype is not None:
            self._subtype_call = compiled(subtype.model, self.size)
        self.subtype = subtype

    def predict_inputs(self, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """P(pneumonia) for model inputs (n, size, size, 1) in 0-255; returns (n,) float."""
        return self._at_site(self._in_batches(self._call, inputs, batch_size))

    def predict_subtype_inputs(self, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """P(bacterial | pneumonia) for model inputs (n, size, size, 1) in 0-255; returns (n,) float.

        Raises:
            ValueError: the classifier has no subtype model, or the inputs have another shape.
        """
        if self._subtype_call is None:
            raise ValueError(self.subtype_error or f"model {self.loaded.name!r} has no subtype model "
                             "(its card has no subtype section; see 'train-subtype').")
        return self._in_batches(self._subtype_call, inputs, batch_size)

    def _in_batches(self, call, inputs: np.ndarray, batch_size: int) -> np.ndarray:
        """A traced model's single output over inputs (n, size, size, 1), batch by batch; (n,) float64."""
        inputs = np.asarray(inputs, dtype=np.float32)
        if inputs.ndim != 4 or inputs.shape[1:] != (self.size, self.size, 1):
            raise ValueError(f"inputs must have shape (n, {self.size}, {self.size}, 1), "
                             f"got {inputs.shape}")
        out = [np.asarray(call(inputs[i:i + batch_size]))[:, 0] for i in range(0, len(inputs), batch_size)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    @property
    def site_name(self) -> str:
        """The active site's name, "" for the model's own operating point."""
        return self.site.name if self.site is not None else ""

    def _at_site(self, probs: np.ndarray) -> np.ndarray:
        """The model's probabilities, or the site's when a site is active."""
        if self.site is None:
            return probs
        return self.site.probabilities(probs, float(self.loaded.card["temperature"]))

    def predict_film(self, film: Film) -> float:
        """Calibrated P(pneumonia) for one decoded film."""
        return float(self.predict_inputs(to_model_input(film, self.size)[np.newaxis])[0])

    def label_for(self, p_pneumonia: float) -> str:
        """The class at the operating threshold (the site's when one is active)."""
        return label_at(p_pneumonia, self.threshold, self.classes)

    def uncertainty(self, film: Film, samples: int = TTA_SAMPLES) -> tuple[float, float]:
        """The 10th to 90th percentile of P(pneumonia) under mild test-time changes."""
        import tensorflow as tf

        base = to_model_input(film, self.size)
        batch = np.repeat(base[np.newaxis], samples, axis=0)
        varied = self._tta(tf.constant(batch), tf.constant(TTA_SEED, dtype=tf.int64)).numpy()
        probs = self.predict_inputs(varied)
        low, high = np.percentile(probs, [10, 90])
        return float(low), float(high)

    def assess(self, source: str | Path | bytes, name: str | None = None) -> Assessment:
        """Read and judge one file; a bad file becomes an ``error`` assessment, never an exception."""
        return next(iter(self.assess_many([(name or str(source), source)])))

    def assess_many(self, items: Iterable[tuple[str, str | Path | bytes]],
                    batch_size: int = 32) -> Iterator[Assessment]:
        """Judge (name, source) pairs in order, predicting in batches; one bad file never stops the rest."""
        pending: list[tuple[str, Film]] = []
        for name, source in items:
            try:
                film = read_film(source)
            except FilmReadError as err:
                yield from self._flush(pending)
                pending = []
                header = check_header(err.header)
                # A header that says what the file is outside the intended use is believed even
                # when its pixels cannot be read (a CT dose grid, an undecodable ultrasound).
                status, message = (STATUS_REJECTED, header.reason) if header.refused else (STATUS_ERROR, str(err))
                yield Assessment(source=name, status=status, message=message, site=self.site_name,
                                 out_of_scope_reason=header.reason, scope_checked=header.refused)
                continue
            header = check_header(film.header)
            if header.refused:  # the header said what the film is: no model runs
                yield from self._flush(pending)
                pending = []
                yield Assessment(source=name, status=STATUS_REJECTED, message=header.reason, film=film,
                                 out_of_scope_reason=header.reason, scope_checked=True, site=self.site_name)
                continue
            pending.append((name, film))
            if len(pending) >= batch_size:
                yield from self._flush(pending)
                pending = []
        yield from self._flush(pending)

    def check_scope(self, films: Sequence[Film]) -> list[ScopeVerdict] | None:
        """The guard's verdicts for decoded films, or None when there is no guard."""
        if self.guard is None or not films:
            return None if self.guard is None else []
        inputs = np.stack([to_model_input(film, self.size) for film in films])
        return self._judge(inputs, films)[1]

    def _judge(self, inputs: np.ndarray, films: Sequence[Film]) -> tuple[np.ndarray, list[ScopeVerdict | None]]:
        """P(pneumonia) and the guard's verdicts for model inputs, in one pass of the model."""
        if self.guard is None:
            return self.predict_inputs(inputs), [None] * len(films)
        probs, pooled = model_outputs(self._two_headed, inputs)
        return self._at_site(probs), self.guard.judge(inputs, pooled, films)

    def _flush(self, pending: Sequence[tuple[str, Film]]) -> Iterator[Assessment]:
        if not pending:
            return
        inputs = np.stack([to_model_input(film, self.size) for _, film in pending])
        probs, verdicts = self._judge(inputs, [film for _, film in pending])
        assessments = [self._assessment(name, film, float(p), verdict)
                       for (name, film), p, verdict in zip(pending, probs, verdicts)]
        yield from self._with_pattern(assessments, inputs)

    def _with_pattern(self, assessments: list[Assessment], inputs: np.ndarray) -> list[Assessment]:
        """The assessments, those read as pneumonia with ``p_bacterial`` and ``pattern`` (one subtype pass)."""
        if self.subtype is None:
            return assessments
        chosen = [i for i, a in enumerate(assessments) if a.status == STATUS_OK and a.label == self.classes[1]]
        if not chosen:
            return assessments
        for i, p in zip(chosen, self.predict_subtype_inputs(inputs[chosen])):
            assessments[i] = replace(assessments[i], p_bacterial=float(p),
                                     pattern=self.subtype.pattern_for(float(p)))
        return assessments

    def _assessment(self, name: str, film: Film, p: float, verdict: ScopeVerdict | None) -> Assessment:
        warnings = check_header(film.header).warnings
        if verdict is not None and verdict.warning:
            warnings += (verdict.warning,)
        notes = " ".join((*warnings, *film.notes))
        if verdict is not None and not verdict.in_scope:
            message = f"{verdict.reason} {notes}".strip()
            return Assessment(source=name, status=STATUS_REJECTED, p_pneumonia=p, message=message,
                              film=film, out_of_scope_reason=verdict.reason, scope_checked=True,
                              site=self.site_name, warnings=warnings)
        return Assessment(source=name, status=STATUS_OK, p_pneumonia=p, label=self.label_for(p),
                          message=notes, film=film, scope_checked=verdict is not None, site=self.site_name,
                          warnings=warnings)

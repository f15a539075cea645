"""Caches and session memory of the app.

Process-wide (shared by every session, so never mutated): the loaded model, its
:class:`~pneumo.inference.predict.Classifier` (one per model and site calibration) and
:class:`~pneumo.inference.explain.Explainer` (``st.cache_resource``), and data derived from
cards, profiles and data folders (``st.cache_data``).

The active site calibration is chosen per session in the sidebar and kept by name in
``st.session_state``; without one, the model's own operating point applies.

The worklist's folder and audit log come from the environment (:func:`worklist_dir`).

Per session: what was computed for each uploaded film (assessment, interval, maps)
lives in ``st.session_state`` only, keyed by the upload's id, so an uploaded film
never enters a cache another session could reach and is dropped with the session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import streamlit as st

from app_pages import widgets
from pneumo import data, examples, store
from pneumo.evaluation import profile
from pneumo.evaluation.faithfulness_results import read_explanations
from pneumo.inference import sites
from pneumo.inference.explain import Explainer
from pneumo.inference.predict import Assessment, Classifier
from pneumo.inference.sites import Site, SiteError
from pneumo.io import Film
from pneumo.pacs.audit import AUDIT_FILE, AuditLog
from pneumo.preprocess import to_model_input
from pneumo.render import demo, model_card
from pneumo.stats import metrics
from pneumo.store import LoadedModel, ModelStoreError, SubtypeModel

WORKLIST_ENV, AUDIT_ENV = "PNEUMO_WORKLIST", "PNEUMO_AUDIT_LOG"
"""Environment: the listener's work dir the worklist reads, and the audit log's file."""

MODEL_KEY = "model_name"
"""Session state: the model chosen on the model page, used by every page."""

SITE_KEY = "site_name"
"""Session state: the site calibration chosen in the sidebar ("" for none), used by every page."""

MEMO_KEY = "_film_memo"
PROGRESS_STEPS = 50


class ModelRef(NamedTuple):
    """Which model: its name, its store folder and its files' sha256 (a new model or subtype file is a new key)."""

    name: str
    store: str
    sha256: str

    @property
    def model_sha256(self) -> str:
        """The model file's sha256 alone (``sha256`` adds the subtype file's after a ``+``)."""
        return self.sha256.split("+")[0]


def model_names() -> list[str]:
    """Names of the models in the store in effect."""
    return store.list_models()


def current_ref() -> ModelRef:
    """The model this session uses: the one chosen on the model page, else the store's default.

    Raises:
        ModelStoreError: no usable model in the store.
    """
    chosen = st.session_state.get(MODEL_KEY)
    name = chosen if chosen in store.list_models() else store.default_model_name()
    card = store.read_card(name)
    subtype = (card.get("subtype") or {}).get("sha256")
    return ModelRef(name, str(store.store_dir()), str(card.get("sha256", "")) + (f"+{subtype}" if subtype else ""))


def choose_model(name: str) -> None:
    """Make ``name`` the model of every page for this session."""
    st.session_state[MODEL_KEY] = name


class SiteRef(NamedTuple):
    """Which site calibration: its name and its file's sha256 (both "" for none; a new file is a new key)."""

    name: str
    digest: str


NO_SITE = SiteRef("", "")


def site_names(loaded: LoadedModel) -> list[str]:
    """The sites calibrated for this model file."""
    return sites.list_sites(loaded)


def chosen_site_name() -> str:
    """The site this session picked in the sidebar ("" for none), whether or not the model has it."""
    return st.session_state.get(SITE_KEY) or ""


def choose_site(name: str) -> None:
    """Make ``name`` ("" for none) the site calibration of every page for this session."""
    st.session_state[SITE_KEY] = name or ""


def active_site(loaded: LoadedModel) -> Site | None:
    """The site calibration this session uses with this model, or None.

    A chosen name the model has no usable site file for (another model is in use, the
    file was removed or made for another model file) means none.
    """
    chosen = chosen_site_name()
    if not chosen:
        return None
    try:
        return sites.load_site(loaded, chosen)
    except SiteError:
        return None


def site_ref(site: Site | None) -> SiteRef:
    """The cache key of a site calibration (:data:`NO_SITE` for none)."""
    return NO_SITE if site is None else SiteRef(site.name, site.digest)


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def load_model(name: str, store_path: str, sha256: str) -> LoadedModel:
    """The verified model (once per process and model file); ``sha256`` keys the cache only."""
    return store.load(name, store_path)


@st.cache_resource(show_spinner="Warming up the model...", max_entries=8)
def load_classifier(name: str, store_path: str, sha256: str, site: str = "",
                    site_digest: str = "") -> Classifier:
    """The model's Classifier with a site calibration ("" for none), warmed up for the first upload.

    ``site_digest`` (the site file's sha256) keys the cache only, so a recalibrated site is loaded anew.
    """
    loaded = load_model(name, store_path, sha256)
    classifier = Classifier(loaded, site=sites.load_site(loaded, site) if site else None)
    warm_film = data.synthetic_film(classifier.size)
    classifier.predict_film(warm_film)
    classifier.check_scope([warm_film])  # the two-headed pass and the guard, which every film takes
    classifier.uncertainty(warm_film)
    return classifier


@st.cache_resource(show_spinner="Preparing the explanations...", max_entries=8)
def load_explainer(name: str, store_path: str, sha256: str, target: str = "pneumonia",
                   subtype_sha256: str = "", _subtype: SubtypeModel | None = None) -> Explainer:
    """The model's Explainer for one target (it clones the network, so it is built once per model and target), warmed up.

    For ``target="subtype"``, ``_subtype`` is the loaded subtype model (the classifier's, not
    hashed) and ``subtype_sha256`` its file's digest, which keys the cache so a retrained
    subtype model is explained anew.
    """
    loaded = load_model(name, store_path, sha256)
    explainer = Explainer(loaded, target, _subtype) if target == "subtype" else Explainer(loaded)
    warm_input = to_model_input(data.synthetic_film(loaded.input_size), loaded.input_size)
    explainer.heatmap(warm_input, "gradcam")
    return explainer


def worklist_dir() -> str:
    """The listener's work dir the worklist page reads (``PNEUMO_WORKLIST``), "" when none is set."""
    return os.environ.get(WORKLIST_ENV, "").strip()


def audit_log(folder: str) -> AuditLog:
    """The audit log: ``PNEUMO_AUDIT_LOG`` when set, else ``audit.jsonl`` in the worklist's folder."""
    return AuditLog(os.environ.get(AUDIT_ENV, "").strip() or Path(folder) / AUDIT_FILE)


def require_model() -> LoadedModel:
    """The session's loaded model; stops the page when there is none.

    The frame (app.py) has already said what is wrong and what to do, so the page
    simply ends.
    """
    try:
        return load_model(*current_ref())
    except ModelStoreError:
        st.stop()
        raise  # unreachable: st.stop() ends the run


def optional_model() -> LoadedModel | None:
    """The session's loaded model, or None when the store has none usable."""
    try:
        return load_model(*current_ref())
    except ModelStoreError:
        return None


# -- model card data ----------------------------------------------------------------------------

@st.cache_data(show_spinner=False, max_entries=8)
def stored_profile(name: str, store_path: str, sha256: str) -> dict | None:
    """The training-data profile kept beside the model, or None."""
    return store.read_profile(name, store_path)


def _validation(name: str, store_path: str, part: str) -> dict:
    card = store.read_card(name, store_path)
    if part == "subtype":
        return model_card.subtype_validation(card["subtype"])
    return card["validation"]


@st.cache_data(show_spinner=False, max_entries=8)
def threshold_sweep(name: str, store_path: str, sha256: str, part: str = "pneumonia") -> dict:
    """Validation figures at thresholds 0, 0.01, ... 1 for the model's card (``part="subtype"``: its subtype model's)."""
    return metrics.threshold_sweep(_validation(name, store_path, part))


@st.cache_data(show_spinner=False, max_entries=64)
def validation_at(name: str, store_path: str, sha256: str, threshold: float, part: str = "pneumonia") -> dict:
    """Validation figures of the model's card at one threshold (``part="subtype"``: its subtype model's)."""
    return metrics.validation_at_threshold(_validation(name, store_path, part), threshold)


@st.cache_data(show_spinner=False, max_entries=8)
def out_of_fold(name: str, store_path: str, sha256: str) -> dict[str, float]:
    """Each training film's out-of-fold P(pneumonia) from the model's card, by its path under the data root."""
    return demo.out_of_fold_probabilities(store.read_card(name, store_path))


@st.cache_data(show_spinner=False, max_entries=8)
def explanations(name: str, store_path: str, sha256: str) -> dict | None:
    """The model's stored faithfulness results (``explanations.json``), read once per model file."""
    return read_explanations(Path(store_path) / name, ModelRef(name, store_path, sha256).model_sha256)


# -- example films ------------------------------------------------------------------------------

@st.cache_data(show_spinner=False)
def example_films() -> list[examples.Example]:
    """The example films shipped in docs/examples/ ([] when the folder or its list is missing or broken)."""
    try:
        return examples.load_examples()
    except examples.ExamplesError:
        return []


# -- data profiles ------------------------------------------------------------------------------

def _progress_reporter() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress bar drawn inside the cached function (so a cache hit can replay it) and its remover."""
    return widgets.progress_ui("Reading films...", "Read {done:,} of {total:,} films", PROGRESS_STEPS)


@st.cache_data(show_spinner=False, max_entries=8)
def profile_folder(root: str, signature: str) -> dict:
    """The profile of a data folder; ``signature`` (pneumo.evaluation.profile.folder_signature) keys the cache."""
    report, done = _progress_reporter()
    try:
        return profile.profile_folder(root, progress=report)
    finally:
        done()


@st.cache_data(show_spinner=False, max_entries=4)
def profile_zip(archive: bytes) -> dict:
    """The profile of a Kaggle-layout ZIP archive, read in memory."""
    report, done = _progress_reporter()
    try:
        return profile.profile_zip(archive, progress=report)
    finally:
        done()


@st.cache_data(show_spinner="Reading sample films...", max_entries=8)
def gallery(root: str, signature: str, per_class: int = 6) -> dict[str, list[tuple[str, np.ndarray]]]:
    """A few films per class of a data folder, as the model would see them."""
    records = data.find_films(root)
    sample = profile.sample_records(records, per_class)
    return {name: profile.thumbnails(picked) for name, picked in sample.items()}


# -- per-session memory of uploaded films -------------------------------------------------------

def _memo() -> dict:
    return st.session_state.setdefault(MEMO_KEY, {})


def forget_other_films(ref: ModelRef, file_ids: Sequence[str]) -> None:
    """Drop what was computed for films no longer uploaded (or for another model)."""
    keep = set(file_ids)
    memo = _memo()
    for key in [k for k in memo if k[1] != ref or k[2] not in keep]:
        del memo[key]


class ServerFilm(NamedTuple):
    """A film the demo page reads from a folder on the server or a ZIP upload, shaped like an upload.

    ``source`` is the file's path (read by the classifier, with its own sentence when it cannot
    be) or, for a ZIP member, its bytes; ``file_id`` keys the session's memory.
    """

    name: str
    file_id: str
    source: Path | bytes

    @classmethod
    def of_path(cls, name: str, path: Path) -> ServerFilm:
        """A film on the server; its id changes with its size and time of change, so a new file is read anew."""
        try:
            stat = path.stat()
            version = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            version = "unreadable"
        return cls(name, f"server:{path}:{version}", path)

    def getvalue(self) -> Path | bytes:
        return self.source


def assess_uploads(classifier: Classifier, ref: ModelRef, files: Sequence,
                   on_progress: Callable[[int, int], None] | None = None) -> list[Assessment]:
    """Assess uploaded files, in order, once per session and site calibration.

    ``files`` are Streamlit UploadedFile objects, example films or :class:`ServerFilm`: anything
    with ``name``, ``file_id`` and ``getvalue()`` (bytes, or a server path). Each goes to
    :meth:`Classifier.assess_many` as a (name, bytes or path) pair: nothing is written to disk.
    """
    memo, site = _memo(), site_ref(classifier.site)
    new = [f for f in files if ("assessment", ref, f.file_id, site) not in memo]
    if new:
        pairs = ((f.name, f.getvalue()) for f in new)
        for index, (upload, assessment) in enumerate(zip(new, classifier.assess_many(pairs))):
            memo[("assessment", ref, upload.file_id, site)] = assessment
            if on_progress is not None:
                on_progress(index + 1, len(new))
    return [memo[("assessment", ref, f.file_id, site)] for f in files]


def interval_for(classifier: Classifier, ref: ModelRef, file_id: str, film: Film) -> tuple[float, float]:
    """The TTA 10-90% interval of a film's P(pneumonia), computed once per session."""
    memo = _memo()
    key = ("interval", ref, file_id, site_ref(classifier.site))
    if key not in memo:
        memo[key] = classifier.uncertainty(film)
    return memo[key]


def explainer_for(classifier: Classifier, ref: ModelRef, target: str = "pneumonia") -> Explainer:
    """The cached Explainer of a target: ``"pneumonia"``, or ``"subtype"`` on the classifier's subtype model.

    Raises:
        ValueError: ``"subtype"`` for a classifier without a subtype model.
    """
    if target != "subtype":
        return load_explainer(*ref)
    if classifier.subtype is None:
        raise ValueError(f"model {ref.name!r} has no subtype model to explain")
    subtype = classifier.subtype
    return load_explainer(*ref, "subtype", str(subtype.section.get("sha256", "")), _subtype=subtype)


def heatmap_for(explainer: Explainer, ref: ModelRef, file_id: str, film: Film, method: str) -> np.ndarray:
    """A film's map with one method towards the explainer's target (pneumonia, or a bacterial pattern), once per session."""
    memo = _memo()
    key = ("heatmap", ref, file_id, method, explainer.target)
    if key not in memo:
        memo[key] = explainer.heatmap(to_model_input(film, explainer.size), method)
    return memo[key]

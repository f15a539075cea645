"""The stored model in other runtimes' formats: ONNX (ONNX Runtime) and a TensorFlow SavedModel (TF Serving).

``model.onnx`` is one graph with the two outputs :class:`~pneumo.inference.predict.Classifier`
reads in one pass: ``p_pneumonia`` (calibrated, (n, 1)) and ``pooled`` (the features the
out-of-scope guard reads, (n, D)); with a subtype model, ``subtype.onnx`` gives ``p_bacterial``
((n, 1)). The card's ``onnx`` section records each file's sha256 and the sha256 of the
``.keras`` file it was converted from; :func:`load_onnx` checks both before a session is
opened, so a stale or altered file never runs.

The SavedModel's ``serving_default`` signature takes ``film`` (n, S, S, 1) float32 in 0-255 and
returns ``p_pneumonia`` (n,) and, with a subtype model, ``p_bacterial`` (n,); it is written to
``<model>/serving/1`` by default, the version folder TF Serving expects. Every export is checked
against Keras on a few synthetic films before it replaces anything.

This module lives in ``inference`` rather than ``modeling`` because the two-output graph is the
guard's :func:`~pneumo.guard.features.feature_model`, and the guard's layer sits above modeling.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pneumo.data import synthetic_film
from pneumo.guard.features import feature_model
from pneumo.preprocess import to_model_input
from pneumo.store import (
    MODEL_FILE,
    LoadedModel,
    ModelStoreError,
    SubtypeModel,
    file_sha256,
    read_card,
    write_atomically,
    write_card,
)

RUNTIMES = ("keras", "onnx")
"""What runs a :class:`~pneumo.inference.predict.Classifier`'s model: Keras (TensorFlow) or ONNX Runtime."""
FORMATS = ("onnx", "saved-model")
"""What ``python -m pneumo export --format`` writes."""
CARD_KEYS = {"onnx": "onnx", "saved-model": "saved_model"}
"""The card section each format's export is recorded in."""

ONNX_FILE = "model.onnx"
SUBTYPE_ONNX_FILE = "subtype.onnx"
SERVING_FOLDER = ("serving", "1")  # TF Serving's base path, then the version folder
ONNX_OPSET = 17
INPUT = "film"
P_PNEUMONIA, POOLED, P_BACTERIAL = "p_pneumonia", "pooled", "p_bacterial"
SIGNATURE = "serving_default"
TOLERANCE = 1e-4
"""The largest difference from Keras an export may show on its check films, relative to the output's scale."""
CHECK_FILMS = 4


def onnx_hint(name: str) -> str:
    """What to run to (re)write a model's ONNX files."""
    return f"run 'python -m pneumo export --format onnx --model {name}'"


THREADS_VARIABLE = "PNEUMO_CPU_THREADS"
"""Set by a worker of a pool (a Ray actor holding one CPU) to the threads its sessions may use."""


def cpu_cores() -> int:
    """The cores this process may run on (its CPU affinity, or :data:`THREADS_VARIABLE` when set)."""
    if os.environ.get(THREADS_VARIABLE, "").isdigit():
        return max(1, int(os.environ[THREADS_VARIABLE]))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def default_folder(model_folder: str | Path, fmt: str) -> Path:
    """Where ``fmt`` is written by default: the model's own folder (onnx) or ``serving/1`` in it."""
    model_folder = Path(model_folder)
    return model_folder if fmt == "onnx" else model_folder.joinpath(*SERVING_FOLDER)


# ---------------------------------------------------------------- ONNX


class OnnxCall:
    """An ONNX Runtime session called as a traced Keras model is: ``call(inputs, training=False)``.

    Args:
        session: an ``onnxruntime.InferenceSession`` with the input ``film``.
        outputs: the output names to return; one name returns that array, several a tuple in order.
    """

    def __init__(self, session, outputs: Sequence[str]):
        self.session = session
        self.outputs = tuple(outputs)

    def __call__(self, inputs, training: bool = False):
        # ``training`` is accepted for the calling contract only: the graph is inference-only.
        out = self.session.run(list(self.outputs), {INPUT: np.ascontiguousarray(inputs, dtype=np.float32)})
        return out[0] if len(out) == 1 else tuple(out)

    def only(self, *outputs: str) -> OnnxCall:
        """The same session returning only ``outputs``."""
        return OnnxCall(self.session, outputs)


def open_session(source: bytes | str | Path):
    """An ONNX Runtime session on the CPU for a model file or its bytes, one thread per available core."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_cores()
    # Idle worker threads would otherwise spin after each call and take the cores from TensorFlow
    # (Grad-CAM, the uncertainty interval), which runs in the same process.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    model = source if isinstance(source, bytes) else str(source)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _film_spec(size: int):
    import tensorflow as tf

    return tf.TensorSpec((None, size, size, 1), tf.float32, name=INPUT)


def _to_onnx(outputs, size: int) -> bytes:
    """``outputs`` (film -> {name: tensor}) as a serialised ONNX graph with the input ``film``."""
    import tensorflow as tf
    import tf2onnx

    function = tf.function(outputs, input_signature=[_film_spec(size)], autograph=False)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=[_film_spec(size)], opset=ONNX_OPSET)
    return proto.SerializeToString()


def check_films(size: int) -> np.ndarray:
    """The synthetic films every export is compared with Keras on: (4, size, size, 1) in 0-255."""
    return np.stack([to_model_input(synthetic_film(size=size, seed=seed), size) for seed in range(CHECK_FILMS)])


def _differences(got: dict, expected: dict, what: str) -> dict:
    """Max absolute differences by output; raises when one is beyond :data:`TOLERANCE` of its scale."""
    differences = {}
    for name, want in expected.items():
        want = np.asarray(want, dtype=np.float64).reshape(len(want), -1)
        have = np.asarray(got[name], dtype=np.float64).reshape(want.shape)
        differences[name] = float(np.abs(have - want).max())
        if differences[name] > TOLERANCE * max(1.0, float(np.abs(want).max())):
            raise ModelStoreError(f"The {what} differs from Keras by {differences[name]:.2g} in {name} on the "
                                  "check films; nothing was written.")
    return differences


def _convert(model_outputs, expected: dict, size: int, what: str) -> tuple[bytes, dict]:
    """The ONNX bytes of ``model_outputs`` and their differences from Keras's ``expected`` outputs."""
    graph = _to_onnx(model_outputs, size)
    session = open_session(graph)
    got = dict(zip(expected, session.run(list(expected), {INPUT: check_films(size)})))
    return graph, _differences(got, expected, what)


def _folder_entry(model_folder: Path, folder: Path) -> str:
    """``folder`` as the card records it: relative to the model's folder when inside it, else absolute."""
    folder, model_folder = folder.resolve(), model_folder.resolve()
    return str(folder.relative_to(model_folder)) if folder.is_relative_to(model_folder) else str(folder)


def _versions(*modules: str) -> dict:
    """The ``__version__`` of each module (a distribution's name can differ: tensorflow-cpu)."""
    import importlib

    return {name: importlib.import_module(name).__version__ for name in modules}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_onnx(loaded: LoadedModel, subtype: SubtypeModel | None, folder: str | Path | None = None) -> dict:
    """Convert a stored model (and its subtype model) to ONNX and write the files atomically.

    Each graph is checked against Keras on :func:`check_films` before its file is written.
    The card is not changed here (see :func:`record_export`).

    Args:
        loaded: the verified model (:func:`pneumo.store.load`).
        subtype: its subtype model (:func:`pneumo.store.load_subtype`), or None.
        folder: where ``model.onnx`` (and ``subtype.onnx``) go; default the model's own folder.

    Returns:
        The card's ``onnx`` section: folder, file, sha256, source sha256, opset, versions,
        outputs, differences from Keras, and a ``subtype`` section when there is one.

    Raises:
        ModelStoreError: a conversion that differs from Keras beyond :data:`TOLERANCE`.
    """
    folder = Path(folder) if folder is not None else loaded.path
    size, films = loaded.input_size, check_films(loaded.input_size)
    two_headed = feature_model(loaded.model)
    expected = dict(zip((P_PNEUMONIA, POOLED), two_headed(films, training=False)))
    graph, differences = _convert(lambda film: dict(zip((P_PNEUMONIA, POOLED), two_headed(film, training=False))),
                                  expected, size, f"ONNX graph of model {loaded.name!r}")
    parts = {}
    if subtype is not None:
        expected_subtype = {P_BACTERIAL: subtype.model(films, training=False)}
        subtype_graph, subtype_differences = _convert(
            lambda film: {P_BACTERIAL: subtype.model(film, training=False)}, expected_subtype, size,
            f"ONNX graph of model {loaded.name!r}'s subtype model")
        parts[SUBTYPE_ONNX_FILE] = subtype_graph
    parts[ONNX_FILE] = graph  # written last: a crash between the two leaves the main file as it was
    folder.mkdir(parents=True, exist_ok=True)
    for file, data in parts.items():
        write_atomically(folder / file, data)
    section = {
        "folder": _folder_entry(loaded.path, folder), "file": ONNX_FILE, "sha256": file_sha256(folder / ONNX_FILE),
        "source": MODEL_FILE, "source_sha256": loaded.card["sha256"],
        "opset": ONNX_OPSET, **_versions("tf2onnx", "onnx", "onnxruntime"),
        "input": {"name": INPUT, "shape": [None, size, size, 1], "dtype": "float32", "range": [0, 255]},
        "outputs": {P_PNEUMONIA: [None, 1], POOLED: [None, int(np.asarray(expected[POOLED]).shape[1])]},
        "max_abs_difference": differences, "created": _now(),
    }
    if subtype is not None:
        section["subtype"] = {
            "file": SUBTYPE_ONNX_FILE, "sha256": file_sha256(folder / SUBTYPE_ONNX_FILE),
            "source": subtype.path.name, "source_sha256": subtype.section["sha256"],
            "outputs": {P_BACTERIAL: [None, 1]}, "max_abs_difference": subtype_differences,
        }
    return section


def _verified_file(loaded: LoadedModel, section: dict, source_sha256: str | None, what: str) -> Path:
    """The ONNX file a card section names, after checking it against the section and its source."""
    folder = loaded.path / section.get("folder", ".")
    path = folder / section.get("file", ONNX_FILE)
    hint = onnx_hint(loaded.name)
    if not path.is_file():
        raise ModelStoreError(f"{what} {path.name} named in its card is not in {folder}; {hint}.")
    if section.get("source_sha256") != source_sha256:
        raise ModelStoreError(f"{what} {path.name} was converted from another {section.get('source', 'Keras file')} "
                              f"than the one in the store; {hint} again.")
    actual = file_sha256(path)
    if actual != section.get("sha256"):
        raise ModelStoreError(f"{what} {path.name} failed its integrity check: it has sha256 {actual[:12]}..., "
                              f"its card expects {str(section.get('sha256'))[:12]}...; {hint} again.")
    return path


def _opened(path: Path, outputs: Sequence[str], size: int, what: str) -> OnnxCall:
    """A session on a verified file, checked to take ``film`` (n, size, size, 1) and give ``outputs``."""
    try:
        session = open_session(path)
    except Exception as err:  # ONNX Runtime raises its own kinds for a damaged graph
        raise ModelStoreError(f"{what} {path.name} cannot be opened by ONNX Runtime ({type(err).__name__}: "
                              f"{err}); convert it again.") from err
    inputs = session.get_inputs()
    names = {output.name for output in session.get_outputs()}
    if [i.name for i in inputs] != [INPUT] or list(inputs[0].shape[1:]) != [size, size, 1] or not set(outputs) <= names:
        raise ModelStoreError(f"{what} {path.name} does not take {INPUT} ({size}, {size}, 1) and give "
                              f"{', '.join(outputs)}; convert it again.")
    return OnnxCall(session, outputs)


def load_onnx(loaded: LoadedModel) -> OnnxCall:
    """The model's verified ONNX graph as a session returning (``p_pneumonia``, ``pooled``).

    Raises:
        ModelStoreError: the card has no ``onnx`` section, or ``model.onnx`` is missing, altered,
            converted from another ``model.keras``, or not the graph the card describes.
    """
    section = loaded.card.get("onnx")
    if not section:
        raise ModelStoreError(f"Model {loaded.name!r} has no ONNX export yet; {onnx_hint(loaded.name)} "
                              "or use the keras runtime.")
    what = f"Model {loaded.name!r}'s"
    path = _verified_file(loaded, section, loaded.card.get("sha256"), what)
    return _opened(path, (P_PNEUMONIA, POOLED), loaded.input_size, what)


def load_subtype_onnx(loaded: LoadedModel, subtype: SubtypeModel) -> OnnxCall:
    """The subtype model's verified ONNX graph as a session returning ``p_bacterial``.

    Raises:
        ModelStoreError: the ONNX export has no subtype file, or it is missing, altered or
            converted from another subtype file than ``subtype``'s.
    """
    section = (loaded.card.get("onnx") or {}).get("subtype")
    what = f"Model {loaded.name!r}'s subtype model"
    if not section:
        raise ModelStoreError(f"{what} has no ONNX export yet; {onnx_hint(loaded.name)}.")
    folder_section = {**section, "folder": loaded.card["onnx"].get("folder", ".")}
    path = _verified_file(loaded, folder_section, subtype.section.get("sha256"), what)
    return _opened(path, (P_BACTERIAL,), loaded.input_size, what)


# ---------------------------------------------------------------- SavedModel


def check_saved_model_folder(folder: str | Path) -> None:
    """Refuse a SavedModel target that holds anything but an earlier SavedModel (it is replaced whole).

    Raises:
        ValueError: ``folder`` is a file, or a folder with other files in it.
    """
    folder = Path(folder)
    if folder.is_file():
        raise ValueError(f"{folder} is a file; name a folder for the SavedModel.")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "saved_model.pb").is_file():
        raise ValueError(f"{folder} holds files that are not a SavedModel; name an empty folder or an "
                         "earlier export, since the folder is replaced whole.")


def _replace_folder(new: Path, target: Path) -> None:
    """Move the folder ``new`` to ``target``; an earlier ``target`` is set aside first, then deleted."""
    if not target.exists():
        os.replace(new, target)
        return
    # A folder cannot be renamed over a non-empty one: for a moment there is none (TF Serving
    # keeps serving the version it loaded and picks up the new one at its next poll).
    aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
    os.replace(target, aside / target.name)
    os.replace(new, target)
    shutil.rmtree(aside, ignore_errors=True)


def write_saved_model(loaded: LoadedModel, subtype: SubtypeModel | None, folder: str | Path | None = None) -> dict:
    """Write a TensorFlow SavedModel whose ``serving_default`` gives ``p_pneumonia`` (and ``p_bacterial``).

    The signature takes ``film``: (n, S, S, 1) float32 in the model's input units (0-255);
    ``p_pneumonia`` is the calibrated probability :class:`~pneumo.inference.predict.Classifier`
    gives without a site, ``p_bacterial`` P(bacterial | pneumonia) when there is a subtype model;
    both (n,). It is written to a temporary folder beside ``folder``, loaded back and checked
    against Keras, then moved into place. The card is not changed here (see :func:`record_export`).

    Args:
        loaded: the verified model.
        subtype: its subtype model, or None.
        folder: the version folder to write; default ``<model folder>/serving/1``.

    Returns:
        The card's ``saved_model`` section: folder, signatures, input and outputs, source sha256s,
        versions, differences from Keras.

    Raises:
        ValueError: ``folder`` holds something other than an earlier SavedModel.
        ModelStoreError: the SavedModel differs from Keras beyond :data:`TOLERANCE`.
    """
    import tensorflow as tf
    from keras.export import ExportArchive

    folder = Path(folder) if folder is not None else default_folder(loaded.path, "saved-model")
    check_saved_model_folder(folder)
    size = loaded.input_size
    models = {P_PNEUMONIA: loaded.model, **({P_BACTERIAL: subtype.model} if subtype is not None else {})}

    def serve(film):  # (n, S, S, 1) float32 in 0-255 -> {output: (n,)}
        return {name: tf.squeeze(model(film, training=False), axis=1) for name, model in models.items()}

    archive = ExportArchive()
    for model in models.values():
        archive.track(model)
    archive.add_endpoint(SIGNATURE, serve, input_signature=[_film_spec(size)])
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.new."))
    try:
        archive.write_out(str(temporary), verbose=False)
        films = check_films(size)
        signature = tf.saved_model.load(str(temporary)).signatures[SIGNATURE]
        got = {name: value.numpy() for name, value in signature(**{INPUT: tf.constant(films)}).items()}
        expected = {name: model(films, training=False) for name, model in models.items()}
        differences = _differences(got, expected, f"SavedModel of model {loaded.name!r}")
        _replace_folder(temporary, folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    section = {
        "folder": _folder_entry(loaded.path, folder), "signatures": [SIGNATURE],
        "input": {"name": INPUT, "shape": [None, size, size, 1], "dtype": "float32", "range": [0, 255]},
        "outputs": {name: [None] for name in models},
        "source_sha256": loaded.card["sha256"], **_versions("tensorflow", "keras"),
        "max_abs_difference": differences, "created": _now(),
    }
    if subtype is not None:
        section["subtype_source_sha256"] = subtype.section["sha256"]
    return section


def record_export(loaded: LoadedModel, fmt: str, section: dict) -> Path:
    """Write ``section`` into the model's card under :data:`CARD_KEYS` ``[fmt]``; returns the card's path."""
    card = read_card(loaded.name, loaded.path.parent)
    return write_card(loaded.name, {**card, CARD_KEYS[fmt]: section}, loaded.path.parent)

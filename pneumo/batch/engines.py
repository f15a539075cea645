"""The engines that score a list of files into a :class:`~pneumo.batch.results.ResultsFile`.

``local`` reads and scores in this process, a batch at a time. ``ray`` reads the files with
``ray.data.read_binary_files`` and scores them on a pool of actors (``map_batches`` with the
callable class :class:`RayScorer`), each of which loads the model once; this process only
writes the rows as they come back, so resuming and the file's safety are the same for both.
Both go through :func:`score_blobs`, so a film gets the same row from either.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pneumo.batch.results import RESULT_FIELDS, ResultsFile, bytes_sha256
from pneumo.inference.predict import STATUS_ERROR, Assessment
from pneumo.io import one_line

ENGINES = ("local", "ray")
BATCH_SIZE = 32
"""Films per batch: what one model call scores, and what an interruption can lose at most."""

READ_CPUS = 0.25
"""Logical CPUs a Ray read task asks for: reading is light, and the actors hold a CPU each."""

RAY_RESTARTS = 3
"""How often a Ray run is started again after files vanished under it, before it gives up."""


class EngineError(Exception):
    """An engine that cannot run (no Ray cluster at the address, a failed run): one sentence."""


@dataclass(frozen=True)
class ScoringSpec:
    """What a worker needs to build the same classifier as this process: plain values only."""

    model: str  # the model's name in the store
    store: str  # the store's folder, absolute
    site: str = ""
    runtime: str = "keras"
    tag: str = ""  # the ``model`` column's value (:func:`pneumo.batch.results.model_id`)

    def classifier(self):
        """Load the model and build its :class:`~pneumo.inference.predict.Classifier`."""
        from pneumo import store
        from pneumo.inference.predict import Classifier

        loaded = store.load(self.model, self.store, keras_model=self.runtime == "keras")  # ONNX: no network
        return Classifier(loaded, site=self.site or None, runtime=self.runtime)


def read_blob(path: str) -> tuple[bytes | None, str]:
    """A file's bytes, or None and the sentence saying why it could not be read."""
    from pneumo.io import FilmReadError, read_bytes

    try:
        return read_bytes(path), ""
    except FilmReadError as err:
        if not os.path.lexists(path):
            return None, f"The file {path} vanished before it could be read."
        return None, str(err)


def score_blobs(classifier, items: Sequence[tuple[str, bytes | None, str]], tag: str) -> list[dict]:
    """One results row per (name, bytes or None, why unreadable) item, in order.

    Readable bytes go through ``classifier.assess_many`` (the project's one reader and model);
    each row gains the ``model`` tag and the bytes' sha256.
    """
    rows: list[dict | None] = [None] * len(items)
    readable = [(i, name, data) for i, (name, data, _) in enumerate(items) if data is not None]
    assessments = classifier.assess_many([(name, data) for _, name, data in readable])
    for (i, _, data), assessment in zip(readable, assessments):
        rows[i] = {**assessment.row(), "model": tag, "sha256": bytes_sha256(data)}
    for i, (name, data, why) in enumerate(items):
        if data is None:
            row = Assessment(source=name, status=STATUS_ERROR, message=why, site=classifier.site_name).row()
            rows[i] = {**row, "model": tag, "sha256": ""}
    return rows


def tallies(rows: Sequence[dict]) -> dict[str, int]:
    """How many rows are ``ok``, ``rejected`` and ``error``."""
    counts = {"ok": 0, "rejected": 0, "error": 0}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


Advance = Callable[[Sequence[dict]], None]
"""Called with each batch of rows once it is on file."""


def run_local(spec: ScoringSpec, paths: Sequence[str], results: ResultsFile, advance: Advance,
              classifier=None, batch_size: int = BATCH_SIZE) -> None:
    """Score ``paths`` in this process, ``batch_size`` at a time, appending each batch's rows."""
    classifier = classifier or spec.classifier()
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        rows = score_blobs(classifier, [(path, *read_blob(path)) for path in chunk], spec.tag)
        results.append(rows)
        advance(rows)


class RayScorer:
    """A Ray Data actor: loads the model once, then scores each batch of ``{"path", "bytes"}``."""

    def __init__(self, spec: ScoringSpec, threads: int = 1):
        from pneumo.environment import quiet_tensorflow

        quiet_tensorflow()
        import tensorflow as tf

        from pneumo.inference.export import THREADS_VARIABLE

        # The actor holds one CPU; TensorFlow and ONNX Runtime would otherwise start a thread per
        # core of the node in every actor.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        os.environ[THREADS_VARIABLE] = str(threads)
        self.spec = spec
        self.classifier = spec.classifier()

    def __call__(self, batch: dict) -> dict:
        items = [(str(path), bytes(data), "") for path, data in zip(batch["path"], batch["bytes"])]
        rows = score_blobs(self.classifier, items, self.spec.tag)
        return {name: [row[name] for row in rows] for name in RESULT_FIELDS}


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast, in one sentence, when nothing answers at a ``HOST:PORT`` Ray address.

    ``auto`` and ``ray://`` client addresses are left to Ray itself.
    """
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise EngineError(f"The Ray address {address} is not HOST:PORT; give the head node as HOST:PORT (e.g. 10.0.0.5:6379).")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise EngineError(f"No Ray cluster answers at {address} ({reason}); start one with "
                          "'ray start --head' there, or leave out --address to run Ray on this machine.") from err


def start_ray(address: str | None, workers: int | None, verbose: bool = False) -> int:
    """Join the Ray cluster at ``address``, or start one on this machine; returns the workers to use.

    On this machine Ray gets ``workers`` logical CPUs (default: this machine's) for the actors
    and one more for reading (Ray Data starves the read tasks when the actors hold every CPU).
    On a cluster, ``workers`` None takes one actor per cluster CPU, less one for the reads.
    """
    if not verbose:
        # Ray Data logs each run's plan at INFO; it reads the level when the first run starts.
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
    import ray

    options = dict(include_dashboard=False, log_to_driver=verbose,
                   logging_level=logging.INFO if verbose else logging.ERROR,
                   runtime_env={"env_vars": _worker_environment()})
    if ray.is_initialized():
        ray.shutdown()
    if address:
        check_ray_address(address)
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise EngineError(f"Could not join the Ray cluster at {address}: {one_line(err)}.") from err
        # Leave one CPU of the cluster for the read tasks.
        return workers or max(1, int(ray.cluster_resources().get("CPU", 2)) - 1)
    workers = workers or os.cpu_count() or 1
    ray.init(num_cpus=workers + 1, object_store_memory=512 * 2**20, **options)
    return workers


def _worker_environment() -> dict[str, str]:
    """What every worker needs to import pneumo and find the same model store as this process."""
    from pneumo import store

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p),
           "PNEUMO_MODEL_STORE": str(store.store_dir().resolve())}
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        env["TF_CPP_MIN_LOG_LEVEL"] = os.environ["TF_CPP_MIN_LOG_LEVEL"]
    return env


def run_ray(spec: ScoringSpec, paths: Sequence[str], results: ResultsFile, advance: Advance,
            workers: int, batch_size: int = BATCH_SIZE) -> None:
    """Score ``paths`` on a pool of ``workers`` Ray actors; rows are written here as they arrive.

    Files that vanish before Ray reads them get an ``error`` row; if one vanishes while a read
    task holds it, the run starts again on the films not yet written (at most
    :data:`RAY_RESTARTS` times).
    """
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True  # rows in the order given, as the local engine
    context.execution_options.verbose_progress = False
    given = {os.path.abspath(path): path for path in paths}
    remaining = list(paths)
    for attempt in range(RAY_RESTARTS + 1):
        gone = [path for path in remaining if not os.path.lexists(path)]
        if gone:
            rows = [{**Assessment(source=path, status=STATUS_ERROR, site=spec.site,
                                  message=f"The file {path} vanished before it could be read.").row(),
                     "model": spec.tag, "sha256": ""} for path in gone]
            results.append(rows)
            advance(rows)
            vanished = set(gone)
            remaining = [path for path in remaining if path not in vanished]
        if not remaining:
            return
        dataset = ray.data.read_binary_files([os.path.abspath(p) for p in remaining], include_paths=True,
                                             ignore_missing_paths=True, num_cpus=READ_CPUS)
        with warnings.catch_warnings():
            # Ray 2.60 has no named option for an actor's restarts yet; a lost actor is not
            # restarted (the rerun resumes instead), so Ray need not keep its arguments.
            warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
            scored = dataset.map_batches(RayScorer, fn_constructor_kwargs={"spec": spec},
                                         compute=ActorPoolStrategy(size=workers), batch_size=batch_size,
                                         num_cpus=1, batch_format="numpy", max_restarts=0)
        written: set[str] = set()
        try:
            for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
                rows = [{name: _text(batch[name][i]) for name in RESULT_FIELDS} for i in range(len(batch["path"]))]
                for row in rows:
                    row["path"] = given.get(row["path"], row["path"])
                results.append(rows)
                advance(rows)
                written.update(row["path"] for row in rows)
        except (ray.exceptions.RayError, OSError) as err:
            remaining = [path for path in remaining if path not in written]
            if attempt < RAY_RESTARTS and any(not os.path.lexists(path) for path in remaining):
                continue  # a file vanished under a read task: write it as an error and go on
            raise EngineError(f"The Ray run stopped: {one_line(err)}.") from err
        # ignore_missing_paths drops files that vanished after the list was made: the next
        # pass writes them as errors.
        remaining = [path for path in remaining if path not in written]
    if remaining:
        raise EngineError(f"The Ray run ended with {len(remaining)} films unscored (first: {remaining[0]}); "
                          "rerun the same command to score them.")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

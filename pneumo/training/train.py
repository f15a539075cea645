"""Training a model from scratch, calibrating it on validation, and writing it to the store.

Everything is chosen on a patient-grouped validation split carved from the
training films: the checkpoint (best validation ROC AUC), the temperature and the
operating threshold. A test split, when the data folder has one, is never read.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from pneumo import data, folds, store
from pneumo.evaluation.profile import ProfileBuilder
from pneumo.guard.fit import fit_and_store_guard
from pneumo.inference import explain
from pneumo.modeling import models
from pneumo.modeling.augment import AugmentConfig, make_augment
from pneumo.stats import calibration
from pneumo.training import cards

EpochCallback = Callable[[int, dict], None]
"""Called after each epoch with its number (1-based) and its figures (Keras's logs)."""


@dataclass
class TrainConfig:
    """What a training run is told; every field is recorded in the model card."""

    data: str
    out: str
    architecture: str = "cnn"
    input_size: int = 192
    width: int = 32
    epochs: int = 28
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    dropout: float = 0.3
    val_fraction: float = 0.2
    seed: int = 0
    patience: int = 8
    min_sensitivity: float = 0.95
    max_minutes: float = 58.0
    weights: str | None = None
    limit: int | None = None  # use only this many training films (smoke runs)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    border_penalty: float = 0.0  # weight of BorderPenalized's loss term; 0 trains without it
    border_allowance: float = 0.0  # border share each film may keep before the penalty applies
    start_from: str | None = None  # a stored model's folder whose weights training continues from
    checkpoint_dir: str | None = None


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Weights that give both classes the same total weight in the loss."""
    counts = np.bincount(labels.astype(int), minlength=2)
    return {c: float(len(labels) / (2 * max(n, 1))) for c, n in enumerate(counts)}


def train(config: TrainConfig, log=print, on_epoch: EpochCallback | None = None) -> Path:
    """Train, calibrate and save a model; returns its folder in the store.

    Args:
        config: the run's settings.
        log: where the run's lines go.
        on_epoch: called after each epoch (see :func:`fit_model`).

    Raises:
        FileNotFoundError, ValueError: the data folder is missing or holds no films.
    """
    import tensorflow as tf

    started = time.time()
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    out_dir = Path(config.out)
    checkpoint_dir = Path(config.checkpoint_dir or Path("runs") / out_dir.name)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)

    records = data.find_films(config.data, splits=("train", "val"))  # never "test"
    train_records, val_records = data.split_by_patient(records, config.val_fraction, config.seed)
    if config.limit:
        rng = np.random.default_rng(config.seed)
        train_records = [train_records[i] for i in sorted(rng.choice(len(train_records),
                         min(config.limit, len(train_records)), replace=False))]
        val_records = val_records[:: max(1, len(val_records) // max(config.limit // 4, 2))]
    log(f"{len(records)} films; training on {len(train_records)}, validating on "
        f"{len(val_records)} (patient-grouped, seed {config.seed})")

    start_weights, parent = starting_weights(config, val_records) if config.start_from else (None, None)
    if parent:
        log(f"continuing from {parent['name']} (created {parent['created']})")

    profile = ProfileBuilder(config.data)
    decode_start = time.time()
    x_train = data.load_inputs(train_records, config.input_size, observers=[profile.add])
    x_val = data.load_inputs(val_records, config.input_size, observers=[profile.add])
    y_train, y_val = data.labels_of(train_records), data.labels_of(val_records)
    log(f"decoded {len(x_train) + len(x_val)} films in {time.time() - decode_start:.0f} s")

    model, history, best_epoch = fit_model(config, x_train, y_train, x_val, y_val, checkpoint_dir,
                                           started, start_weights=start_weights, log=log,
                                           on_epoch=on_epoch)
    val_auc = history["val_auc"]
    val_ds = data.make_dataset(x_val, y_val, 64, training=False)

    logit_model = keras.Model(model.input, model.get_layer("logit").output)
    val_logits = logit_model.predict(val_ds, verbose=0)[:, 0]
    temperature = calibration.fit_temperature(val_logits, y_val)
    shipped = models.build(config.architecture, config.input_size, temperature=temperature,
                           dropout=config.dropout, width=config.width)
    shipped.set_weights(model.get_weights())
    val_probs = shipped.predict(val_ds, verbose=0)[:, 0]
    threshold, validation = cards.validation_report(y_val, val_probs, temperature,
                                              [r.subtype for r in val_records], config.min_sensitivity)
    log(f"validation: AUC {validation['roc_auc']:.4f}, sensitivity {validation['sensitivity']:.3f}, "
        f"specificity {validation['specificity']:.3f} at threshold {threshold:.3f}; "
        f"temperature {temperature:.3f}, ECE {validation['ece']:.4f}")

    card = {
        **cards.card_basics(config, out_dir.name, threshold, temperature, int(shipped.count_params())),
        "operating_point": {"min_sensitivity": config.min_sensitivity, "chosen_on": "validation",
                            "rule": "highest Youden index among thresholds whose 95% lower "
                                    "(Wilson) bound of sensitivity meets min_sensitivity"},
        "validation": validation,
        "training": {
            "command": cards.training_command(),
            "config": {**asdict(config), "augment": config.augment.to_dict()},
            "seed": config.seed,
            "epochs_run": len(val_auc),
            "best_epoch": best_epoch,
            "seconds": round(time.time() - started, 1),
            "start_from": parent,
            "n_train": len(train_records),
            "n_val": len(val_records),
            "data_manifest_sha256": data.manifest_sha256(records, config.data),
            "split": {
                "method": "sklearn StratifiedGroupKFold, grouped by patient, stratified by class; "
                          "first fold is validation",
                "val_fraction": config.val_fraction,
                "seed": config.seed,
                "reproduce": "train, val = pneumo.data.split_by_patient(pneumo.data.find_films("
                             "DATA, splits=('train', 'val')), val_fraction, seed)",
                "validation_films_sha256": folds.names_sha256(val_records),
            },
            "class_weights": class_weights(y_train),
            "history": {k: [round(float(v), 5) for v in vals] for k, vals in history.items()},
            "libraries": cards.library_versions(),
        },
        "intended_use": cards.INTENDED_USE,
        "limits": cards.LIMITS,
    }
    folder = store.save(shipped, card, out_dir, profile=profile.result())
    # The out-of-scope guard: fitted on these training films, thresholds on these validation films.
    if min(len(x_train), len(x_val)) >= 10:
        saved = store.LoadedModel(name=folder.name, path=folder, model=shipped,
                                  card=store.read_card(folder.name, folder.parent))
        fit_and_store_guard(saved, x_train, x_val, val_groups=[r.patient for r in val_records],
                            seed=config.seed, log=log)
    else:
        log("no out-of-scope guard: it needs at least 10 training and 10 validation films")
    log(f"saved {folder} in {time.time() - started:.0f} s")
    return folder


def fit_model(config: TrainConfig, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
              y_val: np.ndarray, checkpoint_dir: Path, started: float, *, start_weights=None,
              keep_last: bool = False, log=print, on_epoch: EpochCallback | None = None) -> tuple:
    """Fit one model on decoded films; the epoch kept is chosen on ``(x_val, y_val)``.

    With ``start_weights`` training continues from them and keeps its last epoch; with
    ``keep_last`` it runs every epoch and keeps the last, so nothing is chosen on the
    validation films (a cross-validation fold's held-out films stay untouched). With
    ``on_epoch``, Keras prints nothing and ``on_epoch(epoch, figures)`` is called after each
    epoch (1-based; Keras's logs: ``loss``, ``val_auc``, ...); without it Keras shows its own
    progress on stdout.

    Returns:
        (model with temperature 1, history as a dict of lists, the epoch kept (1-based)).
    """
    model = models.build(config.architecture, config.input_size, dropout=config.dropout,
                         weights=config.weights, width=config.width)
    continuing = start_weights is not None or keep_last
    if start_weights is not None:
        model.set_weights(start_weights)
    fitted = BorderPenalized(model, config.border_penalty, allowance=config.border_allowance)
    steps = int(np.ceil(len(x_train) / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, (config.epochs - 1) * steps), warmup_target=config.learning_rate,
        warmup_steps=steps, alpha=0.02)
    fitted.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.AUC(num_thresholds=2000, name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    train_ds = data.make_dataset(x_train, y_train, config.batch_size, training=True,
                                 augment=make_augment(config.augment), seed=config.seed)
    val_ds = data.make_dataset(x_val, y_val, 64, training=False)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = checkpoint_dir / "best.weights.h5"
    # A run that continues from a model keeps its last epoch: its first epochs are still
    # close to that model, and validation AUC alone would keep the one that changed least.
    callbacks = [
        keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_auc", mode="max",
                                        save_best_only=not continuing, save_weights_only=True),
        *([keras.callbacks.LambdaCallback(  # before TimeBudget, whose line follows the epoch's
            on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, dict(logs or {})))] if on_epoch else []),
        TimeBudget(config.max_minutes * 60, started, log),
        keras.callbacks.CSVLogger(checkpoint_dir / "history.csv"),
    ] + ([] if continuing else [keras.callbacks.EarlyStopping(
        monitor="val_auc", mode="max", patience=config.patience, restore_best_weights=True)])
    history = fitted.fit(train_ds, validation_data=val_ds, epochs=config.epochs,
                         class_weight=class_weights(y_train), callbacks=callbacks, shuffle=False,
                         # Keras's own progress: a bar on a terminal, a line per epoch in a log
                         verbose=0 if on_epoch else 1 if sys.stdout.isatty() else 2)
    fitted.load_weights(checkpoint)  # the epoch kept
    val_auc = history.history["val_auc"]
    best_epoch = len(val_auc) if continuing else int(np.argmax(val_auc)) + 1
    return model, dict(history.history), best_epoch


def starting_weights(config: TrainConfig, val_records: list) -> tuple[list, dict]:
    """The weights of ``config.start_from``, and what the new card records of that model.

    Raises:
        ModelStoreError: the folder holds no loadable model.
        ValueError: the model has another architecture, input size or width, or was
            validated on other films: continuing from it would train on films this run
            validates on.
    """
    folder = Path(config.start_from)
    parent = store.load(folder.name, folder.parent)
    training = parent.card.get("training") or {}
    theirs = training.get("config") or {}
    shape = (config.architecture, config.input_size, config.width)
    if (theirs.get("architecture"), theirs.get("input_size"), theirs.get("width")) != shape:
        raise ValueError(f"Model {parent.name!r} is not a {shape[0]} of input {shape[1]} and width "
                         f"{shape[2]}; training can only continue from a model of the same shape.")
    if (training.get("split") or {}).get("validation_films_sha256") != folds.names_sha256(val_records):
        raise ValueError(f"Model {parent.name!r} was validated on other films than this run; continuing "
                         "from it would train on this run's validation films. Use its seed, "
                         "validation fraction and data.")
    return parent.model.get_weights(), {"name": parent.name, "created": parent.card.get("created"),
                                        "sha256": parent.card.get("sha256")}


class BorderPenalized(keras.Model):
    """Trains ``model`` to take its evidence from the thorax rather than the film's border band.

    With global average pooling and one dense unit, the logit is the mean over the
    pooled map's cells of each cell's contribution, ``features . kernel``: the
    class-activation map. Grad-CAM paints that map's positive part, rescaled from its
    minimum to its maximum, so the share of the painted map in the border band
    (:func:`pneumo.inference.explain.cell_paint`) is the film's Grad-CAM border share. The loss
    gains ``weight`` times the amount by which each film's share exceeds ``allowance``,
    averaged over the batch: with an allowance, a lung field that reaches the band is
    left alone and only maps that lean on it are pushed back. Predictions are
    ``model``'s own; with ``weight`` 0 it trains as ``model`` alone would. The share is
    logged as ``border_share`` (``val_border_share`` on validation films).
    """

    def __init__(self, model, weight: float, margin: float = explain.BORDER_MARGIN, allowance: float = 0.0):
        super().__init__(name=f"{model.name}_fitting")
        self.inner = model
        self.weight, self.allowance = float(weight), float(allowance)
        # The map global average pooling reduces: the explained layer's output (see pneumo.modeling.models).
        self.probe = keras.Model(model.input, [model.output, model.get_layer("pool").input])
        self.logit = model.get_layer("logit")
        cells, size = self.probe.outputs[1].shape[1], model.input.shape[1]
        self.band, self.whole = explain.cell_paint(cells, size, margin)
        self.border_share = keras.metrics.Mean(name="border_share")

    def call(self, inputs, training=False):
        probs, features = self.probe(inputs, training=training)
        cam = keras.ops.relu(keras.ops.einsum("nhwc,c->nhw", features, self.logit.kernel[:, 0]))
        painted = cam - keras.ops.min(cam, axis=(1, 2), keepdims=True)
        share = (keras.ops.sum(painted * self.band, axis=(1, 2))
                 / (keras.ops.sum(painted * self.whole, axis=(1, 2)) + 1e-6))
        self.border_share.update_state(share)
        if training and self.weight:
            self.add_loss(self.weight * keras.ops.mean(keras.ops.relu(share - self.allowance)))
        return probs


def choose_operating_point(name: str | None, data_dir: str | Path, min_sensitivity: float = 0.95,
                           store_dir: str | Path | None = None, log=print) -> dict:
    """Choose a stored model's threshold again on its own validation split and update its card.

    The validation films are found again from the card's recorded split; the model file
    is not touched. Returns the updated card.

    Raises:
        ValueError: the data folder does not hold the films the model was validated on.
    """
    from pneumo.inference.predict import Classifier

    loaded = store.load(name, store_dir)
    card = loaded.card
    if "ensemble" in card:
        raise ValueError(cards.ensemble_operating_point_words(loaded.name))
    val_records, _ = folds.held_out_records(card, data_dir)
    results = list(Classifier(loaded, guard=None).assess_many((str(r.path), r.path) for r in val_records))
    probs = np.array([r.p_pneumonia for r in results])
    threshold, validation = cards.validation_report(data.labels_of(val_records), probs, card["temperature"],
                                              [r.subtype for r in val_records], min_sensitivity)
    card = {**card, "threshold": threshold, "validation": validation,
            "operating_point": {**card.get("operating_point", {}), "min_sensitivity": min_sensitivity,
                                "chosen_on": "validation",
                                "rule": "highest Youden index among thresholds whose 95% lower "
                                        "(Wilson) bound of sensitivity meets min_sensitivity"}}
    store.write_card(loaded.name, card, store_dir)
    log(f"{loaded.name}: threshold {threshold:.4f}; validation sensitivity "
        f"{validation['sensitivity']:.4f}, specificity {validation['specificity']:.4f}")
    return card


class TimeBudget(keras.callbacks.Callback):
    """Stops training before an epoch would overrun the time budget (with two minutes to spare)."""

    def __init__(self, seconds: float, started: float, log=print):
        super().__init__()
        self.seconds, self.started, self.log = seconds, started, log
        self.epoch_started = time.time()
        self.longest = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.longest = max(self.longest, time.time() - self.epoch_started)
        if time.time() - self.started + 1.1 * self.longest > self.seconds - 120:
            self.log(f"stopping after epoch {epoch + 1}: the next would overrun the "
                     f"{self.seconds / 60:.0f}-minute budget")
            self.model.stop_training = True

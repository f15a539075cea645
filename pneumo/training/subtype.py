"""Bacterial or viral: a subtype model fine-tuned from the shipped ensemble's towers, on pneumonia films only.

The shipped ensemble's member ``k`` was trained on every patient-grouped fold but ``k``
(the card's ``out_of_fold.random_fold``). Fold ``k``'s subtype model starts from that
member's tower, gets a fresh logit, and is fine-tuned on the pneumonia films of the other
folds whose names tell the subtype: never a normal film, never a patient of fold ``k``, so
its logits on fold ``k`` are out of fold for both the tower and the fine-tuning. Every fold
keeps its last epoch (nothing is chosen on the films it holds out).

:func:`assemble` turns the folds into the shipped part: a temperature and an operating
threshold (the balanced-accuracy optimum) chosen on the out-of-fold logits, figures with 95%
patient-bootstrap intervals, and fold 0's model as ``subtype.keras`` beside the main model
(one tower: a fifth of the ensemble's work per film). Training is resumable per fold.
Output: P(bacterial | pneumonia).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pneumo import data
from pneumo.folds import held_out_records
from pneumo.modeling.augment import AugmentConfig, make_augment
from pneumo.stats import calibration, metrics, operating
from pneumo.store import BACTERIAL, SUBTYPE_FILE, VIRAL

POSITIVE, NEGATIVE = "bacteria", "virus"
PATTERNS = {POSITIVE: BACTERIAL, NEGATIVE: VIRAL}
"""A film's subtype in its name, and the pattern shown for it."""
SHIPPED_FOLD = 0
FOLD_DONE = "fold.json"
HELD_BACK_SECTION = "subtype-section.json"
FLOOR = {"roc_auc": 0.85, "accuracy_with_main_model": 0.80}
"""What the product asks of the out-of-fold figures before it shows a pattern: ROC AUC, and
accuracy counting a pneumonia film the main model reads as normal as wrong."""
FLOOR_WORDS = {"roc_auc": "out-of-fold ROC AUC",
               "accuracy_with_main_model": "out-of-fold accuracy (a film read as normal counts as wrong)"}


@dataclass(frozen=True)
class SubtypeConfig:
    """The fine-tuning recipe."""

    epochs: int = 6
    learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    batch_size: int = 32
    seed: int = 0


def subtype_labels(records) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the pneumonia films whose names tell the subtype, and their labels (1 = bacterial)."""
    index = np.array([i for i, r in enumerate(records) if r.label == 1 and r.subtype in PATTERNS], dtype=int)
    labels = np.array([records[i].subtype == POSITIVE for i in index], dtype=np.float32)
    return index, labels


def member_model(ensemble, index: int, size: int, width: int):
    """A single compact CNN holding the ensemble's member ``index``'s tower and a fresh logit."""
    from pneumo.modeling import models

    model = models.build("cnn", size, width=width)
    weights = models.member_tower_weights(ensemble, index)
    at = 0
    for layer in model.layers:
        if layer.weights and layer.name != "logit":
            count = len(layer.get_weights())
            layer.set_weights(weights[at:at + count])
            at += count
    if at != len(weights):
        raise ValueError(f"member {index}'s tower does not fit a width-{width} compact CNN")
    return model


def fine_tune(model, inputs: np.ndarray, labels: np.ndarray, config: SubtypeConfig, log=print,
              on_epoch: Callable[[int, dict], None] | None = None):
    """Fine-tune every layer for ``config.epochs`` (cosine schedule, augmented films); keeps the last.

    ``on_epoch(epoch, figures)`` is called after each epoch (1-based; ``{"loss": ...}``).
    """
    import keras

    steps = int(np.ceil(len(inputs) / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
                  loss=keras.losses.BinaryCrossentropy())
    dataset = data.make_dataset(inputs, labels, config.batch_size, training=True,
                                augment=make_augment(AugmentConfig()), seed=config.seed)
    started = time.monotonic()
    for epoch in range(config.epochs):
        history = model.fit(dataset, epochs=1, verbose=0)
        log(f"  epoch {epoch + 1}/{config.epochs}: loss {history.history['loss'][-1]:.4f} "
            f"({time.monotonic() - started:.0f} s)")
        if on_epoch is not None:
            on_epoch(epoch + 1, {key: values[-1] for key, values in history.history.items()})
    return model


def logits_of(model, inputs: np.ndarray) -> np.ndarray:
    """The model's logits (before its temperature and sigmoid), (n,) float64."""
    import keras

    logit = keras.Model(model.input, model.get_layer("logit").output)
    return np.asarray(logit.predict(np.asarray(inputs, dtype=np.float32), batch_size=64, verbose=0),
                      dtype=np.float64)[:, 0]


def finished_folds(run_dir: str | Path, k: int) -> list[int]:
    """The folds of ``k`` whose fine-tuning is complete in ``run_dir``."""
    return [fold for fold in range(k) if (Path(run_dir) / f"fold{fold}" / FOLD_DONE).is_file()]


def train_subtype_folds(loaded, data_dir: str | Path, run_dir: str | Path, config: SubtypeConfig,
                        log=print, on_epoch: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Fine-tune every unfinished fold; returns each fold's record.

    Each finished fold leaves ``fold<k>/model.keras``, ``fold<k>/oof.npz`` (the held-out films'
    indices among the subtype films, and their logits) and ``fold<k>/fold.json``.
    ``on_epoch`` is called after each epoch of each fold (see :func:`fine_tune`).
    """
    import keras

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    records, folds = held_out_records(loaded.card, data_dir)  # member k never saw fold k
    index, labels = subtype_labels(records)
    sub_folds = folds[index]
    k = int(loaded.card["ensemble"]["members"])
    width = int(loaded.model.get_layer("pool").output.shape[-1]) // k // 8  # a member: 8 x width channels
    log(f"subtype: {len(index)} pneumonia films ({int(labels.sum())} bacterial, "
        f"{int(len(labels) - labels.sum())} viral), {k} folds, {config.epochs} epochs each")
    inputs = data.load_inputs([records[i] for i in index], loaded.input_size)
    done, finished = [], finished_folds(run, k)
    for fold in range(k):
        folder = run / f"fold{fold}"
        if fold in finished:
            done.append(json.loads((folder / FOLD_DONE).read_text()))
            log(f"fold {fold}: already finished")
            continue
        train, held = sub_folds != fold, sub_folds == fold
        patients = {records[i].patient for i in index[held]}
        assert not patients & {records[i].patient for i in index[train]}, "a patient on both sides"
        keras.utils.set_random_seed(config.seed + fold)
        model = member_model(loaded.model, fold, loaded.input_size, width)
        log(f"fold {fold}: fine-tuning member {fold} on {int(train.sum())} films, holding out {int(held.sum())}")
        fine_tune(model, inputs[train], labels[train], config, log, on_epoch=on_epoch)
        logits = logits_of(model, inputs[held])
        folder.mkdir(parents=True, exist_ok=True)
        model.save(folder / "model.keras")
        np.savez(folder / "oof.npz", index=np.flatnonzero(held), logit=logits)
        auc = operating.roc_auc(labels[held], calibration.sigmoid(logits))
        record = {"fold": fold, "n_train": int(train.sum()), "n_held_out": int(held.sum()),
                  "held_out_auc": auc, "recipe": asdict(config)}
        (folder / FOLD_DONE).write_text(json.dumps(record, indent=2))
        log(f"fold {fold}: held-out AUC {auc:.4f}")
        done.append(record)
    return done


def shortfalls(section: dict) -> list[str]:
    """How a subtype section falls short of :data:`FLOOR`, one phrase per figure; empty when it reaches it."""
    validation = section["validation"]
    measured = {"roc_auc": validation["figures"]["roc_auc"]["value"],
                "accuracy_with_main_model": validation["accuracy_with_main_model"]["value"]}
    return [f"{FLOOR_WORDS[key]} {measured[key]:.3f} is below {FLOOR[key]:.2f}"
            for key in FLOOR if measured[key] < FLOOR[key]]


def destination(loaded, run_dir: str | Path, section: dict, ship_below_floor: bool = False) -> Path:
    """Where :func:`assemble` writes the subtype part: the model's folder if it ships, else ``run_dir``."""
    return loaded.path if ship_below_floor or not shortfalls(section) else Path(run_dir)


def assemble(loaded, data_dir: str | Path, run_dir: str | Path, resamples: int = 1000, log=print,
             ship_below_floor: bool = False) -> dict:
    """Temperature, threshold and figures from the finished folds; ships ``subtype.keras`` if they reach the floor.

    A section that reaches :data:`FLOOR` (or any, with ``ship_below_floor``) goes into the
    model's card and fold 0's model beside the model. One that does not is held back: the
    model and the section are written into ``run_dir`` (``subtype.keras``,
    ``subtype-section.json``) and the store is left as it was, so no pattern is shown.

    Returns:
        The ``subtype`` section, shipped or held back (see :func:`shortfalls`).
    """
    import keras

    from pneumo import store

    run = Path(run_dir)
    records, all_folds = held_out_records(loaded.card, data_dir)
    index, labels = subtype_labels(records)
    folds = all_folds[index]
    k = int(loaded.card["ensemble"]["members"])
    logits = np.full(len(index), np.nan)
    per_fold = []
    for fold in range(k):
        folder = run / f"fold{fold}"
        if not (folder / FOLD_DONE).is_file():
            raise ValueError(f"subtype fold {fold} is not finished in {run}; run train-subtype again.")
        stored = np.load(folder / "oof.npz")
        logits[stored["index"]] = stored["logit"]
        per_fold.append(json.loads((folder / FOLD_DONE).read_text()))
    temperature = calibration.fit_temperature(logits, labels)
    probs = calibration.sigmoid(logits / temperature)
    threshold = balanced_threshold(labels, probs)
    groups = [records[i].patient for i in index]
    figures = operating.figures_with_intervals(labels, probs, threshold, groups, resamples)
    read_as_pneumonia = main_model_calls(loaded.card, index)
    correct = read_as_pneumonia & ((probs >= threshold) == labels.astype(bool))
    weights = operating.patient_weights(groups, resamples, seed=0)
    spread = weights @ correct / weights.sum(axis=1)
    with_main = {"value": float(correct.mean()), "low": float(np.percentile(spread, 2.5)),
                 "high": float(np.percentile(spread, 97.5)), "read_as_normal": int((~read_as_pneumonia).sum()),
                 "rule": "a pneumonia film the main model reads as normal (out of fold) has no pattern "
                         "and counts as wrong"}
    section = {
        "output": "P(bacterial | pneumonia)",
        "file": SUBTYPE_FILE,
        "classes": ["viral", "bacterial"],
        "temperature": temperature,
        "threshold": threshold,
        "threshold_rule": "the threshold of highest balanced accuracy (mean of sensitivity and "
                          "specificity) on the out-of-fold probabilities",
        "validation": {
            "kind": "out-of-fold (the shipped ensemble's random patient-grouped folds: in-distribution)",
            "n": int(len(index)), "positives": int(labels.sum()), "negatives": int(len(labels) - labels.sum()),
            "figures": figures, "accuracy_with_main_model": with_main, "ece_uncalibrated": metrics.expected_calibration_error(labels, calibration.sigmoid(logits)),
            "reliability": metrics.reliability_curve(labels, probs), "curves": metrics.curves(labels, probs),
            "per_fold": [{**row, **metrics.at_threshold(labels[folds == row["fold"]], probs[folds == row["fold"]],
                                                        threshold)} for row in per_fold],
            "label": labels.astype(int).tolist(), "fold": folds.tolist(),
            "logit": np.round(logits, 5).tolist(),
        },
        "shipped_fold": SHIPPED_FOLD,
        "trained_on": "pneumonia films only, each fold's model on the other folds' films",
        "recipe": per_fold[0].get("recipe"),
    }
    folder = destination(loaded, run, section, ship_below_floor)
    shipped = keras.saving.load_model(run / f"fold{SHIPPED_FOLD}" / "model.keras", compile=False, safe_mode=True)
    shipped.get_layer("temperature").scale = 1.0 / temperature
    shipped.save(folder / SUBTYPE_FILE)
    section["sha256"] = store.file_sha256(folder / SUBTYPE_FILE)
    if folder == loaded.path:
        card_path = loaded.path / store.CARD_FILE
        card = json.loads(card_path.read_text())
        card["subtype"] = section
        card_path.write_text(json.dumps(card, indent=2) + "\n")
    else:
        (run / HELD_BACK_SECTION).write_text(json.dumps(section, indent=2) + "\n")
    log(f"subtype: out-of-fold AUC {figures['roc_auc']['value']:.4f}, accuracy {figures['accuracy']['value']:.4f} "
        f"({with_main['value']:.4f} counting the {with_main['read_as_normal']} films the main model reads as normal), "
        f"temperature {temperature:.3f}, threshold {threshold:.3f}; wrote {folder / SUBTYPE_FILE}"
        + ("" if folder == loaded.path else f" (held back: {'; '.join(shortfalls(section))})"))
    return section


def main_model_calls(card: dict, index: np.ndarray) -> np.ndarray:
    """Whether the main model, out of fold (random folds), reads each of these films as pneumonia.

    ``index`` counts in :func:`pneumo.folds.held_out_records`'s order, the card's out-of-fold order.
    """
    logits = np.asarray(card["out_of_fold"]["random_logit"], dtype=np.float64)[index]
    return calibration.sigmoid(logits / float(card["temperature"])) >= float(card["threshold"])


def balanced_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The probability threshold of highest balanced accuracy (ties: the one nearest 0.5)."""
    labels = np.asarray(labels).astype(bool)
    candidates = np.unique(np.clip(probs, 0, 1))
    best, best_score = 0.5, -1.0
    for threshold in candidates:
        called = probs >= threshold
        score = (called[labels].mean() + (~called[~labels]).mean()) / 2
        if score > best_score + 1e-12 or (abs(score - best_score) <= 1e-12 and abs(threshold - 0.5) < abs(best - 0.5)):
            best, best_score = float(threshold), float(score)
    return best

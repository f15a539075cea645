"""Cross-validated training: one model per patient-grouped fold, out-of-fold probabilities, an ensemble.

``train_folds`` trains the folds of one scheme (:mod:`pneumo.folds`) in turn and is
resumable: each finished fold leaves ``fold<k>/model.keras`` and ``fold<k>/oof.npz``
(its held-out films' logits) in the run folder, and a rerun starts at the next
unfinished fold. Every fold keeps its last epoch, so nothing is chosen on the films
it holds out: each out-of-fold probability comes from a model that never saw that
patient and was never selected on it. :mod:`pneumo.stats.operating` turns the folds into the
shipped ensemble and its card.

The module is long but one idea: training the folds and assembling them into the shipped
ensemble and its card's cross-validation section, which read the same run folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pneumo import data, store
from pneumo import folds as folds_module
from pneumo.stats import calibration, metrics, operating
from pneumo.training.train import EpochCallback, TrainConfig, class_weights, fit_model

FOLD_DONE = "fold.json"


def scheme_dir(run_dir: str | Path, scheme: str) -> Path:
    """Where the folds of one scheme live in a run folder."""
    return Path(run_dir) / scheme


def finished_folds(run_dir: str | Path, scheme: str, k: int) -> list[int]:
    """The folds of ``scheme`` whose model and out-of-fold logits are complete."""
    root = scheme_dir(run_dir, scheme)
    return [f for f in range(k) if (root / f"fold{f}" / FOLD_DONE).is_file()]


def train_folds(config: TrainConfig, scheme: str, k: int, run_dir: str | Path, log=print,
                records=None, inputs: np.ndarray | None = None,
                on_epoch: EpochCallback | None = None) -> list[dict]:
    """Train every unfinished fold of ``scheme``; returns each fold's record (``fold.json``).

    Args:
        config: the training recipe (``epochs`` are all run; ``val_fraction`` is unused).
        scheme: ``random`` or ``block``.
        k: the number of folds.
        run_dir: the run folder; each scheme's folds go in a sub-folder.
        records, inputs: the films and their decoded inputs, when the caller has them.
        on_epoch: called after each epoch of each fold (see :func:`~pneumo.training.train.fit_model`).

    Raises:
        ValueError: the run folder holds folds of other films or another recipe.
    """
    import keras
    import tensorflow as tf

    root = scheme_dir(run_dir, scheme)
    root.mkdir(parents=True, exist_ok=True)
    if records is None:
        records = data.find_films(config.data, splits=("train", "val"))
    assigned = folds_module.assign_folds(records, scheme, k, config.seed)
    signature = {"scheme": scheme, "k": k, "seed": config.seed,
                 "folds_sha256": folds_module.folds_sha256(records, assigned),
                 "recipe": _recipe(config)}
    signature_file = root / "run.json"
    if signature_file.is_file():
        previous = json.loads(signature_file.read_text())
        for key in NOT_LEARNT:  # a run folder written before these were left out of the recipe
            (previous.get("recipe") or {}).pop(key, None)
        if previous != signature:
            changed = sorted(key for key in signature if previous.get(key) != signature[key])
            raise ValueError(f"{root} holds folds of another run (different {', '.join(changed)}); "
                             "give another run folder or remove it.")
    else:
        signature_file.write_text(json.dumps(signature, indent=1))

    todo = [f for f in range(k) if f not in finished_folds(run_dir, scheme, k)]
    if not todo:
        log(f"{scheme} folds: all {k} already trained in {root}")
        return [json.loads((root / f"fold{f}" / FOLD_DONE).read_text()) for f in range(k)]
    if inputs is None:
        started = time.time()
        inputs = data.load_inputs(records, config.input_size)
        log(f"decoded {len(inputs)} films in {time.time() - started:.0f} s")
    labels = data.labels_of(records)
    for fold in todo:
        started = time.time()
        held = assigned == fold
        log(f"{scheme} fold {fold + 1}/{k}: training on {int((~held).sum())} films, holding out "
            f"{int(held.sum())} ({len({r.patient for r, h in zip(records, held) if h})} patients)")
        keras.utils.set_random_seed(config.seed + fold)
        tf.config.experimental.enable_op_determinism()
        fold_dir = root / f"fold{fold}"
        model, history, kept = fit_model(config, inputs[~held], labels[~held], inputs[held], labels[held],
                                         fold_dir, started, keep_last=True, log=log, on_epoch=on_epoch)
        logit_model = keras.Model(model.input, model.get_layer("logit").output)
        logits = np.concatenate([
            np.asarray(logit_model(inputs[held][i:i + 64].astype(np.float32), training=False))[:, 0]
            for i in range(0, int(held.sum()), 64)])
        path = fold_dir / "model.keras"
        model.save(path)
        np.savez(fold_dir / "oof.npz", index=np.flatnonzero(held), logit=logits.astype(np.float64))
        record = {"fold": fold, "scheme": scheme, "epochs_run": len(history["loss"]),
                  "kept_epoch": kept, "seconds": round(time.time() - started, 1),
                  "n_train": int((~held).sum()), "n_held_out": int(held.sum()),
                  "sha256": store.file_sha256(path),
                  "history": {key: [round(float(v), 5) for v in values] for key, values in history.items()}}
        (fold_dir / FOLD_DONE).write_text(json.dumps(record, indent=1))
        auc = history.get("val_auc", [float("nan")])[-1]
        log(f"{scheme} fold {fold + 1}/{k} done in {record['seconds'] / 60:.1f} min: held-out AUC "
            f"{auc:.4f} (model {record['sha256'][:12]})")
    return [json.loads((root / f"fold{f}" / FOLD_DONE).read_text()) for f in range(k)]


def out_of_fold_logits(run_dir: str | Path, scheme: str, k: int, n: int) -> np.ndarray:
    """Each film's logit from the fold model that held it out, (n,) float64.

    Raises:
        ValueError: a fold is unfinished or a film has no out-of-fold logit.
    """
    logits = np.full(n, np.nan)
    root = scheme_dir(run_dir, scheme)
    for fold in range(k):
        path = root / f"fold{fold}" / "oof.npz"
        if not (root / f"fold{fold}" / FOLD_DONE).is_file():
            raise ValueError(f"{scheme} fold {fold} is not finished in {root}; run the training again.")
        stored = np.load(path)
        logits[stored["index"]] = stored["logit"]
    if np.isnan(logits).any():
        raise ValueError(f"{int(np.isnan(logits).sum())} films have no out-of-fold logit in {root}")
    return logits


NOT_LEARNT = ("data", "out", "checkpoint_dir", "max_minutes", "start_from", "val_fraction", "patience",
              "min_sensitivity")
"""Settings that do not change what a fold learns (``min_sensitivity`` only moves the threshold
chosen afterwards), so a run folder's finished folds are reused whatever they are."""


def _recipe(config: TrainConfig) -> dict:
    """The parts of the configuration that change what a fold learns."""
    recipe = {**asdict(config), "augment": config.augment.to_dict()}
    for key in NOT_LEARNT:
        recipe.pop(key, None)
    return recipe


def choose_rule(transfers: dict[str, list[dict]], min_sensitivity: float) -> str:
    """The threshold rule the block transfer favours.

    A rule qualifies when, chosen on the other blocks, it keeps ``min_sensitivity`` on
    every block it was not chosen on (the worst block), so the promise holds for a new
    period and not only on average; among those, the highest worst-block specificity
    wins (then the higher mean specificity). When none qualifies, the rules whose mean
    sensitivity meets the target compete the same way; failing that, the highest mean
    sensitivity.
    """
    summaries = {rule: operating.summarise_transfer(rows) for rule, rows in transfers.items()}
    for level in ("worst", "mean"):
        qualifying = [r for r, s in summaries.items() if s["sensitivity"][level] >= min_sensitivity]
        if qualifying:
            return max(qualifying, key=lambda r: (summaries[r]["specificity"]["worst"],
                                                  summaries[r]["specificity"]["mean"]))
    return max(summaries, key=lambda r: summaries[r]["sensitivity"]["mean"])


def assess_schemes(records, logits_by_scheme: dict[str, np.ndarray], folds_by_scheme: dict[str, np.ndarray],
                   min_sensitivity: float, resamples: int = 1000, log=print) -> dict:
    """Out-of-fold figures of each scheme under each threshold rule, and the block transfer.

    Returns:
        ``{"schemes": {scheme: {"temperature", "ece_uncalibrated", "rules": {rule: {"threshold",
        "figures", "per_fold"}}}}, "transfer": {rule: rows}, "chosen_rule": rule}``.
    """
    labels = data.labels_of(records).astype(int)
    groups = [r.patient for r in records]
    result = {"schemes": {}}
    for scheme, logits in logits_by_scheme.items():
        temperature = calibration.fit_temperature(logits, labels)
        probs = calibration.sigmoid(logits / temperature)
        rules = {}
        for rule in operating.RULES:
            threshold = operating.threshold_by_rule(rule, labels, probs, min_sensitivity)
            rules[rule] = {"threshold": threshold,
                           "figures": operating.figures_with_intervals(labels, probs, threshold, groups,
                                                                       resamples),
                           "per_fold": _per_fold(labels, probs, folds_by_scheme[scheme], threshold)}
        result["schemes"][scheme] = {"temperature": temperature, "ece_uncalibrated":
                                     metrics.expected_calibration_error(labels, calibration.sigmoid(logits)),
                                     "rules": rules}
        auc = rules["youden_wilson"]["figures"]["roc_auc"]["value"]
        log(f"{scheme} folds: out-of-fold AUC {auc:.4f}, temperature {temperature:.3f}")
    if "block" in logits_by_scheme:
        result["transfer"] = {rule: operating.transfer_by_block(labels, logits_by_scheme["block"],
                                                                folds_by_scheme["block"], rule, min_sensitivity)
                              for rule in operating.RULES}
        result["chosen_rule"] = choose_rule(result["transfer"], min_sensitivity)
    else:
        result["chosen_rule"] = "youden_wilson"
    return result


def assemble(config: TrainConfig, run_dir: str | Path, k: int = 5, ship: str = "random",
             schemes: tuple[str, ...] = ("block", "random"),
             resamples: int = 1000, log=print) -> Path:
    """Build the shipped ensemble from finished folds, choose its operating point, write its card.

    The members are the fold models of ``ship``; the temperature and the threshold are
    chosen on the out-of-fold logits of the harder scheme (:func:`harder_scheme`), with
    the threshold rule the block transfer favours (:func:`choose_rule`). The guard is fitted on member 0's
    training films with thresholds on its held-out films.

    Raises:
        ValueError: a fold of a scheme is unfinished.
    """
    import keras

    from pneumo.evaluation.profile import ProfileBuilder
    from pneumo.guard.fit import fit_and_store_guard
    from pneumo.modeling import models
    from pneumo.training.cards import (
        INTENDED_USE,
        LIMITS,
        card_basics,
        library_versions,
        training_command,
        validation_report,
    )

    started = time.time()
    records = data.find_films(config.data, splits=("train", "val"))
    labels = data.labels_of(records).astype(int)
    folds_by_scheme = {s: folds_module.assign_folds(records, s, k, config.seed) for s in schemes}
    logits = {s: out_of_fold_logits(run_dir, s, k, len(records)) for s in schemes}
    assessed = assess_schemes(records, logits, folds_by_scheme, config.min_sensitivity, resamples, log)
    aucs = {s: assessed["schemes"][s]["rules"]["youden_wilson"]["figures"]["roc_auc"]["value"] for s in schemes}
    chosen_on = harder_scheme(assessed, schemes)
    rule = assessed["chosen_rule"]
    temperature = assessed["schemes"][chosen_on]["temperature"]
    threshold = assessed["schemes"][chosen_on]["rules"][rule]["threshold"]
    log(f"operating point on the {chosen_on} folds, rule {rule}: threshold {threshold:.4f}, "
        f"temperature {temperature:.3f}")

    fold_records = [json.loads((scheme_dir(run_dir, ship) / f"fold{f}" / FOLD_DONE).read_text())
                    for f in range(k)]
    members = [keras.saving.load_model(scheme_dir(run_dir, ship) / f"fold{f}" / "model.keras",
                                       compile=False, safe_mode=True) for f in range(k)]
    ensemble = models.build_ensemble(members, temperature, dropout=config.dropout, width=config.width)

    groups = [r.patient for r in records]
    shipped_point = {}
    for scheme in schemes:  # every scheme's out-of-fold films at the one operating point shipped
        scheme_probs = calibration.sigmoid(logits[scheme] / temperature)
        shipped_point[scheme] = {
            "figures": operating.figures_with_intervals(labels, scheme_probs, threshold, groups, resamples),
            "per_fold": _per_fold(labels, scheme_probs, folds_by_scheme[scheme], threshold)}
    probs = calibration.sigmoid(logits[chosen_on] / temperature)
    _, validation = validation_report(labels, probs, temperature, [r.subtype for r in records],
                                      config.min_sensitivity, threshold=threshold)
    validation["kind"] = f"out-of-fold ({chosen_on} folds)"
    names = [f"{r.split}/{r.class_name}/{r.path.name}" for r in records]
    out_dir = Path(config.out)
    card = {
        **card_basics(config, out_dir.name, threshold, temperature, int(ensemble.count_params())),
        "operating_point": {
            "min_sensitivity": config.min_sensitivity, "chosen_on": validation["kind"],
            "rule": operating.RULES[rule], "rule_key": rule,
            "why": _why(chosen_on, aucs, rule, assessed, config.min_sensitivity),
        },
        "ensemble": {
            "members": k, "scheme": ship,
            "combine": "mean of the members' logits, divided by the temperature, then the sigmoid",
            "member_sha256": [f["sha256"] for f in fold_records],
            "member_tower_sha256": [models.tower_sha256(models.member_tower_weights(m)) for m in members],
        },
        "validation": validation,
        "cross_validation": {
            "k": k, "chosen_on": chosen_on, "threshold_rule": rule, "rules": operating.RULES,
            "at_operating_point": shipped_point,
            "site_simulation": simulate_sites(labels, logits["block"], folds_by_scheme["block"], groups,
                                              temperature, threshold, config.min_sensitivity)
            if "block" in schemes else None,
            "schemes": assessed["schemes"], "transfer": assessed.get("transfer"),
            "blocks": {str(b): text for b, text in folds_module.block_ranges(
                records, folds_by_scheme["block"]).items()} if "block" in schemes else None,
        },
        "out_of_fold": {"films": names, **{f"{s}_fold": folds_by_scheme[s].tolist() for s in schemes},
                        **{f"{s}_logit": np.round(logits[s], 5).tolist() for s in schemes}},
        "training": {
            "command": training_command(),
            "config": {**asdict(config), "augment": config.augment.to_dict()},
            "seed": config.seed,
            "epochs_run": config.epochs,
            "best_epoch": config.epochs,
            "seconds": round(sum(f["seconds"] for s in schemes for f in _fold_files(run_dir, s, k)), 1),
            "n_train": len(records),
            "n_val": len(records),
            "data_manifest_sha256": data.manifest_sha256(records, config.data),
            "cross_validation": {
                "scheme": ship, "k": k, "seed": config.seed,
                "folds_sha256": folds_module.folds_sha256(records, folds_by_scheme[ship]),
                "method": {"random": "sklearn StratifiedGroupKFold grouped by patient, stratified by "
                                     "class and pneumonia subtype",
                           "block": "leave-block-out: consecutive patient numbers of each name series"},
                "reproduce": "records, folds = pneumo.folds.held_out_records(card, DATA)",
                "folds": [{key: f[key] for key in ("fold", "epochs_run", "kept_epoch", "seconds", "n_train",
                                                   "n_held_out", "sha256")} for f in fold_records],
            },
            "class_weights": class_weights(data.labels_of(records)),
            "history": fold_records[0]["history"],
            "libraries": library_versions(),
        },
        "intended_use": INTENDED_USE,
        "limits": LIMITS,
    }
    profile = ProfileBuilder(config.data)
    inputs = data.load_inputs(records, config.input_size, observers=[profile.add])
    folder = store.save(ensemble, card, out_dir, profile=profile.result())
    log(f"saved the ensemble of {k} {ship}-fold members to {folder} "
        f"({store.file_sha256(folder / store.MODEL_FILE)[:12]})")
    saved = store.load(folder.name, folder.parent)
    held = folds_by_scheme[ship] == 0
    fit_and_store_guard(saved, inputs[~held], inputs[held],
                        val_groups=[r.patient for r, h in zip(records, held) if h], seed=config.seed, log=log)
    log(f"assembled {folder} in {time.time() - started:.0f} s")
    return folder


def simulate_sites(labels: np.ndarray, logits: np.ndarray, blocks: np.ndarray, groups, temperature: float,
                   threshold: float, min_sensitivity: float, seed: int = 0) -> list[dict]:
    """Site adaptation tried on each block as if it were a new hospital's labelled films.

    The block's out-of-fold probabilities come from a model that never saw the block.
    Its patients are halved at random: ``calibrate-site``'s fit (:func:`pneumo.inference.sites.fit_site`)
    runs on one half, and the other half is scored at the shipped operating point and
    at the site's.

    Returns:
        One row per block: sensitivity and specificity on the measuring half, before
        and after, and the site's temperature and threshold.
    """
    from pneumo.inference import sites

    rows = []
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups)
    for block in sorted(set(blocks.tolist())):
        held = np.flatnonzero(blocks == block)
        patients = np.unique(groups[held])
        fitting = set(rng.permutation(patients)[: len(patients) // 2].tolist())
        fit = np.array([g in fitting for g in groups[held]])
        p_model = calibration.sigmoid(logits[held] / temperature)
        site = sites.fit_site(labels[held][fit], p_model[fit], groups[held][fit], temperature, threshold,
                              min_sensitivity, resamples=50)
        measured = held[~fit]
        before = metrics.at_threshold(labels[measured], p_model[~fit], threshold)
        after = metrics.at_threshold(labels[measured], sites.recalibrate(p_model[~fit], temperature,
                                                                         site["temperature"]), site["threshold"])
        rows.append({"block": int(block), "n_fit": int(fit.sum()), "n_measured": int((~fit).sum()),
                     "site_temperature": site["temperature"], "site_threshold": site["threshold"],
                     "before": {k: before[k] for k in ("sensitivity", "specificity", "accuracy")},
                     "after": {k: after[k] for k in ("sensitivity", "specificity", "accuracy")}})
    return rows


def _per_fold(labels: np.ndarray, probs: np.ndarray, assigned: np.ndarray, threshold: float) -> list[dict]:
    """ROC AUC, sensitivity, specificity and ECE of each fold's held-out films at one threshold."""
    rows = []
    for fold in sorted(set(assigned.tolist())):
        held = assigned == fold
        at = metrics.at_threshold(labels[held], probs[held], threshold)
        rows.append({"fold": int(fold), "n": int(held.sum()),
                     "roc_auc": operating.roc_auc(labels[held], probs[held]),
                     "sensitivity": at["sensitivity"], "specificity": at["specificity"],
                     "accuracy": at["accuracy"],
                     "ece": metrics.expected_calibration_error(labels[held], probs[held])})
    return rows


def harder_scheme(assessed: dict, schemes: tuple[str, ...]) -> str:
    """Where to choose the operating point: the block folds, unless the random folds are clearly harder.

    Leave-block-out folds are built to be the harder test (another period); the random
    folds win only when their out-of-fold ROC AUC interval lies wholly below the block
    folds' interval.
    """
    if "block" not in schemes:
        return schemes[0]
    auc = {s: assessed["schemes"][s]["rules"]["youden_wilson"]["figures"]["roc_auc"] for s in schemes}
    if "random" in schemes and auc["random"]["high"] is not None and auc["block"]["low"] is not None \
            and auc["random"]["high"] < auc["block"]["low"]:
        return "random"
    return "block"


def _fold_files(run_dir, scheme: str, k: int) -> list[dict]:
    return [json.loads((scheme_dir(run_dir, scheme) / f"fold{f}" / FOLD_DONE).read_text()) for f in range(k)]


def _why(chosen_on: str, aucs: dict, rule: str, assessed: dict, min_sensitivity: float) -> str:
    """One paragraph for the card: why the operating point was chosen where it was."""
    others = [s for s in aucs if s != chosen_on]
    harder = all(aucs[chosen_on] <= aucs[s] for s in others)
    parts = [f"Out-of-fold ROC AUC is {', '.join(f'{aucs[s]:.4f} on the {s} folds' for s in sorted(aucs))}; "
             + (f"the {chosen_on} folds are the harder and so the more honest place to choose."
                if harder else
                f"the difference is within the intervals, so the operating point is chosen on the "
                f"{chosen_on} folds, which hold out whole periods and are the harder test by design.")]
    transfer = assessed.get("transfer")
    if transfer:
        summary = operating.summarise_transfer(transfer[rule])
        worst_met = summary["sensitivity"]["worst"] >= min_sensitivity
        mean_met = summary["sensitivity"]["mean"] >= min_sensitivity
        parts.append(f"Chosen on the other blocks and applied to each block in turn, rule {rule!r} kept a "
                     f"mean sensitivity of {summary['sensitivity']['mean']:.3f} (worst block "
                     f"{summary['sensitivity']['worst']:.3f}) and specificity "
                     f"{summary['specificity']['mean']:.3f} (worst {summary['specificity']['worst']:.3f}): "
                     + ("the best worst-block specificity among the rules that kept the "
                        f"{min_sensitivity:.2f} sensitivity target on every block." if worst_met else
                        "no rule kept the sensitivity target on every block; this one has the best "
                        f"worst-block specificity among those meeting {min_sensitivity:.2f} on average."
                        if mean_met else
                        f"no rule met the {min_sensitivity:.2f} sensitivity target on new blocks, and this "
                        "one came closest."))
    return " ".join(parts)

"""Making and adapting models: ``train``, ``train-cv``, ``operating-point``, ``fit-guard``, ``train-subtype``,
``calibrate-site``."""

from __future__ import annotations

import json
from pathlib import Path

from pneumo.cli.common import (
    UserError,
    declared_defaults,
    field_names,
    given,
    model_split,
    require_classes,
    require_counts,
    require_data_folder,
    require_enough_patients,
    require_fraction,
    require_model,
    require_writable_folder,
    thin,
)
from pneumo.cli.progress import Progress

CROSSVAL_RECIPE = {"input_size": 160, "width": 24, "epochs": 8, "border_penalty": 0.05,
                   "border_allowance": 0.15, "max_minutes": 24 * 60.0}
"""What ``train-cv`` changes in ``TrainConfig`` by default: the shipped ensemble's recipe
(every fold runs all its epochs, so the time budget is a day)."""


def run_train(args) -> int:
    """Train one model; every setting left out is ``TrainConfig``'s."""
    from pneumo import data
    from pneumo.modeling.models import ARCHITECTURES

    require_counts(args, ("--epochs", "epochs", 1), ("--batch-size", "batch_size", 1), ("--limit", "limit", 1),
                   ("--width", "width", 1))
    require_data_folder(args.data)
    records = data.find_films(args.data, splits=("train", "val"))
    require_classes(records, args.data)
    architecture = getattr(args, "architecture", None)
    if architecture is not None and architecture not in ARCHITECTURES:
        raise UserError(f"Unknown architecture {architecture!r}; choose from {list(ARCHITECTURES)}.")
    if getattr(args, "start_from", None):
        require_data_folder(args.start_from)
    if getattr(args, "weights", None) and not Path(args.weights).is_file():
        raise UserError(f"No such weights file: {args.weights}")
    require_writable_folder(args.out, "--out")

    from pneumo.modeling.augment import AugmentConfig
    from pneumo.training.train import TrainConfig, train

    config = TrainConfig(**given(args, field_names(TrainConfig)),
                         augment=AugmentConfig(**given(args, field_names(AugmentConfig))))
    require_fraction("--val-fraction", config.val_fraction)
    require_enough_patients(records, args.data, data.validation_parts(config.val_fraction),
                            what="parts (one held out for validation)")
    progress = Progress("train", config.epochs, things="epochs")
    folder = train(config, log=progress.note, on_epoch=epoch_reporter(progress, config.epochs))
    card = json.loads((folder / "card.json").read_text())
    training = card["training"]
    progress.close(f"saved {folder}; {validation_words(card)}; epoch {training['best_epoch']} of "
                   f"{training['epochs_run']} kept")
    return 0


def epoch_reporter(progress: Progress, epochs: int, held: str = "validation"):
    """An ``on_epoch`` callback for training: the epoch's figures as a note, then one more epoch done."""

    def report(epoch: int, figures: dict) -> None:
        progress.note(epoch_words(epoch, epochs, figures, held))
        progress.advance()

    return report


EPOCH_FIGURES = (("loss", "loss", ".4f"), ("auc", "AUC", ".4f"), ("accuracy", "accuracy", ".3f"),
                 ("border_share", "border share", ".3f"))
"""Keras's names of the figures an epoch's line shows on the held-out films, its words, and formats."""


def epoch_words(epoch: int, epochs: int, figures: dict, held: str = "validation") -> str:
    """``epoch 3/28: loss 0.4123; validation loss 0.3012, AUC 0.9456, accuracy 0.881, border share 0.120``."""
    text = f"epoch {epoch}/{epochs}: loss {figures['loss']:.4f}"
    shown = [f"{words} {figures['val_' + key]:{form}}" for key, words, form in EPOCH_FIGURES
             if "val_" + key in figures]
    return text + (f"; {held} " + ", ".join(shown) if shown else "")


def validation_words(card: dict) -> str:
    """``validation: ROC AUC 0.9612, sensitivity 0.951, specificity 0.802 at threshold 0.412; ECE 0.0123``."""
    figures = card["validation"]
    return (f"{figures.get('kind', 'validation')}: ROC AUC {figures['roc_auc']:.4f}, sensitivity "
            f"{figures['sensitivity']:.3f}, specificity {figures['specificity']:.3f} at threshold "
            f"{card['threshold']:.3f}; ECE {figures['ece']:.4f}")


def run_train_cv(args) -> int:
    """Train the folds of each scheme (resuming finished ones) and assemble the shipped ensemble."""
    from pneumo import data, folds

    require_counts(args, ("--epochs", "epochs", 1), ("--folds", "k", 2), ("--resamples", "resamples", 1),
                   ("--width", "width", 1))
    require_data_folder(args.data)
    if hasattr(args, "min_sensitivity"):
        require_fraction("--min-sensitivity", args.min_sensitivity)
    records = data.find_films(args.data, splits=("train", "val"))
    require_classes(records, args.data)
    require_writable_folder(args.out, "--out")
    run_dir = Path(args.run_dir or Path("runs") / Path(args.out).name)
    require_writable_folder(run_dir, "--run-dir")

    from pneumo.training import crossval
    from pneumo.training.train import TrainConfig

    plan = {**declared_defaults(crossval.assemble), **given(args, ("k", "ship", "schemes", "resamples"))}
    k, ship, schemes = plan["k"], plan["ship"], plan["schemes"]
    unknown = [s for s in schemes if s not in folds.SCHEMES]
    if unknown or ship not in schemes:
        raise UserError(f"--schemes must name schemes from {list(folds.SCHEMES)} and include --ship "
                        f"{ship!r}; got {','.join(schemes)!r}.")
    config = TrainConfig(**{**CROSSVAL_RECIPE, **given(args, field_names(TrainConfig))})
    require_enough_patients(records, args.data, k, schemes, config.seed)
    todo = {scheme: k - len(crossval.finished_folds(run_dir, scheme, k)) for scheme in schemes}
    progress = Progress("train-cv", sum(todo.values()) * config.epochs, things="epochs")
    on_epoch = epoch_reporter(progress, config.epochs, held="held-out")
    try:
        inputs = None
        for scheme in schemes:
            if todo[scheme] and inputs is None:
                progress.note(f"decoding {len(records)} films")
                inputs = data.load_inputs(records, config.input_size)
            crossval.train_folds(config, scheme, k, run_dir, log=progress.note, records=records, inputs=inputs,
                                 on_epoch=on_epoch)
        folder = crossval.assemble(config, run_dir, k, ship=ship, schemes=schemes,
                                   resamples=plan["resamples"], log=progress.note)
    except ValueError as err:
        raise UserError(str(err)) from err
    card = json.loads((folder / "card.json").read_text())
    print(f"{folder.name}: {card['ensemble']['members']} members; {validation_words(card)}; "
          f"{progress.elapsed() / 60:.1f} min")
    progress.close(f"{sum(todo.values())} of {len(schemes) * k} folds trained (the others were done "
                   f"already); saved {folder}")
    return 0


def run_operating_point(args) -> int:
    """Choose a stored model's threshold again on its validation films."""
    if hasattr(args, "min_sensitivity"):
        require_fraction("--min-sensitivity", args.min_sensitivity)
    require_data_folder(args.data)
    on_file = require_model(args.model)
    from pneumo.training.cards import ensemble_operating_point_words

    if "ensemble" in on_file.card:
        raise UserError(ensemble_operating_point_words(on_file.name))
    val_records, _ = model_split(on_file.card, args.data)
    require_classes(val_records, "The model's validation films")

    from pneumo.training.train import choose_operating_point

    choose_operating_point(args.model, args.data, **given(args, ("min_sensitivity",)))
    return 0


def run_fit_guard(args) -> int:
    """Fit a stored model's out-of-scope guard on its own training films and measure it."""
    from pneumo import data, store
    from pneumo.guard.fit import fit_and_store_guard
    from pneumo.render.terminal import format_guard

    require_data_folder(args.data)
    require_counts(args, ("--limit", "limit", 10), ("--max-train", "max_train", 1), ("--per-kind", "per_kind", 1))
    if args.limit is not None and args.model is None:
        raise UserError("--limit fits a smoke-run guard and writes it into the model's folder: name the model "
                        "with --model, so that the default model's guard is not replaced by mistake.")
    on_file = require_model(args.model)
    train_records, val_records = model_split(on_file.card, args.data)
    if args.limit is not None:
        train_records, val_records = thin(train_records, args.limit), thin(val_records, args.limit)
    loaded = store.load(args.model)
    progress = Progress("fit-guard", len(train_records) + len(val_records))
    progress.note(f"model {loaded.name}, decoding {len(train_records)} training and "
                  f"{len(val_records)} validation films")
    x_train = data.load_inputs(train_records, loaded.input_size, progress=lambda *_: progress.advance())
    x_val = data.load_inputs(val_records, loaded.input_size, progress=lambda *_: progress.advance())
    section = fit_and_store_guard(loaded, x_train, x_val, val_groups=[r.patient for r in val_records],
                                  **given(args, ("max_train", "per_kind", "seed")), log=progress.note)
    print(format_guard(loaded.name, section))
    validation = section["validation"]
    progress.close(f"guard saved to {loaded.path / section['file']}; {validation['rejected']} of "
                   f"{validation['n']} validation films refused")
    return 0


def run_train_subtype(args) -> int:
    """Fine-tune the subtype model fold by fold (resumable), then write it and its card section."""
    from pneumo import store
    from pneumo.training.subtype import (SubtypeConfig, assemble, destination, finished_folds, shortfalls,
                                         train_subtype_folds)

    require_counts(args, ("--epochs", "epochs", 1))
    require_data_folder(args.data)
    on_file = require_model(args.model)
    if "out_of_fold" not in on_file.card or "ensemble" not in on_file.card:
        raise UserError(f"model {on_file.name!r} is not a cross-validated ensemble (made by train-cv): "
                        "the subtype model is fine-tuned from its members, fold by fold.")
    require_writable_folder(args.run_dir, "--run-dir")
    loaded = store.load(args.model)
    config = SubtypeConfig(**given(args, ("epochs", "learning_rate", "seed")))
    k = int(on_file.card["ensemble"]["members"])
    todo = k - len(finished_folds(args.run_dir, k))
    progress = Progress("train-subtype", todo * config.epochs, things="epochs")
    train_subtype_folds(loaded, args.data, args.run_dir, config, log=progress.note,
                        on_epoch=lambda *_: progress.advance())
    section = assemble(loaded, args.data, args.run_dir, log=progress.note, ship_below_floor=args.ship_below_floor)
    figures = section["validation"]["figures"]
    written = destination(loaded, args.run_dir, section, args.ship_below_floor) / section["file"]
    held_back = written.parent != loaded.path
    print(f"subtype model of {loaded.name}: out-of-fold ROC AUC {figures['roc_auc']['value']:.4f}, "
          f"accuracy {figures['accuracy']['value']:.4f} at threshold {section['threshold']:.3f}; "
          + (f"not shipped, {'; '.join(shortfalls(section))} (the product's floor), so the pattern stays off; kept in "
             f"{args.run_dir} (--ship-below-floor ships it anyway)" if held_back else f"wrote {written}"))
    progress.close(f"{todo} of {k} folds fine-tuned (the others were done already); wrote {written}"
                   + (" (held back, below the floor)" if held_back else ""))
    return 0


def run_calibrate_site(args) -> int:
    """Fit and store a site's temperature and threshold on its labelled films."""
    from pneumo import store
    from pneumo.inference import sites

    sites.check_name(args.name)
    if hasattr(args, "min_sensitivity"):
        require_fraction("--min-sensitivity", args.min_sensitivity)
    require_data_folder(args.data)
    require_model(args.model)
    loaded = store.load(args.model)
    progress = None

    def scored(done: int, total: int, status: str | None) -> None:
        nonlocal progress
        if progress is None:  # the first call, before any film: now the total is known
            progress = Progress("calibrate-site", total)
            progress.note(f"model {loaded.name}, site {args.name}: scoring {total} films of {args.data}")
        else:
            progress.advance(1, **{status: 1})

    record = sites.calibrate_site(loaded, args.data, args.name, **given(args, ("min_sensitivity",)),
                                  progress=scored)
    replaced = sites.site_path(loaded, args.name).is_file()
    path = sites.save_site(loaded, record)
    print(sites.format_summary(record))
    progress.close(f"{'replaced' if replaced else 'stored'} {path}; use it with --site {args.name}")
    return 0

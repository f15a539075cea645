"""Making and adapting models: ``train``, ``train-cv``, ``operating-point``, ``fit-guard``, ``train-subtype``,
``calibrate-site``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pneumo.cli.common import (
    ProgressReporter,
    UserError,
    declared_defaults,
    field_names,
    given,
    model_split,
    require_at_least,
    require_classes,
    require_data_folder,
    require_fraction,
    require_model,
    require_writable_folder,
    thin,
)

CROSSVAL_RECIPE = {"input_size": 160, "width": 24, "epochs": 8, "border_penalty": 0.05,
                   "border_allowance": 0.15, "max_minutes": 24 * 60.0}
"""What ``train-cv`` changes in ``TrainConfig`` by default: the shipped ensemble's recipe
(every fold runs all its epochs, so the time budget is a day)."""


def run_train(args) -> int:
    """Train one model; every setting left out is ``TrainConfig``'s."""
    from pneumo import data
    from pneumo.modeling.models import ARCHITECTURES

    require_data_folder(args.data)
    require_classes(data.find_films(args.data, splits=("train", "val")), args.data)
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
    train(config, log=ProgressReporter(stream="stdout"))
    return 0


def run_train_cv(args) -> int:
    """Train the folds of each scheme (resuming finished ones) and assemble the shipped ensemble."""
    from pneumo import data, folds

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
    log = ProgressReporter(stream="stdout")
    try:
        inputs = None
        for scheme in schemes:
            if len(crossval.finished_folds(run_dir, scheme, k)) < k and inputs is None:
                inputs = data.load_inputs(records, config.input_size)
            crossval.train_folds(config, scheme, k, run_dir, log=log, records=records, inputs=inputs)
        folder = crossval.assemble(config, run_dir, k, ship=ship, schemes=schemes,
                                   resamples=plan["resamples"], log=log)
    except ValueError as err:
        raise UserError(str(err)) from err
    card = json.loads((folder / "card.json").read_text())
    figures = card["validation"]
    print(f"{folder.name}: {card['ensemble']['members']} members; {figures['kind']}: ROC AUC "
          f"{figures['roc_auc']:.4f}, sensitivity {figures['sensitivity']:.3f}, specificity "
          f"{figures['specificity']:.3f} at threshold {card['threshold']:.3f}; ECE {figures['ece']:.4f}; "
          f"{log.elapsed() / 60:.1f} min")
    return 0


def run_operating_point(args) -> int:
    """Choose a stored model's threshold again on its validation films."""
    if hasattr(args, "min_sensitivity"):
        require_fraction("--min-sensitivity", args.min_sensitivity)
    require_data_folder(args.data)
    on_file = require_model(args.model)
    val_records, _ = model_split(on_file.card, args.data)
    require_classes(val_records, "The model's validation films")

    from pneumo.training.train import choose_operating_point

    choose_operating_point(args.model, args.data, **given(args, ("min_sensitivity",)),
                           log=ProgressReporter(stream="stdout"))
    return 0


def run_fit_guard(args) -> int:
    """Fit a stored model's out-of-scope guard on its own training films and measure it."""
    from pneumo import data, store
    from pneumo.guard.fit import fit_and_store_guard
    from pneumo.render.terminal import format_guard

    require_data_folder(args.data)
    require_at_least("--limit", args.limit, 10)
    on_file = require_model(args.model)
    train_records, val_records = model_split(on_file.card, args.data)
    if args.limit is not None:
        train_records, val_records = thin(train_records, args.limit), thin(val_records, args.limit)
    loaded = store.load(args.model)
    report = ProgressReporter("fit-guard")
    report(f"model {loaded.name}, decoding {len(train_records)} training and "
           f"{len(val_records)} validation films")
    x_train = data.load_inputs(train_records, loaded.input_size)
    x_val = data.load_inputs(val_records, loaded.input_size)
    section = fit_and_store_guard(loaded, x_train, x_val, val_groups=[r.patient for r in val_records],
                                  **given(args, ("max_train", "per_kind", "seed")), log=report)
    print(format_guard(loaded.name, section))
    return 0


def run_train_subtype(args) -> int:
    """Fine-tune the subtype model fold by fold (resumable), then write it and its card section."""
    from pneumo import store
    from pneumo.training.subtype import SubtypeConfig, assemble, train_subtype_folds

    require_data_folder(args.data)
    on_file = require_model(args.model)
    if "out_of_fold" not in on_file.card or "ensemble" not in on_file.card:
        raise UserError(f"model {on_file.name!r} is not a cross-validated ensemble (made by train-cv): "
                        "the subtype model is fine-tuned from its members, fold by fold.")
    require_writable_folder(args.run_dir, "--run-dir")
    loaded = store.load(args.model)
    report = ProgressReporter("train-subtype")
    config = SubtypeConfig(**given(args, ("epochs", "learning_rate", "seed")))
    train_subtype_folds(loaded, args.data, args.run_dir, config, log=report)
    section = assemble(loaded, args.data, args.run_dir, log=report)
    figures = section["validation"]["figures"]
    print(f"subtype model of {loaded.name}: out-of-fold ROC AUC {figures['roc_auc']['value']:.4f}, "
          f"accuracy {figures['accuracy']['value']:.4f} at threshold {section['threshold']:.3f}; "
          f"wrote {loaded.path / section['file']}")
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
    report = ProgressReporter("calibrate-site")

    def progress(done: int, total: int) -> None:
        if done == 0:
            report(f"model {loaded.name}, site {args.name}: scoring {total} films of {args.data}")
        else:
            report.count(done, total)

    record = sites.calibrate_site(loaded, args.data, args.name, **given(args, ("min_sensitivity",)),
                                  progress=progress)
    replaced = sites.site_path(loaded, args.name).is_file()
    path = sites.save_site(loaded, record)
    print(sites.format_summary(record))
    print(f"{'replaced' if replaced else 'stored'} {path} in {report.elapsed():.0f} s; use it with "
          f"--site {args.name}", file=sys.stderr)
    return 0

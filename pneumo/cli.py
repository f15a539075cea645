"""The command line: ``python -m pneumo train|train-cv|evaluate|predict|calibrate-site|profile|bench|explain-eval|fit-guard``.

A user's mistake (a missing path, an unknown model, an empty folder) is one
sentence on stderr and exit code 2; a completed run exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

EXIT_USAGE = 2


class UserError(Exception):
    """A mistake the user can fix; printed as one sentence, no traceback."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    from pneumo.io import FilmReadError
    from pneumo.store import ModelStoreError

    try:
        return int(args.handler(args) or 0)
    except (UserError, ModelStoreError, FileNotFoundError, FilmReadError, ValueError) as err:
        message = str(err).strip() or type(err).__name__
        print(f"pneumo {args.command}: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"pneumo {args.command}: interrupted.", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pneumo", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from scratch and save it to the store")
    train.add_argument("--data", required=True, help="Kaggle-layout root or a split folder")
    train.add_argument("--out", required=True, help="model folder, e.g. model_store/NAME")
    train.add_argument("--architecture", default="cnn",
                       help="cnn, densenet121, resnet50, mobilenetv2 or efficientnetb0")
    train.add_argument("--input-size", type=int, default=192)
    train.add_argument("--width", type=int, default=32, help="filters of the CNN's first block")
    train.add_argument("--epochs", type=int, default=28)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--learning-rate", type=float, default=2e-3)
    train.add_argument("--label-smoothing", type=float, default=0.05)
    train.add_argument("--val-fraction", type=float, default=0.2)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--patience", type=int, default=8)
    train.add_argument("--max-minutes", type=float, default=58.0, help="time budget of the run")
    train.add_argument("--horizontal-flip", action="store_true", help="also flip films left-right")
    train.add_argument("--weights", help="local weights file for a backbone (default: from scratch)")
    train.add_argument("--border-penalty", type=float,
                       help="weight of the loss on the share of the decision taken from the film's "
                            "border band (default: the training configuration's)")
    train.add_argument("--border-allowance", type=float,
                       help="border share each film may keep before --border-penalty applies "
                            "(default: the training configuration's)")
    train.add_argument("--start-from", metavar="FOLDER",
                       help="continue from this stored model's weights (same shape, same "
                            "validation films) instead of from scratch")
    train.add_argument("--limit", type=int, help="train on this many films only (smoke runs)")
    train.add_argument("--checkpoint-dir", help="where checkpoints go (default runs/NAME)")
    train.set_defaults(handler=run_train)

    train_cv = commands.add_parser(
        "train-cv", help="train the shipped ensemble: patient-grouped folds (random and leave-block-out), "
                         "out-of-fold probabilities, the operating point chosen on them; resumable fold by fold")
    train_cv.add_argument("--data", required=True, help="Kaggle-layout root or a split folder")
    train_cv.add_argument("--out", required=True, help="model folder, e.g. model_store/NAME")
    train_cv.add_argument("--folds", type=int, default=5, help="folds per scheme")
    train_cv.add_argument("--ship", choices=("random", "block"), default="random",
                          help="whose fold models make the shipped ensemble")
    train_cv.add_argument("--schemes", default="block,random",
                          help="fold schemes to train, comma-separated (both by default)")
    train_cv.add_argument("--input-size", type=int, default=160)
    train_cv.add_argument("--width", type=int, default=24, help="filters of the CNN's first block")
    train_cv.add_argument("--epochs", type=int, default=8, help="epochs per fold (all run; the last is kept)")
    train_cv.add_argument("--learning-rate", type=float, default=2e-3)
    train_cv.add_argument("--label-smoothing", type=float, default=0.05)
    train_cv.add_argument("--border-penalty", type=float, default=0.05)
    train_cv.add_argument("--border-allowance", type=float, default=0.15)
    train_cv.add_argument("--min-sensitivity", type=float, default=0.95)
    train_cv.add_argument("--seed", type=int, default=0)
    train_cv.add_argument("--run-dir", help="where fold models go (default runs/NAME)")
    train_cv.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the intervals")
    train_cv.set_defaults(handler=run_train_cv)

    evaluate = commands.add_parser("evaluate", help="measure a model on a labelled folder")
    evaluate.add_argument("--data", required=True, help="Kaggle-layout root or a split folder")
    evaluate.add_argument("--split", help="with a Kaggle root: which split (default: test if present)")
    evaluate.add_argument("--model", help="model name in the store (default: DEFAULT)")
    evaluate.add_argument("--site", help="use this site's calibration (see calibrate-site)")
    evaluate.add_argument("--json", dest="json_out", help="also write the figures to this file")
    evaluate.set_defaults(handler=run_evaluate)

    predict = commands.add_parser("predict", help="probability of pneumonia for films or folders")
    predict.add_argument("paths", nargs="+", metavar="PATH")
    predict.add_argument("--model", help="model name in the store (default: DEFAULT)")
    predict.add_argument("--site", help="use this site's calibration (see calibrate-site)")
    predict.add_argument("--csv", dest="csv_out", help="write the rows to this CSV file")
    predict.set_defaults(handler=run_predict)

    calibrate = commands.add_parser(
        "calibrate-site", help="fit a site's own temperature and threshold on its labelled films "
                               "(the model file is never changed)")
    calibrate.add_argument("--data", required=True,
                           help="the site's labelled films: a Kaggle-layout root (every split is used) "
                                "or a folder with NORMAL and PNEUMONIA")
    calibrate.add_argument("--name", required=True, help="the site's name: letters, digits, '-' and '_'")
    calibrate.add_argument("--model", help="model name in the store (default: DEFAULT)")
    calibrate.add_argument("--min-sensitivity", type=float, default=0.95,
                           help="the lower 95%% bound of sensitivity the site's threshold keeps")
    calibrate.set_defaults(handler=run_calibrate_site)

    profile = commands.add_parser("profile", help="describe a data set")
    profile.add_argument("--data", required=True, help="Kaggle-layout root or a split folder")
    profile.add_argument("--json", dest="json_out", help="also write the profile to this file")
    profile.set_defaults(handler=run_profile)

    bench = commands.add_parser("bench", help="time prediction and Grad-CAM on this machine")
    bench.add_argument("--model", help="model name in the store (default: DEFAULT)")
    bench.add_argument("--runs", type=int, default=30, help="timed runs per figure")
    bench.add_argument("--json", action="store_true", help="end with one JSON line")
    bench.set_defaults(handler=run_bench)

    explain_eval = commands.add_parser(
        "explain-eval", help="measure how far the heatmaps can be trusted (deletion, insertion, "
                             "randomisation, border share)")
    explain_eval.add_argument("--data", required=True, help="Kaggle-layout root or a split folder")
    explain_eval.add_argument("--model", help="model name in the store (default: DEFAULT)")
    explain_eval.add_argument("--json", dest="json_out", help="also write the results to this file")
    explain_eval.add_argument("--limit", type=int, help="a seeded, class-stratified sample of N films")
    explain_eval.add_argument(
        "--split", choices=("validation", "train", "val", "test", "all"),
        help="which films: the model's patient-grouped validation films (default when DATA holds "
             "its training data), a Kaggle split, or all; otherwise test if present, else all")
    explain_eval.add_argument("--canvas", choices=("mean", "normal", "blur"), default="mean",
                              help="what removed pixels become: the mean normal film of the set, "
                                   "one normal film, or the blurred film (RISE)")
    explain_eval.add_argument("--steps", type=int, default=24, help="deletion/insertion steps")
    explain_eval.add_argument("--seed", type=int, default=0)
    explain_eval.add_argument("--random-models", type=int, default=5,
                              help="random-weights models each map is compared with (randomisation check)")
    explain_eval.add_argument("--save", action="store_true",
                              help="store the results beside the model (validation films only)")
    explain_eval.set_defaults(handler=run_explain_eval)

    operating = commands.add_parser(
        "operating-point", help="choose a model's threshold again on its validation split")
    operating.add_argument("--data", required=True, help="the data folder the model was trained from")
    operating.add_argument("--model", help="model name in the store (default: DEFAULT)")
    operating.add_argument("--min-sensitivity", type=float, default=0.95)
    operating.set_defaults(handler=run_operating_point)

    fit_guard = commands.add_parser(
        "fit-guard", help="fit a stored model's out-of-scope guard and measure it")
    fit_guard.add_argument("--model", help="model name in the store (default: DEFAULT)")
    fit_guard.add_argument("--data", required=True,
                           help="the data the model was trained on (Kaggle-layout root or train folder)")
    fit_guard.add_argument("--max-train", type=int, default=2000,
                           help="training films used for fitting (a seeded draw)")
    fit_guard.add_argument("--per-kind", type=int, default=60,
                           help="transformed validation films per kind in the out-of-scope set")
    fit_guard.add_argument("--limit", type=int, help="use only N training and N validation films (smoke runs)")
    fit_guard.add_argument("--seed", type=int, default=0)
    fit_guard.set_defaults(handler=run_fit_guard)
    return parser


def run_train(args) -> int:
    from pneumo.augment import AugmentConfig
    from pneumo.train import TrainConfig, train

    if not Path(args.data).is_dir():
        raise UserError(f"No such data folder: {args.data}")
    config = TrainConfig(
        data=args.data, out=args.out, architecture=args.architecture, input_size=args.input_size,
        width=args.width, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, label_smoothing=args.label_smoothing,
        val_fraction=args.val_fraction, seed=args.seed, patience=args.patience,
        max_minutes=args.max_minutes, weights=args.weights, limit=args.limit,
        augment=AugmentConfig(horizontal_flip=args.horizontal_flip),
        checkpoint_dir=args.checkpoint_dir, start_from=args.start_from,
        **({} if args.border_penalty is None else {"border_penalty": args.border_penalty}),
        **({} if args.border_allowance is None else {"border_allowance": args.border_allowance}),
    )
    train(config, log=lambda message: print(message, flush=True))
    return 0


def run_train_cv(args) -> int:
    from pneumo import crossval, data, folds
    from pneumo.train import TrainConfig

    if not Path(args.data).is_dir():
        raise UserError(f"No such data folder: {args.data}")
    schemes = tuple(s.strip() for s in args.schemes.split(",") if s.strip())
    unknown = [s for s in schemes if s not in folds.SCHEMES]
    if unknown or args.ship not in schemes:
        raise UserError(f"--schemes must name schemes from {list(folds.SCHEMES)} and include --ship "
                        f"{args.ship!r}; got {args.schemes!r}.")
    if not 0 < args.min_sensitivity < 1:
        raise UserError(f"--min-sensitivity must be between 0 and 1, got {args.min_sensitivity}.")
    config = TrainConfig(
        data=args.data, out=args.out, input_size=args.input_size, width=args.width, epochs=args.epochs,
        learning_rate=args.learning_rate, label_smoothing=args.label_smoothing, seed=args.seed,
        min_sensitivity=args.min_sensitivity, border_penalty=args.border_penalty,
        border_allowance=args.border_allowance, max_minutes=24 * 60.0,
    )
    run_dir = Path(args.run_dir or Path("runs") / Path(args.out).name)
    log = lambda message: print(message, flush=True)  # noqa: E731
    started = time.time()
    try:
        records = data.find_films(args.data, splits=("train", "val"))
        inputs = None
        for scheme in schemes:
            if len(crossval.finished_folds(run_dir, scheme, args.folds)) < args.folds and inputs is None:
                inputs = data.load_inputs(records, args.input_size)
            crossval.train_folds(config, scheme, args.folds, run_dir, log=log, records=records, inputs=inputs)
        folder = crossval.assemble(config, run_dir, args.folds, ship=args.ship, schemes=schemes,
                                   resamples=args.resamples, log=log)
    except ValueError as err:
        raise UserError(str(err)) from err
    card = json.loads((folder / "card.json").read_text())
    figures = card["validation"]
    print(f"{folder.name}: {card['ensemble']['members']} members; {figures['kind']}: ROC AUC "
          f"{figures['roc_auc']:.4f}, sensitivity {figures['sensitivity']:.3f}, specificity "
          f"{figures['specificity']:.3f} at threshold {card['threshold']:.3f}; ECE {figures['ece']:.4f}; "
          f"{(time.time() - started) / 60:.1f} min")
    return 0


def run_operating_point(args) -> int:
    from pneumo.train import choose_operating_point

    if not 0 < args.min_sensitivity < 1:
        raise UserError(f"--min-sensitivity must be between 0 and 1, got {args.min_sensitivity}.")
    if not Path(args.data).is_dir():
        raise UserError(f"No such data folder: {args.data}")
    choose_operating_point(args.model, args.data, args.min_sensitivity,
                           log=lambda message: print(message, flush=True))
    return 0


def run_evaluate(args) -> int:
    import json

    from pneumo import data, metrics
    from pneumo.predict import STATUS_OK, STATUS_REJECTED

    classifier = _classifier(args.model, args.site)
    records = _evaluation_records(Path(args.data), args.split)
    items = ((str(r.path), r.path) for r in records)
    kept, probs, errors, rejected = [], [], [], []
    for record, assessment in zip(records, classifier.assess_many(items)):
        if assessment.status == STATUS_OK:
            kept.append(record)
            probs.append(assessment.p_pneumonia)
        elif assessment.status == STATUS_REJECTED:
            rejected.append({"path": assessment.source, "reason": assessment.out_of_scope_reason})
        else:
            errors.append(assessment.row())
    if not kept:
        raise UserError(f"None of the {len(records)} films in {args.data} could be read.")
    figures = metrics.evaluate(data.labels_of(kept), probs, classifier.threshold,
                               [r.subtype for r in kept])
    figures = {"model": classifier.loaded.name, "model_sha256": classifier.loaded.card["sha256"],
               "site": classifier.site_name or None, "data": str(args.data), **figures, "unreadable": errors,
               "rejected_out_of_scope": rejected}
    print(format_evaluation(figures))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _evaluation_records(root: Path, split: str | None):
    from pneumo import data

    if not root.is_dir():
        raise UserError(f"No such data folder: {root}")
    if split:
        return data.find_films(root, splits=(split,))
    if (root / "test").is_dir():
        return data.find_films(root, splits=("test",))
    if any((root / name).is_dir() for name in data.CLASSES):
        return data.find_films(root)
    raise UserError(f"{root} has no test split and no NORMAL/PNEUMONIA folders; name one with --split.")


def format_evaluation(figures: dict) -> str:
    """The evaluation as the table readers know from the literature."""
    site = f" with site calibration {figures['site']}" if figures.get("site") else ""
    lines = [f"model {figures['model']}{site} on {figures['n']} films of {figures['data']}", "",
             f"{'':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, row in figures["per_class"].items():
        lines.append(f"{name:<12}{row['precision']:>10.3f}{row['recall']:>10.3f}"
                     f"{row['f1-score']:>10.3f}{row['support']:>10d}")
    tn, fp = figures["confusion_matrix"][0]
    fn, tp = figures["confusion_matrix"][1]

    def fmt(value):
        return "n/a" if value is None else f"{value:.4f}"

    lines += ["", f"threshold    {figures['threshold']:.4f}",
              f"accuracy     {fmt(figures['accuracy'])}",
              f"sensitivity  {fmt(figures['sensitivity'])}",
              f"specificity  {fmt(figures['specificity'])}",
              f"ROC AUC      {fmt(figures['roc_auc'])}",
              f"PR AUC       {fmt(figures['pr_auc'])}",
              f"ECE          {fmt(figures['ece'])}",
              f"Brier        {fmt(figures['brier'])}",
              f"confusion    TN {tn}  FP {fp}  FN {fn}  TP {tp}"]
    for subtype, row in figures.get("recall_by_subtype", {}).items():
        lines.append(f"recall {subtype:<6}{row['recall']:.4f} ({row['support']} films)")
    if figures["unreadable"]:
        lines.append(f"{len(figures['unreadable'])} films could not be read and were left out")
    if figures.get("rejected_out_of_scope"):
        lines.append(f"{len(figures['rejected_out_of_scope'])} films were refused as out of scope "
                     "and left out")
    return "\n".join(lines)


def run_predict(args) -> int:
    import csv

    from pneumo.io import find_film_files
    from pneumo.predict import CSV_FIELDS

    try:
        paths = find_film_files(args.paths)
    except FileNotFoundError as err:
        raise UserError(str(err)) from err
    if not paths:
        raise UserError(f"No films found in {', '.join(args.paths)}.")
    classifier = _classifier(args.model, args.site)
    if classifier.guard is None:
        print(f"pneumo predict: note: model {classifier.loaded.name!r} has no out-of-scope guard, so "
              "nothing checks that the images are frontal chest films (see 'fit-guard').",
              file=sys.stderr)
    handle = open(args.csv_out, "w", newline="") if args.csv_out else sys.stdout
    try:
        writer = csv.DictWriter(handle, fieldnames=list(CSV_FIELDS))
        writer.writeheader()
        for assessment in classifier.assess_many((str(p), p) for p in paths):
            writer.writerow(assessment.row())
            handle.flush()
    finally:
        if handle is not sys.stdout:
            handle.close()
    return 0


PROGRESS_SECONDS = 5.0
"""calibrate-site prints a progress line at most this often while it scores films."""


def run_calibrate_site(args) -> int:
    import time

    from pneumo import sites, store

    sites.check_name(args.name)
    if not 0 < args.min_sensitivity < 1:
        raise UserError(f"--min-sensitivity must be between 0 and 1, got {args.min_sensitivity}.")
    if not Path(args.data).is_dir():
        raise UserError(f"No such data folder: {args.data}")
    loaded = store.load(args.model)
    started = time.time()
    last = {"shown": started}

    def progress(done: int, total: int) -> None:
        now = time.time()
        if done == 0:
            print(f"calibrate-site: model {loaded.name}, site {args.name}: scoring {total} films of "
                  f"{args.data}", file=sys.stderr, flush=True)
        elif done == total or now - last["shown"] >= PROGRESS_SECONDS:
            last["shown"] = now
            print(f"calibrate-site: scored {done} of {total} films ({now - started:.0f} s)",
                  file=sys.stderr, flush=True)

    record = sites.calibrate_site(loaded, args.data, args.name, args.min_sensitivity, progress=progress)
    replaced = sites.site_path(loaded, args.name).is_file()
    path = sites.save_site(loaded, record)
    print(sites.format_summary(record))
    print(f"{'replaced' if replaced else 'stored'} {path} in {time.time() - started:.0f} s; use it with "
          f"--site {args.name}", file=sys.stderr)
    return 0


def run_profile(args) -> int:
    import json

    from pneumo import data
    from pneumo.profile import profile_records

    records = data.find_films(args.data)
    result = profile_records(records, root=args.data)
    print(format_profile(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def format_profile(profile: dict) -> str:
    """A few lines that summarise a data set profile."""
    lines = [f"{profile['n_films']} films"]
    for split, counts in profile["films"].items():
        lines.append(f"  {split:<6} " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    lines.append("patients: " + ", ".join(f"{n} {name}" for name, n in profile["patients"].items()))
    lines.append("pneumonia subtypes: " + ", ".join(f"{n} {k}" for k, n in profile["subtypes"].items()))
    widths, heights = profile["image_sizes"]["width"], profile["image_sizes"]["height"]
    if widths:
        lines.append(f"image sizes: width {min(widths)}-{max(widths)}, height {min(heights)}-{max(heights)}")
    lines.append(f"patients in several splits: {profile['leakage']['patients_in_several_splits']}")
    dupes = profile["near_duplicates"]
    lines.append(f"near-identical groups: {dupes['groups']} ({dupes['films']} films, "
                 f"{dupes['cross_patient_groups']} across patients)")
    if profile["unreadable"]:
        lines.append(f"unreadable films: {len(profile['unreadable'])}")
    return "\n".join(lines)


def run_bench(args) -> int:
    import json

    from pneumo import bench, data
    from pneumo.io import read_film

    classifier = _classifier(args.model)
    film_path = next(iter(data.find_films(data.default_data_dir(), splits=("train",))), None) \
        if data.default_data_dir().is_dir() else None
    film = read_film(film_path.path) if film_path else data.synthetic_film()
    print(f"benchmarking {classifier.loaded.name} on "
          f"{film_path.path.name if film_path else 'a synthetic film'} ({film.size[0]} x {film.size[1]}), "
          f"{args.runs} runs each", file=sys.stderr)
    result = bench.run(classifier.loaded, film, runs=args.runs)
    for key, value in result.items():
        print(f"{key:<18}{value}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    return 0


def run_explain_eval(args) -> int:
    import json
    import time

    from pneumo import data, faithfulness, store

    started = time.time()
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}.")
    if args.random_models < 1:
        raise UserError(f"--random-models must be at least 1, got {args.random_models}.")
    if not Path(args.data).is_dir():
        raise UserError(f"No such data folder: {args.data}")
    loaded = store.load(args.model)
    records, films = faithfulness.select_records(args.data, loaded.card, args.split)
    if args.save and films != "validation":
        raise UserError(f"--save stores figures for the model's validation films only; these are "
                        f"{films} films of {args.data}.")
    chosen = faithfulness.stratified_sample(records, args.limit, args.seed)
    print(f"explain-eval: model {loaded.name}, {len(chosen)} of {len(records)} {films} films "
          f"of {args.data}", file=sys.stderr)
    inputs = data.load_inputs(chosen, loaded.input_size)
    config = faithfulness.FaithfulnessConfig(steps=args.steps, canvas=args.canvas, seed=args.seed,
                                             randomization_models=args.random_models)
    result = faithfulness.measure(loaded, inputs, data.labels_of(chosen), config,
                                  progress=lambda line: print(f"  {time.time() - started:5.0f} s  {line}",
                                                              file=sys.stderr, flush=True))
    result = {"model": loaded.name, "model_sha256": loaded.card["sha256"], "data": str(args.data),
              "films": films, "seconds": round(time.time() - started, 1), **result,
              "paths": [f"{r.split}/{r.class_name}/{r.path.name}" for r in chosen]}
    result["targets"] = faithfulness.check_targets(result)
    print(faithfulness.format_summary(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1) + "\n")
    if args.save:
        print(f"stored {faithfulness.save_explanations(result, loaded.path)}", file=sys.stderr)
    return 0


def run_fit_guard(args) -> int:
    from pneumo import data, store
    from pneumo.ood import fit_measure_save

    if not Path(args.data).is_dir():
        raise UserError(f"No such data folder: {args.data}")
    loaded = store.load(args.model)
    train_records, val_records = _model_split(loaded, args.data)
    if args.limit is not None:
        if args.limit < 10:
            raise UserError(f"--limit must be at least 10, got {args.limit}.")
        train_records, val_records = _thin(train_records, args.limit), _thin(val_records, args.limit)
    print(f"fit-guard: model {loaded.name}, decoding {len(train_records)} training and "
          f"{len(val_records)} validation films", file=sys.stderr, flush=True)
    x_train = data.load_inputs(train_records, loaded.input_size)
    x_val = data.load_inputs(val_records, loaded.input_size)
    section = fit_measure_save(loaded, x_train, x_val, val_groups=[r.patient for r in val_records],
                               max_train=args.max_train, per_kind=args.per_kind, seed=args.seed,
                               log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_guard(loaded.name, section))
    return 0


def _model_split(loaded, root: str):
    """The model's own (training, held-out) records, checked against its card."""
    from pneumo import folds

    try:
        return folds.training_records(loaded.card, root)
    except ValueError as err:
        raise UserError(str(err)) from err


def _thin(records, count: int):
    step = max(1, len(records) // count)
    return list(records[::step][:count])


def format_guard(name: str, section: dict) -> str:
    """The guard's figures: validation refusals, and detection of each out-of-scope kind."""
    validation, ood = section["validation"], section["out_of_scope"]
    lines = [f"out-of-scope guard of model {name}",
             f"validation films refused  {validation['rejected']} of {validation['n']} "
             f"({validation['rejection_rate']:.2%}; cross-fitted {validation['cross_fitted_rejection_rate']:.2%})",
             f"AUROC, validation films against {ood['n_out_of_scope']} out-of-scope images: "
             f"{ood['auroc']:.4f}", "",
             f"{'kind':<28}{'n':>5}{'AUROC':>9}{'refused':>9}{'named':>8}"]
    for kind, row in ood["by_kind"].items():
        lines.append(f"{kind:<28}{row['n']:>5}{row['auroc']:>9.4f}{row['detected']:>9.1%}"
                     f"{row['named_as_expected']:>8.0%}")
    lines += [""] + [f"note: {note}" for note in ood.get("notes", [])]
    return "\n".join(lines).rstrip()


def _classifier(name: str | None, site: str | None = None):
    from pneumo import store
    from pneumo.predict import Classifier

    return Classifier(store.load(name), site=site)

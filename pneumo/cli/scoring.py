"""Scoring films: ``predict`` (a CSV row per film) and ``evaluate`` (figures on a labelled folder)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pneumo.cli.common import (
    UserError,
    classifier_for,
    require_at_least,
    require_data_folder,
    require_model,
    require_writable_file,
)


def run_predict(args) -> int:
    """Score films into a results file (``--out``, resumable) or onto stdout, in path order."""
    from pneumo.batch import engines
    from pneumo.batch.results import ResultsError
    from pneumo.cli.progress import Progress

    spec, results, plan = plan_predict(args)
    progress = Progress("predict", len(plan.todo))
    if plan.skipped or plan.changed:
        progress.note(f"{plan.skipped} films already in {args.out} are kept"
                      + (f"; {len(plan.changed)} changed since and are scored again" if plan.changed else "")
                      + f"; {len(plan.todo)} to score.")
    where = f"results in {args.out}" if args.out else "results on stdout"
    try:
        if plan.todo:
            score_predict(args, spec, plan.todo, results, progress)
        results.finish()
    except KeyboardInterrupt:
        results.finish()
        progress.close(f"interrupted; {where}" + ("; rerun the same command to score the rest" if args.out else ""))
        return 130
    except (ResultsError, engines.EngineError) as err:
        raise UserError(str(err)) from err
    progress.close((f"{plan.skipped} already on file; " if plan.skipped else "") + where)
    return 0


def plan_predict(args):
    """Check ``predict``'s arguments before any film is scored; returns (spec, results, plan)."""
    from pneumo.batch import engines
    from pneumo.batch import results as batch_results
    from pneumo.io import find_film_files
    from pneumo.store import store_dir

    try:
        paths = [str(p) for p in find_film_files(args.paths)]
    except FileNotFoundError as err:
        raise UserError(str(err)) from err
    if not paths:
        raise UserError(f"No films found in {', '.join(args.paths)}.")
    on_file = require_model(args.model, args.site)
    if args.engine != "ray" and (args.address or args.workers):
        raise UserError("--address and --workers are options of --engine ray.")
    require_at_least("--workers", args.workers, 1)
    require_at_least("--batch-size", args.batch_size, 1)
    if args.runtime == "onnx":
        from pneumo.inference.export import load_onnx

        load_onnx(on_file)  # a missing or stale model.onnx is a sentence now, not an error on every worker
    tag = batch_results.model_id(on_file.name, on_file.card["sha256"])
    try:
        if args.address:
            engines.check_ray_address(args.address)
        results = (batch_results.ResultsFile(args.out, tag, args.site or "") if args.out
                   else batch_results.StreamedResults(sys.stdout))
        plan = results.plan(paths)
    except (batch_results.ResultsError, engines.EngineError) as err:
        raise UserError(str(err)) from err
    spec = engines.ScoringSpec(model=on_file.name, store=str(store_dir().resolve()), site=args.site or "",
                               runtime=args.runtime, tag=tag)
    return spec, results, plan


def score_predict(args, spec, todo, results, progress) -> None:
    """Score the films ``todo`` with the engine chosen, each batch's rows on file as it ends."""
    from pneumo.batch import engines

    def advance(rows) -> None:
        progress.advance(len(rows), **engines.tallies(rows))

    batch_size = args.batch_size or engines.BATCH_SIZE
    if args.engine == "ray":
        import ray

        try:
            workers = engines.start_ray(args.address, args.workers, args.verbose)
            progress.note(f"scoring on {workers} Ray workers" + (f" at {args.address}" if args.address else ""))
            engines.run_ray(spec, todo, results, advance, workers, batch_size)
        finally:
            ray.shutdown()
        return
    classifier = classifier_for(args.model, args.site, runtime=args.runtime)
    if classifier.guard is None:
        progress.note(f"note: model {classifier.loaded.name!r} has no out-of-scope guard, so nothing "
                      "checks that the images are frontal chest films (see 'fit-guard').")
    note_missing_subtype(classifier, "predict")
    engines.run_local(spec, todo, results, advance, classifier=classifier, batch_size=batch_size)


def run_evaluate(args) -> int:
    """Score a labelled folder and print (and optionally write) the model's figures on it."""
    records = evaluation_records(Path(args.data), args.split)
    require_writable_file(args.json_out, "--json")
    require_model(args.model, args.site)

    from pneumo import data, folds
    from pneumo.inference.predict import STATUS_OK, STATUS_REJECTED
    from pneumo.render.terminal import format_evaluation
    from pneumo.stats import metrics

    from pneumo.cli.progress import Progress

    classifier = classifier_for(args.model, args.site, runtime=args.runtime)
    note_missing_subtype(classifier, "evaluate")
    progress = Progress("evaluate", len(records))
    items = ((str(r.path), r.path) for r in records)
    kept, probs, errors, rejected = [], [], [], []
    named, p_bacterial = [], []  # pneumonia films whose names tell the subtype, and what they were given
    for record, assessment in zip(records, classifier.assess_many(items)):
        progress.advance(1, **{assessment.status: 1})
        if record.label == 1 and record.subtype in SUBTYPE_NAMES:
            named.append(record)
            p_bacterial.append(assessment.p_bacterial if assessment.pattern else None)
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
    learned = folds.trained_on_names(classifier.loaded.card)
    figures = {"model": classifier.loaded.name, "model_sha256": classifier.loaded.card["sha256"],
               "site": classifier.site_name or None, "data": str(args.data), **figures,
               "training_films": sum(1 for r in kept if f"{r.class_name}/{r.path.name}" in learned),
               "unreadable": errors,
               "rejected_out_of_scope": rejected,
               "subtype": subtype_report(classifier, named, p_bacterial)}
    progress.close("figures on stdout" + (f" and in {args.json_out}" if args.json_out else ""))
    print(format_evaluation(figures))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


SUBTYPE_NAMES = {"bacteria": 1, "virus": 0}
"""A pneumonia film's subtype as its name says it (Kermany: ``person1_bacteria_1.jpeg``), 1 = bacterial."""


def note_missing_subtype(classifier, command: str) -> None:
    """Say on stderr, in one line, why films get no pattern when the subtype model could not be used."""
    if classifier.subtype_error:
        print(f"pneumo {command}: note: no bacterial-or-viral pattern is given: {classifier.subtype_error}",
              file=sys.stderr)


def subtype_report(classifier, named, p_bacterial) -> dict | None:
    """The bacterial-or-viral figures on the named pneumonia films; None without a subtype model or such films."""
    from pneumo.stats import operating

    if classifier.subtype is None or not named:
        return None
    bacterial = [SUBTYPE_NAMES[r.subtype] for r in named]
    return operating.subtype_figures(bacterial, p_bacterial, classifier.subtype.threshold,
                                     [r.patient for r in named])


def evaluation_records(root: Path, split: str | None):
    """The films ``evaluate`` measures: ``split`` if named, else a Kaggle root's test split, else all."""
    from pneumo import data

    require_data_folder(root)
    if split:
        if data.is_split_folder(root):
            raise UserError(f"{root} is a split folder itself (it holds NORMAL/PNEUMONIA), so --split {split} "
                            "does not apply: leave --split out, or name the folder above it.")
        if not (root / split).is_dir():
            raise UserError(f"{root} has no split folder {split!r}; name one of its splits with --split.")
        return data.find_films(root, splits=(split,))
    if (root / "test").is_dir():
        return data.find_films(root, splits=("test",))
    if data.is_split_folder(root):
        return data.find_films(root)
    raise UserError(f"{root} has no test split and no NORMAL/PNEUMONIA folders; name one with --split.")

"""Scoring films: ``predict`` (a CSV row per film) and ``evaluate`` (figures on a labelled folder)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pneumo.cli.common import (
    UserError,
    classifier_for,
    require_data_folder,
    require_model,
    require_writable_file,
)


def run_predict(args) -> int:
    """Write one CSV row per film (to stdout or ``--csv``), in path order."""
    from pneumo.io import find_film_files

    try:
        paths = find_film_files(args.paths)
    except FileNotFoundError as err:
        raise UserError(str(err)) from err
    if not paths:
        raise UserError(f"No films found in {', '.join(args.paths)}.")
    require_writable_file(args.csv_out, "--csv")
    require_model(args.model, args.site)

    from pneumo.inference.predict import write_csv

    classifier = classifier_for(args.model, args.site)
    if classifier.guard is None:
        print(f"pneumo predict: note: model {classifier.loaded.name!r} has no out-of-scope guard, so "
              "nothing checks that the images are frontal chest films (see 'fit-guard').",
              file=sys.stderr)
    note_missing_subtype(classifier, "predict")
    assessments = classifier.assess_many((str(p), p) for p in paths)
    if args.csv_out:
        with open(args.csv_out, "w", newline="") as handle:
            write_csv(handle, assessments)
    else:
        write_csv(sys.stdout, assessments)
    return 0


def run_evaluate(args) -> int:
    """Score a labelled folder and print (and optionally write) the model's figures on it."""
    records = evaluation_records(Path(args.data), args.split)
    require_writable_file(args.json_out, "--json")
    require_model(args.model, args.site)

    from pneumo import data
    from pneumo.inference.predict import STATUS_OK, STATUS_REJECTED
    from pneumo.render.terminal import format_evaluation
    from pneumo.stats import metrics

    classifier = classifier_for(args.model, args.site)
    note_missing_subtype(classifier, "evaluate")
    items = ((str(r.path), r.path) for r in records)
    kept, probs, errors, rejected = [], [], [], []
    named, p_bacterial = [], []  # pneumonia films whose names tell the subtype, and what they were given
    for record, assessment in zip(records, classifier.assess_many(items)):
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
    figures = {"model": classifier.loaded.name, "model_sha256": classifier.loaded.card["sha256"],
               "site": classifier.site_name or None, "data": str(args.data), **figures, "unreadable": errors,
               "rejected_out_of_scope": rejected,
               "subtype": subtype_report(classifier, named, p_bacterial)}
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
        return data.find_films(root, splits=(split,))
    if (root / "test").is_dir():
        return data.find_films(root, splits=("test",))
    if any((root / name).is_dir() for name in data.CLASSES):
        return data.find_films(root)
    raise UserError(f"{root} has no test split and no NORMAL/PNEUMONIA folders; name one with --split.")

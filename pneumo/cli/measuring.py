"""Measuring: ``profile`` (a data set), ``bench`` (speed on this machine), ``explain-eval`` (the heatmaps)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pneumo.cli.common import (
    UserError,
    declared_defaults,
    field_names,
    given,
    require_at_least,
    require_data_folder,
    require_model,
    require_writable_file,
)
from pneumo.cli.progress import Progress


def run_profile(args) -> int:
    """Print (and optionally write) what a data folder holds."""
    from pneumo import data
    from pneumo.evaluation.profile import profile_records
    from pneumo.render.terminal import format_profile

    require_writable_file(args.json_out, "--json")
    records = data.find_films(args.data)
    result = profile_records(records, root=args.data)
    print(format_profile(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def run_bench(args) -> int:
    """Time prediction (Keras and ONNX Runtime) and Grad-CAM of a stored model on one film.

    Every setting left out is ``bench.run``'s. The table goes to stdout, or to stderr with
    ``--json``, whose one JSON line ends stdout.
    """
    from pneumo import data, store

    require_model(args.model)

    from pneumo.evaluation import bench
    from pneumo.io import read_film
    from pneumo.render.terminal import format_bench

    settings = {**declared_defaults(bench.run), **given(args, ("runs",))}
    require_at_least("--runs", settings["runs"], 1)
    loaded = store.load(args.model)
    film_path = next(iter(data.find_films(data.default_data_dir(), splits=("train",))), None) \
        if data.default_data_dir().is_dir() else None
    film = read_film(film_path.path) if film_path else data.synthetic_film()
    print(f"benchmarking {loaded.name} on "
          f"{film_path.path.name if film_path else 'a synthetic film'} ({film.size[0]} x {film.size[1]}), "
          f"{settings['runs']} runs each", file=sys.stderr)
    result = bench.run(loaded, film, **settings)
    print(format_bench(result), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    return 0


def run_explain_eval(args) -> int:
    """Measure the heatmaps' faithfulness on a sample of films; every setting left out is ``FaithfulnessConfig``'s."""
    from pneumo import data, folds, store
    from pneumo.evaluation import faithfulness, faithfulness_results
    from pneumo.render.faithfulness_words import format_summary

    require_at_least("--limit", args.limit, 1)
    require_at_least("--random-models", getattr(args, "randomization_models", None), 1)
    require_data_folder(args.data)
    require_writable_file(args.json_out, "--json")
    config = faithfulness.FaithfulnessConfig(**given(args, field_names(faithfulness.FaithfulnessConfig)))
    on_file = require_model(args.model)
    records, films = folds.records_to_measure(on_file.card, args.data, args.split)
    if args.save and films != "validation":
        raise UserError(f"--save stores figures for the model's validation films only; these are "
                        f"{films} films of {args.data}.")
    chosen = folds.stratified_sample(records, args.limit, config.seed)
    labels = data.labels_of(chosen)
    faithfulness.check_can_measure(labels, config)
    progress = Progress("explain-eval", faithfulness.count_maps(labels, config), things="maps")
    loaded = store.load(args.model)
    progress.note(f"model {loaded.name}, {len(chosen)} of {len(records)} {films} films of {args.data}")
    inputs = data.load_inputs(chosen, loaded.input_size)
    result = faithfulness.measure(loaded, inputs, labels, config, progress=progress)
    result = {"model": loaded.name, "model_sha256": loaded.card["sha256"], "data": str(args.data),
              "films": films, "seconds": round(progress.elapsed(), 1), **result,
              "paths": [f"{r.split}/{r.class_name}/{r.path.name}" for r in chosen]}
    result["targets"] = faithfulness_results.check_targets(result)
    print(format_summary(result))
    written = []
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1) + "\n")
        written.append(str(args.json_out))
    if args.save:
        written.append(str(faithfulness_results.save_explanations(result, loaded.path)))
    where = f"wrote {', '.join(written)}" if written else "nothing written (--json FILE keeps the results)"
    progress.close(f"{len(chosen)} films ({int(labels.sum())} pneumonia) explained by {len(config.methods)} "
                   f"methods; {where}")
    return 0

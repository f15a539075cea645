"""Every command and option of ``python -m pneumo``; each command's handler lives by what it does.

An option that feeds a configuration or a function (``--epochs`` feeds ``TrainConfig``,
``--runs`` feeds ``bench.run``) has no default here: :data:`~pneumo.cli.common.OWNER_DEFAULT`
leaves it out of ``args`` unless given, and its owner's default applies. Choices come from
the modules that define them. Only modules that load without TensorFlow are imported here.
"""

from __future__ import annotations

import argparse

from pneumo import folds
from pneumo.batch.engines import ENGINES
from pneumo.cli.common import OWNER_DEFAULT
from pneumo.cli.exporting import run_export
from pneumo.cli.measuring import run_bench, run_explain_eval, run_profile
from pneumo.cli.models import (
    run_calibrate_site,
    run_fit_guard,
    run_operating_point,
    run_train,
    run_train_cv,
    run_train_subtype,
)
from pneumo.cli.network import run_dicom_listener
from pneumo.cli.scoring import run_evaluate, run_predict
from pneumo.evaluation.faithfulness import CANVASES
from pneumo.inference.export import FORMATS, RUNTIMES
from pneumo.modeling.models import ARCHITECTURES
from pneumo.pacs.queue import RETRY_DELAY_S
from pneumo.training.subtype import FLOOR

DESCRIPTION = ("The command line: ``python -m pneumo train|train-cv|train-subtype|evaluate|predict|"
               "calibrate-site|operating-point|profile|bench|explain-eval|fit-guard|export|dicom-listener``.")

MODEL_HELP = "model name in the store (default: DEFAULT)"
SITE_HELP = "use this site's calibration (see calibrate-site)"
RUNTIME_HELP = "what runs the model: keras, or onnx (ONNX Runtime on model.onnx; see export)"
DATA_HELP = "Kaggle-layout root or a split folder"
OUT_HELP = "model folder, e.g. model_store/NAME"


def scheme_list(text: str) -> tuple[str, ...]:
    """``"block,random"`` -> ``("block", "random")``."""
    return tuple(s.strip() for s in text.split(",") if s.strip())


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; ``args.handler(args)`` runs the one chosen."""
    parser = argparse.ArgumentParser(prog="python -m pneumo", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    add_scoring(commands)
    add_models(commands)
    add_measuring(commands)
    add_network(commands)
    add_exporting(commands)
    add_shared_options(commands)
    return parser



def add_shared_options(commands) -> None:
    """The options every command has: ``--verbose``."""
    for command in commands.choices.values():
        command.add_argument("--verbose", action="store_true",
                             help="show everything TensorFlow prints as it starts (hidden by default)")


def add_recipe_options(command, epochs_help: str | None) -> None:
    """The training recipe's options, shared by train and train-cv (defaults: ``TrainConfig``'s)."""
    command.add_argument("--input-size", type=int, default=OWNER_DEFAULT)
    command.add_argument("--width", type=int, default=OWNER_DEFAULT, help="filters of the CNN's first block")
    command.add_argument("--epochs", type=int, default=OWNER_DEFAULT, help=epochs_help)
    command.add_argument("--learning-rate", type=float, default=OWNER_DEFAULT)
    command.add_argument("--label-smoothing", type=float, default=OWNER_DEFAULT)
    command.add_argument("--seed", type=int, default=OWNER_DEFAULT)
    command.add_argument("--border-penalty", type=float, default=OWNER_DEFAULT,
                         help="weight of the loss on the share of the decision taken from the film's "
                              "border band (default: the training configuration's)")
    command.add_argument("--border-allowance", type=float, default=OWNER_DEFAULT,
                         help="border share each film may keep before --border-penalty applies "
                              "(default: the training configuration's)")


def add_models(commands) -> None:
    """train, train-cv, calibrate-site, operating-point, fit-guard."""
    train = commands.add_parser("train", help="train a model from scratch and save it to the store")
    train.add_argument("--data", required=True, help=DATA_HELP)
    train.add_argument("--out", required=True, help=OUT_HELP)
    train.add_argument("--architecture", default=OWNER_DEFAULT,
                       help=", ".join(ARCHITECTURES[:-1]) + f" or {ARCHITECTURES[-1]}")
    add_recipe_options(train, epochs_help=None)
    train.add_argument("--batch-size", type=int, default=OWNER_DEFAULT)
    train.add_argument("--val-fraction", type=float, default=OWNER_DEFAULT)
    train.add_argument("--patience", type=int, default=OWNER_DEFAULT)
    train.add_argument("--max-minutes", type=float, default=OWNER_DEFAULT, help="time budget of the run")
    train.add_argument("--horizontal-flip", action="store_true", default=OWNER_DEFAULT,
                       help="also flip films left-right")
    train.add_argument("--weights", default=OWNER_DEFAULT,
                       help="local weights file for a backbone (default: from scratch)")
    train.add_argument("--start-from", metavar="FOLDER", default=OWNER_DEFAULT,
                       help="continue from this stored model's weights (same shape, same "
                            "validation films) instead of from scratch")
    train.add_argument("--limit", type=int, default=OWNER_DEFAULT, help="train on this many films only (smoke runs)")
    train.add_argument("--checkpoint-dir", default=OWNER_DEFAULT, help="where checkpoints go (default runs/NAME)")
    train.set_defaults(handler=run_train)

    train_cv = commands.add_parser(
        "train-cv", help="train the shipped ensemble: patient-grouped folds (random and leave-block-out), "
                         "out-of-fold probabilities, the operating point chosen on them; resumable fold by fold")
    train_cv.add_argument("--data", required=True, help=DATA_HELP)
    train_cv.add_argument("--out", required=True, help=OUT_HELP)
    train_cv.add_argument("--folds", dest="k", metavar="FOLDS", type=int, default=OWNER_DEFAULT, help="folds per scheme")
    train_cv.add_argument("--ship", choices=folds.SCHEMES, default=OWNER_DEFAULT,
                          help="whose fold models make the shipped ensemble")
    train_cv.add_argument("--schemes", type=scheme_list, default=OWNER_DEFAULT,
                          help="fold schemes to train, comma-separated (both by default)")
    add_recipe_options(train_cv, epochs_help="epochs per fold (all run; the last is kept)")
    train_cv.add_argument("--min-sensitivity", type=float, default=OWNER_DEFAULT)
    train_cv.add_argument("--run-dir", help="where fold models go (default runs/NAME)")
    train_cv.add_argument("--resamples", type=int, default=OWNER_DEFAULT,
                          help="bootstrap resamples for the intervals")
    train_cv.set_defaults(handler=run_train_cv)

    calibrate = commands.add_parser(
        "calibrate-site", help="fit a site's own temperature and threshold on its labelled films "
                               "(the model file is never changed)")
    calibrate.add_argument("--data", required=True,
                           help="the site's labelled films: a Kaggle-layout root (every split is used) "
                                "or a folder with NORMAL and PNEUMONIA")
    calibrate.add_argument("--name", required=True, help="the site's name: letters, digits, '-' and '_'")
    calibrate.add_argument("--model", help=MODEL_HELP)
    calibrate.add_argument("--min-sensitivity", type=float, default=OWNER_DEFAULT,
                           help="the lower 95%% bound of sensitivity the site's threshold keeps")
    calibrate.set_defaults(handler=run_calibrate_site)

    operating = commands.add_parser(
        "operating-point", help="choose a model's threshold again on its validation split")
    operating.add_argument("--data", required=True, help="the data folder the model was trained from")
    operating.add_argument("--model", help=MODEL_HELP)
    operating.add_argument("--min-sensitivity", type=float, default=OWNER_DEFAULT)
    operating.set_defaults(handler=run_operating_point)

    fit_guard = commands.add_parser(
        "fit-guard", help="fit a stored model's out-of-scope guard and measure it")
    fit_guard.add_argument("--model", help=MODEL_HELP)
    fit_guard.add_argument("--data", required=True,
                           help="the data the model was trained on (Kaggle-layout root or train folder)")
    fit_guard.add_argument("--max-train", type=int, default=OWNER_DEFAULT,
                           help="training films used for fitting (a seeded draw)")
    fit_guard.add_argument("--per-kind", type=int, default=OWNER_DEFAULT,
                           help="transformed validation films per kind in the out-of-scope set")
    fit_guard.add_argument("--limit", type=int, help="use only N training and N validation films (smoke runs; needs --model, "
                                "since the guard is written into that model's folder)")
    fit_guard.add_argument("--seed", type=int, default=OWNER_DEFAULT)
    fit_guard.set_defaults(handler=run_fit_guard)

    subtype = commands.add_parser(
        "train-subtype", help="fine-tune the bacterial-or-viral model from a stored ensemble, fold by fold")
    subtype.add_argument("--model", help=MODEL_HELP)
    subtype.add_argument("--data", required=True, help="the data the model was trained on (Kaggle-layout root)")
    subtype.add_argument("--run-dir", default="runs/subtype",
                         help="where the folds are kept (a rerun resumes at the next unfinished fold)")
    subtype.add_argument("--epochs", type=int, default=OWNER_DEFAULT)
    subtype.add_argument("--learning-rate", type=float, default=OWNER_DEFAULT)
    subtype.add_argument("--seed", type=int, default=OWNER_DEFAULT)
    subtype.add_argument("--ship-below-floor", action="store_true",
                         help="ship the subtype model into the store even when its out-of-fold figures are below "
                              f"the product's floor (AUC {FLOOR['roc_auc']:.2f}, accuracy "
                              f"{FLOOR['accuracy_with_main_model']:.2f}); by default it is held back in --run-dir")
    subtype.set_defaults(handler=run_train_subtype)


def add_scoring(commands) -> None:
    """evaluate, predict."""
    evaluate = commands.add_parser("evaluate", help="measure a model on a labelled folder")
    evaluate.add_argument("--data", required=True, help=DATA_HELP)
    evaluate.add_argument("--split", help="with a Kaggle root: which split (default: test if present)")
    evaluate.add_argument("--model", help=MODEL_HELP)
    evaluate.add_argument("--site", help=SITE_HELP)
    evaluate.add_argument("--json", dest="json_out", help="also write the figures to this file")
    evaluate.add_argument("--runtime", choices=RUNTIMES, default=RUNTIMES[0], help=RUNTIME_HELP)
    evaluate.set_defaults(handler=run_evaluate)

    predict = commands.add_parser("predict", help="probability of pneumonia for films or folders")
    predict.add_argument("paths", nargs="+", metavar="PATH")
    predict.add_argument("--model", help=MODEL_HELP)
    predict.add_argument("--site", help=SITE_HELP)
    predict.add_argument("--out", "--csv", dest="out", metavar="RESULTS",
                         help="write the rows to this .csv or .parquet file; rerunning with the same "
                              "file skips the films already in it (default: CSV on stdout)")
    predict.add_argument("--engine", choices=ENGINES, default=ENGINES[0],
                         help="local: this process; ray: a pool of Ray actors (see --address, --workers)")
    predict.add_argument("--address", help="with --engine ray: join the Ray cluster whose head is HOST:PORT "
                                           "(default: start Ray on this machine)")
    predict.add_argument("--workers", type=int, help="with --engine ray: actors, one CPU and one model each "
                                                     "(default: this machine's cores, or the cluster's CPUs less one)")
    predict.add_argument("--batch-size", type=int, help="films per batch (what an interruption loses at most)")
    predict.add_argument("--runtime", choices=RUNTIMES, default=RUNTIMES[0], help=RUNTIME_HELP)
    predict.set_defaults(handler=run_predict)


def add_measuring(commands) -> None:
    """profile, bench, explain-eval."""
    profile = commands.add_parser("profile", help="describe a data set")
    profile.add_argument("--data", required=True, help=DATA_HELP)
    profile.add_argument("--json", dest="json_out", help="also write the profile to this file")
    profile.set_defaults(handler=run_profile)

    bench = commands.add_parser("bench", help="time prediction and Grad-CAM on this machine")
    bench.add_argument("--model", help=MODEL_HELP)
    bench.add_argument("--runs", type=int, default=OWNER_DEFAULT, help="timed runs per figure")
    bench.add_argument("--json", action="store_true", help="end with one JSON line")
    bench.set_defaults(handler=run_bench)

    explain_eval = commands.add_parser(
        "explain-eval", help="measure how far the heatmaps can be trusted (deletion, insertion, "
                             "randomisation, border share)")
    explain_eval.add_argument("--data", required=True, help=DATA_HELP)
    explain_eval.add_argument("--model", help=MODEL_HELP)
    explain_eval.add_argument("--json", dest="json_out", help="also write the results to this file")
    explain_eval.add_argument("--limit", type=int, help="a seeded, class-stratified sample of N films")
    explain_eval.add_argument(
        "--split", choices=folds.MEASURE_SPLITS,
        help="which films: the model's patient-grouped validation films (default when DATA holds "
             "its training data), a Kaggle split, or all; otherwise test if present, else all")
    explain_eval.add_argument("--canvas", choices=CANVASES, default=OWNER_DEFAULT,
                              help="what removed pixels become: the mean normal film of the set, "
                                   "one normal film, or the blurred film (RISE)")
    explain_eval.add_argument("--steps", type=int, default=OWNER_DEFAULT, help="deletion/insertion steps")
    explain_eval.add_argument("--seed", type=int, default=OWNER_DEFAULT)
    explain_eval.add_argument("--random-models", dest="randomization_models", metavar="RANDOM_MODELS", type=int, default=OWNER_DEFAULT,
                              help="random-weights models each map is compared with (randomisation check)")
    explain_eval.add_argument("--save", action="store_true",
                              help="store the results beside the model (validation films only)")
    explain_eval.set_defaults(handler=run_explain_eval)


def add_network(commands) -> None:
    """The hospital's imaging network."""
    listener = commands.add_parser(
        "dicom-listener", help="receive films over DICOM (C-STORE) and send each one's results back")
    listener.add_argument("--ae-title", default="PNEUMO", help="the listener's AE title")
    listener.add_argument("--port", type=int, default=11112)
    listener.add_argument("--host", default="127.0.0.1",
                          help="the address to listen on (0.0.0.0 for every interface)")
    listener.add_argument("--forward", required=True, metavar="HOST:PORT:AET",
                          help="where the structured reports and overlays go (the PACS)")
    listener.add_argument("--work-dir", required=True,
                          help="the work queue's folder (a restart resumes from it)")
    listener.add_argument("--allow", action="append", metavar="AET",
                          help="a calling AE title to accept (repeat; default: any)")
    listener.add_argument("--keep-overlays", action="store_true",
                          help="keep each read film and its overlay (small PNGs in the work dir) so the "
                               "worklist page can show them; default: no images are kept")
    listener.add_argument("--keep-accession", action="store_true",
                          help="keep each film's accession number in the queue so the worklist can show "
                               "it; default: not kept")
    listener.add_argument("--retry-delay", type=float, default=RETRY_DELAY_S, metavar="SECONDS",
                          help="wait this long before trying a film again whose result could not be "
                               "delivered (default %(default)g); a film that fails twice is failed, and sending it "
                               "again queues it again")
    listener.add_argument("--model", help=MODEL_HELP)
    listener.add_argument("--site", help="a site calibration to apply")
    listener.set_defaults(handler=run_dicom_listener)


def add_exporting(commands) -> None:
    """export."""
    export = commands.add_parser(
        "export", help="write a stored model for another runtime (ONNX Runtime, TF Serving) and record it "
                       "in its card")
    export.add_argument("--model", help=MODEL_HELP)
    export.add_argument("--format", required=True, metavar="{" + ",".join(FORMATS) + "}",
                        help="onnx: model.onnx (and subtype.onnx) for '--runtime onnx'; saved-model: a "
                             "TensorFlow SavedModel with a serving_default signature for TF Serving")
    export.add_argument("--out", help="the folder to write (default: the model's folder for onnx, "
                                      "model_store/NAME/serving/1 for saved-model)")
    export.set_defaults(handler=run_export)

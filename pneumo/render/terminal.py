"""Results as the command line prints them: the evaluation table, a data set profile, the guard's figures.

Plain text for a terminal; :mod:`pneumo.cli` prints what these return.
"""

from __future__ import annotations

from pneumo.render.wording import format_number


def format_evaluation(figures: dict) -> str:
    """The evaluation as the table readers know from the literature."""
    site = f" with site calibration {figures['site']}" if figures.get("site") else ""
    lines = [f"model {figures['model']}{site} on {figures['n']} films of {figures['data']}", "",
             f"{'':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, row in figures["per_class"].items():
        if not row["support"]:  # no films of the class: its recall (and so f1) is undefined, not 0
            lines.append(f"{name:<12}{row['precision']:>10.3f}{'n/a':>10}{'n/a':>10}{row['support']:>10d}")
            continue
        lines.append(f"{name:<12}{row['precision']:>10.3f}{row['recall']:>10.3f}"
                     f"{row['f1-score']:>10.3f}{row['support']:>10d}")
    tn, fp = figures["confusion_matrix"][0]
    fn, tp = figures["confusion_matrix"][1]

    def fmt(value):
        return format_number(value, 4)

    lines += ["", f"threshold    {figures['threshold']:.4f}",
              f"accuracy     {fmt(figures['accuracy'])}",
              f"sensitivity  {fmt(figures['sensitivity'])}",
              f"specificity  {fmt(figures['specificity'])}",
              f"ROC AUC      {fmt(figures['roc_auc'])}",
              f"AP           {fmt(figures['average_precision'])}",
              f"ECE          {fmt(figures['ece'])}",
              f"Brier        {fmt(figures['brier'])}",
              f"confusion    TN {tn}  FP {fp}  FN {fn}  TP {tp}"]
    for subtype, row in figures.get("recall_by_subtype", {}).items():
        lines.append(f"{'recall ' + subtype:<12} {row['recall']:.4f} ({row['support']} films)")
    if figures.get("training_films"):
        lines.append(f"{figures['training_films']} of these {figures['n']} films carry the names of films the model "
                     "learned from: on them these figures are in-sample (optimistic); the model card's "
                     "out-of-fold figures are the honest measure")
    if figures["unreadable"]:
        lines.append(f"{len(figures['unreadable'])} films could not be read and were left out")
    if figures.get("rejected_out_of_scope"):
        lines.append(f"{len(figures['rejected_out_of_scope'])} films were refused as out of scope "
                     "and left out")
    if figures.get("subtype"):
        lines += ["", *format_subtype_evaluation(figures["subtype"])]
    return "\n".join(lines)


def format_subtype_evaluation(subtype: dict) -> list[str]:
    """The bacterial-or-viral block of the evaluation (:func:`pneumo.stats.operating.subtype_figures`)."""
    def with_interval(figure: dict) -> str:
        if figure["value"] is None:
            return "n/a"
        if figure["low"] is None:
            return format_number(figure["value"], 4)
        return f"{figure['value']:.4f} (95% {figure['low']:.4f}-{figure['high']:.4f})"

    figures = subtype["figures"]
    (vv, vb), (bv, bb) = figures["confusion_matrix"]
    lines = [f"bacterial or viral, on the {subtype['n']} pneumonia films whose names tell it "
             f"({subtype['bacterial']} bacterial, {subtype['viral']} viral; {subtype['given_no_pattern']} "
             "given no pattern, counted as wrong)",
             f"threshold    {subtype['threshold']:.4f} (P(bacterial) at or above: bacterial)",
             f"accuracy     {with_interval(figures['accuracy'])}",
             f"sensitivity  {with_interval(figures['sensitivity'])} (bacterial called bacterial)",
             f"specificity  {with_interval(figures['specificity'])} (viral called viral)",
             f"ROC AUC      {with_interval(figures['roc_auc'])}",
             f"ECE          {with_interval(figures['ece'])}",
             f"confusion    viral as viral {vv}, as bacterial {vb}; bacterial as viral {bv}, as bacterial {bb}"]
    given = subtype.get("given_pattern")
    if given and subtype["given_no_pattern"]:
        lines.append(f"on the {given['n']} films given a pattern: accuracy {with_interval(given['accuracy'])}, "
                     f"ROC AUC {with_interval(given['roc_auc'])}")
    return lines


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


def format_guard(name: str, section: dict) -> str:
    """The guard's figures: validation refusals, and detection of each out-of-scope kind."""
    validation, ood = section["validation"], section["out_of_scope"]
    lines = [f"out-of-scope guard of model {name}",
             (f"validation films refused  {validation['rejected']} of {validation['n']} "
              f"({validation['rejection_rate']:.2%}; cross-fitted {validation['cross_fitted_rejection_rate']:.2%})"),
             *([f"validation films flagged  {validation['flagged']} of {validation['n']} "
                f"({validation['flag_rate']:.2%}; cross-fitted {validation['cross_fitted_flag_rate']:.2%}), "
                "read with a note"] if "flagged" in validation else []),
             (f"AUROC, validation films against {ood['n_out_of_scope']} out-of-scope images: "
              f"{ood['auroc']:.4f}"), "",
             f"{'kind':<28}{'n':>5}{'AUROC':>9}{'refused':>9}{'named':>8}"]
    for kind, row in ood["by_kind"].items():
        lines.append(f"{kind:<28}{row['n']:>5}{row['auroc']:>9.4f}{row['detected']:>9.1%}"
                     f"{row['named_as_expected']:>8.0%}")
    lines += [""] + [f"note: {note}" for note in ood.get("notes", [])]
    return "\n".join(lines).rstrip()


BENCH_ROWS = (("predict_ms_p50", "predict p50 (ms)"), ("predict_ms_p95", "predict p95 (ms)"),
              ("throughput_img_s", "films/s (batch)"), ("throughput_img_s_per_core", "films/s per core"))
"""The figures ``bench`` shows for each runtime, and their labels."""


def format_bench(result: dict) -> str:
    """``bench``'s result: the setting, Keras and ONNX Runtime side by side with their ratio, then the rest."""
    runtimes, ratios = result["runtimes"], result["onnx_over_keras"]
    lines = [f"model {result['model']} ({result['input_size']} px), {result['runs']} runs, batch {result['batch']}, "
             f"{result['cores']} cores; ONNX file: {result['onnx_file']}", "",
             f"{'':<20}{'keras':>10}{'onnx':>10}{'onnx/keras':>12}"]
    for key, label in BENCH_ROWS:
        lines.append(f"{label:<20}{runtimes['keras'][key]:>10}{runtimes['onnx'][key]:>10}"
                     f"{format_number(ratios[key], 3):>12}")
    shown = {key for key, _ in BENCH_ROWS} | {"model", "input_size", "runs", "batch", "cores", "onnx_file",
                                              "runtimes", "onnx_over_keras"}
    lines += ["", *(f"{key:<28}{value}" for key, value in result.items() if key not in shown)]
    return "\n".join(lines)

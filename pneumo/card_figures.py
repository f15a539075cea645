"""A model card's figures as rows and sentences, for the model page, the home page and the command line.

Every figure says where it comes from: out-of-fold probabilities of random folds
(in-distribution: other patients of the same period) or of leave-block-out folds
(shift-aware: patients of another period), with its 95% interval.
"""

from __future__ import annotations

SCHEME_WORDS = {"random": "random patient folds (in-distribution)",
                "block": "leave-block-out folds (shift-aware)"}
FIGURE_WORDS = (("accuracy", "Accuracy"), ("sensitivity", "Sensitivity"), ("specificity", "Specificity"),
                ("roc_auc", "ROC AUC"), ("ece", "ECE"))
ORIGINAL_STUDY = {"accuracy": 0.928, "sensitivity": 0.932, "specificity": 0.901, "roc_auc": 0.968}
"""Kermany et al. 2018 on their test split (ImageNet weights, checkpoint chosen on that split)."""

SHIFT_NOTE = ("Films from other hospitals, machines and periods are expected to score lower than these "
              "figures; `python -m pneumo calibrate-site` is how a site measures the model on its own "
              "labelled films and adapts its temperature and threshold.")


def format_interval(figure: dict | None, digits: int = 3) -> str:
    """``0.981 (0.975-0.986)`` from ``{"value", "low", "high"}``; ``n/a`` when missing."""
    if not figure or figure.get("value") is None:
        return "n/a"
    text = f"{figure['value']:.{digits}f}"
    if figure.get("low") is not None and figure.get("high") is not None:
        text += f" ({figure['low']:.{digits}f}-{figure['high']:.{digits}f})"
    return text


def is_cross_validated(card: dict) -> bool:
    """Whether the card holds out-of-fold figures (an ensemble trained with ``train-cv``)."""
    return bool((card.get("cross_validation") or {}).get("at_operating_point"))


def headline(card: dict) -> dict | None:
    """The figures a stakeholder asks for first, at the shipped operating point.

    Returns:
        ``{"kind": words, "scheme": key, "figures": {key: {"value", "low", "high"}}, "worst": row,
        "n": films}`` from the scheme the operating point was chosen on, or None for a card
        without cross-validation.
    """
    if not is_cross_validated(card):
        return None
    cv = card["cross_validation"]
    scheme = cv["chosen_on"]
    point = cv["at_operating_point"][scheme]
    return {"kind": f"out-of-fold on {SCHEME_WORDS.get(scheme, scheme).replace(' (', ', ').rstrip(')')}",
            "scheme": scheme,
            "figures": point["figures"], "worst": worst_fold(point["per_fold"]),
            "n": point["figures"].get("n")}


def worst_fold(rows: list[dict]) -> dict:
    """The fold with the lowest specificity (then sensitivity): where the operating point held worst."""
    return min(rows, key=lambda r: (r.get("specificity") or 0, r.get("sensitivity") or 0))


def comparison_rows(card: dict) -> list[dict]:
    """Random and block folds side by side at the shipped operating point, with the worst fold."""
    if not is_cross_validated(card):
        return []
    rows = []
    for scheme, point in card["cross_validation"]["at_operating_point"].items():
        row = {"Folds": SCHEME_WORDS.get(scheme, scheme)}
        for key, words in FIGURE_WORDS:
            row[words] = format_interval(point["figures"].get(key))
        worst = worst_fold(point["per_fold"])
        row["Worst fold (AUC / sens. / spec.)"] = (f"{worst['fold'] + 1}: {worst['roc_auc']:.3f} / "
                                                   f"{worst['sensitivity']:.3f} / {worst['specificity']:.3f}")
        rows.append(row)
    return rows


def fold_rows(card: dict, scheme: str) -> list[dict]:
    """Each fold of ``scheme`` at the shipped operating point (with the block's patient numbers)."""
    cv = card.get("cross_validation") or {}
    point = (cv.get("at_operating_point") or {}).get(scheme)
    if not point:
        return []
    blocks = cv.get("blocks") or {}
    rows = []
    for row in point["per_fold"]:
        entry = {"Fold": row["fold"] + 1, "Films": row["n"], "ROC AUC": round(row["roc_auc"], 4),
                 "Sensitivity": round(row["sensitivity"], 3), "Specificity": round(row["specificity"], 3),
                 "ECE": round(row["ece"], 3)}
        if scheme == "block" and str(row["fold"]) in blocks:
            entry["Patients"] = blocks[str(row["fold"])]
        rows.append(entry)
    return rows


def rule_rows(card: dict) -> list[dict]:
    """Each threshold rule: its threshold and, chosen on four blocks, how it held on the fifth."""
    cv = card.get("cross_validation") or {}
    transfer = cv.get("transfer") or {}
    scheme = cv.get("chosen_on")
    rows = []
    for rule, text in (cv.get("rules") or {}).items():
        chosen = (cv.get("schemes") or {}).get(scheme, {}).get("rules", {}).get(rule, {})
        row = {"Rule": rule + (" (shipped)" if rule == cv.get("threshold_rule") else ""), "What it does": text,
               "Threshold": round(chosen.get("threshold", float("nan")), 4)}
        if rule in transfer:
            rows_of_rule = transfer[rule]
            row["Sensitivity on a new block (mean / worst)"] = (
                f"{_mean(rows_of_rule, 'sensitivity'):.3f} / {min(r['sensitivity'] for r in rows_of_rule):.3f}")
            row["Specificity on a new block (mean / worst)"] = (
                f"{_mean(rows_of_rule, 'specificity'):.3f} / {min(r['specificity'] for r in rows_of_rule):.3f}")
        rows.append(row)
    return rows


def headline_sentence(card: dict) -> str | None:
    """The headline in plain words, beside the original study's figures."""
    top = headline(card)
    if top is None:
        return None
    figures = top["figures"]
    study = ", ".join(f"{words if key == 'roc_auc' else words.lower()} {ORIGINAL_STUDY[key]:.3f}"
                      for key, words in FIGURE_WORDS if key in ORIGINAL_STUDY)
    return (f"On {top['n']:,} training films, each scored by an ensemble member that never saw that patient "
            f"({top['kind']}), at the shipped threshold: accuracy {format_interval(figures['accuracy'])}, "
            f"sensitivity {format_interval(figures['sensitivity'])}, specificity "
            f"{format_interval(figures['specificity'])}, ROC AUC {format_interval(figures['roc_auc'])} "
            f"(95% intervals, patients resampled). The original study reported {study} on its own test "
            "split.")


def _mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else float("nan")


def site_simulation_rows(card: dict) -> list[dict]:
    """Site adaptation tried on each block: fitted on half its patients, measured on the other half."""
    rows = []
    for row in (card.get("cross_validation") or {}).get("site_simulation") or []:
        rows.append({"Block": row["block"] + 1, "Films (fit / measured)": f"{row['n_fit']} / {row['n_measured']}",
                     "Sensitivity before / after": f"{row['before']['sensitivity']:.3f} / "
                                                   f"{row['after']['sensitivity']:.3f}",
                     "Specificity before / after": f"{row['before']['specificity']:.3f} / "
                                                   f"{row['after']['specificity']:.3f}",
                     "Site threshold": round(row["site_threshold"], 4)})
    return rows


def architecture_words(card: dict) -> str:
    """What the model is, in a few words: ``ensemble of 5 compact CNNs (mean logit)`` or the architecture."""
    members = (card.get("ensemble") or {}).get("members")
    architecture = card.get("architecture", "model")
    if members:
        kind = "compact CNNs" if architecture == "cnn" else f"{architecture} models"
        return f"ensemble of {members} {kind} (mean of their logits)"
    return architecture

"""A model card's figures as rows, sentences and chart points, for the model page, the home page and the CLI.

Every figure says where it comes from: out-of-fold probabilities of random folds
(in-distribution: other patients of the same period) or of leave-block-out folds
(shift-aware: patients of another period), with its 95% interval. The model page
draws what the functions here return (its view model); it computes nothing itself.

The module is long but one idea: the card's figures in words and rows, one function per
thing a page or the CLI shows (headline, folds, rules, subtype, guard, header checks).
"""

from __future__ import annotations

from dataclasses import dataclass

from pneumo.evaluation.faithfulness_results import check_targets
from pneumo.inference.predict import review_band
from pneumo.render.faithfulness_words import target_rows
from pneumo.render.wording import PATTERN_CAVEAT, format_number, format_probability
from pneumo.store import LoadedModel

SCHEME_WORDS = {"random": "random patient folds (in-distribution)",
                "block": "leave-block-out folds (shift-aware)"}
FIGURE_WORDS = (("accuracy", "Accuracy"), ("sensitivity", "Sensitivity"), ("specificity", "Specificity"),
                ("roc_auc", "ROC AUC"), ("ece", "ECE"))
ORIGINAL_STUDY = {"accuracy": 0.928, "sensitivity": 0.932, "specificity": 0.901, "roc_auc": 0.968}
"""Kermany et al. 2018 on their test split (ImageNet weights, checkpoint chosen on that split)."""
FOLD_MODEL_WORDS = {"random": "random-fold", "block": "block-fold"}

SHIFT_NOTE = ("Films from other hospitals, machines and periods are expected to score lower than these "
              "figures; `python -m pneumo calibrate-site` is how a site measures the model on its own "
              "labelled films and adapts its temperature and threshold.")


def format_interval(figure: dict | None, digits: int = 3) -> str:
    """``0.981 (0.975-0.986)`` from ``{"value", "low", "high"}``; ``n/a`` when missing."""
    if not figure or figure.get("value") is None:
        return format_number(None)
    text = format_number(figure["value"], digits)
    if figure.get("low") is not None and figure.get("high") is not None:
        text += f" ({format_number(figure['low'], digits)}-{format_number(figure['high'], digits)})"
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


def band_outcomes(card: dict, low: float, high: float) -> tuple[int, int, str] | None:
    """Of the card's out-of-fold films shown with a probability in [low, high): how many had
    pneumonia, how many there were, and the figures' kind; None without stored predictions."""
    validation = card.get("validation") or {}
    predictions = validation.get("predictions") or {}
    labels, probs = predictions.get("labels"), predictions.get("p_pneumonia")
    if not labels or probs is None:
        return None
    inside = [label for label, p in zip(labels, probs) if low <= p < high]
    return sum(1 for label in inside if label == 1), len(inside), str(validation.get("kind", "validation"))


NEARBY_WIDTH = 0.1
"""The width of the probability bands a film's :func:`nearby_outcomes` are counted in (a tenth of the
scale), cut also at the threshold and at 50% so that every film of a band gets the same verdict."""


def nearby_outcomes(card: dict, p: float, threshold: float) -> tuple[int, int, float, float, str] | None:
    """Of the card's out-of-fold films scored in the band that holds ``p``: how many had pneumonia, how
    many there were, the band's ends and the figures' kind; None without stored predictions.

    The bands are tenths of the scale, cut at ``threshold`` and at 50% (the verdict boundaries).
    """
    steps = round(1 / NEARBY_WIDTH)
    edges = sorted({round(k / steps, 9) for k in range(steps + 1)} | {threshold, 0.5})
    edges = [edge for edge in edges if 0.0 <= edge <= 1.0]
    at = max(i for i in range(len(edges) - 1) if edges[i] <= p + 1e-12)  # 0.3 starts a band, not ends one
    low, high = edges[at], edges[at + 1]
    found = band_outcomes(card, low, high if at < len(edges) - 2 else 1.0 + 1e-9)  # the top band holds 100%
    return None if found is None else (found[0], found[1], low, high, found[2])


def nearby_words(card: dict, p: float, threshold: float) -> str | None:
    """How the out-of-fold training films scored in ``p``'s band (:func:`nearby_outcomes`) turned out, with
    the set's pneumonia share, and a word when they contradict a normal verdict; None without such films."""
    found = nearby_outcomes(card, p, threshold)
    labels = ((card.get("validation") or {}).get("predictions") or {}).get("labels") or []
    if found is None or not found[1] or not labels:
        return None
    had, films, low, high, kind = found
    share = sum(1 for label in labels if label == 1) / len(labels)
    text = (f"Measured {kind}: of the {films:,} training film{'s' if films != 1 else ''} scored between "
            f"{_edge(low)} and {_edge(high)} "
            "(each by a fold model that never saw the child), "
            f"{had:,} ({_share(had / films)}) had pneumonia, in a set where {share:.0%} had it "
            "(where fewer of the children filmed have pneumonia, that share is lower).")
    if p < threshold and had / films >= 0.5:
        text += (" The model calls such a film normal, yet most of these had pneumonia: its probabilities run "
                 "low here, so read this film as uncertain.")
    return text


def _edge(value: float) -> str:
    """A band's end as a percentage: ``30%``, or ``34.0%`` for the threshold."""
    return f"{value:.0%}" if abs(value * 100 - round(value * 100)) < 1e-6 else f"{value:.1%}"


def _share(value: float) -> str:
    """A share as a percentage, with a decimal near 0 and 100% so that 3,492 of 3,496 is not '100%'."""
    return f"{value:.1%}" if 0 < value < 0.01 or 0.99 < value < 1 else f"{value:.0%}"


def review_band_outcomes(card: dict, threshold: float, site=None) -> tuple[int, int, str] | None:
    """:func:`band_outcomes` of the review band at ``threshold``; None when there is no band, or under a
    ``site`` calibration (its threshold and probabilities are not those the card stores)."""
    band = review_band(threshold)
    return None if band is None or site is not None else band_outcomes(card, *band)


def scored_by_words(card: dict, scheme: str) -> str:
    """Who gave each out-of-fold probability of ``scheme``: the shipped ensemble's member itself, or a
    fold model of another scheme (then the sentence says so: the shipped members are not those)."""
    shipped = (card.get("ensemble") or {}).get("scheme")
    if shipped is None or scheme == shipped:
        return "each scored by the ensemble member that never saw that child"
    return (f"each scored by the {FOLD_MODEL_WORDS.get(scheme, scheme)} model that never saw that child (the "
            f"shipped ensemble's members are the {FOLD_MODEL_WORDS.get(shipped, shipped)} models, which together "
            "learned from every film)")


def threshold_transfer_words(card: dict) -> str:
    """A sentence (with its leading space): the headline's threshold was chosen on its own films, and
    how the rule held on a block it was not chosen on; empty without those figures."""
    cv = card.get("cross_validation") or {}
    rows = (cv.get("transfer") or {}).get(cv.get("threshold_rule")) or []
    if not rows:
        return ""
    sensitivity = [row["sensitivity"] for row in rows]
    specificity = [row["specificity"] for row in rows]
    return (f" The threshold was chosen on these same films, which flatters them; chosen on the other "
            f"{len(rows) - 1} blocks and applied to each block in turn, the same rule kept sensitivity "
            f"{sum(sensitivity) / len(rows):.3f} on average (worst block {min(sensitivity):.3f}) and "
            f"specificity {sum(specificity) / len(rows):.3f} (worst block {min(specificity):.3f}).")


PREDECESSOR_KEY = "predecessor_on_new_patients"
"""The card section holding the one measurement on new patients on file: the previous model's, made by
the product's owners on the held-back test split (``validation_specificity``, ``specificity``, ``roc_auc``)."""


def _predecessor(card: dict) -> dict | None:
    """The card's :data:`PREDECESSOR_KEY` section when it holds both specificities, else None."""
    previous = card.get(PREDECESSOR_KEY) or {}
    if previous.get("specificity") is None or previous.get("validation_specificity") is None:
        return None
    return previous


def new_patients_words(card: dict) -> str:
    """The card's measurement of its predecessor on new patients, as a clause; empty without one."""
    previous = _predecessor(card)
    if previous is None:
        return ""
    return (f"the model shipped before this one cleared {round(100 * previous['validation_specificity'])} of 100 "
            f"healthy children on its own validation films but about {round(100 * previous['specificity'])} of "
            "100 on new patients' films (measured by the product's owners; no such measurement of this "
            "ensemble is on file)")


def study_comparison_note(card: dict) -> str:
    """Under the headline tiles, beside the original study's figures: why the columns are not like for like."""
    text = ("The original study (Kermany et al. 2018) measured its model on its own test split, films of new "
            "patients, with ImageNet weights; these figures come from this model's out-of-fold training films")
    previous = _predecessor(card)
    if previous is None:
        return text + ", which are likely easier."
    return (text + f", which are easier: the model shipped before this one kept {previous['specificity']:.3f} "
            f"specificity on that test split against {previous['validation_specificity']:.3f} on its own "
            "validation films, so the two columns are not a like-for-like comparison.")


def headline_sentence(card: dict) -> str | None:
    """The headline in plain words, beside the original study's figures."""
    top = headline(card)
    if top is None:
        return None
    figures = top["figures"]
    study = ", ".join(f"{words if key == 'roc_auc' else words.lower()} {ORIGINAL_STUDY[key]:.3f}"
                      for key, words in FIGURE_WORDS if key in ORIGINAL_STUDY)
    return (f"On {top['n']:,} training films ({top['kind']}), {scored_by_words(card, top['scheme'])}, "
            f"at the shipped threshold: accuracy {format_interval(figures['accuracy'])}, "
            f"sensitivity {format_interval(figures['sensitivity'])}, specificity "
            f"{format_interval(figures['specificity'])}, ROC AUC {format_interval(figures['roc_auc'])} "
            f"(95% intervals, patients resampled).{threshold_transfer_words(card)} The original study "
            f"reported {study} on its own test split.")


HEADLINE_KEYS = ("accuracy", "sensitivity", "specificity")
"""The figures a stakeholder asks for first, in the order the headline shows them."""


def headline_tiles(card: dict) -> list[dict]:
    """The headline's figures as tiles: label, value, its 95% interval and the original study's figure.

    Keys: ``label``, ``value`` (text), ``interval`` (``95% interval 0.973-0.983``), ``study``
    (``original study 0.932``), ``help``. Empty for a card without cross-validation.
    """
    top = headline(card)
    if top is None:
        return []
    words = dict(FIGURE_WORDS)
    tiles = []
    for key in HEADLINE_KEYS:
        figure = top["figures"].get(key) or {}
        low, high = figure.get("low"), figure.get("high")
        tiles.append({"label": words[key], "value": format_number(figure.get("value")),
                      "interval": "" if low is None else f"95% interval {low:.3f}-{high:.3f}",
                      "study": f"original study {ORIGINAL_STUDY[key]:.3f}" if key in ORIGINAL_STUDY else "",
                      "help": FIGURE_HELP[key]})
    return tiles


FIGURE_HELP = {"accuracy": "Share of all films read correctly at the operating threshold.",
               "sensitivity": "Share of pneumonia films called pneumonia.",
               "specificity": "Share of normal films called normal."}


def plain_headline(card: dict) -> str | None:
    """The headline in plain words: of 100 pneumonia films, how many it flags; of 100 normal films, how many it clears."""
    top = headline(card)
    if top is None:
        return None
    figures = top["figures"]
    sensitivity, specificity = figures["sensitivity"]["value"], figures["specificity"]["value"]
    new_patients = new_patients_words(card)
    return (f"Of every 100 films of children with pneumonia, the model flags about {round(100 * sensitivity)}; "
            f"of every 100 films of children without, it clears about {round(100 * specificity)} and wrongly flags about "
            f"{100 - round(100 * specificity)}. Measured out of fold on {top['n']:,} training films "
            f"({SCHEME_WORDS.get(top['scheme'], top['scheme']).replace(' (', ', ').rstrip(')')}), "
            f"{scored_by_words(card, top['scheme'])}. All of them come from the one hospital the model learned "
            f"from, and new patients are harder"
            + (f": {new_patients}" if new_patients else "")
            + ". Expect it to clear fewer healthy children at your hospital, and measure it there with "
            "calibrate-site."
            + guard_refusal_words(card))


def guard_refusal_words(card: dict) -> str:
    """A sentence (with its leading space) saying the headline reads every film while the image checks
    refuse some in-scope films in use, from the card's guard figures; empty without them."""
    validation = (card.get("guard") or {}).get("validation") or {}
    rate, n = validation.get("cross_fitted_rejection_rate"), validation.get("n")
    if rate is None or not n:
        return ""
    return (f" These figures count every film as read; in use the image checks also refuse about {100 * rate:.1f}% "
            f"of such films (cross-fitted, on {n:,} of the training films), which get no "
            "reading and are left to the clinician.")


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


# -- the model page's view model ----------------------------------------------------------------

VALIDATION_WORDS = (("accuracy", "Accuracy"), ("sensitivity", "Sensitivity"), ("specificity", "Specificity"),
                    ("roc_auc", "ROC AUC"), ("average_precision", "Average precision (AP)"), ("ece", "ECE"))
"""The validation figures the model page shows first: card key -> label."""

RATES = (("sensitivity", "Sensitivity", "Share of pneumonia films called pneumonia."),
         ("specificity", "Specificity", "Share of normal films called normal."),
         ("ppv", "PPV", "Of the films called pneumonia, the share that had it."),
         ("npv", "NPV", "Of the films called normal, the share that were normal."))
"""The rates at a threshold: key, label and what it means."""

THRESHOLD_BASIS_WORDS = {
    "predictions": "computed from the probabilities of the films the card was checked on (out of fold for "
                   "an ensemble)",
    "card": "as the card states them at its operating threshold",
    "roc": "read off the stored ROC curve with the validation class counts (interpolated between curve "
           "points, so approximate)",
}
"""How :func:`pneumo.stats.metrics.validation_at_threshold` got its figures, in words."""


@dataclass(frozen=True)
class Metric:
    """One figure as a metric tile: label, value shown, change against a reference (or None), help."""

    label: str
    value: str
    delta: str | None = None
    help: str | None = None


@dataclass(frozen=True)
class CurvePoints:
    """Where the validation curves mark the operating points.

    Attributes:
        prevalence: the share of pneumonia films among the validation films (the PR curve's chance line).
        roc: label -> (1 - specificity, sensitivity).
        pr: label -> (recall, precision).
    """

    prevalence: float
    roc: dict[str, tuple[float, float]]
    pr: dict[str, tuple[float, float]]


def roc_point(rates: dict) -> tuple[float, float]:
    """(1 - specificity, sensitivity) of a figures dict, where a ROC curve plots it."""
    return 1 - (rates.get("specificity") or 0), rates.get("sensitivity") or 0


def prevalence(confusion_matrix: list[list[int]]) -> float:
    """The share of pneumonia films, from [[tn, fp], [fn, tp]] (0 when there are no films)."""
    (tn, fp), (fn, tp) = confusion_matrix
    return (fn + tp) / max(tn + fp + fn + tp, 1)


def curve_points(validation: dict, chosen: dict | None = None) -> CurvePoints:
    """The model's operating point (and a chosen threshold's, when given) on the ROC and PR curves.

    Args:
        validation: the card's validation section.
        chosen: the figures at a threshold chosen in the explorer, or None.
    """
    roc = {"model's threshold": roc_point(validation)}
    if chosen is not None:
        roc[f"chosen threshold {chosen['threshold']:.3f}"] = roc_point(chosen)
    pr = {"model's threshold": (validation.get("sensitivity") or 0, validation.get("ppv") or 0)}
    return CurvePoints(prevalence=prevalence(validation["confusion_matrix"]), roc=roc, pr=pr)


def validation_metrics(validation: dict) -> list[Metric]:
    """The headline validation figures as metric tiles (``n/a`` where the card has none)."""
    return [Metric(label, format_number(validation.get(key))) for key, label in VALIDATION_WORDS]


def threshold_metrics(chosen: dict, operating: dict, rates=RATES) -> list[Metric]:
    """Sensitivity, specificity, PPV and NPV at the chosen threshold, with their change against the model's.

    ``rates`` is :data:`RATES` for the pneumonia model, :data:`SUBTYPE_RATES` for the subtype model.
    """
    metrics = []
    for key, label, help_text in rates:
        value, base = chosen[key], operating[key]
        delta = None if value is None or base is None or chosen["threshold"] == operating["threshold"] \
            else f"{value - base:+.3f}"
        metrics.append(Metric(label, format_number(value), delta, help_text))
    return metrics


def threshold_caption(chosen: dict, positive: str = "pneumonia", negative: str = "normal") -> str:
    """What the chosen threshold catches and misses, and where its figures come from."""
    (tn, fp), (fn, tp) = chosen["confusion_matrix"]
    if positive == "pneumonia":
        counts = (f"{tp} pneumonia films caught, {fn} missed; {tn} normal films cleared, {fp} flagged")
    else:
        counts = (f"{tp} {positive} films read {positive}, {fn} read {negative}; {tn} {negative} films read "
                  f"{negative}, {fp} read {positive}")
    return (f"At {chosen['threshold']:.4f}: {counts}. Figures {THRESHOLD_BASIS_WORDS[chosen['basis']]}; "
            "deltas against the model's threshold. PPV and NPV hold at these films' share of pneumonia; "
            "where pneumonia is rarer, PPV is lower and NPV higher.")


def architecture_facts(loaded: LoadedModel) -> dict[str, str]:
    """The model's make-up and what it expects, label -> markdown text."""
    card = loaded.card
    operating = card.get("operating_point", {})
    rule = operating.get("rule", f"validation sensitivity of at least {operating.get('min_sensitivity', '?')}")
    return {
        "Architecture": f"{architecture_words(card)}, {card.get('parameters', 0):,} parameters",
        "Input": f"{loaded.input_size} x {loaded.input_size} grayscale, 0-255 (scaled inside the model)",
        "Output": card.get("output", "P(pneumonia)"),
        "Calibration": f"temperature scaling, T = {card.get('temperature', float('nan')):.3f}",
        "Operating threshold": f"{format_probability(loaded.threshold)}: {rule} (chosen among rules that "
                               f"aim at sensitivity {operating.get('min_sensitivity', '?')}; a target, not a "
                               "guarantee)",
        "Explained layer": f"`{loaded.explain_layer}`",
        "Created": card.get("created", "?"),
        "Version": f"`{loaded.version}` (sha256 of the model file: `{card.get('sha256', '')}`)",
    }


def explanation_target_rows(result: dict) -> list[dict]:
    """The stored explanation figures judged against today's targets, as table rows (none: [])."""
    targets = check_targets(result)
    return target_rows(targets) if targets else []


def guard_sentence(guard: dict, ensemble: bool = False) -> str:
    """What the card's out-of-scope guard refused on real films and how well it detects the rest.

    ``ensemble``: the thresholds were set on the first member's held-out films (else the model's
    validation films).
    """
    validation = guard.get("validation", {})
    scope = guard.get("out_of_scope", {})
    auroc = format_number(scope.get("auroc"), 4)
    flagged = (f" and {validation['flagged']} were read with a note that they are less typical of the "
               "training films" if "flagged" in validation else "")
    films = "the ensemble's first member's held-out films" if ensemble else "the model's validation films"
    rate = validation.get("cross_fitted_rejection_rate")
    crossed = (f" ({100 * rate:.1f}% when the thresholds are set on half the patients and counted on the "
               "other half)" if rate is not None else "")
    made = (f" ({scope['n_out_of_scope']} pictures made from the training films by rotating, inverting or "
            "tiling them, or generated: photographs, documents, noise, blanks; not real out-of-scope films)"
            if scope.get("n_out_of_scope") else "")
    return ("The image checks refuse pictures that do not look like frontal chest films of young children "
            f"(they pass many adult films: see the limits). On {films}, where its thresholds were set "
            "(in-distribution: the training hospital's films), "
            f"{validation.get('rejected', '?')} of {validation.get('n', '?')} real films were refused"
            f"{crossed}{flagged}; AUROC against the out-of-scope evaluation set{made}: {auroc}.")


def header_check_rows() -> list[dict]:
    """The intended-use checks a DICOM header gets before the model runs, as table rows."""
    from pneumo.guard import header

    warned = "; ".join(band for _, _, band in header.AGE_BANDS)
    return [
        {"Check": "Modality", "Read": ", ".join(header.RADIOGRAPHY) + "; OT or none: the image checks decide",
         "Refused": "every other modality (CT, MR, US, NM, PT, XA, RF, MG, ...), named in words"},
        {"Check": "Raw detector data", "Read": "For Presentation images",
         "Refused": "Presentation Intent Type FOR PROCESSING, or a For Processing storage class"},
        {"Check": "Body part", "Read": "chest (CHEST, THORAX, LUNG and local spellings) or not stated",
         "Refused": "any other body part, named in words"},
        {"Check": "View", "Read": "frontal (AP, PA) or not stated",
         "Refused": "lateral (View Position LL or RL, or a lateral view code) and oblique views"},
        {"Check": "Age", "Read": f"1 to 5 years, or not stated; with a warning: {warned}",
         "Refused": f"{header.ADULT_AGE:.0f} years and over (adults; the band is named, never the age)"},
    ]


def header_checks_sentence(card: dict) -> str | None:
    """What the card records of the header checks on public files (None when it records nothing)."""
    public = (card.get("header_checks") or {}).get("public_files")
    if not public:
        return None
    kinds = ", ".join(f"{n} {modality}" for modality, n in public.get("modalities", {}).items())
    return (f"Of {public['n']} public DICOM files whose header names another modality ({kinds}), "
            f"{public['refused_naming_modality']} are refused naming it ({public['source'].split(' whose')[0]}).")


# -- the subtype model: bacterial or viral ------------------------------------------------------

SUBTYPE_RATES = (("sensitivity", "Sensitivity (bacterial)", "Share of bacterial pneumonia films read bacterial."),
                 ("specificity", "Specificity (viral)", "Share of viral pneumonia films read viral."),
                 ("ppv", "PPV", "Of the films read bacterial, the share that were bacterial."),
                 ("npv", "NPV", "Of the films read viral, the share that were viral."))
"""The subtype model's rates at a threshold: key, label and what it means."""

SUBTYPE_FIGURE_WORDS = (("accuracy", "Accuracy"), ("sensitivity", "Sensitivity (bacterial)"),
                        ("specificity", "Specificity (viral)"), ("roc_auc", "ROC AUC"), ("ece", "ECE"))

NO_SUBTYPE = ("This model has no bacterial-or-viral model: its card holds no subtype section "
              "(`python -m pneumo train-subtype` adds one).")

SUBTYPE_CAVEAT = PATTERN_CAVEAT


def subtype_section(card: dict) -> dict | None:
    """The card's ``subtype`` section (the bacterial-or-viral model), or None."""
    section = card.get("subtype")
    return section if section and section.get("validation") else None


def subtype_predictions(section: dict) -> tuple[list[int], list[float]]:
    """The out-of-fold films' labels (1 = bacterial) and calibrated P(bacterial).

    P(bacterial) is ``sigmoid(logit / temperature)`` of the stored out-of-fold logits, as the
    shipped file computes it.
    """
    import numpy as np

    from pneumo.stats.calibration import sigmoid

    validation = section["validation"]
    logits = np.asarray(validation["logit"], dtype=np.float64) / float(section["temperature"])
    return [int(label) for label in validation["label"]], sigmoid(logits).tolist()


def subtype_validation(section: dict) -> dict:
    """The subtype section as a validation section, so the main model's explorer, curves and charts take it.

    Returns:
        ``threshold``, ``n``, ``kind``, the figures' values (accuracy, sensitivity, ...), ``ppv`` and
        ``npv``, ``confusion_matrix``, ``curves`` (roc, pr, reliability) and ``predictions``
        (``labels``; ``p_pneumonia`` holds P(bacterial), the key
        :func:`pneumo.stats.metrics.validation_at_threshold` reads).
    """
    from pneumo.stats import metrics

    validation = section["validation"]
    figures = validation.get("figures") or {}
    labels, probs = subtype_predictions(section)
    threshold = float(section["threshold"])
    at = metrics.at_threshold(labels, probs, threshold)
    values = {key: figure["value"] for key, figure in figures.items() if isinstance(figure, dict)}
    curves = dict(validation.get("curves") or {})
    curves.setdefault("reliability", validation.get("reliability"))
    return {**at, **values, "threshold": threshold, "n": validation.get("n", len(labels)),
            "kind": validation.get("kind", ""), "confusion_matrix": figures.get("confusion_matrix",
                                                                                 at["confusion_matrix"]),
            "curves": curves, "predictions": {"labels": labels, "p_pneumonia": probs}}


def subtype_figure_rows(section: dict) -> list[dict]:
    """The subtype model's figures with their 95% intervals, one row per figure."""
    figures = section["validation"].get("figures") or {}
    return [{"Figure": words, "Value (95% interval)": format_interval(figures.get(key))}
            for key, words in SUBTYPE_FIGURE_WORDS]


def subtype_sentence(section: dict) -> str:
    """Where the subtype figures come from and what the model is, in plain words."""
    validation = section["validation"]
    ece_before = validation.get("ece_uncalibrated")
    calibration = (f" ECE before the temperature: {format_number(ece_before)}." if ece_before is not None else "")
    return (f"{section.get('output', 'P(bacterial | pneumonia)')} for films read as pneumonia, on "
            f"{validation.get('n', 0):,} pneumonia films whose names tell the subtype "
            f"({validation.get('positives', '?')} bacterial, {validation.get('negatives', '?')} viral): "
            f"{validation.get('kind', 'validation')}. Trained on {section.get('trained_on', 'not recorded')}; "
            f"temperature T = {format_number(section.get('temperature'))}, threshold "
            f"{format_probability(float(section['threshold']))} ({section.get('threshold_rule', 'not recorded')})."
            f"{calibration} 95% intervals from a bootstrap over patients.")

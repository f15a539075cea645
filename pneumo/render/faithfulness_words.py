"""The heatmaps' faithfulness results in words: the model page's tables and guide, the CLI's summary.

The figures come from :mod:`pneumo.evaluation.faithfulness_results` (measured by
``python -m pneumo explain-eval``); this module only says them.
"""

from __future__ import annotations

from pneumo.evaluation.faithfulness import CANVASES
from pneumo.evaluation.faithfulness_results import BASELINES
from pneumo.inference import explain
from pneumo.render.wording import format_number

MAP_NAMES = {**explain.METHODS, **BASELINES}
"""Every map measured (methods, then baselines) -> name shown to people."""

MIN_SCORE_DROP = 0.25
"""Below this gap between the films' and their canvases' mean P(pneumonia), :func:`canvas_note` warns."""

TARGET_WORDS = {"deletion_beats_random": "deletion beats random on at least",
                "insertion_beats_random": "insertion beats random on at least",
                "randomization_spearman_max": "randomisation rank correlation below",
                "border_share_median_max": "median border share below",
                "deletion_auc_below_gaussian": "deletion AUC below the centred Gaussian's"}
"""Target key (after the method) -> what it asks, in words, before its bound."""


def summary_rows(result: dict) -> list[dict]:
    """One row per method and baseline with the headline figures, for tables (CLI, model page)."""
    rows = []
    for key, name in MAP_NAMES.items():
        figures = result.get(key) or result.get("baselines", {}).get(key)
        if not figures:
            continue
        rows.append({"method": name, "deletion_auc": figures.get("deletion_auc"),
                     "insertion_auc": figures.get("insertion_auc"),
                     "deletion_beats_random": figures.get("deletion_beats_random"),
                     "insertion_beats_random": figures.get("insertion_beats_random"),
                     "randomization_spearman": figures.get("randomization_spearman"),
                     "border_share_median": figures.get("border_share_median")})
    return rows


def reading_guide(result: dict, ensemble: bool = False) -> str:
    """How to read the figures of ``result``, in words, for the model page.

    ``ensemble``: the model is a cross-validated ensemble, whose "validation" films are training
    films every member but one learned from (the maps were measured on the whole ensemble).
    """
    settings = result.get("settings", {})
    models = settings.get("randomization_models", 1)
    gradcam = result.get("gradcam") or {}
    spread = [v for v in gradcam.get("randomization_spearman_by_model") or [] if v is not None]
    spread_text = (f" (Grad-CAM: {min(spread):.2f} to {max(spread):.2f} from one random model to "
                   "another)") if len(spread) > 1 else ""
    films = (f"{result.get('n_films')} training films (the ensemble learned from every one; on films "
             "of new patients the maps may be less faithful)" if ensemble
             else f"{result.get('n_films')} validation films")
    return (f"{films}. Deletion: removing the most salient pixels "
            f"first (replaced by the {settings.get('canvas', '?')} canvas) should make P(pneumonia) "
            "fall fast (lower is better); insertion: revealing them first should make it rise fast "
            "(higher is better); 'beats random' is the share of pneumonia films where the map does "
            "better than a random one. Randomisation: rank correlation with the maps of the same "
            f"network with random weights, averaged over {models} random "
            f"model{'s' if models != 1 else ''}{spread_text}; low means the map depends on what the "
            "model learned. Border: share of the map's weight in the film's outer band.")


def method_caveat(result: dict | None, method: str, target: str = "pneumonia") -> str | None:
    """For a map method whose maps changed little when the model's weights were made random (at or above
    the randomisation bound Grad-CAM is held to), one sentence saying so; None otherwise, unmeasured, or
    for a map of another ``target`` than pneumonia (what the results measured)."""
    if not result or method == "gradcam" or target != "pneumonia":
        return None
    bound = ((result.get("targets") or {}).get("gradcam.randomization_spearman_max") or {}).get("target")
    value = (result.get(method) or {}).get("randomization_spearman")
    if bound is None or value is None or value < bound:
        return None
    gradcam = (result.get("gradcam") or {}).get("randomization_spearman")
    against = f"; Grad-CAM's is {gradcam:.2f}" if gradcam is not None else ""
    return (f"{MAP_NAMES.get(method, method)}'s maps changed little when the model's weights were made random "
            f"(rank correlation {value:.2f}, where the product asks below {bound:g}{against}): they show less "
            "of what this model learned, so read them beside Grad-CAM, not instead of it.")


def target_rows(targets: dict[str, dict]) -> list[dict]:
    """The product's targets (:func:`pneumo.evaluation.faithfulness_results.check_targets`) as table rows."""
    rows = []
    for key, check in targets.items():
        method, _, figure = key.partition(".")
        rows.append({"target": f"{MAP_NAMES.get(method, method)}: {TARGET_WORDS.get(figure, figure)} "
                               f"{_bound(check['target'])}",
                     "measured": None if check["value"] is None else round(check["value"], 3),
                     "met": {True: "yes", False: "no", None: "n/a"}[check["met"]]})
    return rows


def format_summary(result: dict) -> str:
    """The results as a fixed-width table with the settings that matter to read it."""
    settings = result.get("settings", {})
    header = (f"{'':<20}{'del AUC':>9}{'ins AUC':>9}{'del<rnd':>9}{'ins>rnd':>9}"
              f"{'rand rho':>10}{'border':>8}")
    lines = [(f"{result['n_films']} films ({result['n_pneumonia']} pneumonia, {result['n_normal']} normal); "
              f"curves on the pneumonia films, canvas {settings.get('canvas')}, "
              f"{settings.get('steps')} steps"), "", header]
    for row in summary_rows(result):
        cells = [row[k] for k in ("deletion_auc", "insertion_auc", "deletion_beats_random",
                                  "insertion_beats_random")]
        lines.append(f"{row['method']:<20}" + "".join(f"{format_number(v):>9}" for v in cells)
                     + f"{format_number(row['randomization_spearman']):>10}"
                     + f"{format_number(row['border_share_median']):>8}")
    spreads = [f"{explain.METHODS[m]} "
               + ", ".join(format_number(v) for v in result[m]["randomization_spearman_by_model"])
               for m in explain.METHODS if result.get(m, {}).get("randomization_spearman_by_model")]
    if spreads:
        lines += ["", "rand rho against each random-weights model: " + "; ".join(spreads)]
    lines += ["", (f"mean P(pneumonia): films {format_number(settings.get('film_p_pneumonia'))}, "
                   f"their canvases {format_number(settings.get('canvas_p_pneumonia'))}")]
    note = canvas_note(result)
    if note:
        lines.append(f"note: {note}")
    for key, check in result.get("targets", {}).items():
        verdict = {True: "met", False: "MISSED", None: "n/a"}[check["met"]]
        lines.append(f"target {key} {_bound(check['target'])}: {format_number(check['value'])} {verdict}")
    return "\n".join(lines)


def canvas_note(result: dict, min_drop: float = MIN_SCORE_DROP) -> str | None:
    """A warning when the canvas scores nearly as high as the films, else None.

    Deletion can only lower P(pneumonia) as far as the canvas's own score, so when
    the two ends of the curves lie within ``min_drop`` of each other the AUCs differ
    by little more than noise and "beats random" says little.
    """
    settings = result.get("settings", {})
    film_p, canvas_p = settings.get("film_p_pneumonia"), settings.get("canvas_p_pneumonia")
    if film_p is None or canvas_p is None or film_p - canvas_p >= min_drop:
        return None
    others = " or ".join(f"--canvas {c}" for c in CANVASES if c != settings.get("canvas"))
    return (f"the {settings.get('canvas')} canvas alone scores P(pneumonia) {canvas_p:.3f} against "
            f"{film_p:.3f} for the films, so removing pixels cannot lower the score much and the "
            f"deletion and insertion figures say little; compare with {others}.")


def _bound(target) -> str:
    """A target's bound to three significant figures, or ``n/a`` (no figure to compare with)."""
    return "n/a" if target is None else f"{target:.3g}"

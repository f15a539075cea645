"""Model card (/model): what the model is, what it was trained on, how it did on validation, where it stops.

When the store holds several models, the picker here switches the model for every page.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import caches, widgets
from pneumo.evaluation.faithfulness_results import read_explanations
from pneumo.render import charts, faithfulness_words, model_card
from pneumo.render.charts import CHART_CONFIG
from pneumo.render.wording import (
    band_explanation,
    border_training_note,
    format_probability,
    site_text,
    training_run_text,
)
from pneumo.store import LoadedModel

PICKER_KEY = "model_picker"


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def picker_ui(current: str) -> None:
    """A model picker when the store holds several; the choice holds for every page."""
    names = caches.model_names()
    if len(names) < 2:
        return
    st.selectbox("Model used on every page", names, index=names.index(current) if current in names else 0,
                 key=PICKER_KEY, on_change=lambda: caches.choose_model(st.session_state[PICKER_KEY]))


def architecture_ui(loaded: LoadedModel) -> None:
    """The model's make-up and what it expects."""
    card = loaded.card
    st.header("Architecture")
    facts = model_card.architecture_facts(loaded)
    st.markdown("\n".join(f"- **{key}**: {value}" for key, value in facts.items()))
    site = caches.active_site(loaded)  # the words follow the threshold in effect: the site's, if any
    threshold = site.threshold if site is not None else loaded.threshold
    st.markdown(f"**How a probability is put into words** (threshold {format_probability(threshold)}):\n"
                + "\n".join(f"- {line}" for line in band_explanation(
                    threshold, model_card.review_band_outcomes(card, threshold, site))))
    if site is not None:
        st.caption(f"{site_text(site)} The figures on this page are the model's own.")
    st.caption(f"Preprocessing: {card.get('preprocessing', 'see pneumo.preprocess')}")


def training_ui(card: dict) -> None:
    """What the model was trained on and how."""
    training = card.get("training", {})
    split = training.get("split", {})
    folds = training.get("cross_validation")
    st.header("Training data")
    if folds:
        st.markdown(f"{_count(training.get('n_train'))} training films in {folds.get('k')} folds: "
                    f"{folds.get('method', {}).get(folds.get('scheme'), 'not recorded')}. "
                    f"{training_run_text(training)}")
    else:
        st.markdown(
            f"{_count(training.get('n_train'))} training films and {_count(training.get('n_val'))} validation "
            f"films. Split: {split.get('method', 'not recorded')}. {training_run_text(training)}"
        )
    if training.get("command"):
        st.code(training["command"], language="bash")
    if note := border_training_note(card):
        st.caption(note)
    st.page_link("app_pages/explorer.py", label="Explore the training data", icon=":material/dataset:")


def validation_ui(validation: dict) -> None:
    """Headline validation figures and the per-class and per-subtype tables."""
    st.header("Validation" if not validation.get("kind") else "Out-of-fold validation")
    if validation.get("kind"):
        st.caption(f"{validation.get('n', 0):,} films, {validation['kind']}: each film's probability comes "
                   "from a fold model that never saw its patient, at threshold "
                   f"{format_probability(validation.get('threshold', 0.0))}.")
    else:
        st.caption(f"{validation.get('n', 0):,} validation films of patients the model never saw in "
                   f"training, at threshold {format_probability(validation.get('threshold', 0.0))}.")
    metrics = model_card.validation_metrics(validation)
    for column, metric in zip(st.columns(len(metrics)), metrics):
        column.metric(metric.label, metric.value)
    per_class = validation.get("per_class")
    if per_class:
        table = pd.DataFrame(per_class).T
        st.table(table.astype({"support": int}).round(3) if "support" in table else table.round(3))
    subtypes = validation.get("recall_by_subtype")
    if subtypes:
        st.caption("Recall by pneumonia subtype: " + ", ".join(
            f"{name} {row['recall']:.3f} ({row['support']} films)" for name, row in subtypes.items()))


def cross_validation_ui(card: dict) -> None:
    """Random and leave-block-out folds side by side, each fold, and how the threshold rule was chosen."""
    if not model_card.is_cross_validated(card):
        return
    st.header("In-distribution and shift-aware figures")
    st.markdown(model_card.headline_sentence(card))
    st.caption("Random patient folds hold out other patients of the same period (in-distribution); "
               "leave-block-out folds hold out a block of consecutive patient numbers, as films of "
               "another period would arrive (shift-aware). Both at the shipped operating point, with "
               "95% intervals from a bootstrap over patients.")
    st.dataframe(pd.DataFrame(model_card.comparison_rows(card)), hide_index=True, key="cv_comparison")
    left, right = st.columns(2)
    for column, scheme in ((left, "random"), (right, "block")):
        rows = model_card.fold_rows(card, scheme)
        if rows:
            column.caption(f"Each fold of the {model_card.SCHEME_WORDS[scheme]}")
            column.dataframe(pd.DataFrame(rows), hide_index=True, key=f"cv_folds_{scheme}")
    st.subheader("How the operating point was chosen")
    st.markdown(card.get("operating_point", {}).get("why", ""))
    st.dataframe(pd.DataFrame(model_card.rule_rows(card)), hide_index=True, key="cv_rules")
    st.info(model_card.SHIFT_NOTE)
    simulated = model_card.site_simulation_rows(card)
    if simulated:
        st.caption("calibrate-site tried on each block as if it were a new hospital: fitted on half of the "
                   "block's patients (probabilities from the block-fold model that never saw the block), "
                   "measured on the other half, at the shipped operating point (before) and the site's (after).")
        st.dataframe(pd.DataFrame(simulated), hide_index=True, key="cv_sites")
    members = card.get("ensemble", {})
    if members:
        st.caption(f"The shipped predictor is the ensemble of the {members.get('members')} "
                   f"{members.get('scheme')}-fold models: {members.get('combine')}. Members' sha256: "
                   + ", ".join(f"`{h[:12]}`" for h in members.get("member_sha256", [])) + ".")


def curves_ui(loaded: LoadedModel, chosen: dict | None) -> None:
    """Confusion matrix, ROC and PR curves and reliability diagram, the two thresholds marked."""
    validation = loaded.card["validation"]
    curves = validation.get("curves", {})
    points = model_card.curve_points(validation, chosen)
    left, right = st.columns(2)
    left.plotly_chart(charts.confusion_matrix_chart(validation["confusion_matrix"], loaded.classes),
                      config=CHART_CONFIG, key="confusion_matrix")
    if curves.get("roc"):
        right.plotly_chart(charts.roc_chart(curves["roc"], validation.get("roc_auc"), points.roc),
                           config=CHART_CONFIG, key="roc_curve")
    left, right = st.columns(2)
    if curves.get("pr"):
        left.plotly_chart(charts.pr_chart(curves["pr"], validation.get("average_precision"), points.prevalence, points.pr),
                          config=CHART_CONFIG, key="pr_curve")
    if curves.get("reliability"):
        right.plotly_chart(charts.reliability_chart(curves["reliability"]), config=CHART_CONFIG,
                           key="reliability")


def threshold_ui(loaded: LoadedModel) -> float:
    """The threshold slider; returns the threshold chosen."""
    return st.slider("Threshold on P(pneumonia)", 0.0, 1.0, loaded.threshold, 0.001,
                     format="%.3f", key=f"threshold_{loaded.name}",
                     help="Films at or above the threshold are called pneumonia. This does not "
                          "change the threshold the app uses.")


def threshold_figures_ui(chosen: dict, operating: dict) -> None:
    """Sensitivity, specificity, PPV and NPV at the chosen threshold, against the model's."""
    metrics = model_card.threshold_metrics(chosen, operating)
    for column, metric in zip(st.columns(len(metrics)), metrics):
        column.metric(metric.label, metric.value, metric.delta, help=metric.help)
    st.caption(model_card.threshold_caption(chosen))


def use_and_limits_ui(card: dict) -> None:
    """Intended use and known limits, as the card states them."""
    left, right = st.columns(2)
    with left:
        st.subheader("Intended use")
        st.markdown(card.get("intended_use", "Not stated in the card."))
    with right:
        st.subheader("Known limits")
        st.markdown("\n".join(f"- {limit}" for limit in card.get("limits", [])) or "Not stated in the card.")


def threshold_explorer_ui(loaded: LoadedModel, ref: caches.ModelRef) -> dict | None:
    """The threshold slider with its figures and sweep; returns the figures at the chosen threshold."""
    st.header("Threshold explorer")
    try:
        operating = caches.validation_at(*ref, loaded.threshold)
    except ValueError:
        st.info("This model's card holds neither validation predictions nor a ROC curve, so the "
                "threshold cannot be explored.")
        return None
    validation = loaded.card.get("validation") or {}
    if validation.get("kind"):
        st.caption(f"Figures here and in the curves below: {validation.get('n', 0):,} training films, "
                   f"{validation['kind']}.")
    threshold = threshold_ui(loaded)
    chosen = caches.validation_at(*ref, threshold)
    threshold_figures_ui(chosen, operating)
    sweep = caches.threshold_sweep(*ref)
    st.plotly_chart(charts.threshold_sweep_chart(sweep, threshold, loaded.threshold), config=CHART_CONFIG,
                    key="threshold_sweep")
    return chosen


def subtype_ui(loaded: LoadedModel, ref: caches.ModelRef) -> None:
    """The bacterial-or-viral model: figures with intervals, curves and its own threshold explorer."""
    st.header("Bacterial or viral")
    section = model_card.subtype_section(loaded.card)
    if section is None:
        st.caption(model_card.NO_SUBTYPE)
        return
    st.markdown(model_card.subtype_sentence(section))
    st.info(model_card.SUBTYPE_CAVEAT, icon=":material/info:")
    st.dataframe(pd.DataFrame(model_card.subtype_figure_rows(section)), hide_index=True, key="subtype_figures")
    validation = model_card.subtype_validation(section)
    classes = section.get("classes", ["viral", "bacterial"])
    model_threshold = validation["threshold"]
    operating = caches.validation_at(*ref, model_threshold, "subtype")
    threshold = st.slider("Threshold on P(bacterial)", 0.0, 1.0, model_threshold, 0.001, format="%.3f",
                          key=f"subtype_threshold_{loaded.name}",
                          help="Films read as pneumonia at or above the threshold are read bacterial. This "
                               "does not change the threshold the app uses.")
    chosen = caches.validation_at(*ref, threshold, "subtype")
    metrics = model_card.threshold_metrics(chosen, operating, model_card.SUBTYPE_RATES)
    for column, metric in zip(st.columns(len(metrics)), metrics):
        column.metric(metric.label, metric.value, metric.delta, help=metric.help)
    st.caption(model_card.threshold_caption(chosen, classes[1], classes[0]))
    st.plotly_chart(charts.threshold_sweep_chart(caches.threshold_sweep(*ref, "subtype"), threshold,
                                                 model_threshold, "bacterial"),
                    config=CHART_CONFIG, key="subtype_threshold_sweep")
    points = model_card.curve_points(validation, chosen)
    left, right = st.columns(2)
    left.plotly_chart(charts.confusion_matrix_chart(validation["confusion_matrix"], classes),
                      config=CHART_CONFIG, key="subtype_confusion_matrix")
    curves = validation["curves"]
    if curves.get("roc"):
        right.plotly_chart(charts.roc_chart(curves["roc"], validation.get("roc_auc"), points.roc),
                           config=CHART_CONFIG, key="subtype_roc_curve")
    if curves.get("reliability"):
        left.plotly_chart(charts.reliability_chart(curves["reliability"], "bacterial"), config=CHART_CONFIG,
                          key="subtype_reliability")


def explanations_ui(loaded: LoadedModel) -> None:
    """How faithful the heatmaps are, as ``python -m pneumo explain-eval --save`` measured them."""
    st.header("How far the heatmaps can be trusted")
    result = read_explanations(loaded.path, loaded.card.get("sha256"))
    if result is None:
        st.info("No explanation measurements are stored for this model file: run "
                "`python -m pneumo explain-eval --data DIR --save`.")
        return
    settings = result.get("settings", {})
    st.caption(faithfulness_words.reading_guide(result, ensemble=model_card.is_cross_validated(loaded.card)))
    st.dataframe(pd.DataFrame(faithfulness_words.summary_rows(result)), hide_index=True, width="stretch",
                 key="explanations_table")
    targets = model_card.explanation_target_rows(result)  # today's targets, from the stored figures
    if targets:
        st.dataframe(pd.DataFrame(targets), hide_index=True, key="explanation_targets")
    note = faithfulness_words.canvas_note(result)
    if note:
        st.caption(f"Note: {note}")
    curves = result.get("curves")
    if curves and curves.get("fraction"):
        left, right = st.columns(2)
        left.plotly_chart(charts.faithfulness_curves_chart(curves, faithfulness_words.MAP_NAMES, "deletion"),
                          key="deletion_curves")
        right.plotly_chart(charts.faithfulness_curves_chart(curves, faithfulness_words.MAP_NAMES, "insertion"),
                           key="insertion_curves")
        st.caption(f"Mean over the {result.get('n_pneumonia')} pneumonia films; removed pixels are "
                   f"taken from the {settings.get('canvas', '?')} canvas.")
    scope = loaded.card.get("guard")
    if scope:
        st.header("Out-of-scope guard")
        st.markdown(model_card.guard_sentence(scope, ensemble=model_card.is_cross_validated(loaded.card)))
    st.subheader("Checks of a DICOM header, before the model runs")
    st.caption("Where the header states it, the film is refused with the reason and no model runs; "
               "where a field is missing or empty, the image checks decide alone.")
    st.dataframe(pd.DataFrame(model_card.header_check_rows()), hide_index=True, width="stretch",
                 key="header_checks")
    measured = model_card.header_checks_sentence(loaded.card)
    if measured:
        st.caption(measured)


def main() -> None:
    """Draw the model card."""
    loaded = caches.require_model()
    ref = caches.current_ref()
    st.title(f"Model card: {loaded.name}")
    picker_ui(loaded.name)
    widgets.headline_ui(loaded.card)
    use_and_limits_ui(loaded.card)
    validation = loaded.card.get("validation") or {}
    if validation.get("confusion_matrix"):
        validation_ui(validation)
        cross_validation_ui(loaded.card)
        chosen = threshold_explorer_ui(loaded, ref)
        st.header("Out-of-fold curves" if validation.get("kind") else "Validation curves")
        if validation.get("kind"):
            st.caption(f"Curves and confusion matrix: {validation.get('n', 0):,} training films, "
                       f"{validation['kind']}.")
        curves_ui(loaded, chosen)
    else:
        st.info("This model's card holds no validation figures.")
    subtype_ui(loaded, ref)
    explanations_ui(loaded)
    architecture_ui(loaded)
    training_ui(loaded.card)

main()

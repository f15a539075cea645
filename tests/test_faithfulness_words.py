"""The faithfulness results in words: the model page's tables and guide, the canvas note, the CLI summary."""

from pneumo.evaluation.faithfulness_results import check_targets
from pneumo.render import faithfulness_words


def test_canvas_note_warns_only_when_the_canvas_scores_like_the_films():
    def result(film_p, canvas_p):
        return {"settings": {"canvas": "blur", "film_p_pneumonia": film_p, "canvas_p_pneumonia": canvas_p}}

    assert "compare with --canvas mean or --canvas normal." in faithfulness_words.canvas_note(result(0.95, 0.97))
    assert faithfulness_words.canvas_note(result(0.95, 0.10)) is None


def test_a_baseline_target_reads_as_a_row():
    result = {"gradcam": {"deletion_auc": 0.40}, "baselines": {"gaussian": {"deletion_auc": 0.42}}}
    row = faithfulness_words.target_rows(check_targets(result))[-1]
    assert row == {"target": "Grad-CAM: deletion AUC below the centred Gaussian's 0.42", "measured": 0.4,
                   "met": "yes"}


def test_target_rows_and_reading_guide_say_what_was_measured():
    result = {"gradcam": {"deletion_beats_random": 0.95, "insertion_beats_random": 0.5,
                          "randomization_spearman": 0.1, "border_share_median": 0.2,
                          "randomization_spearman_by_model": [0.31, -0.12, None]},
              "n_films": 7, "settings": {"canvas": "normal", "randomization_models": 3}}
    rows = faithfulness_words.target_rows(check_targets(result))
    assert rows[0] == {"target": "Grad-CAM: deletion beats random on at least 0.9", "measured": 0.95,
                       "met": "yes"}
    assert [r["met"] for r in rows] == ["yes", "no", "yes", "no", "n/a"]
    guide = faithfulness_words.reading_guide(result)
    assert "7 validation films" in guide and "normal canvas" in guide
    assert "averaged over 3 random models (Grad-CAM: -0.12 to 0.31" in guide
    ensemble = faithfulness_words.reading_guide(result, ensemble=True)
    assert ensemble.startswith("7 training films (the ensemble learned from every one") and "validation" not in ensemble


def test_summary_rows_put_methods_first_then_baselines():
    result = {"gradcam": {"deletion_auc": 0.5, "border_share_median": 0.1}, "scorecam": {"deletion_auc": 0.6},
              "baselines": {"random": {"deletion_auc": 0.7}, "gaussian": {"deletion_auc": 0.55}}}
    rows = faithfulness_words.summary_rows(result)
    assert [r["method"] for r in rows] == ["Grad-CAM", "Score-CAM", "Random map", "Centred Gaussian"]
    assert rows[0]["border_share_median"] == 0.1 and rows[1]["deletion_beats_random"] is None


def test_format_summary_prints_the_table_the_spread_and_each_target():
    result = {"n_films": 10, "n_pneumonia": 7, "n_normal": 3,
              "gradcam": {"deletion_auc": 0.5, "insertion_auc": 0.8, "deletion_beats_random": 0.9,
                          "insertion_beats_random": None, "randomization_spearman": -0.0184,
                          "border_share_median": 0.0571, "randomization_spearman_by_model": [0.1, -0.2]},
              "baselines": {"random": {"deletion_auc": 0.7, "insertion_auc": 0.6, "border_share_median": 0.4}},
              "settings": {"canvas": "mean", "steps": 24, "film_p_pneumonia": 0.952,
                           "canvas_p_pneumonia": 0.071},
              "targets": {"gradcam.border_share_median_max": {"value": 0.0571, "target": 0.15, "met": True},
                          "gradcam.deletion_auc_below_gaussian": {"value": 0.5, "target": None, "met": None}}}
    assert faithfulness_words.format_summary(result).splitlines() == [
        "10 films (7 pneumonia, 3 normal); curves on the pneumonia films, canvas mean, 24 steps",
        "",
        "                      del AUC  ins AUC  del<rnd  ins>rnd  rand rho  border",
        "Grad-CAM                0.500    0.800    0.900      n/a    -0.018   0.057",
        "Random map              0.700    0.600      n/a      n/a       n/a   0.400",
        "",
        "rand rho against each random-weights model: Grad-CAM 0.100, -0.200",
        "",
        "mean P(pneumonia): films 0.952, their canvases 0.071",
        "target gradcam.border_share_median_max 0.15: 0.057 met",
        "target gradcam.deletion_auc_below_gaussian n/a: 0.500 n/a",
    ]


def test_a_method_that_fails_the_randomisation_check_gets_a_caveat_and_grad_cam_none():
    result = {"targets": {"gradcam.randomization_spearman_max": {"value": 0.05, "target": 0.3, "met": True}},
              "gradcam": {"randomization_spearman": 0.05}, "gradcam_pp": {"randomization_spearman": 0.6},
              "scorecam": {"randomization_spearman": 0.29}}
    words = faithfulness_words.method_caveat(result, "gradcam_pp")
    assert words.startswith("Grad-CAM++'s maps changed little when the model's weights were made random "
                            "(rank correlation 0.60, where the product asks below 0.3; Grad-CAM's is 0.05)")
    assert faithfulness_words.method_caveat(result, "scorecam") is None  # under the bound
    assert faithfulness_words.method_caveat(result, "gradcam") is None
    assert faithfulness_words.method_caveat(None, "gradcam_pp") is None
    assert faithfulness_words.method_caveat({"gradcam_pp": {"randomization_spearman": 0.6}}, "gradcam_pp") is None

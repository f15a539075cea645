"""pneumo.inference.sites: a site's own temperature and threshold, stored beside the model, never changing it."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from pneumo.guard.detector import ScopeVerdict

from pneumo import data, store
from pneumo.cli import main
from pneumo.inference import sites
from pneumo.inference.predict import Classifier
from pneumo.inference.sites import SiteError
from pneumo.stats import calibration, metrics

PER_CLASS = sites.MIN_FILMS_PER_CLASS


def _link_films(root: Path, train_dir: Path, counts: dict[str, int]) -> Path:
    """A split folder of symbolic links to the first real films of each class."""
    for class_name, count in counts.items():
        (root / class_name).mkdir(parents=True)
        for film in sorted((train_dir / class_name).iterdir())[:count]:
            (root / class_name / film.name).symlink_to(film)
    return root


@pytest.fixture(scope="module")
def site_store(tmp_path_factory, tiny_store) -> Path:
    """A copy of the tiny store that this module's site files go into."""
    copy = tmp_path_factory.mktemp("site_store") / "store"
    shutil.copytree(tiny_store, copy)
    return copy


@pytest.fixture(scope="module")
def loaded(site_store):
    return store.load("tiny", site_store)


@pytest.fixture
def use_site_store(site_store, monkeypatch):
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(site_store))
    return site_store


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, train_dir) -> Path:
    """50 real films of each class, as a site's labelled split folder."""
    return _link_films(tmp_path_factory.mktemp("site") / "labelled", train_dir,
                       {"NORMAL": PER_CLASS, "PNEUMONIA": PER_CLASS})


@pytest.fixture(scope="module")
def calibrated(site_store, labelled, loaded) -> dict:
    """``calibrate-site --name north`` run once through the CLI: its output and the model file before and after."""
    model_file = site_store / "tiny" / store.MODEL_FILE
    before = (store.file_sha256(model_file), (site_store / "tiny" / store.CARD_FILE).read_bytes())
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out), redirect_stderr(err):
        patch.setenv("PNEUMO_MODEL_STORE", str(site_store))
        code = main(["calibrate-site", "--data", str(labelled), "--name", "north"])
    after = (store.file_sha256(model_file), (site_store / "tiny" / store.CARD_FILE).read_bytes())
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "before": before, "after": after}


def _synthetic(n: int = 400, model_temperature: float = 0.5, seed: int = 0):
    """Labels, over-confident model probabilities (true temperature 1) and patients of two films each."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, 3, n)
    labels = (rng.random(n) < calibration.sigmoid(raw)).astype(int)  # sigmoid(raw) is the true probability
    patients = [f"patient{i // 2}" for i in range(n)]
    return labels, calibration.sigmoid(raw / model_temperature), patients


# -- the CLI --------------------------------------------------------------------------------------

def test_calibrate_site_writes_a_file_that_round_trips(calibrated, loaded, labelled, site_store):
    assert calibrated["code"] == 0, calibrated["stderr"]
    *progress_lines, summary = calibrated["stderr"].splitlines()
    assert progress_lines[-1].startswith("calibrate-site: 100 of 100 films (100%), ")
    assert summary.startswith("calibrate-site: done: 100 films (100 ok) in ")
    assert summary.endswith(f"; stored {site_store / 'tiny' / 'sites' / 'north.json'}; use it with --site north")
    printed = calibrated["stdout"]
    assert "site calibration" in printed and "ROC AUC" in printed and "bootstrap over patients" in printed
    site = sites.load_site(loaded, "north")
    record = json.loads((site_store / "tiny" / "sites" / "north.json").read_text())
    assert site.record == record and site.name == "north" and site.model_sha256 == loaded.card["sha256"]
    assert (site.temperature, site.threshold, site.min_sensitivity) == (
        record["temperature"], record["threshold"], 0.95)
    assert record["model"] == "tiny" and record["films"]["used"] == {"NORMAL": PER_CLASS, "PNEUMONIA": PER_CLASS}
    assert record["films"]["refused_by_guard"] == 0 and record["films"]["unreadable"] == 0
    assert record["data_manifest_sha256"] == data.manifest_sha256(data.find_films(labelled), labelled)
    assert record["bootstrap"]["resamples"] == 1000 and record["bootstrap"]["grouped_by"] == "patient"
    for stage in ("before", "after"):
        for key in sites.FIGURES:
            figure = record["figures"][stage][key]
            assert figure["low"] <= figure["high"], (stage, key)
            if key != "ece":  # ECE is biased upwards, so its bootstrap may sit wholly above it
                assert figure["low"] <= figure["value"] <= figure["high"], (stage, key)
    assert record["figures"]["before"]["threshold"] == loaded.threshold
    assert record["figures"]["after"]["threshold"] == site.threshold
    assert record["created"].endswith("+00:00")
    assert sites.list_sites(loaded) == ["north"]
    # 50 pneumonia films: even 50 of 50 caught has a lower 95% bound of 0.93, so the bound cannot be
    # promised, and neither the record nor the summary may claim it
    assert metrics.wilson_lower_bound(PER_CLASS, PER_CLASS) < 0.95
    assert record["bound_met"] is False and record["threshold_rule"] == sites.OBSERVED_RULE
    assert "too few pneumonia films for the lower 95% bound of sensitivity to reach 0.95" in printed
    assert "chosen so that the lower 95% bound" not in printed


def test_calibration_never_changes_the_model_file_or_its_card(calibrated):
    assert calibrated["code"] == 0
    assert calibrated["after"] == calibrated["before"]


@pytest.mark.parametrize(("counts", "expected"), [
    ({"NORMAL": PER_CLASS - 1, "PNEUMONIA": PER_CLASS},
     f"holds {PER_CLASS - 1} NORMAL and {PER_CLASS} PNEUMONIA films"),
    ({"NORMAL": 60}, "holds 60 NORMAL and 0 PNEUMONIA films (one class only)"),
])
def test_calibrate_site_refuses_too_few_films_and_one_class(use_site_store, tmp_path, train_dir, capsys,
                                                           counts, expected):
    folder = _link_films(tmp_path / "few", train_dir, counts)
    assert main(["calibrate-site", "--data", str(folder), "--name", "few"]) == 2
    err = capsys.readouterr().err
    assert expected in err and f"at least {PER_CLASS} films of each class" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (use_site_store / "tiny" / "sites" / "few.json").exists()


def test_films_the_guard_refuses_are_counted_and_never_used(use_site_store, labelled, capsys, monkeypatch):
    class RefusesTheFirstThreeFilms:  # the first films in path order are NORMAL ones
        judged = 0

        def judge(self, inputs, pooled, films):
            verdicts = []
            for _ in films:
                self.judged += 1
                verdicts.append(ScopeVerdict(False, "features", "Unlike the training films.", 1.0, ("features",))
                                if self.judged <= 3 else ScopeVerdict(True, "", "", -1.0, ()))
            return verdicts

    import pneumo.inference.predict

    monkeypatch.setattr(pneumo.inference.predict, "load_guard", lambda loaded: RefusesTheFirstThreeFilms())
    assert main(["calibrate-site", "--data", str(labelled), "--name", "guarded"]) == 2
    err = capsys.readouterr().err
    assert f"holds {PER_CLASS - 3} NORMAL and {PER_CLASS} PNEUMONIA films after leaving out 3 films the " \
           "out-of-scope guard refused and 0 that could not be read (of 100 found)" in err
    *progress_lines, sentence = err.strip().splitlines()
    assert sentence.startswith("pneumo calibrate-site: ") and "Traceback" not in err
    assert all(line.startswith("calibrate-site: ") for line in progress_lines)
    assert not (use_site_store / "tiny" / "sites" / "guarded.json").exists()


@pytest.mark.parametrize("name", ["../evil", "", "a b", "x" * 65, "north.json"])
def test_site_names_are_restricted(use_site_store, labelled, capsys, name):
    assert main(["calibrate-site", "--data", str(labelled), "--name", name]) == 2
    assert "A site name is 1 to 64 letters, digits, '-' or '_'" in capsys.readouterr().err
    with pytest.raises(SiteError, match="site name"):
        sites.check_name(name)


def test_predict_and_evaluate_use_the_site(calibrated, use_site_store, labelled, loaded, tmp_path, capsys):
    site = sites.load_site(loaded, "north")
    films = sorted((labelled / "PNEUMONIA").iterdir())[:3]
    out = tmp_path / "rows.csv"
    assert main(["predict", *map(str, films), "--site", "north", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    plain = Classifier(loaded)
    for row, film in zip(rows, films):
        expected = site.probabilities(np.array([plain.assess(film).p_pneumonia]), loaded.card["temperature"])[0]
        assert row["site"] == "north" and float(row["p_pneumonia"]) == pytest.approx(expected, abs=1e-4)
        assert row["label"] == ("PNEUMONIA" if expected >= site.threshold else "NORMAL")
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--data", str(labelled), "--site", "north", "--json", str(report)]) == 0
    figures = json.loads(report.read_text())
    assert figures["site"] == "north" and figures["threshold"] == site.threshold
    assert "with site calibration north" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_an_unknown_site_is_one_sentence_naming_what_exists(calibrated, use_site_store, labelled, capsys,
                                                             command):
    argv = ([command, str(labelled / "NORMAL")] if command == "predict" else [command, "--data", str(labelled)])
    assert main([*argv, "--site", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert "Unknown site 'nowhere'; sites for model 'tiny': north." in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# -- loading ------------------------------------------------------------------------------------

def test_a_site_file_for_another_model_is_refused_naming_what_exists(calibrated, loaded, site_store):
    record = json.loads((site_store / "tiny" / "sites" / "north.json").read_text())
    record.update(site="elsewhere", model_sha256="f" * 64)
    (site_store / "tiny" / "sites" / "elsewhere.json").write_text(json.dumps(record))
    try:
        with pytest.raises(SiteError, match=r"Site 'elsewhere' was calibrated for another model file "
                                            r"\(sha256 ffffffffffff\.\.\..*sites for model 'tiny': north\."):
            sites.load_site(loaded, "elsewhere")
        with pytest.raises(SiteError, match="another model file"):
            Classifier(loaded, site="elsewhere")
        assert sites.list_sites(loaded) == ["north"]  # what cannot be used is not offered
    finally:
        (site_store / "tiny" / "sites" / "elsewhere.json").unlink()


def test_an_unknown_or_damaged_site_is_refused(loaded, tiny_model, site_store):
    with pytest.raises(SiteError, match=r"Unknown site 'nowhere'; model 'tiny' has no site calibrations yet"):
        sites.load_site(tiny_model, "nowhere")  # the shared tiny store has none
    folder = site_store / "tiny" / "sites"
    folder.mkdir(exist_ok=True)
    (folder / "broken.json").write_text("{not json")
    try:
        with pytest.raises(SiteError, match="site file broken.json of model 'tiny' cannot be read"):
            sites.load_site(loaded, "broken")
    finally:
        (folder / "broken.json").unlink()
    with pytest.raises(SiteError, match="site name"):
        sites.load_site(loaded, "../tiny/card")


def test_save_site_refuses_a_record_for_another_model(loaded):
    with pytest.raises(SiteError, match="another model file"):
        sites.save_site(loaded, {"site": "x", "model_sha256": "0" * 64})


# -- the classifier at a site -------------------------------------------------------------------

def _site(loaded, temperature: float, threshold: float, name: str = "test") -> sites.Site:
    return sites.Site(name=name, model_sha256=loaded.card["sha256"], temperature=temperature,
                      threshold=threshold, min_sensitivity=0.95, digest="0" * 64, record={})


def test_classifier_at_a_site_uses_its_temperature_and_threshold(tiny_model, normal_film, pneumonia_film):
    loaded = dataclasses.replace(tiny_model, card={**tiny_model.card, "temperature": 0.7})
    site = _site(loaded, temperature=2.0, threshold=0.3, name="south")
    plain, at_site = Classifier(loaded, guard=None), Classifier(loaded, guard=None, site=site)
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0, 255, (6, loaded.input_size, loaded.input_size, 1)).astype(np.float32)
    p = plain.predict_inputs(inputs)
    np.testing.assert_allclose(at_site.predict_inputs(inputs),
                               calibration.sigmoid(0.7 * np.log(p / (1 - p)) / 2.0), atol=1e-6)
    assert at_site.threshold == 0.3 and plain.threshold == loaded.threshold
    assert at_site.label_for(0.3) == "PNEUMONIA" and at_site.label_for(0.2999) == "NORMAL"
    item, base = at_site.assess(pneumonia_film, name="p.jpeg"), plain.assess(pneumonia_film)
    assert item.p_pneumonia == pytest.approx(sites.recalibrate(base.p_pneumonia, 0.7, 2.0), abs=1e-6)
    assert item.row()["site"] == "south" and base.row()["site"] == ""
    film = item.film
    low, high = at_site.uncertainty(film)
    base_low, base_high = plain.uncertainty(film)
    assert low == pytest.approx(sites.recalibrate(base_low, 0.7, 2.0), abs=1e-3)
    assert high == pytest.approx(sites.recalibrate(base_high, 0.7, 2.0), abs=1e-3)


def test_a_site_at_the_model_temperature_changes_nothing(tiny_model):
    p = np.array([1e-9, 0.01, 0.3, 0.5, 0.97, 1.0])
    T = tiny_model.card["temperature"]
    np.testing.assert_allclose(sites.recalibrate(p, T, T), np.clip(p, 1e-7, 1 - 1e-7), rtol=1e-9)


# -- the figures ----------------------------------------------------------------------------------

def test_fit_site_recovers_the_temperature_and_keeps_sensitivity():
    labels, p_model, patients = _synthetic(model_temperature=0.5)
    fitted = sites.fit_site(labels, p_model, patients, model_temperature=0.5, model_threshold=0.5,
                            min_sensitivity=0.9)
    assert 0.8 < fitted["temperature"] < 1.25  # the data's own temperature is 1
    p_site = sites.recalibrate(p_model, 0.5, fitted["temperature"])
    assert fitted["threshold"] == metrics.choose_threshold(labels, p_site, 0.9)
    before, after = fitted["figures"]["before"], fitted["figures"]["after"]
    assert after["ece"]["value"] < before["ece"]["value"]
    assert after["roc_auc"]["value"] == pytest.approx(before["roc_auc"]["value"])  # a temperature keeps the order
    assert after["sensitivity"]["value"] >= 0.9
    positives = p_site[labels == 1]
    caught = int((positives >= fitted["threshold"]).sum())
    assert fitted["bound_met"] is (metrics.wilson_lower_bound(caught, positives.size) >= 0.9)
    assert fitted["bound_met"]  # about 200 pneumonia films: the margin is reachable
    assert fitted["bootstrap"]["patients"] == 200
    assert after["sensitivity"]["low"] < after["sensitivity"]["value"] < after["sensitivity"]["high"]


# -- the app ------------------------------------------------------------------------------------

def test_the_app_names_the_active_site_on_every_page(tmp_path, tiny_store, monkeypatch, pneumonia_film):
    from streamlit.testing.v1 import AppTest

    copy = tmp_path / "store"
    shutil.copytree(tiny_store, copy)
    loaded = store.load("tiny", copy)
    labels, p_model, patients = _synthetic()
    record = {"site": "west", "model": "tiny", "model_sha256": loaded.card["sha256"],
              "min_sensitivity": 0.95, "films": {"used": {"NORMAL": 200, "PNEUMONIA": 200}},
              "created": "2026-12-01T10:00:00+00:00",
              **sites.fit_site(labels, p_model, patients, 1.0, 0.5, resamples=50)}
    sites.save_site(loaded, {**record, "threshold": 0.123})
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(copy))
    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=90).run()
    assert not at.exception
    assert "Site calibration: none (model's own operating point)." in [c.value for c in at.caption]
    at.selectbox(key="site_picker").set_value("west").run()
    assert not at.exception
    for page in ("app_pages/home.py", "app_pages/diagnose.py", "app_pages/explorer.py", "app_pages/model.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert any(c.value.startswith("Site calibration west (made 2026-12-01 on 400 films of the site): "
                                      "threshold 0.1230 in effect instead of the model's own") for c in at.caption), page
        if page == "app_pages/home.py":  # the home page's threshold is not the only one it names
            assert any(m.value.startswith("**In effect now:** Site calibration west") for m in at.markdown)
    at.switch_page("app_pages/demo.py").run()
    at.toggle(key="presentation").set_value(True).run()  # hides the sidebar: the slide names the site
    assert not at.exception
    assert any(c.value.startswith("Site calibration west (made 2026-12-01") for c in at.main.caption)
    at.toggle(key="presentation").set_value(False).run()
    at.switch_page("app_pages/diagnose.py").run()
    at.file_uploader(key="uploader").set_value((pneumonia_film.name, pneumonia_film.read_bytes(),
                                                 "image/jpeg")).run()
    assert not at.exception
    assert any("operating threshold 0.1230 (site west)" in m.value for m in at.markdown)

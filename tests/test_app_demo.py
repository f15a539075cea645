"""The example films and the demo page through AppTest: one click on /diagnose, the /demo gallery and presentation.

Every probability the pages show is checked against :class:`Classifier` on the same bytes,
and every out-of-fold figure against the card; the films are the shipped examples and real
training films from ../shared/data.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pneumo import store
from pneumo.examples import load_examples
from pneumo.inference.predict import Classifier
from pneumo.render import demo, model_card
from pneumo.render.wording import format_percent, format_probability
from tests.support.data import real_films

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT_S = 120
DIAGNOSE, DEMO, HOME, MODEL = "app_pages/diagnose.py", "app_pages/demo.py", "app_pages/home.py", "app_pages/model.py"


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    try:
        return Classifier(store.load())
    except store.ModelStoreError as err:
        pytest.skip(f"no model in the store in effect: {err}")


@pytest.fixture(scope="module")
def examples():
    return load_examples()


def _open(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    if page != HOME:
        at.switch_page(page).run()
    assert not at.exception
    return at


def _markdown(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "title")
                     for e in getattr(at, kind))


def test_one_click_on_an_example_shows_its_result_and_says_it_is_a_training_film(classifier, examples) -> None:
    soft = next(e for e in examples if e.kind == "soft")
    at = _open(DIAGNOSE)
    picker = at.button_group(key="example")
    assert len(picker.options) == len(examples)
    picker.set_value(soft.name).run()
    assert not at.exception
    expected = classifier.assess(soft.getvalue(), name=soft.name).p_pneumonia
    oof = demo.out_of_fold_probabilities(classifier.loaded.card)[soft.source]
    intro = next(i.value for i in at.info if "Example: Soft call" in i.value)
    assert soft.source in intro and "training film" in intro
    assert f"scored {format_percent(oof)}" in intro and f"gives {format_percent(expected)}" in intro
    assert f"P(pneumonia) = **{format_probability(expected)}**" in _markdown(at)
    assert any("where the model looked" in c for image in at.image for c in image.captions)


def test_an_upload_replaces_the_example_on_screen(examples) -> None:
    film = real_films("PNEUMONIA", 1)[0]
    at = _open(DIAGNOSE)
    at.button_group(key="example").set_value(examples[0].name).run()
    at.file_uploader(key="uploader").set_value((film.name, film.read_bytes(), "image/jpeg")).run()
    assert not at.exception
    assert at.session_state["example"] is None
    assert film.name in _markdown(at)
    assert not any("Example:" in i.value for i in at.info)


def test_the_rotated_and_the_non_film_examples_are_refused_with_the_reason(examples) -> None:
    at = _open(DIAGNOSE)
    for kind, words in (("rotated", "turned by 90 degrees"), ("non-film", "colour photograph")):
        example = next(e for e in examples if e.kind == kind)
        at.button_group(key="example").set_value(example.name).run()
        assert not at.exception
        assert any(words in w.value for w in at.warning), kind
        assert not at.image  # refused: no result until an expert asks for it


def _gallery_titles(at: AppTest) -> list[str]:
    return [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**") and "Verdict:" in m.value]


def test_demo_gallery_shows_every_example_with_label_verdict_and_mark(classifier, examples) -> None:
    at = _open(DEMO)
    assert _gallery_titles(at) == [e.title for e in examples]  # "as listed" first
    assessments = list(classifier.assess_many((e.name, e.getvalue()) for e in examples))
    rows = demo.gallery_rows(demo.example_films(examples), assessments, classifier.threshold, classifier.classes,
                             demo.out_of_fold_probabilities(classifier.loaded.card))
    cards = [m.value for m in at.markdown if "Verdict:" in m.value]
    for row, text in zip(rows, cards):
        assert f"Label: {row['label']}" in text and f"Verdict: {row['verdict']}" in text
        assert row["mark"] in text
    assert any(demo.tally(rows) in c.value for c in at.caption)
    assert len([b for b in at.button if b.key and b.key.startswith("open_")]) == len(examples)

    at.selectbox(key="demo_sort").set_value("p_desc").run()
    assert not at.exception
    by_probability = [r["title"] for r in demo.sort_rows(rows, "p_desc")]
    assert _gallery_titles(at) == by_probability
    at.selectbox(key="demo_sort").set_value("p_asc").run()
    scored = [t for t in _gallery_titles(at) if t in {r["title"] for r in rows if r["p_pneumonia"] is not None}]
    assert scored == [r["title"] for r in demo.sort_rows(rows, "p_asc") if r["p_pneumonia"] is not None]


def test_presentation_shows_one_film_and_moves_with_next_and_previous(examples) -> None:
    at = _open(DEMO)
    at.toggle(key="presentation").set_value(True).run()
    assert not at.exception

    def slide() -> tuple[str, str]:
        text = _markdown(at)
        where = next(line for line in text.splitlines() if "Film " in line and " of " in line)
        return where, next(e.title for e in examples if f">{e.title}<" in text)

    assert slide() == (f"<div class='pneumo-slide-line' style='text-align:center'>Film 1 of {len(examples)}</div>",
                       examples[0].title)
    assert at.button(key="previous").disabled
    assert not _gallery_titles(at)  # one film, no gallery
    at.button(key="next").click().run()
    assert slide()[1] == examples[1].title and f"Film 2 of {len(examples)}" in slide()[0]
    at.button(key="previous").click().run()
    assert slide()[1] == examples[0].title
    at.toggle(key="presentation").set_value(False).run()
    assert _gallery_titles(at) == [e.title for e in examples]


def _kaggle_films(per_class: int) -> list[tuple[str, Path]]:
    return [(f"train/{name}/{path.name}", path) for name in ("NORMAL", "PNEUMONIA")
            for path in real_films(name, per_class)]


def test_demo_reads_a_folder_on_the_server_with_labels_from_its_folders(tmp_path: Path, classifier) -> None:
    for name, path in _kaggle_films(2):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).symlink_to(path)
    at = _open(DEMO)
    at.radio(key="demo_source").set_value("folder").run()
    at.text_input(key="demo_dir").set_value(str(tmp_path)).run()
    at.slider(key="demo_per_class").set_value(2).run()
    assert not at.exception
    cards = [m.value for m in at.markdown if "Verdict:" in m.value]
    assert len(cards) == 4
    assert sum("Label: NORMAL" in c for c in cards) == 2 and sum("Label: PNEUMONIA" in c for c in cards) == 2
    oof = demo.out_of_fold_probabilities(classifier.loaded.card)
    shown = [c.value for c in at.caption if c.value.startswith("Out of fold")]
    training = sum(name in oof for name, _ in _kaggle_films(2))
    assert len(shown) == training  # training names carry their figure
    assert any(f"{training} of 4 films carry the names of the model's training films" in w.value
               for w in at.warning)

    at.text_input(key="demo_dir").set_value(str(tmp_path / "missing")).run()
    assert not at.exception
    assert any("No such data folder" in w.value for w in at.warning)


def test_demo_reads_a_zip_in_memory(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, path in _kaggle_films(1):
            archive.write(path, f"chest_xray/{name}")
    at = _open(DEMO)
    at.radio(key="demo_source").set_value("zip").run()
    at.file_uploader(key="demo_zip").set_value(("films.zip", buffer.getvalue(), "application/zip")).run()
    assert not at.exception
    cards = [m.value for m in at.markdown if "Verdict:" in m.value]
    assert len(cards) == 2 and any("Label: NORMAL" in c for c in cards)
    at.file_uploader(key="demo_zip").set_value(("bad.zip", b"not a zip", "application/zip")).run()
    assert not at.exception
    assert any("not a readable ZIP" in w.value for w in at.warning)


@pytest.mark.parametrize("page", [HOME, MODEL])
def test_home_and_model_pages_lead_with_the_headline_and_its_intervals(page: str, classifier) -> None:
    card = classifier.loaded.card
    if model_card.headline(card) is None:
        pytest.skip("the model in use has no out-of-fold figures")
    at = _open(page)
    assert model_card.plain_headline(card) in [m.value for m in at.markdown[:3]]  # at the top
    figures = model_card.headline(card)["figures"]
    metrics = {m.label: m.value for m in at.metric[:3]}
    assert metrics == {"Accuracy": f"{figures['accuracy']['value']:.3f}",
                       "Sensitivity": f"{figures['sensitivity']['value']:.3f}",
                       "Specificity": f"{figures['specificity']['value']:.3f}"}
    captions = [c.value for c in at.caption]
    low, high = figures["sensitivity"]["low"], figures["sensitivity"]["high"]
    assert f"95% interval {low:.3f}-{high:.3f} · original study 0.932" in captions
    assert any("shift-aware" in m.value or "in-distribution" in m.value for m in at.markdown[:3])


def test_an_example_whose_file_changed_is_refused_in_one_sentence(examples, monkeypatch) -> None:
    from pneumo import examples as examples_module

    def altered(self):
        raise examples_module.ExamplesError(f"The example film {self.path} is not the file its list names "
                                            "(sha256 differs); run 'python -m scripts.make_examples' again.")

    monkeypatch.setattr(examples_module.Example, "getvalue", altered)
    at = _open(DIAGNOSE)
    at.button_group(key="example").set_value(examples[1].name).run()
    assert not at.exception
    assert any("sha256 differs" in w.value for w in at.warning)
    assert not at.image

"""pneumo.examples and docs/examples/: the shipped example films are what their list says they are.

The chest films are byte-for-byte copies of training films (checked by sha256 against the real
data beside the repository), the rotated film is its source turned 90 degrees, the non-film is
generated, and the folder is small, licensed and cited. Broken folders are made as copies under
``tmp_path``; docs/examples itself is only read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pneumo.data import parse_film_name
from pneumo.examples import (
    CITATION,
    EXAMPLES_DIR,
    FIELDS,
    LICENCE,
    MANIFEST,
    REFUSED,
    Example,
    ExamplesError,
    load_examples,
)
from tests.support.data import require_train_folder
from tests.support.films import assert_one_sentence

MAX_FOLDER_BYTES = 2 * 1024 * 1024
KINDS = {"normal": 3, "bacterial": 3, "viral": 3, "soft": 1, "rotated": 1, "non-film": 1}
ROTATION_TOLERANCE = 3.0  # mean absolute grey-level difference a JPEG re-encoding may leave


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return load_examples()


@pytest.fixture(scope="module")
def data_root() -> Path:
    """The chest_xray root the examples' ``source`` paths are relative to (skip without it, fail in CI)."""
    return require_train_folder().parent


def by_kind(examples: list[Example], kind: str) -> Example:
    (only,) = [e for e in examples if e.kind == kind]
    return only


def grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float64)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------
# Provenance: copies are training films byte for byte; the derived files say how they were made.
# ---------------------------------------------------------------------------------------


def test_every_copy_is_a_training_film_byte_for_byte(examples, data_root):
    copies = [e for e in examples if e.is_copy]
    assert len(copies) == 10  # the nine confident films and the soft one
    for example in copies:
        source = data_root / example.source
        assert source.is_file(), f"{example.name}: its source {example.source} is not in the data"
        assert sha256(source.read_bytes()) == example.sha256 == sha256(example.getvalue()), example.name
        assert example.label == example.source.split("/")[1] == example.expected


def test_every_source_is_in_the_training_split(examples):
    sources = [e.source for e in examples if e.source is not None]
    assert len(sources) == 11  # every example but the generated non-film
    for source in sources:
        assert source.startswith("train/") and source.count("/") == 2, source
        assert not source.startswith(("test/", "val/")) and "/test/" not in source


def test_every_film_comes_from_another_patient(examples):
    patients = [parse_film_name(e.source.rsplit("/", 1)[-1])[0] for e in examples if e.source]
    assert len(set(patients)) == len(patients), patients


def test_subtype_and_kind_agree_with_the_source_name(examples):
    for example in examples:
        if example.source is None:
            continue
        _, subtype = parse_film_name(example.source.rsplit("/", 1)[-1])
        assert example.subtype == subtype, example.name
        if example.kind == "bacterial":
            assert subtype == "bacteria" and example.label == "PNEUMONIA"
        if example.kind == "viral":
            assert subtype == "virus" and example.label == "PNEUMONIA"
        if example.kind in ("normal", "soft"):
            assert subtype is None and example.label == "NORMAL"


def test_the_rotated_film_is_its_source_turned_counter_clockwise(examples, data_root):
    rotated = by_kind(examples, "rotated")
    with Image.open(rotated.path) as image:
        shipped = grey(image)
    with Image.open(data_root / rotated.source) as source:
        turned = grey(source.transpose(Image.Transpose.ROTATE_90))  # PIL's ROTATE_90 is counter-clockwise
        clockwise = grey(source.transpose(Image.Transpose.ROTATE_270))
        upright = source.convert("L")
        if upright.size != (shipped.shape[1], shipped.shape[0]):
            upright = upright.resize((shipped.shape[1], shipped.shape[0]))
        upright = grey(upright)
    assert shipped.shape == turned.shape
    assert np.abs(shipped - turned).mean() < ROTATION_TOLERANCE
    # Clearly not the upright film, nor the film turned the other way.
    assert np.abs(shipped - upright).mean() > 5 * ROTATION_TOLERANCE
    assert np.abs(shipped - clockwise).mean() > 5 * ROTATION_TOLERANCE
    assert sha256(rotated.getvalue()) != sha256((data_root / rotated.source).read_bytes())


def test_the_rotated_entry_says_how_it_was_made(examples):
    rotated = by_kind(examples, "rotated")
    assert not rotated.is_copy and rotated.expected == REFUSED
    assert rotated.source in rotated.made
    assert "90 degrees counter-clockwise" in rotated.made and "JPEG" in rotated.made
    assert rotated.label == "PNEUMONIA"  # the folder label of the film it was made from


def test_the_non_film_has_no_source_and_says_it_was_generated(examples):
    picture = by_kind(examples, "non-film")
    assert picture.source is None and picture.label is None and picture.subtype is None
    assert not picture.is_copy and picture.expected == REFUSED
    assert picture.made.startswith("Generated") and "scripts/make_examples.py" in picture.made
    with Image.open(picture.path) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    # A colour picture: its channels differ, where every training film is grey stored as RGB.
    assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 30


# ---------------------------------------------------------------------------------------
# The folder: exactly what the list names, small, licensed and cited.
# ---------------------------------------------------------------------------------------


def test_the_folder_holds_exactly_the_listed_files(examples):
    on_disk = sorted(path.name for path in EXAMPLES_DIR.iterdir())
    assert on_disk == sorted([e.name for e in examples] + ["README.md", MANIFEST])
    assert all(path.is_file() for path in EXAMPLES_DIR.iterdir())


def test_twelve_entries_cover_every_kind(examples):
    assert len(examples) == 12
    assert Counter(e.kind for e in examples) == KINDS
    assert len({e.name for e in examples}) == 12
    assert [e.expected for e in examples].count(REFUSED) == 2
    assert {e.kind for e in examples if e.expected == REFUSED} == {"rotated", "non-film"}


def test_every_entry_has_every_field_in_order():
    manifest = json.loads((EXAMPLES_DIR / MANIFEST).read_text())
    assert [tuple(entry) for entry in manifest["films"]] == [FIELDS] * 12
    assert manifest["licence"] == LICENCE and manifest["citation"] == CITATION


def test_the_folder_is_small():
    total = sum(path.stat().st_size for path in EXAMPLES_DIR.iterdir())
    assert 0 < total <= MAX_FOLDER_BYTES, f"docs/examples holds {total:,} bytes"


def test_the_readme_names_the_licence_and_the_citation(examples):
    readme = (EXAMPLES_DIR / "README.md").read_text()
    assert "CC BY 4.0" in readme and LICENCE == "CC BY 4.0"
    assert "Kermany" in readme and "Cell" in readme and "2018" in readme
    assert CITATION in readme
    for example in examples:  # the README's table lists every file
        assert f"`{example.name}`" in readme


def test_file_ids_are_unique_and_marked_as_examples(examples):
    ids = [e.file_id for e in examples]
    assert len(set(ids)) == len(ids) == 12
    for example in examples:
        assert example.file_id == f"example:{example.sha256[:16]}"
        assert len(example.file_id) == len("example:") + 16


def test_load_examples_keeps_the_manifest_order_and_folder(examples):
    manifest = json.loads((EXAMPLES_DIR / MANIFEST).read_text())
    assert [e.name for e in examples] == [entry["name"] for entry in manifest["films"]]
    assert all(e.folder == EXAMPLES_DIR and e.path == EXAMPLES_DIR / e.name for e in examples)


# ---------------------------------------------------------------------------------------
# Broken folders fail with one sentence that names the file (all made under tmp_path).
# ---------------------------------------------------------------------------------------


@pytest.fixture
def folder_copy(tmp_path) -> Path:
    """A copy of docs/examples to break."""
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES_DIR, copy)
    return copy


def test_a_copied_folder_reads_from_where_it_lies(folder_copy, examples):
    copies = load_examples(folder_copy)
    assert [e.folder for e in copies] == [folder_copy] * 12
    assert copies[0].getvalue() == examples[0].getvalue()


@pytest.mark.parametrize(("position", "damage", "words"), [
    (3, lambda path: path.write_bytes(path.read_bytes() + b"\0"), "sha256"),
    (0, lambda path: path.unlink(), "cannot be read"),
], ids=["tampered", "missing"])
def test_a_tampered_or_missing_file_is_refused(folder_copy, position, damage, words):
    example = load_examples(folder_copy)[position]
    damage(example.path)
    with pytest.raises(ExamplesError) as caught:
        example.getvalue()
    message = str(caught.value)
    assert_one_sentence(message)
    assert str(example.path) in message and words in message


def test_a_folder_without_a_manifest_is_refused(tmp_path):
    with pytest.raises(ExamplesError) as caught:
        load_examples(tmp_path)
    message = str(caught.value)
    assert_one_sentence(message)
    assert str(tmp_path) in message and MANIFEST in message


@pytest.mark.parametrize("text", [
    "{",  # not JSON
    "[]",  # JSON, but not an object with films
    '{"licence": "CC BY 4.0"}',  # no films
    '{"films": [{"name": "a.jpeg"}]}',  # an entry without its fields
    '{"films": "a.jpeg"}',  # films not a list of entries
], ids=["truncated", "list", "no-films", "short-entry", "films-a-string"])
def test_a_broken_manifest_is_refused(folder_copy, text):
    (folder_copy / MANIFEST).write_text(text)
    with pytest.raises(ExamplesError) as caught:
        load_examples(folder_copy)
    message = str(caught.value)
    assert_one_sentence(message)
    assert str(folder_copy / MANIFEST) in message and "broken" in message


# ---------------------------------------------------------------------------------------
# The script: a rerun chooses and writes the same folder.
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_make_examples_chooses_the_same_films(tmp_path, data_root, capsys):
    from scripts import make_examples

    assert make_examples.main(["--out", str(tmp_path)]) == 0
    assert "done: 12 example films" in capsys.readouterr().out
    written = json.loads((tmp_path / MANIFEST).read_text())
    shipped = json.loads((EXAMPLES_DIR / MANIFEST).read_text())
    assert [e["name"] for e in written["films"]] == [e["name"] for e in shipped["films"]]
    for new, old in zip(written["films"], shipped["films"]):
        if old["source"] and not old["made"]:  # byte-for-byte copies
            assert new == old
    # The derived files are the same bytes too (checked before asserting: the same pixels through
    # the same Pillow JPEG encoder at quality 90); a Pillow whose encoder differs fails here.
    for new, old in zip(written["films"], shipped["films"]):
        if old["made"]:
            assert (new["kind"], new["source"], new["made"], new["sha256"]) == (
                old["kind"], old["source"], old["made"], old["sha256"])
    assert written == shipped
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(path.name for path in EXAMPLES_DIR.iterdir())
    for example in load_examples(tmp_path):
        assert example.getvalue() == (EXAMPLES_DIR / example.name).read_bytes(), example.name
    assert (tmp_path / "README.md").read_text() == (EXAMPLES_DIR / "README.md").read_text()

"""pneumo.evaluation.profile on a ZIP archive in the Kaggle layout, read in memory."""

import io
import zipfile

import pytest

from pneumo.evaluation import profile


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def jpeg(normal_film) -> bytes:
    return normal_film.read_bytes()


def test_shallowest_kaggle_copy_is_profiled_and_junk_skipped(jpeg):
    archive = _zip({
        "chest_xray/train/NORMAL/IM-0001-0001.jpeg": jpeg,
        "chest_xray/train/PNEUMONIA/person1_bacteria_1.jpeg": jpeg,
        "chest_xray/val/PNEUMONIA/person1_bacteria_2.jpeg": jpeg,
        "chest_xray/chest_xray/train/NORMAL/IM-0002-0001.jpeg": jpeg,
        "__MACOSX/chest_xray/train/NORMAL/._IM-0001-0001.jpeg": b"fork",
        "chest_xray/train/NORMAL/.DS_Store": b"junk",
        "chest_xray/README.txt": b"hello",
    })
    result = profile.profile_zip(archive)
    assert result["n_films"] == 3
    assert result["films"] == {"train": {"NORMAL": 1, "PNEUMONIA": 1}, "val": {"NORMAL": 0, "PNEUMONIA": 1}}
    assert result["leakage"]["patients_in_several_splits"] == 1
    assert result["near_duplicates"]["groups"] == 1
    assert "train/NORMAL/IM-0001-0001.jpeg" in result["near_duplicates"]["examples"][0]


def test_single_split_layout_and_unreadable_films(jpeg):
    progress = []
    result = profile.profile_zip(_zip({"NORMAL/a.jpeg": jpeg, "PNEUMONIA/person2_virus_1.jpeg": b"broken"}),
                                 progress=lambda done, total: progress.append((done, total)))
    assert result["n_films"] == 1 and result["films"] == {"data": {"NORMAL": 1, "PNEUMONIA": 0}}
    assert result["unreadable"][0]["film"].endswith("person2_virus_1.jpeg")
    assert progress[-1] == (2, 2)


@pytest.mark.parametrize(("archive", "message"), [(b"not a zip", "not a readable ZIP"),
                                                  (_zip({"films/x.jpeg": b"x"}), "Kaggle layout")])
def test_bad_archives_say_why(archive, message):
    with pytest.raises(ValueError, match=message):
        profile.profile_zip(archive)


def test_folder_signature_changes_with_the_films(tmp_path, jpeg):
    (tmp_path / "NORMAL").mkdir()
    (tmp_path / "NORMAL" / "a.jpeg").write_bytes(jpeg)
    before = profile.folder_signature(tmp_path)
    (tmp_path / "NORMAL" / "b.jpeg").write_bytes(jpeg)
    assert profile.folder_signature(tmp_path) != before


# -- the demo page's samples ------------------------------------------------------------------------

def test_a_zip_sample_keeps_names_labels_and_bytes_per_class(jpeg, pneumonia_film):
    pneumonia = pneumonia_film.read_bytes()
    files = {f"chest_xray/train/NORMAL/IM-000{i}-0001.jpeg": jpeg for i in range(4)}
    files |= {f"chest_xray/train/PNEUMONIA/person{i}_virus_{i}.jpeg": pneumonia for i in range(3)}
    films, problems = profile.sample_zip_films(_zip(files), per_class=2)
    assert problems == []
    assert [label for _, label, _ in films] == ["NORMAL", "NORMAL", "PNEUMONIA", "PNEUMONIA"]
    for name, label, data in films:
        assert name.startswith(f"train/{label}/")
        assert data == files[f"chest_xray/{name}"]
    assert films == profile.sample_zip_films(_zip(files), per_class=2)[0]  # a fixed sample


def test_a_zip_sample_refuses_what_is_not_a_kaggle_zip(jpeg):
    with pytest.raises(ValueError, match="not a readable ZIP"):
        profile.sample_zip_films(b"not a zip")
    with pytest.raises(ValueError, match="Kaggle layout"):
        profile.sample_zip_films(_zip({"photos/cat.jpeg": jpeg}))


def test_a_folder_sample_names_films_as_the_card_does(tmp_path, normal_film, pneumonia_film):
    for folder, film in (("NORMAL", normal_film), ("PNEUMONIA", pneumonia_film)):
        (tmp_path / "train" / folder).mkdir(parents=True)
        (tmp_path / "train" / folder / film.name).symlink_to(film)
    films = profile.sample_folder_films(tmp_path, per_class=3)
    assert films == [(f"train/NORMAL/{normal_film.name}", "NORMAL", tmp_path / "train" / "NORMAL" / normal_film.name),
                     (f"train/PNEUMONIA/{pneumonia_film.name}", "PNEUMONIA",
                      tmp_path / "train" / "PNEUMONIA" / pneumonia_film.name)]
    with pytest.raises(FileNotFoundError):
        profile.sample_folder_films(tmp_path / "missing")

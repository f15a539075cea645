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

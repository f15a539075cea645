"""Every transfer syntax a chest film arrives in, bare data sets, and pydicom's public files.

Real training films are wrapped as DICOM (8-bit, and 12-bit in 16-bit words), re-encoded in
each syntax (tests/support/dicom_films.py: pydicom's ``Dataset.compress``, else Debian's
dcmtk, which ``make test`` installs), and read with :func:`pneumo.io.read_film`. Each must
give the uncompressed film's model input: lossless syntaxes exactly, lossy ones within the
tolerances below, and the shipped model's probability within 0.01 (lossless) or 0.03 (lossy).
"""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom import dcmread, dcmwrite, uid
from pydicom.encaps import encapsulate, generate_frames

from pneumo import store
from pneumo.dicom import read_dicom
from pneumo.io import Film, FilmReadError, looks_like_bare_dicom, read_film
from pneumo.preprocess import to_model_input
from tests.support.data import real_films, skip_or_fail
from tests.support.dicom_films import (
    DCMTK_ENCODERS,
    EIGHT_BIT_ONLY,
    LOSSY_SYNTAXES,
    PLAIN_SYNTAXES,
    PYDICOM_ENCODERS,
    as_bare_dataset,
    encode_dicom,
    in_syntax,
    public_dicom_files,
)
from tests.support.films import assert_one_sentence, grey_levels
from tests.test_io import EDITS, mutate, read_or_refuse

SYNTAXES = (*PLAIN_SYNTAXES, *PYDICOM_ENCODERS, *DCMTK_ENCODERS)
COMPRESSED = tuple(s for s in SYNTAXES if uid.UID(s).is_compressed)

# Largest and mean |difference| from the uncompressed film's model input (grey levels 0-255
# at the shipped model's 160 px), with some room above what was measured on 20 real films
# (10 normal, 10 pneumonia; 8-bit / 12-bit): JPEG baseline and extended at IJG quality 90
# max 3 / 1, mean 0.27 / 0.05; JPEG-LS near-lossless (NEAR 2) max 2 / 1, mean 0.66 / 0.04;
# JPEG 2000 at 10:1 max 9 / 8, mean 1.2 / 0.9.
TOLERANCE = {
    uid.JPEGBaseline8Bit: (4, 0.5),
    uid.JPEGExtended12Bit: (4, 0.5),
    uid.JPEGLSNearLossless: (3, 1.0),
    uid.JPEG2000: (12, 1.5),
}
# The shipped model's probability: lossless within 0.01, lossy within 0.03 (the issue's
# targets; measured on the same 20 films: at most 0.0031, J2K 10:1; baseline 0.0020).
P_LOSSLESS, P_LOSSY = 0.01, 0.03
assert set(TOLERANCE) == set(LOSSY_SYNTAXES)


def name(syntax: str) -> str:
    return uid.UID(syntax).keyword or str(syntax)


@pytest.fixture(scope="session")
def dcmtk() -> None:
    """dcmtk's encoders on the PATH; skip (fail in CI) without them."""
    missing = [tool for tool in ("dcmcjpeg", "dcmcjpls", "dcmconv") if shutil.which(tool) is None]
    if missing:
        skip_or_fail(f"Debian's dcmtk is not installed ({', '.join(missing)}): "
                     "`make dcmtk` (part of `make test`) installs it")


@pytest.fixture(scope="module")
def size() -> int:
    return int(store.read_card()["input"]["size"])


@pytest.fixture(scope="module")
def plain_films() -> dict[str, list[bytes]]:
    """Three real films (two normal, one pneumonia) as uncompressed DICOM, 8- and 12-bit."""
    greys = [grey_levels(path) for path in real_films("NORMAL", 2) + real_films("PNEUMONIA", 1)]
    return {
        "8bit": [encode_dicom(g) for g in greys],
        # 0..4095 in 16-bit words, shown over its 12-bit range (no window): the same picture.
        "12bit": [encode_dicom((g.astype(np.uint32) * 4095 // 255).astype(np.uint16),
                               bits_stored=12) for g in greys],
    }


def cases():
    for syntax in SYNTAXES:
        for depth in ("8bit", "12bit"):
            if not (depth == "12bit" and syntax in EIGHT_BIT_ONLY):
                yield pytest.param(syntax, depth, id=f"{name(syntax)}-{depth}")


@pytest.fixture(scope="module")
def encoded(plain_films, tmp_path_factory, dcmtk) -> dict:
    """Every film in every syntax: {(syntax, depth): [bytes, ...]}."""
    work = tmp_path_factory.mktemp("encodings")
    return {(syntax, depth): [in_syntax(data, syntax, work) for data in plain_films[depth]]
            for syntax, depth in (case.values for case in cases())}


@pytest.mark.parametrize(("syntax", "depth"), cases())
def test_each_syntax_gives_the_uncompressed_films_model_input(syntax, depth, plain_films,
                                                               encoded, size):
    for plain, data in zip(plain_films[depth], encoded[(syntax, depth)], strict=True):
        assert dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == syntax
        film = read_film(data)
        assert film.format == "DICOM"
        expected = to_model_input(read_film(plain), size)
        got = to_model_input(film, size)
        if syntax in TOLERANCE:
            largest, mean = TOLERANCE[syntax]
            difference = np.abs(got - expected)
            assert difference.max() <= largest and difference.mean() <= mean, (
                difference.max(), difference.mean())
            assert difference.max() > 0  # truly lossy: a tolerance is not hiding a no-op
        else:
            np.testing.assert_array_equal(got, expected)


@pytest.fixture(scope="module")
def classifier():
    from pneumo.inference.predict import Classifier

    return Classifier(store.load(), guard=None)


def test_the_shipped_model_scores_each_syntax_as_the_uncompressed_film(classifier, plain_films,
                                                                        encoded):
    def scores(files: list[bytes]) -> np.ndarray:
        inputs = [to_model_input(read_film(data), classifier.size) for data in files]
        return classifier.predict_inputs(np.stack(inputs))

    uncompressed = {depth: scores(films) for depth, films in plain_films.items()}
    too_far = {}
    for (syntax, depth), films in encoded.items():
        bound = P_LOSSY if syntax in LOSSY_SYNTAXES else P_LOSSLESS
        gap = np.abs(scores(films) - uncompressed[depth]).max()
        if gap > bound:
            too_far[(name(syntax), depth)] = gap
    assert not too_far, too_far


# ---------------------------------------------------------------------------------------
# Bare data sets: no preamble, no DICM.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", ["8bit", "12bit"])
@pytest.mark.parametrize("implicit_vr", [True, False], ids=["implicit", "explicit"])
@pytest.mark.parametrize("file_meta", [False, True], ids=["no-meta", "with-meta"])
def test_a_bare_data_set_reads_as_its_dicom_file(depth, implicit_vr, file_meta, plain_films):
    for plain in plain_films[depth]:
        bare = as_bare_dataset(plain, implicit_vr=implicit_vr, file_meta=file_meta)
        assert bare[128:132] != b"DICM" and looks_like_bare_dicom(bare)
        film, expected = read_film(bare), read_film(plain)
        assert film.format == "DICOM"
        np.testing.assert_array_equal(film.pixels, expected.pixels)


@pytest.mark.parametrize("implicit_vr", [True, False], ids=["implicit", "explicit"])
def test_a_file_meta_without_a_transfer_syntax_is_read_as_its_data_set_is(implicit_vr,
                                                                          plain_films):
    plain = plain_films["12bit"][0]
    dataset = dcmread(io.BytesIO(plain))
    del dataset.file_meta.TransferSyntaxUID
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, implicit_vr=implicit_vr, little_endian=True,
             enforce_file_format=False)
    assert buffer.getvalue()[128:132] == b"DICM"
    np.testing.assert_array_equal(read_film(buffer.getvalue()).pixels, read_film(plain).pixels)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns of what it skips
def test_a_damaged_bare_data_set_is_refused_in_one_sentence(plain_films):
    bare = as_bare_dataset(plain_films["8bit"][0], implicit_vr=False)
    for damaged in (bare[:-1000], bare[:300], bare[:40] + b"\xff" * 16 + bare[56:]):
        with pytest.raises(FilmReadError) as raised:
            read_film(damaged)
        assert_one_sentence(str(raised.value))


def raster_bytes(grey: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "BMP"])
def test_raster_films_are_not_taken_for_bare_dicom(fmt):
    grey = grey_levels(real_films("NORMAL", 1)[0])
    data = raster_bytes(grey, fmt)
    assert not looks_like_bare_dicom(data)
    assert read_film(data).format == fmt


@pytest.mark.parametrize("data", [b"hello, world: not a film at all", bytes(range(256)) * 4,
                                  b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100"])  # a tag, then nothing
def test_other_bytes_stay_not_an_image_or_a_dicom_damage(data):
    with pytest.raises(FilmReadError) as raised:
        read_film(data)
    message = str(raised.value)
    assert_one_sentence(message)
    assert "not an image this tool can read" in message or "DICOM" in message, message


# A plausible first element (group 0x0008 or 0x0002, either VR), then random bytes: refused
# in one sentence, never another exception.
TAG_STARTS = [b"\x08\x00\x05\x00CS", b"\x08\x00\x16\x00UI", b"\x02\x00\x00\x00UL",
              b"\x08\x00\x08\x00\x10\x00\x00\x00", b"\x08\x00\x05\x00\x0a\x00\x00\x00"]


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=200, deadline=None, database=None)
@given(start=st.sampled_from(TAG_STARTS), tail=st.binary(max_size=1024))
def test_fuzz_bytes_that_start_like_a_bare_data_set(start, tail):
    read_or_refuse(start + tail)


# ---------------------------------------------------------------------------------------
# Damaged compressed pixel data: only FilmReadError, for every decoder.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compressed_seeds(tmp_path_factory, dcmtk) -> list[bytes]:
    """A real film (112 x 112, 8- and 12-bit) in every compressed syntax."""
    grey = grey_levels(real_films("PNEUMONIA", 1)[0])[::2, ::2]
    plain = {"8bit": encode_dicom(grey),
             "12bit": encode_dicom(grey.astype(np.uint16) * 16, bits_stored=12)}
    work = tmp_path_factory.mktemp("seeds")
    return [in_syntax(plain[depth], syntax, work) for syntax in COMPRESSED
            for depth in ("8bit", "12bit") if not (depth == "12bit" and syntax in EIGHT_BIT_ONLY)]


def with_fragment(data: bytes, fragment: bytes) -> bytes:
    """The file with its (single-frame) encapsulated pixel data replaced by ``fragment``."""
    dataset = dcmread(io.BytesIO(data))
    dataset.PixelData = encapsulate([fragment.ljust(2, b"\x00")])  # pydicom's smallest fragment
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_the_seeds_cover_every_compressed_syntax_and_decode(compressed_seeds):
    syntaxes = {dcmread(io.BytesIO(seed)).file_meta.TransferSyntaxUID for seed in compressed_seeds}
    assert syntaxes == set(COMPRESSED)
    for seed in compressed_seeds:
        assert isinstance(read_film(seed), Film)
        # The rebuild the fuzz test uses keeps an intact frame readable.
        frame = next(generate_frames(dcmread(io.BytesIO(seed)).PixelData, number_of_frames=1))
        assert isinstance(read_film(with_fragment(seed, frame)), Film)


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(min_value=0), edits=EDITS)
def test_fuzz_damaged_compressed_pixel_data(compressed_seeds, which, edits):
    seed = compressed_seeds[which % len(compressed_seeds)]
    frame = next(generate_frames(dcmread(io.BytesIO(seed)).PixelData, number_of_frames=1))
    read_or_refuse(with_fragment(seed, mutate(frame, edits)))


# ---------------------------------------------------------------------------------------
# pydicom's public test files (CT, MR, US, RG, SC, OT, ... in many encodings).
# ---------------------------------------------------------------------------------------

# Public files that are damaged or non-conformant on purpose, and why no decoder reads them.
KNOWN_UNDECODABLE = {
    "JPEG-lossy.dcm": "12-bit JPEG with a misplaced marker segment (libjpeg refuses; GDCM and "
                      "Pillow cannot decode 12-bit JPEG in pydicom 3.0.2)",
    "JPEG2000-embedded-sequence-delimiter.dcm": "a sequence delimiter inside the J2K codestream",
    "MR_truncated.dcm": "pixel data cut short",
    "nested_priv_SQ.dcm": "no Bits Allocated: pixel data without an image description",
    "badVR.dcm": "a damaged value representation in the header",
}


@pytest.fixture(scope="module")
def public_files():
    files = public_dicom_files()
    assert len(files) > 100, len(files)
    return files


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_public_file_with_pixel_data_gives_a_film_or_one_sentence(public_files):
    for path in public_files:
        try:
            film = read_film(path)
        except FilmReadError as err:
            assert_one_sentence(str(err))
        else:
            assert film.pixels.dtype == np.float32 and np.isfinite(film.pixels).all()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_public_files_in_every_syntax_decode(public_files):
    seen, failed = set(), {}
    for path in public_files:
        try:
            syntax = dcmread(path, force=True, stop_before_pixels=True).file_meta.get(
                "TransferSyntaxUID")
        except Exception:
            continue
        if syntax not in SYNTAXES or path.name in KNOWN_UNDECODABLE:
            continue
        try:
            read_dicom(path.read_bytes())  # decoded, whatever its size (read_film wants 64 px)
            seen.add(syntax)
        except FilmReadError as err:
            failed[path.name] = str(err)
    assert not failed, failed
    # The collection holds every compressed syntax above but JPEG process 14 (.57).
    assert set(COMPRESSED) - {uid.JPEGLossless} <= seen, set(COMPRESSED) - seen

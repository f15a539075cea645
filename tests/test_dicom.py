"""pneumo.dicom, through pneumo.io.read_film: display transforms, identifiers and damaged DICOM files.

Every file is built in memory (tests/support/dicom_films.py), most from one real training
film's grey levels; that every encoding of the film gives the same tensor, DICOM ones among
them, is in test_io.py.
"""

from __future__ import annotations

import re
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset, uid
from pydicom.encaps import encapsulate

from pneumo.dicom import MAX_INFLATED_BYTES
from pneumo.io import FilmReadError, read_film
from tests.support.dicom_films import IDENTIFIERS, as_dicom_multiframe, encode_dicom, grey_voi_lut
from tests.support.films import assert_one_sentence, grey_levels

FULL_RANGE_NOTE = "The file sets no display window; its full range of values is shown."


@pytest.fixture(scope="module")
def gray(normal_film: Path) -> np.ndarray:
    """The real film as uint8 (H, W)."""
    return grey_levels(normal_film)


def test_a_multiframe_dicom_says_only_the_first_frame_was_read(gray):
    film = read_film(as_dicom_multiframe(gray))
    assert any("3 frames" in note and "first" in note for note in film.notes), film.notes


def test_a_grey_dicom_without_its_photometric_interpretation_reads_as_monochrome2(gray):
    import io

    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(encode_dicom(gray)))
    del dataset.PhotometricInterpretation
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    film = read_film(buffer.getvalue())
    np.testing.assert_allclose(film.pixels, read_film(encode_dicom(gray)).pixels)


# ---------------------------------------------------------------------------------------
# Display: modality LUT, then the first window, else the VOI LUT, else the full range.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("center", "width", "function", "expected"),
    [
        # Stored 0..255, no rescale. LINEAR with width 1 is a threshold at center - 0.5.
        (100.5, 1, None, lambda v: (v > 100).astype(float)),
        (128, 256, None, lambda v: v / 255),  # the full 8-bit range
        (64, 64, None, lambda v: np.clip((v - 63.5) / 63 + 0.5, 0, 1)),
        (128, 256, "LINEAR_EXACT", lambda v: np.clip((v - 128) / 256 + 0.5, 0, 1)),
        (128, 256, "SIGMOID", lambda v: 1 / (1 + np.exp(-4 * (v - 128) / 256))),
        ([128, 60], [256, 20], None, lambda v: v / 255),  # several windows: the first
        # A blank or unknown function is LINEAR, the standard's default (pydicom would refuse).
        (64, 64, "", lambda v: np.clip((v - 63.5) / 63 + 0.5, 0, 1)),
        (64, 64, "GAMMA", lambda v: np.clip((v - 63.5) / 63 + 0.5, 0, 1)),
    ],
)
def test_dicom_windows(center, width, function, expected, gray):
    elements = {"WindowCenter": center, "WindowWidth": width}
    if function is not None:
        elements["VOILUTFunction"] = function
    film = read_film(encode_dicom(gray, **elements))
    assert np.isfinite(film.pixels).all()
    np.testing.assert_allclose(film.pixels, expected(gray.astype(float)), atol=1e-5)
    assert FULL_RANGE_NOTE not in film.notes


def test_a_window_follows_the_rescale_and_monochrome1_is_inverted(gray):
    # Modality value v = 4095 - s for the 12-bit stored s = 16 g (a negative slope), and the
    # window spans v's whole range: displayed 1 - (4095 - 16 g) / 4095, then inverted.
    stored = gray.astype(np.uint16) * 16
    film = read_film(encode_dicom(stored, bits_stored=12, photometric="MONOCHROME1",
                                  RescaleSlope=-1, RescaleIntercept=4095,
                                  WindowCenter=2048, WindowWidth=4096))
    v = 4095.0 - stored
    np.testing.assert_allclose(film.pixels, 1 - np.clip((v - 2047.5) / 4095 + 0.5, 0, 1),
                               atol=1e-6)


@pytest.mark.parametrize(
    ("center", "width", "function"),
    [
        (128, 0.5, None),  # LINEAR needs a width of at least 1
        (128, 0, "LINEAR_EXACT"),  # LINEAR_EXACT and SIGMOID a width above 0
        (128, -4, "SIGMOID"),
        ("nan", 256, None),  # and any window finite numbers
    ],
)
def test_an_unusable_window_shows_the_full_range(center, width, function, gray):
    elements = {"WindowCenter": center, "WindowWidth": width}
    if function is not None:
        elements["VOILUTFunction"] = function
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom's note on the "nan" string
        film = read_film(encode_dicom(gray, **elements))
    np.testing.assert_allclose(film.pixels, gray / 255.0, atol=1e-6)
    assert FULL_RANGE_NOTE in film.notes


def test_a_usable_window_comes_before_the_voi_lut(gray):
    # The VOI LUT would show g / 255; the window (the full 12 bits) shows s / 4095.
    stored = gray.astype(np.uint16) * 16
    with_both = encode_dicom(stored, bits_stored=12, VOILUTSequence=[grey_voi_lut()],
                             WindowCenter=2048, WindowWidth=4096)
    np.testing.assert_allclose(read_film(with_both).pixels, stored / 4095.0, atol=1e-6)
    # An unusable window gives way to the LUT, not to the full range.
    lut_only = encode_dicom(stored, bits_stored=12, VOILUTSequence=[grey_voi_lut()],
                            WindowCenter=2048, WindowWidth=0)
    film = read_film(lut_only)
    np.testing.assert_allclose(film.pixels, gray / 255.0, atol=1e-6)
    assert FULL_RANGE_NOTE not in film.notes


def test_a_voi_lut_with_8_bit_output_maps_every_12_bit_code(gray):
    # 4096 entries of 8 bits (legal, PS3.3 C.11.2.1.1): code c shows as c // 16, codes above 255 included.
    stored = gray.astype(np.uint16) * 16 + 8
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 8]
    lut.LUTData = [code // 16 for code in range(4096)]
    lut["LUTData"].VR = "US"
    film = read_film(encode_dicom(stored, bits_stored=12, VOILUTSequence=[lut]))
    np.testing.assert_allclose(film.pixels, gray / 255.0, atol=1e-6)


def test_a_steep_sigmoid_saturates_without_overflow_warnings(gray):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        film = read_film(encode_dicom(gray, WindowCenter=127.5, WindowWidth=0.001,
                                      VOILUTFunction="SIGMOID"))
    np.testing.assert_array_equal(film.pixels, (gray > 127.5).astype(np.float32))


def test_signed_dicom_without_window_uses_its_nominal_range(gray):
    stored = (gray.astype(np.int16) - 128) * 16  # -2048..2032 in 12 signed bits
    data = encode_dicom(stored.astype(np.uint16), bits_stored=12, PixelRepresentation=1)
    film = read_film(data)
    np.testing.assert_allclose(film.pixels, (stored + 2048) / 4095, atol=1e-6)
    assert FULL_RANGE_NOTE in film.notes


def test_12bit_rgb_dicom_is_scaled_not_wrapped(gray):
    # Stored 0..4080 in 12 of 16 bits: cast to 8 bits these would wrap around.
    rgb = np.dstack([gray, gray, gray]).astype(np.uint16) * 16
    film = read_film(encode_dicom(rgb, photometric="RGB", samples_per_pixel=3, bits_stored=12))
    np.testing.assert_allclose(film.pixels, gray.astype(float) * 16 / 4095, atol=1e-6)


# ---------------------------------------------------------------------------------------
# DICOM privacy: identifiers never reach a Film.
# ---------------------------------------------------------------------------------------


def test_dicom_identifiers_never_reach_the_film(gray):
    data = encode_dicom(gray, ViewPosition="PA", StudyDate="20240102", BodyPartExamined="CHEST",
                        **IDENTIFIERS)
    assert all(value.encode() in data for value in IDENTIFIERS.values())  # they are in the file

    film = read_film(data)
    shown = " ".join([repr(film), str(film.metadata), *film.notes, film.format, film.source_mode])
    for keyword, value in IDENTIFIERS.items():
        for piece in re.split(r"\^", value):
            assert piece not in shown, f"{keyword} leaked: {piece!r}"
    assert film.metadata["modality"] == "DX"
    assert film.metadata["view"] == "PA"
    assert film.metadata["study_date"] == "20240102"
    assert film.metadata["body_part"] == "CHEST"

    # Nor the message of a damaged file (pydicom's own messages can quote header values).
    for damaged in (data[:-1000], data[:400], data[:200] + b"\xff" * 8 + data[208:]):
        with pytest.raises(FilmReadError) as raised:
            read_film(damaged)
        assert not any(value in str(raised.value) for value in IDENTIFIERS.values())


# ---------------------------------------------------------------------------------------
# Pixel data that cannot be decoded, and deflate bombs.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transfer_syntax", "name", "reason"),
    [
        # A decoder is installed (requirements.txt): the data is damaged.
        (uid.JPEG2000Lossless, "JPEG 2000", "the compressed data is damaged"),
        (uid.JPEGLSLossless, "JPEG-LS", "the compressed data is damaged"),
        (uid.JPEGLosslessSV1, "JPEG Lossless", "the compressed data is damaged"),
        (uid.JPEGExtended12Bit, "JPEG Extended", "the compressed data is damaged"),
        (uid.HTJ2KLossless, "High-Throughput JPEG 2000", "the compressed data is damaged"),
        (uid.RLELossless, "RLE", "the compressed data is damaged"),
        # Syntaxes pydicom knows but no installed decoder handles.
        (uid.JPEG2000MCLossless, "JPEG 2000 Part 2", "no decoder for it is installed"),
        (uid.MPEG2MPML, "MPEG2", "no decoder for it is installed"),
    ],
)
def test_undecodable_compressed_dicom_names_its_syntax(transfer_syntax, name, reason, gray):
    garbage = b"\xff\x4f\xff\x51" + bytes(range(256)) * 4
    data = encode_dicom(gray, transfer_syntax=transfer_syntax, pixel_data=encapsulate([garbage]))
    with pytest.raises(FilmReadError) as raised:
        read_film(data)
    message = str(raised.value)
    assert name in message and "cannot be decoded" in message and reason in message, message
    assert_one_sentence(message)


def test_a_decoder_panic_is_a_damaged_film(gray, monkeypatch):
    # A Rust decoder (pylibjpeg-rle, should pydicom find it installed) panics on damaged data
    # with pyo3's PanicException, a BaseException: it must still read as damaged pixel data.
    PanicException = type("PanicException", (BaseException,), {})

    def raising(error: BaseException):
        def decode(*args, **kwargs):
            raise error
        return decode

    data = encode_dicom(gray, transfer_syntax=uid.RLELossless,
                        pixel_data=encapsulate([b"\x00" * 64]))
    monkeypatch.setattr("pydicom.pixels.pixel_array", raising(PanicException("out of bounds")))
    with pytest.raises(FilmReadError, match="RLE.*damaged"):
        read_film(data)
    monkeypatch.setattr("pydicom.pixels.pixel_array", raising(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # anything else goes on up
        read_film(data)


def test_a_deflate_bomb_dicom_is_refused(gray, monkeypatch):
    # Deflated transfer syntax: the whole data set is one zlib stream. One that inflates
    # past any film's size is refused while inflating.
    data = encode_dicom(gray, transfer_syntax=uid.DeflatedExplicitVRLittleEndian)
    film = read_film(data)  # a normal deflated file reads
    np.testing.assert_allclose(film.pixels, gray / 255.0, atol=1e-6)

    # The file meta group stays uncompressed; its length is the value of (0002,0000) UL.
    meta_end = 144 + int.from_bytes(data[140:144], "little")
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = b"\x00" * (1 << 22)
    # MAX_INFLATED_BYTES of zeros and a little more: about 200 bytes of deflate a megabyte.
    chunks = MAX_INFLATED_BYTES // len(zeros) + 2
    bomb = data[:meta_end] + b"".join(compressor.compress(zeros) for _ in range(chunks))
    bomb += compressor.flush()
    assert len(bomb) < 1_000_000
    # pydicom would inflate it all at once: it must never be handed the file.
    monkeypatch.setattr("pydicom.dcmread", lambda *a, **k: pytest.fail("handed to pydicom"))
    with pytest.raises(FilmReadError, match=r"inflates to more than") as raised:
        read_film(bomb)
    assert_one_sentence(str(raised.value))

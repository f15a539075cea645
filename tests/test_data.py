from collections import Counter

import numpy as np
import pytest

from pneumo import data
from pneumo.modeling.augment import AugmentConfig, make_augment


@pytest.mark.parametrize("name, patient, subtype", [
    ("person1000_bacteria_2931.jpeg", "person1000", "bacteria"),
    ("person1000_virus_1681.jpeg", "person1000", "virus"),
    ("person1_virus_6_2.jpeg", "person1", "virus"),
    ("IM-0115-0001.jpeg", "IM-0115", None),
    ("IM-0123-0001-0002.jpeg", "IM-0123", None),
    ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427", None),
    ("scan.png", "scan", None),
])
def test_parse_film_name(name, patient, subtype):
    assert data.parse_film_name(name) == (patient, subtype)


@pytest.fixture(scope="module")
def records(train_dir):
    return data.find_films(train_dir.parent, splits=("train",))


def test_find_films_reads_the_kaggle_layout(records):
    counts = Counter(r.class_name for r in records)
    assert counts == {"NORMAL": 1341, "PNEUMONIA": 3875}
    assert {r.split for r in records} == {"train"}
    subtypes = Counter(r.subtype for r in records if r.label == 1)
    assert subtypes == {"bacteria": 2530, "virus": 1345}


def test_find_films_reads_a_single_split_folder(train_dir):
    records = data.find_films(train_dir)
    assert len(records) == 5216 and {r.split for r in records} == {"train"}


def test_find_films_refuses_a_folder_without_films(tmp_path):
    with pytest.raises(ValueError, match="No films found"):
        data.find_films(tmp_path)
    with pytest.raises(FileNotFoundError):
        data.find_films(tmp_path / "missing")


def test_split_keeps_every_patient_on_one_side_and_stratifies(records):
    train, val = data.split_by_patient(records, val_fraction=0.2, seed=0)
    assert len(train) + len(val) == len(records)
    assert not {r.patient for r in train} & {r.patient for r in val}
    share = lambda rs: np.mean([r.label for r in rs])  # noqa: E731
    assert abs(share(train) - share(val)) < 0.02
    assert 0.17 < len(val) / len(records) < 0.23


def test_split_is_reproducible_and_seed_dependent(records):
    first = data.split_by_patient(records, 0.2, seed=0)[1]
    again = data.split_by_patient(list(reversed(records)), 0.2, seed=0)[1]
    other = data.split_by_patient(records, 0.2, seed=1)[1]
    assert [r.path for r in first] == [r.path for r in again]
    assert {r.path for r in first} != {r.path for r in other}


def test_load_inputs_decodes_each_film_to_the_model_input(records):
    chosen = records[:3] + records[-3:]
    seen = []
    inputs = data.load_inputs(chosen, 96, observers=[lambda r, f: seen.append(r.path)])
    assert inputs.shape == (6, 96, 96, 1) and inputs.dtype == np.uint8
    assert seen == [r.path for r in chosen]
    assert inputs.std() > 10  # real films, not blanks


def test_training_dataset_augments_reproducibly():
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 256, (8, 32, 32, 1), dtype=np.uint8)
    labels = np.arange(8, dtype=np.float32) % 2

    def first_batch(seed):
        ds = data.make_dataset(inputs, labels, 4, training=True, augment=make_augment(), seed=seed)
        return [b[0].numpy() for b in ds]

    a, b, c = first_batch(3), first_batch(3), first_batch(4)
    assert a[0].shape == (4, 32, 32, 1)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert 0.0 <= a[0].min() and a[0].max() <= 255.0


def test_evaluation_dataset_keeps_order_and_values():
    inputs = np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8, 1)
    ds = data.make_dataset(inputs, np.zeros(4, np.float32), 3, training=False)
    out = np.concatenate([b[0].numpy() for b in ds])
    np.testing.assert_array_equal(out, inputs.astype(np.float32))


def test_augment_changes_films_but_keeps_them_films():
    import tensorflow as tf

    x = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (2, 64, 1))[..., None]
    out = make_augment(AugmentConfig())(tf.constant(x), tf.constant([1, 2], tf.int64)).numpy()
    assert out.shape == x.shape
    assert np.abs(out - x).mean() > 1.0
    flat = make_augment(AugmentConfig(rotation_deg=0, shear=0, zoom=0, shift=0, brightness=0,
                                      contrast=0, gamma=0, noise=0, blur=0, border_erase=0))
    np.testing.assert_allclose(flat(tf.constant(x), tf.constant([1, 2], tf.int64)).numpy(), x, atol=0.01)


def _input(path, size: int) -> np.ndarray:
    from pneumo.io import read_film
    from pneumo.preprocess import to_model_input

    return to_model_input(read_film(path), size)


ONLY_BLUR = dict(rotation_deg=0, shear=0, zoom=0, shift=0, brightness=0, contrast=0, gamma=0, noise=0,
                 border_erase=0)


def test_blur_softens_each_film_by_its_own_amount(normal_film):
    import tensorflow as tf
    from scipy import ndimage

    film = _input(normal_film, 96)
    batch = np.repeat(film[None], 8, axis=0).astype(np.float32)
    out = make_augment(AugmentConfig(**ONLY_BLUR, blur=0.03, blur_chance=1.0))(
        tf.constant(batch), tf.constant([4, 5], tf.int64)).numpy()

    def detail(image):  # energy of the finest structure
        return float(np.abs(ndimage.laplace(image[..., 0].astype(np.float64))).mean())

    details = [detail(image) for image in out]
    assert max(details) < detail(film)  # every film lost detail...
    assert max(details) - min(details) > 0.1 * detail(film)  # ...each by its own, drawn amount
    # Reflected edges: a blur moves brightness around but does not darken the film.
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), film.mean(), rtol=0.01)


def test_blur_matches_a_gaussian_filter_and_skips_inactive_films(normal_film):
    import tensorflow as tf
    from scipy import ndimage

    from pneumo.modeling.augment import _blur

    film = _input(normal_film, 96)[None].repeat(2, axis=0).astype(np.float32)
    sigma_px = 2.0
    out = _blur(tf.constant(film), tf.constant([sigma_px / 96] * 2), tf.constant([True, False]),
                max_sigma=3.0 / 96, side=96).numpy()
    expected = ndimage.gaussian_filter(film[0, ..., 0], sigma_px, mode="mirror", truncate=4.5)
    assert np.abs(out[0, ..., 0] - expected).max() < 1.0  # in 0-255 units
    np.testing.assert_allclose(out[1], film[1], atol=1e-3)


def test_blur_is_off_with_a_zero_chance(normal_film):
    import tensorflow as tf

    film = _input(normal_film, 64)[None].astype(np.float32)
    out = make_augment(AugmentConfig(**ONLY_BLUR, blur=0.05, blur_chance=0.0))(
        tf.constant(film), tf.constant([1, 1], tf.int64)).numpy()
    np.testing.assert_allclose(out, film, atol=0.01)

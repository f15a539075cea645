"""An out-of-scope evaluation set, and how well the guard tells it from real validation films.

The set is built offline: scikit-image's bundled photographs (in colour and in grey),
rendered text pages and scanned text, uniform, Gaussian and salt-and-pepper noise,
blank and near-constant images, and validation films turned by 90, 180 and 270
degrees, inverted, and put in collages (2 x 2 and side by side, the layouts the guard's
classifier saw in training, and a 2 x 3 grid with light gutters, which it never saw).
Images that are files (photographs, pages, noise) go through ``pneumo.io.read_film``
as an upload would, so colour is judged as in the product.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pneumo.guard.detector import CHECKS, Guard
from pneumo.guard.features import films_of, model_outputs
from pneumo.guard.transforms import collage
from pneumo.io import Film, read_film
from pneumo.preprocess import to_model_input

COLOUR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                 "immunohistochemistry", "retina", "colorwheel")
GREY_PHOTOS = ("camera", "moon", "coins", "clock", "brick", "grass", "gravel", "cell",
               "shepp_logan_phantom", "microaneurysms", "checkerboard", "horse", "binary_blobs")

EXPECTED = {
    "colour photograph": ("colour",),
    "grey photograph": ("unfamiliar",),
    "document": ("document",),
    "noise": ("noise",),
    "blank": ("blank",),
    "rotated 90": ("rotated",),
    "rotated 270": ("rotated",),
    "rotated 180": ("upside_down",),
    "inverted": ("inverted",),
    "collage 2x2": ("collage",),
    "collage side by side": ("collage",),
    "collage 2x3 with gutters": ("collage",),
}
"""Each kind of the set and the reasons that name it correctly."""

_WORDS = ("patient report radiology department findings impression the lungs are clear no focal "
          "consolidation heart size normal history cough fever date signed exposure view anterior "
          "posterior chest film of and with for left right lower lobe").split()


@dataclass(frozen=True)
class OodItem:
    """One out-of-scope image: its kind (a key of :data:`EXPECTED`), a name and the film."""

    kind: str
    name: str
    film: Film


def build_ood_set(val_inputs: np.ndarray, per_kind: int = 60, seed: int = 0) -> tuple[list[OodItem], list[str]]:
    """The out-of-scope evaluation set.

    Args:
        val_inputs: validation films as model inputs (n, S, S, 1) in 0-255.
        per_kind: how many transformed validation films per transform kind.
        seed: seeds the draws.

    Returns:
        (the items, notes on what could not be built, e.g. without scikit-image).
    """
    rng = np.random.default_rng(seed)
    films = np.asarray(val_inputs, dtype=np.float32)[..., 0] / 255.0
    items, notes = [], []
    photos, note = _skimage_photos()
    items += photos
    notes += [note] if note else []
    items += [OodItem("document", name, _read(page)) for name, page in _text_pages(rng).items()]
    items += [OodItem("noise", name, _read(image)) for name, image in _noise_images(rng).items()]
    items += [OodItem("blank", name, _read(image)) for name, image in _blank_images().items()]
    items += _transformed(films, per_kind, rng)
    return items, notes


def _read(pixels: np.ndarray, fmt: str = "PNG") -> Film:
    """An array as an uploaded file would be read (through its bytes)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return read_film(buffer.getvalue())


def _skimage_photos() -> tuple[list[OodItem], str]:
    try:
        import skimage.data
    except ImportError:
        return [], "scikit-image is not installed: no photographs in the set"
    items = []
    for name in COLOUR_PHOTOS + GREY_PHOTOS:
        image = np.asarray(getattr(skimage.data, name)())
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        elif image.dtype != np.uint8:
            image = np.round(255 * (image - image.min()) / max(np.ptp(image), 1e-9)).astype(np.uint8)
        if image.ndim == 3:
            image = image[..., :3]
            items.append(OodItem("colour photograph", name, _read(image, "JPEG")))
            image = np.asarray(Image.fromarray(image).convert("L"))
        items.append(OodItem("grey photograph", name, _read(image)))
    for name in ("page", "text"):  # scanned text bundled with scikit-image
        items.append(OodItem("document", f"skimage-{name}", _read(np.asarray(getattr(skimage.data, name)()))))
    return items, ""


def _text_pages(rng: np.random.Generator, count: int = 8) -> dict[str, np.ndarray]:
    """Pages of random words in Pillow's default font, portrait and landscape, dark on light."""
    pages = {}
    for index in range(count):
        width, height = (850, 1100) if index % 2 == 0 else (1100, 850)
        page = Image.new("L", (width, height), int(rng.integers(220, 256)))
        draw = ImageDraw.Draw(page)
        size = int(rng.integers(14, 32))
        font = ImageFont.load_default(size=size)
        top = 40
        while top < height - 40:
            words = " ".join(rng.choice(_WORDS, int(rng.integers(4, 14))))
            draw.text((40, top), words, fill=int(rng.integers(0, 70)), font=font)
            top += int(size * rng.uniform(1.3, 2.0))
        pages[f"text-page-{index}"] = np.asarray(page)
    return pages


def _noise_images(rng: np.random.Generator, count: int = 4) -> dict[str, np.ndarray]:
    images = {}
    for index in range(count):
        side = int(rng.choice([256, 512, 1024]))
        images[f"uniform-{index}"] = rng.integers(0, 256, (side, side), dtype=np.uint8)
        sigma = rng.uniform(20, 70)
        images[f"gaussian-{index}"] = np.clip(rng.normal(128, sigma, (side, side)), 0, 255).astype(np.uint8)
        speckled = rng.random((side, side)) < 0.1
        images[f"salt-pepper-{index}"] = np.where(
            speckled, rng.integers(0, 2, (side, side)) * 255, 128).astype(np.uint8)
    images["faint-noise"] = np.clip(128 + rng.normal(0, 2, (512, 512)), 0, 255).astype(np.uint8)
    return images


def _blank_images() -> dict[str, np.ndarray]:
    images = {f"constant-{value}": np.full((512, 512), value, np.uint8) for value in (0, 40, 128, 200, 255)}
    images["gentle-gradient"] = np.tile(np.linspace(100, 140, 512), (512, 1)).astype(np.uint8)
    return images


def _transformed(films: np.ndarray, per_kind: int, rng: np.random.Generator) -> list[OodItem]:
    """Validation films turned, inverted and put in collages."""
    def film(pixels: np.ndarray) -> Film:
        return Film(pixels=np.ascontiguousarray(pixels, dtype=np.float32), format="synthetic",
                    source_mode="L")

    chosen = rng.choice(len(films), min(per_kind, len(films)), replace=False)
    items = []
    for index in chosen:
        name = f"validation-{index}"
        items.append(OodItem("rotated 90", name, film(np.rot90(films[index], 1))))
        items.append(OodItem("rotated 270", name, film(np.rot90(films[index], 3))))
        items.append(OodItem("rotated 180", name, film(np.rot90(films[index], 2))))
        items.append(OodItem("inverted", name, film(1.0 - films[index])))
    layouts = {"collage 2x2": (2, 2, None), "collage side by side": (1, 2, None),
               "collage 2x3 with gutters": (2, 3, 0.9)}
    for kind, (rows, cols, gutter) in layouts.items():
        for number in range(max(1, per_kind // 2)):
            tiles = films[rng.choice(len(films), rows * cols, replace=False)]
            items.append(OodItem(kind, f"{kind}-{number}", film(collage(tiles, rows, cols, gutter))))
    return items


def measure(guard: Guard, two_headed, val_inputs: np.ndarray, items: list[OodItem],
            val_pooled: np.ndarray | None = None) -> dict:
    """AUROC of the combined out-of-scope score, validation films against the set.

    Args:
        guard: the fitted guard (with thresholds).
        two_headed: :func:`pneumo.guard.features.feature_model` of the guard's model.
        val_inputs: validation films as model inputs.
        items: the out-of-scope set.
        val_pooled: the validation films' pooled features, when already computed.

    Returns:
        {"n_validation", "n_out_of_scope", "auroc", "detected", "auroc_by_check",
        "by_kind": kind -> {"n", "auroc", "detected", "named_as_expected", "reasons"}}.
    """
    from sklearn.metrics import roc_auc_score

    if val_pooled is None:
        _, val_pooled = model_outputs(two_headed, val_inputs)
    val_scores, _ = guard.scores(val_inputs, val_pooled, films_of(val_inputs))
    val_margins = guard.margins(val_scores)
    val_combined = np.max(np.stack(list(val_margins.values())), axis=0)
    inputs = np.stack([to_model_input(item.film, guard.input_size) for item in items])
    _, pooled = model_outputs(two_headed, inputs)
    films = [item.film for item in items]
    verdicts = guard.judge(inputs, pooled, films)
    ood_scores, _ = guard.scores(inputs, pooled, films)
    combined = np.array([verdict.score for verdict in verdicts])
    kinds = np.array([item.kind for item in items])

    def auroc(negative: np.ndarray, positive: np.ndarray) -> float:
        labels = np.r_[np.zeros(len(negative)), np.ones(len(positive))]
        return float(roc_auc_score(labels, np.r_[negative, positive]))

    by_kind = {}
    for kind in dict.fromkeys(kinds):
        chosen = np.flatnonzero(kinds == kind)
        refused = [verdicts[i] for i in chosen if not verdicts[i].in_scope]
        reasons: dict[str, int] = {}
        for verdict in refused:
            reasons[verdict.kind] = reasons.get(verdict.kind, 0) + 1
        by_kind[kind] = {
            "n": int(len(chosen)),
            "auroc": round(auroc(val_combined, combined[chosen]), 4),
            "detected": round(len(refused) / len(chosen), 4),
            "named_as_expected": round(sum(v.kind in EXPECTED.get(kind, ()) for v in refused)
                                       / max(len(refused), 1), 4),
            "reasons": reasons,
        }
    return {
        "n_validation": int(len(val_inputs)),
        "n_out_of_scope": int(len(items)),
        "auroc": round(auroc(val_combined, combined), 4),
        "detected": round(float(np.mean([not v.in_scope for v in verdicts])), 4),
        "auroc_by_check": {name: round(auroc(val_scores[name], ood_scores[name]), 4)
                           for name in CHECKS if name != "colour"},
        "by_kind": by_kind,
    }


def out_of_scope_figures(guard: Guard, two_headed, val_inputs: np.ndarray, *, per_kind: int = 60,
                         seed: int = 0, val_pooled: np.ndarray | None = None) -> dict:
    """Build the out-of-scope set and :func:`measure` the guard on it.

    Args:
        guard: the fitted guard (with thresholds).
        two_headed: :func:`pneumo.guard.features.feature_model` of the guard's model.
        val_inputs: validation films as model inputs.
        per_kind: transformed validation films per kind in the set.
        seed: seeds the set's draws.
        val_pooled: the validation films' pooled features, when already computed.

    Returns:
        What :func:`measure` returns, with "notes" on what the set could not include.
    """
    items, notes = build_ood_set(val_inputs, per_kind=per_kind, seed=seed)
    figures = measure(guard, two_headed, val_inputs, items, val_pooled=val_pooled)
    figures["notes"] = notes
    return figures

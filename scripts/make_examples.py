"""Write the example films of ``docs/examples/``: a dozen training films for demonstrations, with their list.

Run it from the repository root, with the project's environment::

    .venv/bin/python -m scripts.make_examples            # from ../shared/data and the default model's card

The choice is fixed by the card's out-of-fold probabilities (the shipped ensemble's
member that never saw the patient) and a seed, so a rerun writes the same files:

- three normal, three bacterial and three viral films the model reads confidently out of fold
  and the out-of-scope guard lets through, each from another patient (byte-for-byte copies of
  training films);
- a soft one: the normal film whose out-of-fold probability lies deepest in the review band
  (between the threshold and 50%), where the model hesitates;
- a rotated film: a bacterial training film turned 90 degrees, which the guard should refuse;
- a non-film: a generated colour picture, which the guard should refuse.

Training films only, never a test split. Prints one line per film and a summary line.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from pneumo import store
from pneumo.data import default_data_dir, find_films, parse_film_name
from pneumo.environment import quiet_tensorflow
from pneumo.examples import CITATION, EXAMPLES_DIR, FIELDS, LICENCE, MANIFEST, REFUSED, ExamplesError, load_examples
from pneumo.inference.predict import STATUS_OK, Classifier
from pneumo.render.demo import out_of_fold_probabilities

SEED = 0
CONFIDENT = 0.05  # out-of-fold P below this (normal) or above 1 - this (pneumonia)


def pick(rng: np.random.Generator, candidates: list[str], count: int, taken: set[str],
         accept=lambda name: True) -> list[str]:
    """``count`` films of different patients not yet taken that ``accept`` passes, drawn with ``rng``."""
    chosen: list[str] = []
    for index in rng.permutation(len(candidates)):
        name = candidates[index]
        patient = parse_film_name(name.rsplit("/", 1)[-1])[0]
        if patient in taken or not accept(name):
            continue
        taken.add(patient)
        chosen.append(name)
        if len(chosen) == count:
            break
    return sorted(chosen)


def colour_picture(size: int = 224) -> bytes:
    """A generated colour picture (sky, ground and a sun): plainly not an X-ray film."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    sky = np.stack([90 + 80 * y, 150 + 60 * y, 230 - 30 * y], axis=-1)
    ground = np.stack([60 + 40 * x, 140 - 30 * y, 50 + 0 * x], axis=-1)
    image = np.where((y > 0.62)[..., None], ground, sky)
    sun = (x - 0.75) ** 2 + (y - 0.25) ** 2 < 0.012
    image[sun] = (250, 215, 80)
    return jpeg(Image.fromarray(image.clip(0, 255).astype(np.uint8), "RGB"))


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def entry(name: str, title: str, kind: str, data: bytes, label: str | None, subtype: str | None,
          expected: str, source: str | None, made: str, why: str) -> dict:
    entry = {"name": name, "title": title, "kind": kind, "label": label, "subtype": subtype, "expected": expected,
             "source": source, "made": made, "sha256": hashlib.sha256(data).hexdigest(), "why": why}
    assert tuple(entry) == FIELDS
    return entry


def choose(card: dict, data_root: Path, in_scope) -> list[tuple[dict, bytes]]:
    """The examples' manifest entries with their bytes; ``in_scope(path)`` says the guard lets a chest film through."""
    oof = out_of_fold_probabilities(card)
    threshold = float(card["threshold"])
    present = {f"{r.split}/{r.class_name}/{r.path.name}" for r in find_films(data_root, ("train",))}
    names = sorted(name for name in oof if name in present and name.startswith("train/"))
    rng = np.random.default_rng(SEED)

    def accept(name: str) -> bool:
        return in_scope(data_root / name)

    taken: set[str] = set()
    normal = [n for n in names if "/NORMAL/" in n]
    chosen: list[tuple[dict, bytes]] = []

    def copy(name: str, title: str, kind: str, why: str) -> None:
        data = (data_root / name).read_bytes()
        label = name.split("/")[1]
        subtype = "bacteria" if "_bacteria_" in name else "virus" if "_virus_" in name else None
        file_name = f"{kind}-{name.rsplit('/', 1)[-1]}"
        chosen.append((entry(file_name, title, kind, data, label, subtype, label, name, "", why), data))

    for i, name in enumerate(pick(rng, [n for n in normal if oof[n] < CONFIDENT], 3, taken, accept), 1):
        copy(name, f"Normal {i}", "normal", "A normal film the model reads with confidence.")
    for kind, words, tag in (("bacterial", "Bacterial", "_bacteria_"), ("viral", "Viral", "_virus_")):
        pool = [n for n in names if tag in n and oof[n] > 1 - CONFIDENT]
        for i, name in enumerate(pick(rng, pool, 3, taken, accept), 1):
            copy(name, f"{words} {i}", kind, f"A {kind} pneumonia film the model reads with confidence.")
    review = [n for n in normal if threshold <= oof[n] < 0.5 and accept(n)]
    soft = min(review, key=lambda n: abs(oof[n] - (threshold + 0.5) / 2))
    copy(soft, "Soft call", "soft", "A normal film the model hesitated over out of fold: it fell in the review "
                                    "band, between the threshold and 50%. The shipped model learned from it and is "
                                    "surer.")

    source = pick(rng, [n for n in names if "_bacteria_" in n and oof[n] > 1 - CONFIDENT], 1, taken)[0]
    rotated = jpeg(Image.open(data_root / source).convert("L").transpose(Image.Transpose.ROTATE_90))
    chosen.append((entry(f"rotated-{source.rsplit('/', 1)[-1]}", "Rotated film", "rotated", rotated, "PNEUMONIA",
                         "bacteria", REFUSED, source,
                         f"Made from training film {source}: turned 90 degrees counter-clockwise and saved as "
                         "JPEG (quality 90).",
                         "A film lying on its side: the guard should refuse it and ask for it upright."),
                   rotated))
    picture = colour_picture()
    chosen.append((entry("not-a-film.jpeg", "Not a film", "non-film", picture, None, None, REFUSED, None,
                         "Generated by scripts/make_examples.py: a colour picture of sky, ground and a sun.",
                         "Not an X-ray at all: the guard should refuse it."), picture))
    return chosen


def in_scope(classifier, path: Path) -> bool:
    """Whether the guard reads the film without refusing it or warning about it."""
    item = classifier.assess(path)
    return item.status == STATUS_OK and not item.warnings


def readme(entries: list[dict]) -> str:
    """The folder's README: what the films are, their licence and citation, and the list."""
    rows = "\n".join(f"| `{e['name']}` | {e['title']} | {e['label'] or '-'} | {e['expected']} | "
                     f"{e['source'] or '-'} | {e['made'] or 'byte-for-byte copy'} |" for e in entries)
    return f"""# Example films

A dozen small films for demonstrations: the app's "try an example" on /diagnose and the
gallery on /demo. **They are training films**, not new patients: the shipped model learned
from every chest film here, so its result on them flatters it; the app shows each copy's
out-of-fold probability (from the ensemble member that never saw the patient) beside the
shipped model's.

The chest films are byte-for-byte copies of films of the training split of Kermany et al.
(never of a test split); `tests/test_examples.py` checks each against `../shared/data` by
sha256. The rotated film is made from a training film and the non-film is generated, as the
list says. `python -m scripts.make_examples` wrote this folder and `{MANIFEST}`.

Licence: {LICENCE} (https://creativecommons.org/licenses/by/4.0/), as the data set's.
Changes: the rotated film is turned 90 degrees and re-encoded; no other film is changed.

Cite: {CITATION}.

| file | title | folder label | a correct reading | source | made |
|---|---|---|---|---|---|
{rows}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(default_data_dir()), help="the Kaggle-layout data root")
    parser.add_argument("--model", default=None, help="the model whose card gives the out-of-fold probabilities")
    parser.add_argument("--out", default=str(EXAMPLES_DIR))
    args = parser.parse_args(argv)
    quiet_tensorflow()
    try:
        loaded = store.load(args.model)
        classifier = Classifier(loaded)
        chosen = choose(loaded.card, Path(args.data), lambda path: in_scope(classifier, path))
    except (store.ModelStoreError, OSError, ValueError) as err:
        print(f"Could not choose the examples: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:  # only the films this script wrote before: never another file of the folder
        for old in load_examples(out):
            old.path.unlink(missing_ok=True)
    except ExamplesError:
        pass
    for item, data in chosen:
        (out / item["name"]).write_bytes(data)
        print(f"{item['name']}: {item['title']}, {len(data):,} bytes")
    entries = [item for item, _ in chosen]
    (out / MANIFEST).write_text(json.dumps({"licence": LICENCE, "citation": CITATION, "films": entries},
                                           indent=2) + "\n")
    (out / "README.md").write_text(readme(entries))
    total = sum(len(data) for _, data in chosen)
    print(f"done: {len(chosen)} example films ({total:,} bytes) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

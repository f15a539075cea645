"""Pneumo: a chest-film assistant that estimates how likely pneumonia is on a pediatric chest X-ray.

Modules, one job each: ``io`` reads films, ``preprocess`` turns them into model
input, ``data`` finds and splits data sets, ``augment`` and ``models`` and ``train``
make models, ``calibration`` and ``metrics`` measure them, ``store`` keeps them,
``predict`` applies them, ``explain`` shows where they looked, ``profile``
describes data sets, ``guard`` refuses images out of scope (``ood`` measures it),
``bench`` times them and ``cli`` is the command line.
"""

__version__ = "0.1.0"

"""Pneumo: a chest-film assistant that estimates how likely pneumonia is on a pediatric chest X-ray.

The package reads in layers; a module imports only from its own layer or the ones above it
in this list (``tests/test_architecture.py`` checks it, ``ARCHITECTURE.md`` explains it):

- ``io``, ``dicom``, ``preprocess``, ``data``, ``folds``, ``store``: films, data sets,
  patient folds and model folders;
- ``stats``: figures, calibration and operating points from probabilities and labels;
- ``modeling``: the networks and their augmentation;
- ``guard``: what is out of scope;
- ``inference``: scoring, explaining, site profiles;
- ``evaluation``: faithfulness of the heatmaps, data-set profiles, speed;
- ``training``: fitting a model folder (model, card, guard, sites);
- ``render``: words, colours, charts and the PDF;
- ``cli``: the command line.
"""

__version__ = "0.1.0"

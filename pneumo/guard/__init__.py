"""What is out of scope: the guard that refuses films the model cannot judge, and how it is fitted.

A film is refused before it is scored when simple image checks or the model's own features
say it is not a frontal chest film like the training films.

- ``features``: what the checks read from an image, and the model's pooled features;
- ``transforms``: films turned, inverted and put in collages (the layouts);
- ``estimators``: the learned parts (Mahalanobis distance, PCA residual, layout classifier);
- ``detector``: the :class:`~pneumo.guard.detector.Guard` and its verdicts;
- ``thresholds``: where each check refuses, set on validation films;
- ``fit``: fitting a guard, and the whole job for a stored model (fit, measure, save);
- ``evaluation_set``: the out-of-scope images the guard is measured on;
- ``persist``: ``guard.npz`` and the card's ``guard`` section.
"""

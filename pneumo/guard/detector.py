"""The guard's verdict: what is not a frontal chest film is refused, with a reason.

Nine checks score every image; each refuses above its own threshold, and the
reason given is the most specific one that applies, in this order. The cheap named
checks (noise, blank, document) look at the film itself at 256 x 256, whatever the
model's input size, so their reason describes the file that was given:

- ``colour``: the file held several hues (``Film.colourfulness``); films are grey.
- ``noise``: most of the variation is from one pixel to the next (1 - lag-one correlation).
- ``blank``: the intensity spread (1st to 99th percentile) is tiny.
- ``layout``: a small linear classifier on the 32 x 32 film, fitted on training films and
  their own transforms, tells upright films from films turned by 90 degrees, upside down,
  inverted, and collages of several films. Its reason is named only when undoing the
  transform (or cutting the collage into tiles) gives something that looks like a film.
- ``document``: a light page crossed by many sharp edges (text).
- ``symmetry``: 1 - the best correlation of the film with its mirror image (shifted and tilted
  a little): a frontal film mirrors itself about the spine, a lateral view does not. Its reason
  ("lateral") is named when the film otherwise looks like a film (statistics check).
- ``features``, ``statistics``, ``appearance``: how unlike the training films the image is:
  Mahalanobis distance on the classifier's pooled features ("pool" layer, Ledoit-Wolf
  shrunk covariance), Mahalanobis distance on 49 film statistics (intensity quantiles,
  edge strength, row and column profiles), and the residual of a 16-component PCA of the
  32 x 32 film (a linear autoencoder's reconstruction error).

An image in scope can still carry a warning (``ScopeVerdict.warning``): the population checks
(:data:`FLAG_CHECKS`) have a second, lower threshold each, set so that a few percent of the
validation films are flagged, for films that look unlike young children's frontal films
(an adult's film, an unusual view) without being far enough out to refuse.

What each check reads is in :mod:`pneumo.guard.features`, its learned part in
:mod:`pneumo.guard.estimators`, how it is fitted and its threshold set in
:mod:`pneumo.guard.fit` and :mod:`pneumo.guard.thresholds`, and how it is stored in
:mod:`pneumo.guard.persist`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pneumo.guard.estimators import MultinomialLogistic, PCAResidual, ShrunkMahalanobis
from pneumo.guard.features import cheap_scores, film_statistics, film_view, layout_vector, mirror_asymmetry
from pneumo.guard.transforms import LAYOUTS, tiles_of, undo
from pneumo.io import Film

CHECKS = ("colour", "noise", "blank", "document", "layout", "features", "statistics", "appearance",
          "symmetry")
FLAG_CHECKS = ("features", "statistics", "appearance", "symmetry")
"""The checks whose second, lower threshold flags an image in scope (a warning, not a refusal)."""
NAME_CONFIDENCE = 0.5
"""The layout classifier names a transform only when it is the more likely answer."""
TILE_MARGIN = 1.0
"""A collage's tiles count as films up to this appearance margin (twice the usual spread)."""

REASONS = {
    "colour": "This looks like a colour photograph, not an X-ray film.",
    "blank": "The image is blank or almost uniform: there is no film to read.",
    "noise": "The image looks like random noise, not an X-ray film.",
    "document": "This looks like a scanned document or text, not an X-ray film.",
    "rotated": "The image checks read this film as turned by 90 degrees (lying on its side): if it is, "
               "turn it upright; if it is upright, the checks have misread it.",
    "upside_down": "The image checks read this film as upside down (turned by 180 degrees): if it is, "
                   "turn it upright; if it is upright, the checks have misread it.",
    "inverted": "The film appears to have inverted polarity (bones dark, lungs light); "
                "upload it as a standard film, bones white.",
    "collage": "The image appears to hold several films; upload one film at a time.",
    "lateral": "The film does not mirror itself about the spine as a frontal film does, so the image "
               "checks read it as a lateral (side) view; this model reads frontal chest films only.",
    "unfamiliar": "The image does not look like the frontal chest films of young children "
                  "this model was trained on, so it gives no result.",
}
"""One sentence per reason, for the clinician."""
WARNING = ("This film is less typical of the young children's frontal films the model was trained on "
           "than most (about 1 in 20 of those films gets this note, most of them with pneumonia): "
           "check the patient's age and the view before relying on the result.")
"""The warning on a flagged image in scope."""


@dataclass(frozen=True)
class ScopeVerdict:
    """The guard's answer for one image.

    Attributes:
        in_scope: False when the image is refused.
        kind: the reason's key in :data:`REASONS` ("" when in scope).
        reason: the sentence for the clinician ("" when in scope).
        score: the combined out-of-scope score: above 0 is refused; larger is further out.
        fired: the checks above their threshold.
        warning: for an image in scope, :data:`WARNING` when a population check is above its
            flag threshold ("" otherwise, and always "" when refused).
        flagged: the checks above their flag threshold (in scope only).
    """

    in_scope: bool
    kind: str
    reason: str
    score: float
    fired: tuple[str, ...]
    warning: str = ""
    flagged: tuple[str, ...] = ()


class Guard:
    """Fitted arrays and thresholds: model inputs (and their pooled features) in, verdicts out.

    Build one with :func:`pneumo.guard.fit.fit_guard` or :func:`pneumo.guard.persist.load_guard`;
    it holds no model of its own and is not changed after it is built.

    Attributes:
        layout: the layout classifier over :data:`LAYOUTS` (on :func:`layout_vector`).
        features: the distance on the model's pooled features.
        statistics: the distance on :func:`film_statistics`.
        appearance: the PCA residual of :func:`layout_vector`.
        thresholds, scales: each check's threshold, and threshold minus validation median.
        flags: each flag check's flag threshold (empty for a guard fitted without them).
    """

    def __init__(self, arrays: dict[str, np.ndarray], settings: dict):
        """Hold a fitted guard.

        Args:
            arrays: the fitted arrays (the contents of ``guard.npz``).
            settings: the card's ``guard`` section; ``checks`` maps each check to its
                ``threshold`` and ``scale`` (left out while fitting), and a flag check to its
                ``flag`` threshold.
        """
        self.arrays = {key: np.asarray(value) for key, value in arrays.items()}
        self.settings = settings
        self.input_size = int(settings["input_size"])
        checks = settings.get("checks", {})
        self.thresholds = {name: float(checks[name]["threshold"]) for name in checks}
        self.scales = {name: float(checks[name]["scale"]) for name in checks}
        self.flags = {name: float(checks[name]["flag"]) for name in checks
                      if checks[name].get("flag") is not None}
        self.layout = MultinomialLogistic.from_params(self.arrays["layout_coef"], self.arrays["layout_intercept"])
        self.features = ShrunkMahalanobis.from_params(self.arrays["pool_mean"], self.arrays["pool_precision"])
        self.statistics = ShrunkMahalanobis.from_params(self.arrays["statistics_mean"],
                                                        self.arrays["statistics_precision"])
        self.appearance = PCAResidual.from_params(self.arrays["appearance_mean"],
                                                  self.arrays["appearance_components"])

    def scores(self, inputs: np.ndarray, pooled: np.ndarray,
               films: Sequence[Film]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every check's score (higher is further out of scope).

        Args:
            inputs: model inputs (n, S, S, 1) in 0-255.
            pooled: the model's pooled features (n, D).
            films: the decoded films the inputs were made from (colour and cheap checks).

        Returns:
            (check name -> (n,) scores, layout probabilities (n, 5) over :data:`LAYOUTS`).
        """
        images = np.asarray(inputs, dtype=np.float32)[..., 0] / 255.0
        cheap = [cheap_scores(film_view(film)) for film in films]
        statistics = np.stack([film_statistics(image) for image in images])
        vectors = np.stack([layout_vector(image) for image in images])
        layout = self.layout.predict_proba(vectors)
        result = {"colour": np.array([film.colourfulness for film in films], dtype=np.float64)}
        for name in ("blank", "noise", "document"):
            result[name] = np.array([row[name] for row in cheap])
        result["layout"] = -np.log(np.clip(layout[:, 0], 1e-12, 1.0))
        # The estimators score as scikit-learn does (higher is more typical); checks the other way.
        result["features"] = -self.features.score_samples(np.asarray(pooled, dtype=np.float64))
        result["statistics"] = -self.statistics.score_samples(statistics)
        result["appearance"] = -self.appearance.score_samples(vectors)
        result["symmetry"] = np.array([mirror_asymmetry(image) for image in images])
        return result, layout

    def margins(self, scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each score relative to its threshold: 0 at the threshold, -1 at the validation median."""
        return {name: (scores[name] - self.thresholds[name]) / self.scales[name]
                for name in CHECKS if name in scores and name in self.thresholds}

    def judge(self, inputs: np.ndarray, pooled: np.ndarray, films: Sequence[Film]) -> list[ScopeVerdict]:
        """Verdicts for a batch of model inputs (see :meth:`scores` for the arguments)."""
        scores, layout = self.scores(inputs, pooled, films)
        margins = self.margins(scores)
        combined = np.max(np.stack(list(margins.values())), axis=0)
        verdicts = []
        for index, image in enumerate(np.asarray(inputs, dtype=np.float32)[..., 0] / 255.0):
            fired = tuple(name for name in margins if margins[name][index] > 0)
            if not fired:
                flagged = tuple(name for name in FLAG_CHECKS
                                if name in self.flags and scores[name][index] > self.flags[name])
                verdicts.append(ScopeVerdict(True, "", "", float(combined[index]), (),
                                             WARNING if flagged else "", flagged))
                continue
            kind = self._name(fired, image, layout[index])
            verdicts.append(ScopeVerdict(False, kind, REASONS[kind], float(combined[index]), fired))
        return verdicts

    def _name(self, fired: tuple[str, ...], image: np.ndarray, layout: np.ndarray) -> str:
        """The most specific reason for a refused image: a named check, else "unfamiliar"."""
        for name in ("colour", "noise", "blank"):
            if name in fired:
                return name
        best = int(np.argmax(layout[1:])) + 1
        if "layout" in fired and layout[best] >= NAME_CONFIDENCE:
            kind = LAYOUTS[best]
            if kind == "collage" and self._holds_films(image):
                return kind
            if kind != "collage" and any(self._looks_like_film(undone) for undone in undo(image, kind)):
                return kind
        if "document" in fired:
            return "document"
        if "symmetry" in fired and "statistics" not in fired:
            return "lateral"
        return "unfamiliar"

    def _looks_like_film(self, image: np.ndarray) -> bool:
        """Whether an image passes the statistics and appearance checks."""
        statistics = film_statistics(image)
        distance = -self.statistics.score_samples(statistics[np.newaxis])[0]
        stats_margin = (distance - self.thresholds["statistics"]) / self.scales["statistics"]
        return stats_margin <= 0 and self._appearance_margin([image])[0] <= 0

    def _holds_films(self, image: np.ndarray) -> bool:
        """Whether some grid cuts the image into tiles most of which look like films."""
        for rows, cols in ((1, 2), (2, 1), (2, 2), (2, 3), (3, 2), (3, 3)):
            tiles = tiles_of(image, rows, cols)
            if np.mean(self._appearance_margin(tiles) <= TILE_MARGIN) > 0.5:
                return True
        return False

    def _appearance_margin(self, images: Sequence[np.ndarray]) -> np.ndarray:
        residual = -self.appearance.score_samples(np.stack([layout_vector(image) for image in images]))
        return (residual - self.thresholds["appearance"]) / self.scales["appearance"]

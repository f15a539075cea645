"""Fitting the artefacts a model folder holds: the model, its card, its guard, site profiles."""

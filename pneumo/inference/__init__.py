"""Applying a model: scoring films (guard, calibration, verdict), explaining them, site profiles."""

"""The app's pages (home, diagnose, explorer, model) and what only they share.

``widgets`` draws the pieces several pages show; ``caches`` keeps the loaded model and
derived data per process and each session's results per session. Everything that computes
lives in :mod:`pneumo`.
"""

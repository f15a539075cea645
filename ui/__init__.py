"""What the Streamlit pages share: cached models and data (``state``) and small drawing helpers (``common``).

Everything that computes lives in :mod:`pneumo`; this package only caches its results
per process or per session and draws the pieces several pages show.
"""

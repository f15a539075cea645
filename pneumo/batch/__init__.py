"""Scoring whole archives: a results file that survives interruptions, and the engines that fill it.

``results`` keeps the output (CSV or Parquet) resumable, keyed by path and file checksum;
``engines`` scores the files, in this process (``local``) or on a Ray cluster (``ray``).
Both give the same rows for the same films.
"""

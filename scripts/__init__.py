"""Scripts run by hand from the repository root, e.g. ``.venv/bin/python -m scripts.load_check``."""

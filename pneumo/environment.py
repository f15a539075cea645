"""Settings of the process that must be made before TensorFlow is first imported.

The entry points (``python -m pneumo``, ``app.py``, ``scripts/load_check.py``) call
:func:`quiet_tensorflow` first; nothing here runs at import.
"""

from __future__ import annotations

import os

TF_LOG_LEVEL = "2"
"""TensorFlow's C++ logging: 2 keeps errors and drops its info and warning lines."""


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up chatter off the terminal, unless the user set a level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)

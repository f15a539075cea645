"""Debian's Chromium for Playwright, and the page elements the browser tests wait on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
"""Without the networking flags Chromium keeps trying hosts this machine cannot reach."""
VIEWPORT = {"width": 1360, "height": 900}
"""A desktop-sized window, so pages (and screenshots) show the layout people see."""
FIRST_RENDER_MS = 90_000
"""The first page render includes TensorFlow's import and the model's load."""

UPLOADER = '[data-testid="stFileUploader"] input[type="file"]'
MAIN = '[data-testid="stMain"]'
CHART = '[data-testid="stPlotlyChart"] .js-plotly-plot'
EXCEPTION = '[data-testid="stException"]'
ERROR_ALERT = '[data-testid="stAlertContentError"]'


def chromium_env(profile_dir: Path) -> dict[str, str]:
    """Chromium kept out of the real home folder: home, config, cache and temp under ``profile_dir``."""
    return {**os.environ, "HOME": str(profile_dir), "XDG_CONFIG_HOME": str(profile_dir / "config"),
            "XDG_CACHE_HOME": str(profile_dir / "cache"), "TMPDIR": str(profile_dir)}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """pytest-playwright's launch arguments: Debian's Chromium, kept off the network and out of the real home.

    Imported by each browser test module, so they all launch the same browser.
    """
    env = chromium_env(tmp_path_factory.mktemp("chromium-home"))
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS, "env": env}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    """A desktop-sized window so the screenshots show the layout people see."""
    return {**browser_context_args, "viewport": VIEWPORT}


def wait_until_idle(page, timeout_ms: float = 30_000) -> None:
    """Wait until Streamlit's script run has finished (its status widget is gone)."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                           timeout=timeout_ms)

"""The app served for a real browser: ``streamlit run app.py`` on a free local port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 90.0


@dataclass(frozen=True)
class AppServer:
    """A running ``streamlit run app.py``: its address, process and log file."""

    url: str
    process: subprocess.Popen
    log_path: Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    """Poll Streamlit's health endpoint until it answers ok; fail if the server dies or stalls."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"streamlit did not become healthy within {timeout_s} s")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to this process only; SIGKILL if it has not ended after 15 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def serve_app(log_path: Path, startup_s: float = STARTUP_S, port: int | None = None,
              extra_args: Sequence[str] = ()) -> Iterator[AppServer]:
    """The app served on a local port (no shell, so the PID is the server's); stopped on exit.

    Args:
        log_path: where the server's output goes.
        startup_s: how long to wait for the health check.
        port: the port to serve on (None: a free one).
        extra_args: more ``streamlit run`` options, e.g. ``["--secrets.files", path]``.
    """
    port = free_port() if port is None else port
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", *extra_args]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process, startup_s)
            yield AppServer(url, process, log_path)
        finally:
            stop(process)


def log_problems(log_text: str, names: Sequence[str]) -> list[str]:
    """What the server log must not hold: tracebacks and uploaded file names."""
    problems = ["a traceback"] if "Traceback" in log_text else []
    return problems + [f"the file name {name}" for name in names if name in log_text]

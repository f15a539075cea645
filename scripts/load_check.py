"""Load check: several browser sessions at once, and memory over many predictions.

Run it from the repository root, with the project's environment::

    .venv/bin/python -m scripts.load_check                 # 8 sessions, then 200 predictions
    .venv/bin/python -m scripts.load_check --sessions 4 --predictions 50
    .venv/bin/python -m scripts.load_check --no-browser    # the memory check only

Sessions: one Streamlit server (``streamlit run app.py`` on a free local port), one
Debian Chromium (/usr/bin/chromium) and one browser context per session, so each has its
own Streamlit session. Every session opens /diagnose; then all upload a different real
film at the same moment. Each page must show exactly the probability that
:class:`pneumo.predict.Classifier` gives for its own film (computed here, with the same
model), its own file name and no other session's, no traceback and no error; the server
log must hold no traceback and no uploaded file name. The server's resident memory
(VmRSS in /proc/PID/status) is read before and after.

Memory: in this process, what the app computes for an upload (``Classifier.assess``, the
10-90% interval and a Grad-CAM map) for consecutive different real films, each enlarged to
a clinical size (the shared films are 224 pixels a side); resident memory after a warm-up
and at the end must differ by less than a generous bound.

Prints a summary; exits 0 when every check passed, 1 otherwise. tests/test_concurrency.py
runs the same functions under pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import gc
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pneumo import data, store
from pneumo.predict import STATUS_OK
from pneumo.present import format_probability

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

    from pneumo.predict import Classifier
    from pneumo.store import LoadedModel

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
STARTUP_S = 90.0
FIRST_RENDER_MS = 90_000
PAGE_MS = 60_000
RESULT_MS = 60_000

UPLOADER = '[data-testid="stFileUploader"] input[type="file"]'
MAIN = '[data-testid="stMain"]'
EXCEPTION = '[data-testid="stException"]'
ERROR_ALERT = '[data-testid="stAlertContentError"]'
SETTLED_JS = ("() => !document.querySelector("
              "'[data-testid=\"stStatusWidget\"], [data-testid=\"stSkeleton\"]')")
"""The script run has ended (no status widget) and every element has been drawn: the frontend
loads the code of some elements (images, HTML markdown, widgets) on first use and shows a
skeleton until then, which takes a while with eight pages on two cores."""
PROBABILITY = re.compile(r"P\(pneumonia\) = (\d\.\d{4})")
"""The exact probability as the diagnose page writes it (pneumo.present.format_probability)."""

SESSIONS = 8
PREDICTIONS = 200
WARMUP = 20
GROWTH_LIMIT_MB = 150.0
SAMPLE_EVERY = 50


# -- films and expected answers -----------------------------------------------------------------

@dataclass(frozen=True)
class Expected:
    """A film and the probability the page must show for it."""

    path: Path
    probability: str  # formatted as the page shows it


def film_sequence(count: int, train_dir: Path | None = None) -> list[Path]:
    """``count`` different real films, NORMAL and PNEUMONIA in turn (sorted names).

    Raises:
        FileNotFoundError: the data set holds fewer films.
    """
    root = train_dir or data.default_data_dir() / "train"
    normal, pneumonia = (sorted((root / name).glob("*.jpeg")) for name in data.CLASSES)
    films = [film for pair in zip(normal, pneumonia) for film in pair][:count]
    if len(films) < count:
        raise FileNotFoundError(f"needs {count} films under {root}, found {len(films)}")
    return films


def expected_results(classifier: Classifier, count: int) -> list[Expected]:
    """``count`` films the classifier judges in scope, each with a probability no other has.

    Distinct probabilities make a swapped result visible. Films the guard refuses are
    skipped: their page shows a warning, not a probability.
    """
    chosen: list[Expected] = []
    for path in film_sequence(count * 4):
        assessment = classifier.assess(path.read_bytes(), name=path.name)
        shown = format_probability(assessment.p_pneumonia or 0.0)
        if assessment.status == STATUS_OK and shown not in {e.probability for e in chosen}:
            chosen.append(Expected(path, shown))
        if len(chosen) == count:
            return chosen
    raise FileNotFoundError(f"found only {len(chosen)} in-scope films with distinct probabilities")


# -- resident memory ----------------------------------------------------------------------------

def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB, from /proc/PID/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS line in /proc/{pid}/status")


# -- the server ---------------------------------------------------------------------------------

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
def serve_app(log_path: Path, startup_s: float = STARTUP_S) -> Iterator[AppServer]:
    """The app served on a free local port (no shell, so the PID is the server's); stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
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


# -- the browser sessions -----------------------------------------------------------------------

@dataclass
class SessionResult:
    """What one session's page showed after its upload."""

    film: str
    expected: str
    shown: list[str] = field(default_factory=list)  # every probability on the page
    own_name_shown: bool = False
    other_names: list[str] = field(default_factory=list)  # other sessions' films named on the page
    exceptions: int = 0
    error_alerts: int = 0
    page_errors: list[str] = field(default_factory=list)  # JavaScript errors
    seconds: float = 0.0  # from the common start of the uploads to this page's probability

    @property
    def problems(self) -> list[str]:
        """What is wrong with the page, in words; empty when it showed exactly its own result."""
        checks = {f"shows {self.shown or 'no probability'}, not {self.expected}": self.shown != [self.expected],
                  "does not name its own film": not self.own_name_shown,
                  f"names other sessions' films {self.other_names}": bool(self.other_names),
                  f"{self.exceptions} traceback(s)": bool(self.exceptions),
                  f"{self.error_alerts} error alert(s)": bool(self.error_alerts),
                  f"JavaScript errors {self.page_errors}": bool(self.page_errors)}
        return [problem for problem, failed in checks.items() if failed]

    @property
    def ok(self) -> bool:
        """Exactly its own probability and name, nothing of the others, no error of any kind."""
        return not self.problems


@dataclass
class SessionRun:
    """The outcome of a run: per-session results, timing and the server's memory."""

    results: list[SessionResult]
    wall_s: float  # from the common start of the uploads until every page had settled
    server_rss_before_mb: float
    server_rss_after_mb: float
    log_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results) and not self.log_problems


def chromium_env(profile_dir: Path) -> dict[str, str]:
    """Chromium kept out of the real home folder."""
    return {**os.environ, "HOME": str(profile_dir), "XDG_CONFIG_HOME": str(profile_dir / "config"),
            "XDG_CACHE_HOME": str(profile_dir / "cache"), "TMPDIR": str(profile_dir)}


async def open_diagnose(browser: Browser, url: str, timeout_ms: int) -> Page:
    """A new browser context (its own Streamlit session) showing /diagnose, idle."""
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    page = await context.new_page()
    await page.goto(f"{url}/diagnose")
    await page.locator(UPLOADER).wait_for(state="attached", timeout=timeout_ms)
    await page.wait_for_function(SETTLED_JS, timeout=timeout_ms)
    return page


async def upload_and_read(page: Page, expected: Expected, all_names: Sequence[str],
                          start: float) -> SessionResult:
    """Upload one film, wait for its probability and for the page to settle, and read the page."""
    result = SessionResult(film=expected.path.name, expected=expected.probability)
    page.on("pageerror", lambda error: result.page_errors.append(str(error)))
    await page.locator(UPLOADER).set_input_files(str(expected.path))
    await page.get_by_text(PROBABILITY).first.wait_for(timeout=RESULT_MS)
    result.seconds = time.perf_counter() - start
    await page.wait_for_function(SETTLED_JS, timeout=RESULT_MS)
    text = await page.locator(MAIN).inner_text()
    result.shown = PROBABILITY.findall(text)
    result.own_name_shown = result.film in text
    result.other_names = [name for name in all_names if name != result.film and name in text]
    result.exceptions = await page.locator(EXCEPTION).count()
    result.error_alerts = await page.locator(ERROR_ALERT).count()
    return result


async def sessions_at_once(url: str, films: Sequence[Expected], server_rss: Callable[[], float],
                           profile_dir: Path) -> SessionRun:
    """Warm the server with one page, open one session per film, upload all films at once."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                                   env=chromium_env(profile_dir))
        try:
            warm = await open_diagnose(browser, url, FIRST_RENDER_MS)  # TensorFlow import, model load
            await warm.context.close()
            rss_before = server_rss()
            pages = await asyncio.gather(*(open_diagnose(browser, url, PAGE_MS) for _ in films))
            names = [film.path.name for film in films]
            start = time.perf_counter()
            results = await asyncio.gather(*(upload_and_read(page, film, names, start)
                                             for page, film in zip(pages, films)))
            wall_s = time.perf_counter() - start
            return SessionRun(list(results), wall_s, rss_before, server_rss())
        finally:
            await browser.close()


def run_sessions(server: AppServer, films: Sequence[Expected]) -> SessionRun:
    """Run :func:`sessions_at_once` against a server and check its log.

    Playwright's async API runs in a fresh thread with its own event loop, so this works
    from any caller, also one whose thread already runs Playwright's sync API (pytest-playwright).
    Chromium's home is a short temporary path: its socket path must stay under 108 bytes.
    """
    pid = server.process.pid
    with tempfile.TemporaryDirectory(prefix="pneumo-chromium-") as profile_dir, \
            concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        run = pool.submit(asyncio.run, sessions_at_once(server.url, films, lambda: rss_mb(pid),
                                                        Path(profile_dir))).result()
    run.log_problems = log_problems(server.log_path.read_text(errors="replace"),
                                    [film.path.name for film in films])
    return run


def format_sessions(run: SessionRun) -> str:
    """The session check as a few lines of text."""
    lines = [f"{len(run.results)} sessions uploading at once: every page settled after {run.wall_s:.1f} s"]
    for r in run.results:
        lines.append(f"  {r.film:<32} expected {r.expected}  shown {', '.join(r.shown) or '-':<8} "
                     f"{r.seconds:5.1f} s  {'; '.join(r.problems) or 'ok'}")
    matched = sum(r.shown == [r.expected] for r in run.results)
    lines.append(f"  probabilities matched: {matched} of {len(run.results)}")
    lines.append(f"  server RSS: {run.server_rss_before_mb:.0f} MB before, "
                 f"{run.server_rss_after_mb:.0f} MB after "
                 f"({run.server_rss_after_mb - run.server_rss_before_mb:+.0f} MB)")
    if run.log_problems:
        lines.append(f"  server log holds: {', '.join(run.log_problems)}")
    return "\n".join(lines)


# -- memory over many predictions ---------------------------------------------------------------

@dataclass
class MemoryRun:
    """Resident memory of this process over consecutive predictions."""

    predictions: int
    before_mb: float  # after the warm-up
    after_mb: float
    samples: list[tuple[int, float]]  # (predictions done after the warm-up, RSS MB)
    seconds: float

    @property
    def growth_mb(self) -> float:
        return self.after_mb - self.before_mb


def clinical_size_jpeg(path: Path, index: int) -> bytes:
    """A film enlarged to a clinical size, as JPEG bytes; the size differs from film to film.

    The shared films are 224 pixels a side, films from a clinic two to three thousand, and
    what an upload could leave behind grows with its size: at 224 pixels a leaked film is too
    small to see. Sizes vary so that anything cached per image shape would show too.
    """
    from PIL import Image

    width, height = 1800 + index * 97 % 700, 2000 + index * 61 % 600
    with Image.open(path) as image:
        enlarged = image.convert("L").resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    enlarged.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def predict_like_the_app(classifier: Classifier, explainer, name: str, upload: bytes) -> None:
    """What the diagnose page computes for one upload: assessment, interval and Grad-CAM map."""
    from pneumo.preprocess import to_model_input

    assessment = classifier.assess(upload, name=name)
    if assessment.film is not None:
        classifier.uncertainty(assessment.film)
        explainer.heatmap(to_model_input(assessment.film, explainer.size), "gradcam")


def settled_rss_mb() -> float:
    """This process's resident memory after a garbage collection."""
    gc.collect()
    return rss_mb()


def memory_check(loaded: LoadedModel, predictions: int = PREDICTIONS, warmup: int = WARMUP) -> MemoryRun:
    """Predict like the app for ``warmup`` films, read RSS, then for ``predictions`` more.

    Each film is a different real one, enlarged to a clinical size (:func:`clinical_size_jpeg`).
    """
    from pneumo.explain import Explainer
    from pneumo.predict import Classifier

    classifier, explainer = Classifier(loaded), Explainer(loaded)
    films = film_sequence(warmup + predictions)

    def predict(index: int) -> None:
        predict_like_the_app(classifier, explainer, films[index].name,
                             clinical_size_jpeg(films[index], index))

    for index in range(warmup):
        predict(index)
    before = settled_rss_mb()
    samples: list[tuple[int, float]] = [(0, before)]
    start = time.perf_counter()
    for done in range(1, predictions + 1):
        predict(warmup + done - 1)
        if done % SAMPLE_EVERY == 0 or done == predictions:
            samples.append((done, settled_rss_mb()))
    return MemoryRun(predictions, before, samples[-1][1], samples, time.perf_counter() - start)


def format_memory(run: MemoryRun) -> str:
    """The memory check as a few lines of text."""
    trail = ", ".join(f"{done}: {mb:.0f}" for done, mb in run.samples)
    return (f"memory over {run.predictions} predictions (clinical-size JPEGs; assess + interval + Grad-CAM, "
            f"{run.seconds / run.predictions * 1000:.0f} ms each): RSS {run.before_mb:.0f} MB after the "
            f"warm-up, {run.after_mb:.0f} MB at the end ({run.growth_mb:+.0f} MB)\n  RSS by predictions "
            f"done: {trail}")


# -- command line -------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.load_check", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=SESSIONS, help="browser sessions at once")
    parser.add_argument("--predictions", type=int, default=PREDICTIONS, help="predictions after the warm-up")
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--growth-limit-mb", type=float, default=GROWTH_LIMIT_MB)
    parser.add_argument("--no-browser", action="store_true", help="skip the browser sessions")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory check")
    return parser.parse_args(argv)


def check_sessions(loaded: LoadedModel, count: int) -> bool:
    """Serve the app, run the sessions, print the summary; True when all passed."""
    from pneumo.predict import Classifier

    films = expected_results(Classifier(loaded), count)
    with tempfile.TemporaryDirectory(prefix="load-check-") as folder:
        with serve_app(Path(folder) / "server.log") as server:
            run = run_sessions(server, films)
        print(format_sessions(run), flush=True)
    return run.ok


def check_memory(loaded: LoadedModel, predictions: int, warmup: int, limit_mb: float) -> bool:
    """Run the memory check, print the summary; True when the growth stayed under the limit."""
    run = memory_check(loaded, predictions, warmup)
    passed = run.growth_mb < limit_mb
    print(format_memory(run) + f"\n  limit {limit_mb:.0f} MB: {'ok' if passed else 'FAILED'}", flush=True)
    return passed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks asked for; 0 when all passed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    loaded = store.load()
    passed = True
    if not args.no_browser:
        passed &= check_sessions(loaded, args.sessions)
    if not args.no_memory:
        passed &= check_memory(loaded, args.predictions, args.warmup, args.growth_limit_mb)
    print("load check passed" if passed else "load check FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

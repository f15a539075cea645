"""Several browser sessions at once, each uploading its own film to /diagnose.

One Streamlit server (:func:`tests.support.app_server.serve_app`), one Debian Chromium and one
browser context per session, so each has its own Streamlit session. Every session opens
/diagnose; then all upload a different real film at the same moment. Each page must show
exactly the probability that :class:`pneumo.inference.predict.Classifier` gives for its own
film (computed here, with the same model), its own file name and no other session's, no
traceback and no error; the server log must hold no traceback and no uploaded file name. The
server's resident memory (VmRSS in /proc/PID/status) is read before and after.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pneumo.inference.predict import STATUS_OK
from pneumo.render.wording import format_probability
from tests.support.app_server import AppServer, log_problems
from tests.support.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ERROR_ALERT,
    EXCEPTION,
    FIRST_RENDER_MS,
    MAIN,
    UPLOADER,
    VIEWPORT,
    chromium_env,
)
from tests.support.data import film_sequence
from tests.support.memory import rss_mb

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

    from pneumo.inference.predict import Classifier

SESSIONS = 8
PAGE_MS = 60_000
RESULT_MS = 60_000
SETTLED_JS = ("() => !document.querySelector("
              "'[data-testid=\"stStatusWidget\"], [data-testid=\"stSkeleton\"]')")
"""The script run has ended (no status widget) and every element has been drawn: the frontend
loads the code of some elements (images, HTML markdown, widgets) on first use and shows a
skeleton until then, which takes a while with eight pages on two cores."""
PROBABILITY = re.compile(r"P\(pneumonia\) = (\d\.\d{4})")
"""The exact probability as the diagnose page writes it (pneumo.render.wording.format_probability)."""


@dataclass(frozen=True)
class Expected:
    """A film and the probability the page must show for it."""

    path: Path
    probability: str  # formatted as the page shows it


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


async def open_diagnose(browser: Browser, url: str, timeout_ms: int) -> Page:
    """A new browser context (its own Streamlit session) showing /diagnose, idle."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    await page.goto(f"{url}/diagnose", timeout=timeout_ms)
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

"""Sign-in with OpenID Connect (``st.login``): off without secrets, required on every page with them.

The browser tests run a real provider (``oidc-provider-mock``) on loopback, serve the app with a
temporary secrets file pointing at it (``--secrets.files``, never the repository's
``.streamlit/``), and drive Debian's Chromium: a signed-out browser sees the sign-in page only,
on every URL; signing in at the provider shows the app; signing out shows the sign-in page again.
The AppTest tests check the same frame without a browser, and that without secrets nothing changes.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit import config
from streamlit.runtime.secrets import Secrets
from streamlit.testing.v1 import AppTest

from app_pages import signin
from pneumo import store
from pneumo.render.wording import DISCLAIMER
from tests.support.app_server import AppServer, free_port, log_problems, serve_app
from tests.support.browser import (
    CHROMIUM,
    EXCEPTION,
    FIRST_RENDER_MS,
    MAIN,
    UPLOADER,
    browser_context_args,  # noqa: F401 (pytest-playwright fixture, shared)
    browser_type_launch_args,  # noqa: F401 (pytest-playwright fixture, shared)
    wait_until_idle,
)
from tests.support.oidc import CLIENT_ID, CLIENT_SECRET, running_provider, write_secrets

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT_S = 90
STEP_MS = 30_000
PATHS = ("/", "/diagnose", "/explorer", "/model", "/worklist")
SUB, NAME = "dr.ada@example.org", "Dr Ada Lovelace"
SIGN_IN = {"role": "button", "name": "Sign in", "exact": True}
SIGN_OUT = {"role": "button", "name": "Sign out", "exact": True}


def auth_secrets(metadata_url: str) -> dict:
    """An ``[auth]`` section as AppTest's ``secrets`` takes it."""
    return {"auth": {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x" * 32,
                     "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                     "server_metadata_url": metadata_url}}


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"


@pytest.fixture
def secrets_files(monkeypatch) -> Iterator:
    """``use(*paths)``: Streamlit reads its secrets from these files only (and afresh) for this test."""
    saved = config.get_option("secrets.files")

    def use(*paths: Path) -> None:
        monkeypatch.setattr(st, "secrets", Secrets())  # unparsed, so the new paths count
        config.set_option("secrets.files", [str(path) for path in paths])

    yield use
    config.set_option("secrets.files", saved)


def _texts(at: AppTest) -> str:
    kinds = ("markdown", "caption", "title", "header", "subheader", "error", "warning", "info")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception
    return at


# Without secrets: the app as before.

def test_sign_in_is_off_without_a_secrets_file(secrets_files, tmp_path):
    secrets_files(tmp_path / "no-such" / "secrets.toml")
    assert signin.sign_in_configured() is False
    assert signin.current_user() == signin.LOCAL_USER == "local (no sign-in)"


def test_app_without_secrets_draws_as_before_with_no_sign_in(secrets_files, tmp_path):
    secrets_files(tmp_path / "secrets.toml")
    at = _run(AppTest.from_file(APP, default_timeout=TIMEOUT_S))
    texts = _texts(at)
    assert DISCLAIMER in texts
    assert "Signed in as" not in texts and not at.error
    assert [b.key for b in at.button if b.key in (signin.SIGN_IN_KEY, signin.SIGN_OUT_KEY)] == []


@pytest.mark.parametrize("address", ["0.0.0.0", "10.0.0.5", ""])
def test_without_sign_in_an_app_served_to_other_computers_shows_no_page(secrets_files, tmp_path, monkeypatch,
                                                                       address):
    secrets_files(tmp_path / "secrets.toml")
    saved = config.get_option("server.address")
    config.set_option("server.address", address)
    try:
        at = _run(AppTest.from_file(APP, default_timeout=TIMEOUT_S))
        assert len(at.error) == 1 and at.error[0].value.startswith(
            f"Sign-in is not configured and the app answers on {address or 'every address'}, so other computers")
        assert DISCLAIMER not in _texts(at) and not at.button and not at.sidebar.children
        monkeypatch.setenv(signin.OPEN_ENV, "1")  # the operator's choice: a signing-in proxy in front
        at = _run(AppTest.from_file(APP, default_timeout=TIMEOUT_S))
        assert DISCLAIMER in _texts(at) and not at.error
    finally:
        config.set_option("server.address", saved)


def test_the_app_answers_on_this_machine_only_unless_told():
    import tomllib

    settings = tomllib.loads((Path(APP).parent / ".streamlit" / "config.toml").read_text())
    assert signin.is_loopback(settings["server"]["address"])


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.0.1.1", True), ("localhost", True), ("LOCALHOST", True), ("::1", True),
    ("[::1]", True), ("0:0:0:0:0:0:0:1", True), ("0.0.0.0", False), ("10.0.0.5", False), ("::", False),
    ("pneumo.hospital.example", False), ("", False), (None, False)])
def test_loopback_in_any_spelling_is_this_machine_only(address, loopback):
    assert signin.is_loopback(address) is loopback


def test_current_user_in_a_run_without_secrets_is_local(secrets_files, tmp_path):
    secrets_files(tmp_path / "secrets.toml")

    def script():
        import streamlit as st

        from app_pages.signin import current_user
        st.markdown(f"user={current_user()}")

    at = _run(AppTest.from_function(script))
    assert at.markdown[0].value == "user=local (no sign-in)"


def test_an_unreadable_secrets_file_stops_every_page(secrets_files, tmp_path):
    broken = tmp_path / "secrets.toml"
    broken.write_text('[auth]\nredirect_uri = "http://127.0.0.1:8501/oauth2callback\n')  # unclosed string
    secrets_files(broken)
    at = _run(AppTest.from_file(APP, default_timeout=TIMEOUT_S))
    assert len(at.error) == 1 and "cannot be read" in at.error[0].value and str(broken) in at.error[0].value
    assert DISCLAIMER not in _texts(at) and not at.button and not at.sidebar.children


# With secrets, through AppTest (st.user seeded, no provider).

def test_signed_out_app_draws_the_sign_in_page_only():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.secrets = auth_secrets(closed_port_url())
    at.user = {"is_logged_in": False}
    _run(at)
    assert [b.key for b in at.button] == [signin.SIGN_IN_KEY]
    assert [t.value for t in at.title] == [signin.PRODUCT]
    assert DISCLAIMER not in _texts(at) and not at.header and not at.sidebar.children


def test_an_unreachable_provider_is_one_sentence():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.secrets = auth_secrets(closed_port_url())
    at.user = {"is_logged_in": False}
    _run(at)
    at.button(key=signin.SIGN_IN_KEY).click()
    _run(at)
    assert len(at.error) == 1 and "sign-in service cannot be reached" in at.error[0].value
    assert "Traceback" not in _texts(at)


def test_signed_in_app_names_the_user_in_the_sidebar():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.secrets = auth_secrets(closed_port_url())
    at.user = {"is_logged_in": True, "name": NAME, "email": SUB, "sub": "0042"}
    _run(at)
    assert f"Signed in as **{NAME}**" in at.sidebar.caption[0].value
    assert at.sidebar.button(key=signin.SIGN_OUT_KEY).label == "Sign out"
    assert DISCLAIMER in _texts(at)


@pytest.mark.parametrize("user, expected", [
    ({"is_logged_in": True, "name": NAME, "email": SUB, "sub": "0042"}, SUB),
    ({"is_logged_in": True, "sub": "0042"}, "0042"),
    ({"is_logged_in": False}, signin.NOT_SIGNED_IN),
])
def test_current_user_is_the_email_else_the_subject(user, expected):
    def script():
        import streamlit as st

        from app_pages.signin import current_user
        st.markdown(f"user={current_user()}")

    at = AppTest.from_function(script)
    at.secrets = auth_secrets(closed_port_url())
    at.user = user
    assert _run(at).markdown[0].value == f"user={expected}"


# With secrets, in Chromium, against a real provider.

@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    """The mock OpenID Connect provider on loopback, with one user who has a name and an email."""
    with running_provider() as url:
        request = urllib.request.Request(f"{url}/users/{SUB}", method="PUT",
                                         data=json.dumps({"email": SUB, "name": NAME}).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()
        yield url


@pytest.fixture(scope="module")
def signin_app(issuer: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app with sign-in at ``issuer``, its secrets in a temporary file."""
    if not CHROMIUM.exists():
        pytest.skip(f"the browser tests need Debian's Chromium at {CHROMIUM} (make debian-tools)")
    folder = tmp_path_factory.mktemp("signin")
    port = free_port()
    secrets = write_secrets(folder / "secrets.toml", issuer, port)
    with serve_app(folder / "server.log", port=port, extra_args=["--secrets.files", str(secrets)]) as server:
        yield server


def assert_sign_in_page_only(page) -> None:
    """The sign-in page and nothing of the app: no navigation, sidebar, uploader, model or verdict."""
    page.get_by_role(**SIGN_IN).wait_for(timeout=FIRST_RENDER_MS)
    wait_until_idle(page, STEP_MS)
    page.wait_for_timeout(500)  # anything the script drew after the button has reached the page
    text = page.locator(MAIN).inner_text()
    assert signin.WHAT_IT_IS in text
    for selector in ('[data-testid="stSidebarNav"]', '[data-testid="stSidebar"]',
                     '[data-testid="stFileUploader"]', '[data-testid="stPlotlyChart"]', EXCEPTION):
        assert page.locator(selector).count() == 0, selector
    assert page.locator(MAIN).get_by_role("button").count() == 1
    for words in ("it does not diagnose", "Model", "version", "threshold", "PNEUMONIA", "NORMAL",
                  "Signed in as", *_model_names()):
        assert words not in text, words


def _model_names() -> list[str]:
    try:
        return [store.default_model_name()]
    except store.ModelStoreError:
        return []


def sign_in(page, app: AppServer, issuer: str) -> None:
    """Sign in as :data:`SUB` at the provider's form, and wait for the app's sidebar to name the user."""
    page.goto(app.url)
    page.get_by_role(**SIGN_IN).click()
    page.wait_for_url(f"{issuer}/oauth2/authorize**", timeout=STEP_MS)
    page.locator('input[name="sub"]').fill(SUB)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{app.url}/", timeout=STEP_MS)
    page.get_by_text("Signed in as").wait_for(timeout=FIRST_RENDER_MS)


@pytest.mark.browser
@pytest.mark.parametrize("path", PATHS)
def test_a_signed_out_browser_sees_only_the_sign_in_page(page, signin_app: AppServer, path: str) -> None:
    page.goto(signin_app.url + path)
    assert_sign_in_page_only(page)
    assert page.url == signin_app.url + path  # the page's own URL, not a "page not found" redirect


@pytest.mark.browser
def test_signing_in_at_the_provider_shows_the_app(page, signin_app: AppServer, issuer: str) -> None:
    if not _model_names():
        pytest.skip("the app's pages need a model in the store")
    sign_in(page, signin_app, issuer)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert f"Signed in as {NAME}" in sidebar.inner_text()
    assert page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Diagnose").count() == 1
    page.get_by_text("it does not diagnose").first.wait_for(timeout=FIRST_RENDER_MS)
    page.get_by_role("heading", name="The model in use").wait_for(timeout=FIRST_RENDER_MS)

    page.goto(f"{signin_app.url}/diagnose")  # a new session: the identity cookie signs it in
    page.locator(UPLOADER).wait_for(state="attached", timeout=FIRST_RENDER_MS)
    page.get_by_text(f"Signed in as {NAME}").wait_for(timeout=STEP_MS)
    wait_until_idle(page, STEP_MS)
    assert page.locator(EXCEPTION).count() == 0


@pytest.mark.browser
def test_signing_out_returns_to_the_sign_in_page(page, signin_app: AppServer, issuer: str) -> None:
    sign_in(page, signin_app, issuer)
    page.get_by_role(**SIGN_OUT).click()
    page.wait_for_url(f"{issuer}/oauth2/end_session**", timeout=STEP_MS)  # the provider ends its session too
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{signin_app.url}/", timeout=STEP_MS)
    assert_sign_in_page_only(page)
    page.goto(f"{signin_app.url}/diagnose")  # the identity cookie is gone, not only this session's user
    assert_sign_in_page_only(page)
    assert log_problems(signin_app.log_path.read_text(), []) == []

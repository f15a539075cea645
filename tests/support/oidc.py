"""A real OpenID Connect provider for the tests: ``oidc-provider-mock`` on loopback, and secrets for it.

:func:`running_provider` serves the mock (a Flask app using Authlib's provider code) on a free
port of 127.0.0.1 in a background thread and yields its issuer URL. Its sign-in page is a form
asking for a subject (``sub``); a new subject's email claim is the subject itself. Any client id
and secret are accepted. :func:`write_secrets` writes the ``[auth]`` section Streamlit's
``st.login`` reads, for an app on a given port; start the app with ``--secrets.files PATH``
so the repository's ``.streamlit/`` is never touched.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import werkzeug.serving
from oidc_provider_mock import app as provider_app

CLIENT_ID = "pneumo-tests"
CLIENT_SECRET = "not-a-secret"  # noqa: S105 - the mock accepts any secret


@contextlib.contextmanager
def running_provider() -> Iterator[str]:
    """The mock provider on a free port of 127.0.0.1; yields its issuer URL, stops it on exit."""
    # run_server_in_thread binds "localhost"; binding 127.0.0.1 ourselves keeps the issuer, the
    # browser and the app on one address.
    server = werkzeug.serving.make_server("127.0.0.1", 0, provider_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def write_secrets(path: Path, issuer: str, app_port: int) -> Path:
    """Write a ``secrets.toml`` whose ``[auth]`` section signs in at ``issuer``, for an app on ``app_port``."""
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        f'client_id = "{CLIENT_ID}"\n'
        f'client_secret = "{CLIENT_SECRET}"\n'
        f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n')
    return path

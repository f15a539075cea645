"""Sign-in with the hospital's OpenID Connect provider (Streamlit's ``st.login``), when it is configured.

Sign-in is on when the secrets file (``.streamlit/secrets.toml``, or the files the ``secrets.files``
option names) has an ``[auth]`` section. Then a browser that has not signed in sees the sign-in
page only, on every URL; a signed-in one sees the app, with who is signed in in the sidebar.
Without an ``[auth]`` section the app works with no sign-in, but only while it answers on this
machine alone (a loopback address): served to other computers without sign-in it shows no page,
unless the operator sets :data:`OPEN_ENV` (sign-in done by a proxy in front of it).
"""

from __future__ import annotations

import ipaddress
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAuthError

LOCAL_USER = "local (no sign-in)"
"""Who :func:`current_user` names when sign-in is not configured."""
NOT_SIGNED_IN = "not signed in"
"""Who :func:`current_user` names when sign-in is configured and nobody has signed in."""
SIGN_IN_KEY, SIGN_OUT_KEY = "sign_in", "sign_out"
PROVIDER_TIMEOUT_S = 5.0
OPEN_ENV = "PNEUMO_OPEN_WITHOUT_SIGN_IN"
"""Set to 1 to serve the app to other computers without its own sign-in (a signing-in proxy in front)."""
PRODUCT = "Pneumo"
WHAT_IT_IS = ("Decision support for reading children's chest X-rays: how likely pneumonia is, "
              "where the model looked, and how far to trust it.")


def is_loopback(address: str | None) -> bool:
    """Whether the app's ``server.address`` answers this machine only: ``localhost`` or a loopback IP
    (127.0.0.0/8, ``::1`` in any spelling); None or empty means every interface."""
    text = str(address or "").strip().strip("[]")
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def sign_in_configured() -> bool:
    """Whether the secrets file has an ``[auth]`` section; False (and silent) when there is no file."""
    # load_if_toml_exists answers False, without raising or drawing, when no file exists.
    return st.secrets.load_if_toml_exists() and "auth" in st.secrets


def current_user() -> str:
    """Who is signed in: the email, else the subject (``sub``).

    :data:`LOCAL_USER` when sign-in is not configured, :data:`NOT_SIGNED_IN` when it is and
    nobody has signed in (no page runs then, so only code outside the pages sees that).
    """
    if not sign_in_configured():
        return LOCAL_USER
    if not st.user.is_logged_in:
        return NOT_SIGNED_IN
    return str(st.user.get("email") or st.user.get("sub") or NOT_SIGNED_IN)


def require_sign_in(pages: Sequence[st.Page] = ()) -> None:
    """Call before any page is drawn: stop with the sign-in page unless sign-in is off or done.

    A secrets file that exists but cannot be read also stops the app (one sentence, no page):
    it may hold the ``[auth]`` section, and a typo must not open the app to everyone.

    Args:
        pages: the app's pages; each one's URL then shows the sign-in page to a signed-out
            browser (other URLs show it too, after Streamlit's "Page not found" notice).
    """
    unreadable = _unreadable_secrets_file()
    if unreadable is not None:
        st.error(f"The settings file {unreadable} cannot be read, so no page is shown; "
                 "fix it and reload.", icon=":material/error:")
        st.stop()
    if not sign_in_configured():
        address = st.get_option("server.address")
        if not is_loopback(address) and os.environ.get(OPEN_ENV) != "1":
            st.error(f"Sign-in is not configured and the app answers on {address or 'every address'}, so "
                     "other computers could see patients' films and results: no page is shown. Configure "
                     "sign-in in .streamlit/secrets.toml, serve the app on 127.0.0.1, or set "
                     f"{OPEN_ENV}=1 when a proxy in front of it signs users in.", icon=":material/lock:")
            st.stop()
        return
    if not st.user.is_logged_in:
        # The sign-in page under each page's URL, with no navigation: nothing of the app is drawn.
        sign_in_pages = [st.Page(_sign_in_page, title="Sign in", default=True)]
        sign_in_pages += [st.Page(_sign_in_page, title="Sign in", url_path=page.url_path)
                          for page in pages if page.url_path]
        st.navigation(sign_in_pages, position="hidden").run()
        st.stop()
    signed_in_ui(str(st.user.get("name") or st.user.get("email") or st.user.get("sub") or ""))


def signed_in_ui(name: str) -> None:
    """Who is signed in and a sign-out button, at the top of the sidebar."""
    with st.sidebar:
        st.caption(f":material/person: Signed in as **{name}**")
        if st.button("Sign out", key=SIGN_OUT_KEY, icon=":material/logout:"):
            st.logout()


def _sign_in_page() -> None:
    """The product, one sentence of what it is, and the sign-in button."""
    st.title(PRODUCT)
    st.markdown(WHAT_IT_IS)
    if st.button("Sign in", key=SIGN_IN_KEY, type="primary", icon=":material/login:"):
        _start_sign_in()


def _start_sign_in() -> None:
    """Hand over to the provider, or say in one sentence why that cannot happen now."""
    auth = st.secrets["auth"]
    url = str(auth.get("server_metadata_url", ""))
    # Checked first because Streamlit's own answer to an unreachable provider is a bare
    # "Authentication error" page outside the app.
    if url and not _reachable(url):
        st.error("The hospital's sign-in service cannot be reached right now; try again in a minute, "
                 "and tell IT if it stays down.", icon=":material/cloud_off:")
        return
    try:
        st.login()
    except StreamlitAuthError as error:
        st.error(f"Sign-in is not set up completely in the secrets file: {' '.join(str(error).split())}",
                 icon=":material/error:")


def _reachable(url: str) -> bool:
    """Whether the provider's metadata answers at ``url`` within :data:`PROVIDER_TIMEOUT_S`."""
    try:
        with urllib.request.urlopen(url, timeout=PROVIDER_TIMEOUT_S) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _unreadable_secrets_file() -> str | None:
    """A secrets file that exists although Streamlit could not load the secrets; None otherwise."""
    if st.secrets.load_if_toml_exists():
        return None
    present = [name for name in st.get_option("secrets.files") if Path(name).is_file()]
    return present[0] if present else None

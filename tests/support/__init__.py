"""Helpers shared by the tests and by ``python -m scripts.load_check``; no tests here.

- :mod:`tests.support.data`: where the real films are, and skipping (or failing in CI) without them.
- :mod:`tests.support.app_server`: ``streamlit run app.py`` on a free local port, and its log.
- :mod:`tests.support.browser`: Debian's Chromium for Playwright, and the page elements tests wait on.
- :mod:`tests.support.sessions`: several browser sessions uploading at once, each checked.
- :mod:`tests.support.memory`: resident memory over many predictions like the app's.
- :mod:`tests.support.dicom_films`: DICOM files built in memory, with patient identifiers.
- :mod:`tests.support.scu`: a DICOM sender of real films, and a storage SCP standing in for the PACS.
- :mod:`tests.support.orthanc`: Debian's Orthanc on loopback with a temporary configuration, and its REST API.
- :mod:`tests.support.oidc`: a real OpenID Connect provider (oidc-provider-mock) on loopback, and secrets for it.
- :mod:`tests.support.films`: what the film-reading tests share (exact grey levels, error wording).
"""

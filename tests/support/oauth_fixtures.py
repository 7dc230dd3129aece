"""pytest fixtures for OAuth2 tests: a loopback identity provider and OAuth-only SMTP providers.

Use them from a test module with::

    from tests.support.oauth_fixtures import *  # noqa: F403  (fixtures + OAUTH_USER/CLIENT_ID)

The SMTP providers present a certificate from the session CA of
:mod:`tests.support.smtp_fixtures` (valid for ``PROVIDER_HOSTNAME``, ``localhost`` and
``127.0.0.1``) and accept only access tokens that the function-scoped ``idp`` issued -- for the
subject the SASL message names. Get one with ``idp.issue_access_token(CLIENT_ID, OAUTH_USER)``,
or the real way: ``idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)`` and a refresh grant at
``idp.token_url``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.idp import IdentityProvider
from tests.support.smtp_fixtures import PROVIDER_CERT_NAMES, PROVIDER_HOSTNAME, client_tls_context, test_ca
from tests.support.smtpserver import Provider, TestCA

OAUTH_USER = "app@corp.example"
CLIENT_ID = "9e5f94bc-e8a4-4e73-b8be-63364c29d753"
# Where the client tests keep their smtpconf file: the token command only works if each client
# file quotes the path.
ODD_DIRECTORY = "conf 'dir' $HOME `x` %s"


def login_directory(tmp_path: Path, idp: IdentityProvider) -> tuple[Path, str]:
    """ODD_DIRECTORY under ``tmp_path``, holding ``refresh.token`` (0600): a refresh token the IdP
    issued for OAUTH_USER, as ``smtpconf oauth2 login --out`` leaves it. Returns both."""
    directory = tmp_path / ODD_DIRECTORY
    directory.mkdir()
    refresh = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    secret = directory / "refresh.token"
    secret.write_text(refresh + "\n", encoding="utf-8")
    secret.chmod(0o600)
    return directory, refresh


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    """A fresh loopback OAuth2 identity provider (default knobs) for each test."""
    with IdentityProvider() as provider:
        yield provider


def _oauth_provider(
    test_ca: TestCA, idp: IdentityProvider, mode: str, mechanism: str
) -> Iterator[Provider]:
    with Provider(
        "starttls" if mode == "starttls" else "tls",
        oauth=idp,
        oauth_mechanisms=(mechanism,),
        ssl_context=test_ca.issue(PROVIDER_CERT_NAMES),
        hostname=PROVIDER_HOSTNAME,
    ) as provider:
        yield provider


@pytest.fixture
def xoauth2_provider(test_ca: TestCA, idp: IdentityProvider) -> Iterator[Provider]:
    """STARTTLS required; after it only ``AUTH XOAUTH2``, checking tokens with ``idp``."""
    yield from _oauth_provider(test_ca, idp, "starttls", "XOAUTH2")


@pytest.fixture
def xoauth2_tls_provider(test_ca: TestCA, idp: IdentityProvider) -> Iterator[Provider]:
    """Implicit TLS (port-465 style), only ``AUTH XOAUTH2``, checking tokens with ``idp``."""
    yield from _oauth_provider(test_ca, idp, "tls", "XOAUTH2")


@pytest.fixture
def oauthbearer_provider(test_ca: TestCA, idp: IdentityProvider) -> Iterator[Provider]:
    """STARTTLS required; after it only ``AUTH OAUTHBEARER`` (RFC 7628), tokens from ``idp``."""
    yield from _oauth_provider(test_ca, idp, "starttls", "OAUTHBEARER")


__all__ = [
    "CLIENT_ID",
    "OAUTH_USER",
    "PROVIDER_CERT_NAMES",
    "PROVIDER_HOSTNAME",
    "client_tls_context",
    "idp",
    "oauthbearer_provider",
    "test_ca",
    "xoauth2_provider",
    "xoauth2_tls_provider",
]

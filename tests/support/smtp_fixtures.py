"""pytest fixtures around :mod:`tests.support.smtpserver`.

Use them from a test module with::

    from tests.support.smtp_fixtures import *  # noqa: F403  (fixtures + USER/PASSWORD/...)

(``pytest_plugins`` is only honoured in the root conftest, which this project keeps minimal.)

Both providers present a certificate from the session CA valid for ``PROVIDER_HOSTNAME``,
``localhost`` and ``127.0.0.1``, so a client verifying against ``test_ca.ca_pem_path`` succeeds
whether it checks the provider's name or the address it connected to.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest

from tests.support.smtpserver import LOOPBACK, Provider, TestCA

USER = "relayuser"
PASSWORD = "relaypass"
PROVIDER_HOSTNAME = "smtp.provider.test"
PROVIDER_CERT_NAMES = [PROVIDER_HOSTNAME, "localhost", LOOPBACK]


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """One CA for the whole session (key generation is the slow part); ``ca_pem_path`` is a file."""
    return TestCA(tmp_path_factory.mktemp("test-ca"))


@pytest.fixture
def client_tls_context(test_ca: TestCA) -> ssl.SSLContext:
    """A verifying client context that trusts only the test CA."""
    return test_ca.client_context()


@pytest.fixture
def starttls_provider(test_ca: TestCA) -> Iterator[Provider]:
    """STARTTLS required, AUTH PLAIN/LOGIN after TLS for ``USER``/``PASSWORD``."""
    with Provider(
        "starttls",
        users={USER: PASSWORD},
        ssl_context=test_ca.issue(PROVIDER_CERT_NAMES),
        hostname=PROVIDER_HOSTNAME,
    ) as provider:
        yield provider


@pytest.fixture
def tls_provider(test_ca: TestCA) -> Iterator[Provider]:
    """Implicit TLS (port-465 style), AUTH PLAIN/LOGIN for ``USER``/``PASSWORD``."""
    with Provider(
        "tls",
        users={USER: PASSWORD},
        ssl_context=test_ca.issue(PROVIDER_CERT_NAMES),
        hostname=PROVIDER_HOSTNAME,
    ) as provider:
        yield provider


@pytest.fixture
def plain_provider() -> Iterator[Provider]:
    """No TLS at all; AUTH in the clear for ``USER``/``PASSWORD``."""
    with Provider("plain", users={USER: PASSWORD}, hostname=PROVIDER_HOSTNAME) as provider:
        yield provider


__all__ = [
    "PASSWORD",
    "PROVIDER_CERT_NAMES",
    "PROVIDER_HOSTNAME",
    "USER",
    "client_tls_context",
    "plain_provider",
    "starttls_provider",
    "test_ca",
    "tls_provider",
]

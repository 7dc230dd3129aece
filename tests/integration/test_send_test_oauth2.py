"""``smtpconf send-test`` with ``auth: oauth2``: a real access token from the loopback identity
provider, a real XOAUTH2 or OAUTHBEARER login at an aiosmtpd provider that accepts only tokens
its identity provider issued, and the server's refusals decoded into words and what to do.

Canary: neither the refresh token nor the access token appears in any output.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.idp import IdentityProvider
from tests.support.live import ScriptedServer, smtpconf
from tests.support.nsd import NsdServer, zone_text
from tests.support.oauth_fixtures import *  # noqa: F403  (idp, xoauth2_provider, OAUTH_USER, ...)
from tests.support.oauth_fixtures import CLIENT_ID, OAUTH_USER
from tests.support.smtp_fixtures import PROVIDER_CERT_NAMES, PROVIDER_HOSTNAME
from tests.support.smtpserver import Provider, TestCA

pytestmark = pytest.mark.integration

ZONE = PROVIDER_HOSTNAME.split(".", 1)[1]  # smtp.provider.test: the name the certificates carry
LOGIN = "smtpconf oauth2 login"


@pytest.fixture(scope="module")
def nsd() -> Iterator[NsdServer]:
    with NsdServer({ZONE: zone_text(ZONE, [("smtp", "A", "127.0.0.1")])}) as server:
        yield server


class Setup:
    def __init__(self, tmp_path: Path, idp: IdentityProvider, test_ca: TestCA, nsd: NsdServer) -> None:
        self.tmp_path, self.idp, self.ca, self.nsd = tmp_path, idp, test_ca, nsd
        self.refresh = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
        (tmp_path / "o365.refresh").write_text(self.refresh + "\n")
        (tmp_path / "o365.refresh").chmod(0o600)
        self.env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)}

    def file(self, port: int, mechanism: str, security: str = "starttls") -> Path:
        path = self.tmp_path / "smtpconf.yaml"
        path.write_text(
            "version: 1\nrelays:\n  o365:\n"
            f"    host: {PROVIDER_HOSTNAME}\n    port: {port}\n    security: {security}\n"
            f"    ca_file: {self.ca.ca_pem_path}\n    username: {OAUTH_USER}\n    auth: oauth2\n"
            f"    oauth2:\n      client_id: {CLIENT_ID}\n      refresh_token: {{file: o365.refresh}}\n"
            f"      token_url: {self.idp.token_url}\n      mechanism: {mechanism}\n"
            # An account without a credential of its own logs in as its relay.
            f"accounts:\n  - email: {OAUTH_USER}\n    relay: o365\n")
        return path

    def send(self, config: Path, *who: str) -> subprocess.CompletedProcess[str]:
        return smtpconf("send-test", str(config), *(who or ("--relay", "o365")), "--to", "ops@example.test",
                        "--nameserver", f"127.0.0.1:{self.nsd.port}", "--timeout", "10", env=self.env)

    def access_token(self, config: Path) -> str:
        """The access token send-test used: the cached one (``oauth2 token`` makes no request)."""
        done = smtpconf("oauth2", "token", str(config), "--relay", "o365", env=self.env)
        assert done.returncode == 0, done.stderr
        token = done.stdout.strip()
        assert self.idp.valid_access_token(token) == OAUTH_USER
        return token

    def assert_no_secret(self, done: subprocess.CompletedProcess[str], *tokens: str) -> None:
        shown = done.stdout + done.stderr
        for secret in (self.refresh, *tokens):
            assert secret not in shown, shown
        assert "Traceback" not in shown, shown


@pytest.fixture
def setup(tmp_path: Path, idp: IdentityProvider, test_ca: TestCA, nsd: NsdServer) -> Setup:
    return Setup(tmp_path, idp, test_ca, nsd)


def _failed(done: subprocess.CompletedProcess[str]) -> str:
    fails = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1, done.stdout + done.stderr
    return fails[0]


@pytest.mark.parametrize("fixture, mechanism, security", [("xoauth2_provider", "xoauth2", "starttls"),
                                                          ("xoauth2_tls_provider", "xoauth2", "tls"),
                                                          ("oauthbearer_provider", "oauthbearer", "starttls")])
def test_delivers_with_the_files_mechanism(fixture: str, mechanism: str, security: str, setup: Setup,
                                           request: pytest.FixtureRequest) -> None:
    provider: Provider = request.getfixturevalue(fixture)
    config = setup.file(provider.port, mechanism, security)
    done = setup.send(config)
    assert done.returncode == 0, done.stdout + done.stderr
    again = setup.send(config, "--account", OAUTH_USER)  # the account logs in as its relay
    assert again.returncode == 0, again.stdout + again.stderr
    messages = provider.wait_for_messages(2)
    assert [(m.tls, m.auth_user, m.rcpt_tos) for m in messages] == [(True, OAUTH_USER, ["ops@example.test"])] * 2
    assert list(provider.auth_attempts) == [(OAUTH_USER, True)] * 2
    steps = [line.split()[1] for line in done.stdout.splitlines()[1:]]
    assert steps[:2] == ["token", "resolve"] and "AUTH" in steps and steps[-1] == "DATA", done.stdout
    assert f"({mechanism.upper()})" in done.stdout and "o365.refresh" in done.stdout
    for run in (done, again):
        setup.assert_no_secret(run, setup.access_token(config))


@pytest.mark.parametrize("who", [("--relay", "o365"), ("--account", OAUTH_USER)])
def test_a_revoked_refresh_token_fails_at_the_token_step_with_the_login_command(
        who: tuple[str, str], setup: Setup, xoauth2_provider: Provider) -> None:
    setup.idp.revoke(setup.refresh)
    config = setup.file(xoauth2_provider.port, "xoauth2")
    done = setup.send(config, *who)
    assert done.returncode == 1, done.stdout + done.stderr
    failed = _failed(done)
    assert failed.split()[1] == "token" and "invalid_grant" in failed, failed
    assert f"{LOGIN} {config} {' '.join(who)}" in failed, failed
    assert list(xoauth2_provider.auth_attempts) == []  # nothing went to the SMTP server
    setup.assert_no_secret(done)


@pytest.mark.parametrize("mechanism, style, said", [
    # Google: 334 + base64 JSON, an empty answer, then 535 5.7.8
    ("XOAUTH2", "google", ["535 5.7.8", "status 401, schemes bearer, scope https://mail.google.com/",
                           "invalid or expired"]),
    # RFC 7628: 334 + base64 JSON, AQ==, then 535
    ("OAUTHBEARER", "google", ["535 5.7.8", "status invalid_token", "openid-configuration http://127.0.0.1:",
                               "invalid or expired"]),
    # Microsoft: 535 5.7.3 at once
    ("XOAUTH2", "microsoft", ["535 5.7.3 Authentication unsuccessful", "SMTP AUTH enabled for the mailbox"]),
])
def test_a_refused_token_shows_the_decoded_server_error_and_what_to_do(
        mechanism: str, style: str, said: list[str], setup: Setup, test_ca: TestCA) -> None:
    # The provider trusts another identity provider: the token is valid, but not there.
    with IdentityProvider() as other, Provider("starttls", oauth=other, oauth_mechanisms=(mechanism,),
                                               oauth_error_style=style,  # type: ignore[arg-type]
                                               ssl_context=test_ca.issue(PROVIDER_CERT_NAMES),
                                               hostname=PROVIDER_HOSTNAME) as provider:
        config = setup.file(provider.port, mechanism.lower())
        done = setup.send(config)
        assert list(provider.messages) == [] and list(provider.auth_attempts) == [(OAUTH_USER, False)]
    assert done.returncode == 1, done.stdout + done.stderr
    failed = _failed(done)
    assert failed.split()[1] == "AUTH", failed
    for words in said:
        assert words in failed, failed
    assert f"{LOGIN} {config} --relay o365" in failed, failed
    setup.assert_no_secret(done, setup.access_token(config))


def test_a_server_without_the_mechanism_fails_at_auth_naming_what_it_offers(
        setup: Setup, xoauth2_provider: Provider) -> None:
    config = setup.file(xoauth2_provider.port, "oauthbearer")
    done = setup.send(config)
    assert done.returncode == 1, done.stdout + done.stderr
    failed = _failed(done)
    assert failed.split()[1] == "AUTH" and "offers AUTH XOAUTH2, not OAUTHBEARER" in failed, failed
    assert list(xoauth2_provider.auth_attempts) == []
    setup.assert_no_secret(done, setup.access_token(config))


def test_microsoft_refusing_a_password_says_to_use_oauth2(tmp_path: Path, nsd: NsdServer) -> None:
    """Once Basic auth is off, Microsoft answers a password with 550 5.7.30."""
    refusal = "550 5.7.30 Basic authentication is not supported for Client Submission."
    with ScriptedServer(replies={"EHLO": "250-scripted.test\r\n250 AUTH PLAIN LOGIN", "AUTH": refusal}) as server:
        config = tmp_path / "smtpconf.yaml"
        config.write_text(f"version: 1\nrelays:\n  lab:\n    host: {PROVIDER_HOSTNAME}\n    port: {server.port}\n"
                          "    security: none  # smtpconf: ignore[plaintext-auth]\n    username: u@corp.example\n"
                          "    password: {env: LAB_PASSWORD}\n")
        done = smtpconf("send-test", str(config), "--relay", "lab", "--to", "ops@example.test", "--from",
                        "u@corp.example", "--nameserver", f"127.0.0.1:{nsd.port}", "--timeout", "5",
                        "--allow-plaintext", env={"LAB_PASSWORD": "canary-pass-0451"})
    assert done.returncode == 1, done.stdout + done.stderr
    failed = _failed(done)
    assert failed.split()[1] == "AUTH" and "5.7.30" in failed and "use auth: oauth2" in failed, failed
    assert "canary-pass-0451" not in done.stdout + done.stderr


def test_an_identity_provider_that_does_not_answer_fails_at_the_token_step(
        setup: Setup, xoauth2_provider: Provider) -> None:
    config = setup.file(xoauth2_provider.port, "xoauth2")
    setup.idp.stop()
    done = setup.send(config)
    assert done.returncode == 1, done.stdout + done.stderr
    assert _failed(done).split()[1] == "token", done.stdout
    assert list(xoauth2_provider.auth_attempts) == []
    setup.assert_no_secret(done)

"""Real msmtp sends through the msmtprc that smtpconf rendered, to a real AUTH-required server in
both submission modes: STARTTLS (like 587) and implicit TLS (like 465), trusting the test CA via
``ca_file``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.client_runs import MARKER, provider_yaml, render_cli
from tests.support.gate import need_program
from tests.support.smtp_fixtures import *  # noqa: F403  (fixtures, USER, PASSWORD, PROVIDER_CERT_NAMES)
from tests.support.smtp_fixtures import PASSWORD, PROVIDER_CERT_NAMES, USER
from tests.support.smtpserver import Provider, TestCA

pytestmark = pytest.mark.integration

EMAIL = "dev@lab.example.test"
RECIPIENT = "someone@example.org"


@pytest.fixture
def msmtp() -> str:
    return need_program("msmtp", "msmtp")


def send(msmtp: str, rc: Path, account: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    message = f"Subject: smtpconf msmtp test\nTo: {RECIPIENT}\n\n{MARKER}\n"
    return subprocess.run([msmtp, "-C", str(rc), "-a", account, RECIPIENT], input=message, text=True,
                          capture_output=True, timeout=30, env=os.environ | (env or {}))


@pytest.mark.parametrize("mode, secret", [("starttls", "env"), ("tls", "file")])
def test_msmtp_sends_authenticated(mode: str, secret: str, request: pytest.FixtureRequest, tmp_path: Path,
                                   test_ca: TestCA, msmtp: str) -> None:
    provider: Provider = request.getfixturevalue(f"{mode}_provider")
    env = {}
    if secret == "env":
        env = {"SMTPCONF_IT_PASSWORD": PASSWORD}
        reference = "{env: SMTPCONF_IT_PASSWORD}"
    else:
        (tmp_path / "password.txt").write_text(PASSWORD + "\n", encoding="utf-8")  # msmtp drops the newline
        reference = "{file: password.txt}"
    out, manifest = render_cli(tmp_path, provider_yaml(provider, test_ca, email=EMAIL, username=USER,
                                                       password=reference), "msmtp")
    rc = out / "msmtp" / f"{EMAIL}.msmtprc"
    assert manifest["files"] == [{"path": f"msmtp/{EMAIL}.msmtprc", "target": "msmtp", "account": EMAIL}]
    assert PASSWORD not in rc.read_text(encoding="utf-8")

    done = send(msmtp, rc, EMAIL, env)
    assert done.returncode == 0, done.stderr
    [received] = provider.wait_for_messages(1)
    assert received.auth_user == USER and received.tls
    assert received.mail_from == EMAIL and received.rcpt_tos == [RECIPIENT]
    assert MARKER.encode() in received.data
    assert list(provider.auth_attempts) == [(USER, True)]
    assert PASSWORD not in done.stdout + done.stderr


def test_the_default_account_line_works(tmp_path: Path, test_ca: TestCA, starttls_provider: Provider,
                                        msmtp: str) -> None:
    out, _ = render_cli(tmp_path, provider_yaml(starttls_provider, test_ca, email=EMAIL, username=USER,
                                                password="{env: SMTPCONF_IT_PASSWORD}"), "msmtp")
    done = send(msmtp, out / "msmtp" / f"{EMAIL}.msmtprc", "default", {"SMTPCONF_IT_PASSWORD": PASSWORD})
    assert done.returncode == 0, done.stderr
    assert starttls_provider.wait_for_messages(1)[0].auth_user == USER


def test_odd_username_and_password_survive_quoting(tmp_path: Path, test_ca: TestCA, msmtp: str) -> None:
    user, password = "o'neil\"#1$x`z", " p\"w #$ 'x' \\ "
    (tmp_path / "pw").write_text(password, encoding="utf-8")
    with Provider("tls", users={user: password}, ssl_context=test_ca.issue(PROVIDER_CERT_NAMES)) as provider:
        command = f"{{command: 'cat \"{tmp_path / 'pw'}\"'}}"
        out, _ = render_cli(tmp_path, provider_yaml(provider, test_ca, email=EMAIL, username=user,
                                                    password=command), "msmtp")
        done = send(msmtp, out / "msmtp" / f"{EMAIL}.msmtprc", EMAIL)
        assert done.returncode == 0, done.stderr
        assert provider.wait_for_messages(1)[0].auth_user == user


def test_wrong_password_is_refused(tmp_path: Path, test_ca: TestCA, tls_provider: Provider, msmtp: str) -> None:
    # The same render with a wrong secret fails: the password really comes from the command.
    out, _ = render_cli(tmp_path, provider_yaml(tls_provider, test_ca, email=EMAIL, username=USER,
                                                password="{env: SMTPCONF_IT_PASSWORD}"), "msmtp")
    done = send(msmtp, out / "msmtp" / f"{EMAIL}.msmtprc", EMAIL, {"SMTPCONF_IT_PASSWORD": "wrong"})
    assert done.returncode != 0
    assert list(tls_provider.messages) == [] and list(tls_provider.auth_attempts) == [(USER, False)]

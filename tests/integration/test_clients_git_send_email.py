"""Real ``git send-email`` sends a patch with the gitconfig snippet smtpconf rendered: the server
settings from ``[sendemail]``, the password from the rendered credential helper, the test CA
from ``smtpSSLCertPath``. Both submission modes, AUTH required."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.client_runs import MARKER, PATCH_SUBJECT, git_env, make_patch, provider_yaml, render_cli
from tests.support.gate import need_program, unavailable
from tests.support.smtp_fixtures import *  # noqa: F403  (fixtures, USER, PASSWORD, PROVIDER_CERT_NAMES)
from tests.support.smtp_fixtures import PASSWORD, PROVIDER_CERT_NAMES, USER
from tests.support.smtpserver import Provider, TestCA

pytestmark = pytest.mark.integration

EMAIL = "xiaoming@lab.example.test"
RECIPIENT = "maintainer@example.org"
SUBJECT = PATCH_SUBJECT


@pytest.fixture
def send_email(tmp_path: Path) -> list[str]:
    git = need_program("git", "git")
    home = tmp_path / "home"
    home.mkdir()
    if subprocess.run([git, "send-email", "--help"], capture_output=True, env=git_env(home)).returncode != 0:
        unavailable("git send-email is missing: apt-get install git-email")
    # git send-email needs these Perl modules for addresses, SMTP AUTH and TLS (git-email only
    # recommends them; Debian's git has no bundled fallback for Mail::Address).
    modules = ["-MAuthen::SASL", "-MIO::Socket::SSL", "-MMail::Address"]
    if subprocess.run(["perl", *modules, "-e", "1"], capture_output=True).returncode:
        unavailable("git send-email needs Authen::SASL, IO::Socket::SSL and Mail::Address: "
                    "apt-get install libauthen-sasl-perl libio-socket-ssl-perl libmailtools-perl")
    return [git]


def git_send_email(git: list[str], rendered: Path, patch: Path, home: Path, **env: str
                   ) -> subprocess.CompletedProcess[str]:
    # --suppress-cc=all: git would otherwise also Cc the patch author.
    return subprocess.run([*git, "-c", f"include.path={rendered}", "send-email", "--confirm=never", "--quiet",
                           "--suppress-cc=all", f"--to={RECIPIENT}", "--no-validate", str(patch)],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          cwd=patch.parent, env=git_env(home, **env))


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_git_send_email_sends_the_patch_authenticated(mode: str, request: pytest.FixtureRequest, tmp_path: Path,
                                                      test_ca: TestCA, send_email: list[str]) -> None:
    provider: Provider = request.getfixturevalue(f"{mode}_provider")
    home = tmp_path / "home"
    out, _ = render_cli(tmp_path, provider_yaml(provider, test_ca, email=EMAIL, username=USER,
                                                password="{env: SMTPCONF_IT_PASSWORD}"), "git-send-email")
    rendered = out / "git-send-email" / f"{EMAIL}.gitconfig"
    assert PASSWORD not in rendered.read_text(encoding="utf-8")
    patch = make_patch(send_email, tmp_path / "repo", home)

    done = git_send_email(send_email, rendered, patch, home, SMTPCONF_IT_PASSWORD=PASSWORD)
    assert done.returncode == 0, done.stderr[-3000:]
    [received] = provider.wait_for_messages(1)
    assert received.auth_user == USER and received.tls
    assert received.mail_from == EMAIL and received.rcpt_tos == [RECIPIENT]
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert SUBJECT in str(message["Subject"])
    assert str(message["From"]) == f"小明 <{EMAIL}>"  # the rendered from, the name RFC 2047-encoded
    assert MARKER in message.get_content()
    # (Not with --smtp-debug: Net::SMTP then prints the AUTH exchange, password included.)
    assert PASSWORD not in done.stdout + done.stderr


def test_credential_helper_matches_an_address_username(tmp_path: Path, test_ca: TestCA,
                                                       send_email: list[str]) -> None:
    # The username is an address: its "@" is percent-encoded in the credential URL, and git must
    # still match it to what git send-email asks for. A file secret this time.
    (tmp_path / "pw.txt").write_text(PASSWORD + "\n", encoding="utf-8")
    home = tmp_path / "home"
    with Provider("starttls", users={EMAIL: PASSWORD}, ssl_context=test_ca.issue(PROVIDER_CERT_NAMES)) as provider:
        out, _ = render_cli(tmp_path, provider_yaml(provider, test_ca, email=EMAIL, username=EMAIL,
                                                    password="{file: pw.txt}"), "git-send-email")
        patch = make_patch(send_email, tmp_path / "repo", home)
        done = git_send_email(send_email, out / "git-send-email" / f"{EMAIL}.gitconfig", patch, home)
        assert done.returncode == 0, done.stderr[-3000:]
        assert provider.wait_for_messages(1)[0].auth_user == EMAIL


def test_wrong_password_fails(tmp_path: Path, test_ca: TestCA, starttls_provider: Provider,
                              send_email: list[str]) -> None:
    home = tmp_path / "home"
    out, _ = render_cli(tmp_path, provider_yaml(starttls_provider, test_ca, email=EMAIL, username=USER,
                                                password="{env: SMTPCONF_IT_PASSWORD}"), "git-send-email")
    patch = make_patch(send_email, tmp_path / "repo", home)
    done = git_send_email(send_email, out / "git-send-email" / f"{EMAIL}.gitconfig", patch, home,
                          SMTPCONF_IT_PASSWORD="wrong")
    assert done.returncode != 0
    assert list(starttls_provider.messages) == [] and (USER, False) in list(starttls_provider.auth_attempts)

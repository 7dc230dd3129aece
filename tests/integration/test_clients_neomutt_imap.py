"""Real neomutt reads a real IMAP mailbox with the muttrc ``smtpconf render --only neomutt`` wrote.

The server is a private Dovecot (:mod:`tests.support.dovecot`) on loopback, implicit TLS
(993-style) and STARTTLS (143-style), certificate from the test CA; the INBOX holds one message.
neomutt runs on a pseudo-terminal, as a user starts it (``neomutt -F FILE``: the rendered
``folder``/``spoolfile`` open the INBOX), and the test's keys pipe the message to a file and quit.
The file holding the message is what a user depends on: neomutt logged in and read the mail.

* Password: the rendered ``imap_pass`` command yields the password; Dovecot checks it (PLAIN).
* OAuth2: the rendered ``imap_authenticators`` and ``imap_oauth_refresh_command`` -- neomutt runs
  ``smtpconf oauth2 token`` (smtpconf on PATH: the venv's), which refreshes the seeded refresh
  token at the loopback IdP; Dovecot's ``oauth2`` passdb asks the IdP's introspection endpoint
  (RFC 7662) whether that token is active and whose it is. No token is handed to neomutt.

A wrong password and a token the IdP no longer vouches for are refused, so the tests can fail.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.client_runs import render_cli
from tests.support.dovecot import DovecotServer
from tests.support.gate import need_program, unavailable
from tests.support.idp import IdentityProvider
from tests.support.oauth_fixtures import *  # noqa: F403  (idp, test_ca, OAUTH_USER, CLIENT_ID)
from tests.support.oauth_fixtures import CLIENT_ID, OAUTH_USER, login_directory
from tests.support.smtpserver import TestCA

pytestmark = pytest.mark.integration

USER, PASSWORD = "bob@corp.example", "correct horse $HOME 'battery'"
EMAIL = "xiaohua@corp.example"
SUBJECT = "Quarterly numbers from Dovecot"
BODY_MARKER = "smtpconf-imap-test-5c1e"
MESSAGE = (f"From: Alice <alice@example.org>\r\nTo: {USER}\r\nSubject: {SUBJECT}\r\n"
           f"Message-ID: <imap-test-1@example.org>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\n"
           f"{BODY_MARKER}\r\n").encode()
_ESCAPES = re.compile(rb"\x1b(\[[0-9;?]*[A-Za-z@]|[()][0-9A-Za-z]|[=>])")


def run_neomutt(rc: Path, saved: Path, env: dict[str, str], *, until: Callable[[str], bool] | None = None,
                timeout: float = 60) -> str:
    """neomutt -F rc on a pseudo-terminal (80x24); the keys pipe the current message (the
    INBOX's first) to ``saved`` and quit. Returns the screen text without escape sequences.

    neomutt must quit by itself, unless ``until`` is given: after a refused login neomutt stays
    on its index without a mailbox (the keys fail and the rest is dropped, as for a user), so
    the run ends (neomutt killed) once ``until(screen)`` is true."""
    neomutt = need_program("neomutt", "neomutt")
    keys = f"<pipe-message>cat > {saved}<enter><quit>"
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    # wait_key: no "press a key" after the pipe; quit: no "Quit NeoMutt?"; move: no question
    # about read messages on leaving the mailbox.
    process = subprocess.Popen([neomutt, "-n", "-F", str(rc), "-e", "set wait_key=no quit=yes move=no",
                                "-e", f'push "{keys}"'], stdin=secondary, stdout=secondary, stderr=secondary,
                               env=env, start_new_session=True, close_fds=True)
    os.close(secondary)
    screen = b""
    deadline = time.monotonic() + timeout
    ended = False
    try:
        while time.monotonic() < deadline and not ended:
            if until is not None and until(_ESCAPES.sub(b"", screen).decode(errors="replace")):
                break
            if select.select([primary], [], [], 0.1)[0]:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # EIO: neomutt exited and closed the terminal
                    chunk = b""
                screen += chunk
                ended = ended or not chunk
        if ended:  # the terminal closed: neomutt is exiting
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        os.close(primary)
        killed = process.poll() is None
        if killed:
            process.kill()
        process.wait(timeout=10)
    text = _ESCAPES.sub(b"", screen).decode(errors="replace")
    if until is None:
        assert not killed, f"neomutt did not quit within {timeout}s:\n{text[-3000:]}"
        assert process.returncode == 0, text[-3000:]
    else:
        assert until(text), f"neomutt did not get there within {timeout}s:\n{text[-3000:]}"
    return text


def gave_up(screen: str) -> bool:
    """neomutt could not open the mailbox (its keys then fail on no mailbox)."""
    return "No mailbox is open" in screen


def assert_read(saved: Path, screen: str) -> None:
    assert saved.is_file(), f"neomutt piped no message; its screen:\n{screen[-3000:]}"
    text = saved.read_text(encoding="utf-8", errors="replace")
    assert f"Subject: {SUBJECT}" in text and BODY_MARKER in text
    assert SUBJECT in screen  # the index listed it, too


def client_env(home: Path) -> dict[str, str]:
    venv_bin = Path(sys.executable).parent
    return {"PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"), "TERM": "xterm", "LC_ALL": "C.UTF-8"}


def incoming(imap: DovecotServer, security: str) -> str:
    port = imap.tls_port if security == "tls" else imap.starttls_port
    return f"    incoming: {{host: 127.0.0.1, port: {port}, security: {security}, protocol: imap}}\n"


# --- password --------------------------------------------------------------------------------

@pytest.fixture
def password_imap(test_ca: TestCA) -> Iterator[DovecotServer]:
    with DovecotServer(test_ca, users={USER: PASSWORD}) as server:
        server.deliver(USER, MESSAGE)
        yield server


def render_password_account(tmp_path: Path, ca: TestCA, imap: DovecotServer, security: str) -> Path:
    # The SMTP server is never contacted when neomutt only reads mail.
    out, _ = render_cli(tmp_path, f"""version: 1
accounts:
  - email: {USER}
    name: Bob
    host: 127.0.0.1
    port: 465
    security: tls
    ca_file: '{ca.ca_pem_path}'
    password: {{env: IMAP_TEST_PASSWORD}}
{incoming(imap, security)}""", "neomutt")
    return out / "neomutt" / f"{USER}.muttrc"


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_neomutt_reads_the_inbox_with_the_rendered_password_command(
        security: str, password_imap: DovecotServer, test_ca: TestCA, tmp_path: Path) -> None:
    rc = render_password_account(tmp_path, test_ca, password_imap, security)
    (tmp_path / "home").mkdir()
    saved = tmp_path / "read.eml"
    screen = run_neomutt(rc, saved, client_env(tmp_path / "home") | {"IMAP_TEST_PASSWORD": PASSWORD})
    assert_read(saved, screen)
    assert password_imap.logins() == [(USER, "PLAIN")]  # over TLS (the pattern demands it)
    assert PASSWORD not in screen


def test_a_wrong_password_is_refused(password_imap: DovecotServer, test_ca: TestCA, tmp_path: Path) -> None:
    rc = render_password_account(tmp_path, test_ca, password_imap, "tls")
    (tmp_path / "home").mkdir()
    saved = tmp_path / "read.eml"
    screen = run_neomutt(rc, saved, client_env(tmp_path / "home") | {"IMAP_TEST_PASSWORD": "not the password"},
                         until=gave_up)
    assert not saved.exists() and "(no mailbox)" in screen
    assert password_imap.logins() == [] and set(password_imap.refusals()) == {(USER, "Password mismatch")}


# --- OAuth2 ----------------------------------------------------------------------------------

class OAuthAccount:
    """A smtpconf file (in a directory with an odd name) for one OAuth2 login at ``idp``, its
    refresh token seeded there, rendered for neomutt with the incoming server ``imap``."""

    def __init__(self, tmp_path: Path, idp: IdentityProvider, ca: TestCA, imap: DovecotServer,
                 mechanism: str, security: str) -> None:
        if not (Path(sys.executable).parent / "smtpconf").is_file():
            unavailable(f"no smtpconf command beside {sys.executable}: pip install -e .")
        self.idp = idp
        self.directory, self.refresh = login_directory(tmp_path, idp)
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.env = client_env(self.home)
        out, _ = render_cli(self.directory, f"""version: 1
accounts:
  - email: {EMAIL}
    name: '小华'
    host: 127.0.0.1
    port: 587
    security: starttls
    ca_file: '{ca.ca_pem_path}'
    username: {OAUTH_USER}
    auth: oauth2
    oauth2:
      client_id: {CLIENT_ID}
      refresh_token: {{file: refresh.token}}
      token_url: {idp.token_url}
      mechanism: {mechanism}
{incoming(imap, security)}""", "neomutt")
        self.rc = out / "neomutt" / f"{EMAIL}.muttrc"

    def access_token(self) -> str:
        """The access token neomutt used: the cached one (a cached call asks the IdP nothing)."""
        done = subprocess.run(["smtpconf", "oauth2", "token", str(self.directory / "smtpconf.yaml"),
                               "--account", EMAIL], capture_output=True, text=True, timeout=60,
                              env=os.environ | self.env)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture
def oauth_imap(test_ca: TestCA, idp: IdentityProvider) -> Iterator[DovecotServer]:
    with DovecotServer(test_ca, idp=idp) as server:
        server.deliver(OAUTH_USER, MESSAGE)
        yield server


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_neomutt_reads_the_inbox_with_a_token_from_the_rendered_command(
        mechanism: str, security: str, oauth_imap: DovecotServer, idp: IdentityProvider, test_ca: TestCA,
        tmp_path: Path) -> None:
    account = OAuthAccount(tmp_path, idp, test_ca, oauth_imap, mechanism, security)
    saved = tmp_path / "read.eml"
    screen = run_neomutt(account.rc, saved, account.env)
    assert_read(saved, screen)
    assert oauth_imap.logins() == [(OAUTH_USER, mechanism.upper())]
    # The token came from the IdP through the rendered command (one refresh), and Dovecot asked
    # the IdP about exactly that token.
    assert idp.token_grants() == ["refresh_token"]
    token = account.access_token()
    assert idp.introspections() == [token]
    assert idp.valid_access_token(token) == OAUTH_USER
    for secret in (token, account.refresh):
        assert secret not in screen and secret.encode() not in account.rc.read_bytes()


def test_a_token_the_idp_no_longer_vouches_for_is_refused(oauth_imap: DovecotServer, idp: IdentityProvider,
                                                         test_ca: TestCA, tmp_path: Path) -> None:
    account = OAuthAccount(tmp_path, idp, test_ca, oauth_imap, "xoauth2", "tls")
    first = tmp_path / "first.eml"
    assert_read(first, run_neomutt(account.rc, first, account.env))
    token = account.access_token()
    # Revoked with its access tokens (as Google does): smtpconf still has the cached token,
    # neomutt presents it, and only Dovecot's question to the IdP can catch it.
    idp.revoke(account.refresh, access_tokens=True)
    again = tmp_path / "again.eml"
    screen = run_neomutt(account.rc, again, account.env, until=gave_up)
    assert not again.exists()
    assert oauth_imap.logins() == [(OAUTH_USER, "XOAUTH2")]
    [(user, reason)] = oauth_imap.refusals()[:1]
    assert user == OAUTH_USER and "not valid" in reason, reason
    assert token not in screen
    assert idp.introspections()[:2] == [token, token]
    assert idp.token_grants() == ["refresh_token"]  # the cached token, not a new one


def test_the_introspection_endpoint_answers_only_its_resource(idp: IdentityProvider) -> None:
    """RFC 7662 §2.1: the resource authenticates; §2.2: an unknown token is just inactive."""
    token = idp.issue_access_token(CLIENT_ID, OAUTH_USER, "mail")

    def ask(form: str, credentials: tuple[str, str] | None) -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(idp.introspection_url, data=form.encode(), method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        if credentials is not None:
            basic = base64.b64encode(":".join(credentials).encode()).decode()
            request.add_header("Authorization", f"Basic {basic}")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    resource = (idp.resource_id, idp.resource_secret)
    status, body = ask(f"token={token}", resource)
    assert status == 200 and body["active"] is True and body["username"] == OAUTH_USER
    assert body["scope"] == "mail" and body["client_id"] == CLIENT_ID and isinstance(body["exp"], int)
    assert ask(f"token=x{token}", resource) == (200, {"active": False})
    assert ask(f"token={token}", None)[0] == 401
    assert ask(f"token={token}", (idp.resource_id, "wrong"))[0] == 401
    assert ask("", resource)[0] == 400

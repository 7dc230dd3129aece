"""Real msmtp, neomutt and git send-email deliver over OAuth2 with the files smtpconf rendered.

The providers accept only XOAUTH2 or only OAUTHBEARER, with an access token the loopback identity
provider issued for ``OAUTH_USER``. No client is handed a token: each runs the rendered command
``smtpconf oauth2 token FILE --account EMAIL``, which refreshes the seeded refresh token at the
identity provider (so ``smtpconf`` must be on PATH: the venv's). The smtpconf file lives in a
directory whose name holds a quote, ``$HOME``, a backtick and ``%s``, so the token command only
works if each client's quoting hands the shell the path unchanged.

Canary: neither the refresh token nor an access token is in any rendered file or any output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.client_runs import MARKER, git_env, make_patch, oauth2_yaml, render_cli
from tests.support.gate import need_program, unavailable
from tests.support.idp import IdentityProvider
from tests.support.oauth_fixtures import *  # noqa: F403  (idp, xoauth2_provider, OAUTH_USER, ...)
from tests.support.oauth_fixtures import CLIENT_ID, OAUTH_USER, login_directory
from tests.support.render import tree
from tests.support.smtp_fixtures import PROVIDER_CERT_NAMES, PROVIDER_HOSTNAME
from tests.support.smtpserver import Provider, TestCA

pytestmark = pytest.mark.integration

EMAIL = "xiaohua@corp.example"
RECIPIENT = "someone@example.org"
CLIENT_TARGETS = "msmtp,neomutt,git-send-email,thunderbird,autodiscover,mobileconfig"


class Setup:
    """A smtpconf file for one OAuth2 login, its refresh token seeded at ``idp``, and the
    environment a user's client runs in: smtpconf on PATH, a private cache and home."""

    def __init__(self, tmp_path: Path, idp: IdentityProvider, test_ca: TestCA) -> None:
        venv_bin = Path(sys.executable).parent
        if not (venv_bin / "smtpconf").is_file():
            unavailable(f"no smtpconf command beside {sys.executable}: pip install -e .")
        self.idp, self.ca = idp, test_ca
        self.directory, self.refresh = login_directory(tmp_path, idp)
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.env = {"PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(self.home),
                    "XDG_CACHE_HOME": str(tmp_path / "cache"), "TERM": "dumb", "LC_ALL": "C.UTF-8"}

    def render(self, provider: Provider, mechanism: str, *, relay: bool = False) -> Path:
        out, _ = render_cli(self.directory, oauth2_yaml(provider, self.ca, self.idp.token_url, email=EMAIL,
                                                        username=OAUTH_USER, mechanism=mechanism, relay=relay),
                            CLIENT_TARGETS)
        return out

    def access_token(self) -> str:
        """The access token the client used: the cached one (a cached call asks the IdP nothing)."""
        done = subprocess.run(["smtpconf", "oauth2", "token", str(self.directory / "smtpconf.yaml"),
                               "--account", EMAIL], capture_output=True, text=True, timeout=60,
                              env=os.environ | self.env)
        assert done.returncode == 0, done.stderr
        token = done.stdout.strip()
        assert self.idp.valid_access_token(token) == OAUTH_USER
        return token

    def assert_delivered(self, provider: Provider, done: subprocess.CompletedProcess[str], out: Path) -> None:
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        [received] = provider.wait_for_messages(1)
        assert received.auth_user == OAUTH_USER and received.tls
        assert received.mail_from == EMAIL and received.rcpt_tos == [RECIPIENT]
        assert MARKER.encode() in received.data
        assert list(provider.auth_attempts) == [(OAUTH_USER, True)]
        # The token came from the identity provider through the rendered command: one refresh.
        assert self.idp.token_grants() == ["refresh_token"]
        tokens = (self.refresh, self.access_token())
        for token in tokens:
            assert token not in done.stdout + done.stderr
        for path, (content, _mode) in tree(out).items():
            for token in tokens:
                assert token.encode() not in content, f"{path} holds a token"


@pytest.fixture
def setup(tmp_path: Path, idp: IdentityProvider, test_ca: TestCA) -> Setup:
    return Setup(tmp_path, idp, test_ca)


# --- msmtp -----------------------------------------------------------------------------------

def msmtp_send(setup: Setup, out: Path) -> subprocess.CompletedProcess[str]:
    msmtp = need_program("msmtp", "msmtp")
    message = f"Subject: smtpconf OAuth2 test\nTo: {RECIPIENT}\n\n{MARKER}\n"
    return subprocess.run([msmtp, "-C", str(out / "msmtp" / f"{EMAIL}.msmtprc"), "-a", EMAIL, RECIPIENT],
                          input=message, text=True, capture_output=True, timeout=60, env=os.environ | setup.env)


@pytest.mark.parametrize("fixture, mechanism", [("xoauth2_provider", "xoauth2"),
                                                ("xoauth2_tls_provider", "xoauth2"),
                                                ("oauthbearer_provider", "oauthbearer")])
def test_msmtp_sends_with_a_token_from_the_rendered_command(fixture: str, mechanism: str, setup: Setup,
                                                           request: pytest.FixtureRequest) -> None:
    provider: Provider = request.getfixturevalue(fixture)
    out = setup.render(provider, mechanism)
    setup.assert_delivered(provider, msmtp_send(setup, out), out)


def test_msmtp_account_using_its_relays_oauth2_login(setup: Setup, xoauth2_provider: Provider) -> None:
    # The account has no credential of its own: msmtp logs in as the relay's user, with the token
    # `smtpconf oauth2 token --account` gets for the relay's login; the envelope is the account's.
    out = setup.render(xoauth2_provider, "xoauth2", relay=True)
    setup.assert_delivered(xoauth2_provider, msmtp_send(setup, out), out)


def test_a_second_send_reuses_the_cached_token(setup: Setup, xoauth2_provider: Provider) -> None:
    out = setup.render(xoauth2_provider, "xoauth2")
    for _ in range(2):
        assert msmtp_send(setup, out).returncode == 0
    assert len(xoauth2_provider.wait_for_messages(2)) == 2
    assert setup.idp.token_grants() == ["refresh_token"]


# --- neomutt ---------------------------------------------------------------------------------

def neomutt_send(setup: Setup, out: Path) -> subprocess.CompletedProcess[str]:
    """neomutt in batch mode (a subject and a recipient on the command line, the body on stdin)
    sends without its screen. ``-e`` only keeps it from filing a copy of the message."""
    neomutt = need_program("neomutt", "neomutt")
    return subprocess.run([neomutt, "-n", "-F", str(out / "neomutt" / f"{EMAIL}.muttrc"), "-e", "set copy = no",
                           "-s", "smtpconf OAuth2 test", "--", RECIPIENT], input=f"{MARKER}\n", text=True,
                          capture_output=True, timeout=60, env=setup.env)


@pytest.mark.parametrize("fixture, mechanism", [("xoauth2_provider", "xoauth2"),
                                                ("oauthbearer_provider", "oauthbearer")])
def test_neomutt_sends_with_the_rendered_refresh_command(fixture: str, mechanism: str, setup: Setup,
                                                        request: pytest.FixtureRequest) -> None:
    provider: Provider = request.getfixturevalue(fixture)
    out = setup.render(provider, mechanism)
    setup.assert_delivered(provider, neomutt_send(setup, out), out)


@pytest.fixture
def microsoft_idp() -> Iterator[IdentityProvider]:
    with IdentityProvider(token_length=1500) as idp:
        yield idp


def test_neomutt_sends_a_microsoft_length_token_with_xoauth2(tmp_path: Path, microsoft_idp: IdentityProvider,
                                                            test_ca: TestCA) -> None:
    # Microsoft's access tokens are far over the 512 bytes neomutt takes for OAUTHBEARER; the
    # Microsoft presets use XOAUTH2, and neomutt sends a 1500-character token with it.
    setup = Setup(tmp_path, microsoft_idp, test_ca)
    with Provider("starttls", oauth=microsoft_idp, oauth_mechanisms=("XOAUTH2",), oauth_error_style="microsoft",
                  ssl_context=test_ca.issue(PROVIDER_CERT_NAMES), hostname=PROVIDER_HOSTNAME) as provider:
        out = setup.render(provider, "xoauth2")
        setup.assert_delivered(provider, neomutt_send(setup, out), out)
        assert len(setup.access_token()) == 1500


# --- git send-email --------------------------------------------------------------------------

def test_git_send_email_sends_through_msmtp_with_a_token(setup: Setup, xoauth2_provider: Provider) -> None:
    git = need_program("git", "git")
    need_program("msmtp", "msmtp")
    if subprocess.run([git, "send-email", "--help"], capture_output=True, env=git_env(setup.home)).returncode:
        unavailable("git send-email is missing: apt-get install git-email")
    if subprocess.run(["perl", "-MMail::Address", "-e", "1"], capture_output=True).returncode:
        unavailable("git send-email needs Mail::Address: apt-get install libmailtools-perl")
    out = setup.render(xoauth2_provider, "xoauth2")
    patch = make_patch([git], setup.home.parent / "repo", setup.home)
    done = subprocess.run([git, "-c", f"include.path={out / 'git-send-email' / f'{EMAIL}.gitconfig'}", "send-email",
                           "--confirm=never", "--quiet", "--suppress-cc=all", f"--to={RECIPIENT}", "--no-validate",
                           str(patch)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          cwd=patch.parent, env=git_env(setup.home, **setup.env))
    setup.assert_delivered(xoauth2_provider, done, out)


# --- the files themselves --------------------------------------------------------------------

def test_every_client_file_names_the_command_not_a_token(setup: Setup, xoauth2_provider: Provider) -> None:
    out = setup.render(xoauth2_provider, "xoauth2")
    files = tree(out)
    assert files and not any(path.startswith(("autodiscover/", "mobileconfig/")) for path in files)
    for path, (content, _mode) in files.items():
        assert setup.refresh.encode() not in content, path
    assert shutil.which("smtpconf", path=setup.env["PATH"])
    assert setup.idp.token_grants() == []  # rendering fetched nothing

"""OAuth2 relays in the ``postfix`` target, proven with a real Postfix (SPEC §7).

One fleet group, applied by hand to a private Postfix instance the way docs/postfix.md says:

* ``o365``    the default relay: STARTTLS, only AUTH XOAUTH2 with a token of the loopback IdP;
* ``bearer``  a sender relay: implicit TLS, only AUTH OAUTHBEARER (RFC 7628);
* ``billing`` a sender relay with a password (AUTH PLAIN/LOGIN), as before OAuth2.

Postfix hands OAuth2 mail to msmtp through a pipe(8) transport per relay; ``smtpconf-oauth2
refresh`` (run here directly, as its timer would) keeps the access tokens fresh. The IdP rotates
refresh tokens and kills the old one at once.
"""

from __future__ import annotations

import grp
import os
import stat
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

from smtpconf.lint import lint_path
from smtpconf.render import render
from smtpconf.render.postfix import MAPS
from tests.support.gate import need_program
from tests.support.idp import IdentityProvider
from tests.support.oauth_fixtures import CLIENT_ID, OAUTH_USER
from tests.support.postfix import PostfixInstance, ensure_system_user
from tests.support.smtp_fixtures import PROVIDER_CERT_NAMES, PROVIDER_HOSTNAME, test_ca  # noqa: F401
from tests.support.smtpserver import Provider, TestCA

pytestmark = pytest.mark.integration

BEARER_USER = "mailer@corp.example"
BILLING_USER, BILLING_PASSWORD = "billing-key", "billing-Secret-2"
PIPE_USER = "smtpconf-oauth2"
RCPT = "someone@example.org"

CONFIG = """\
version: 1
relays:
  o365:
    host: localhost
    port: {o365_port}
    security: starttls
    ca_file: {ca}
    username: {oauth_user}
    auth: oauth2
    oauth2:
      client_id: {client_id}
      refresh_token: {{file: o365.refresh}}
      token_url: {token_url}
      scopes: [https://outlook.office.com/SMTP.Send, offline_access]
  bearer:
    host: localhost
    port: {bearer_port}
    security: tls
    ca_file: {ca}
    username: {bearer_user}
    auth: oauth2
    oauth2:
      client_id: {client_id}
      refresh_token: {{file: bearer.refresh}}
      token_url: {token_url}
      mechanism: oauthbearer
  billing:
    host: localhost
    port: {billing_port}
    security: starttls
    ca_file: {ca}
    username: {billing_user}
    password: {{env: SMTPCONF_TEST_BILLING}}
fleet:
  web:
    hosts: [smtpconf-test.localdomain]
    relay: o365
    sender_relays:
      billing@example.test: billing
      "@bearer.example.test": bearer
    tls_level: verify
"""


class Lab(NamedTuple):
    postfix: PostfixInstance
    idp: IdentityProvider
    o365: Provider
    bearer: Provider
    billing: Provider
    map_dir: Path
    oauth2_dir: Path
    script: Path
    first_refresh: dict[str, str]  # relay -> the refresh token the operator deployed
    files: dict[str, tuple[bytes, int]]  # the render of postfix/web/: name -> (bytes, mode)

    def refresher(self, *args: str) -> subprocess.CompletedProcess[str]:
        """What the timer runs (as root)."""
        return subprocess.run([str(self.script), "refresh", *args, str(self.map_dir)], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)

    def token(self, relay: str, kind: str) -> str:
        return (self.oauth2_dir / f"{relay}.{kind}").read_text().strip()


def _install(pf: PostfixInstance, files: dict[str, tuple[bytes, int]], map_dir: Path, oauth2_dir: Path,
             script: Path) -> None:
    """docs/postfix.md's steps, against the private instance."""
    map_dir.mkdir(mode=0o755)
    script.parent.mkdir(mode=0o755)
    oauth2_dir.mkdir(mode=0o750)
    os.chown(oauth2_dir, 0, grp.getgrnam(PIPE_USER).gr_gid)
    for name, (data, mode) in files.items():
        if name.startswith("oauth2/"):
            target = oauth2_dir / name.removeprefix("oauth2/")  # the first refresh token, 0600 root
        elif name == "smtpconf-oauth2":
            target = script
        elif name.startswith("smtpconf-oauth2."):
            continue  # the timer units and cron file: run by hand here
        else:
            target = map_dir / name
        target.write_bytes(data)
        target.chmod(mode)
    for name in MAPS:
        pf.postmap(map_dir / name)
    pf.postconf(*[line for line in (map_dir / "main.cf").read_text().splitlines() if line])
    for line in (map_dir / "master.cf").read_text().splitlines():
        if line and not line.startswith("#"):
            name, kind = line.split()[:2]
            pf.postconf_raw("-M", "-e", f"{name}/{kind} = {line}")


@pytest.fixture(scope="module")
def lab(test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:  # noqa: F811
    need_program("msmtp", "msmtp")
    ensure_system_user(PIPE_USER)
    work = tmp_path_factory.mktemp("postfix-oauth2")
    with ExitStack() as stack:
        idp = stack.enter_context(IdentityProvider())
        o365 = stack.enter_context(Provider("starttls", oauth=idp, oauth_mechanisms=("XOAUTH2",),
                                            ssl_context=test_ca.issue(PROVIDER_CERT_NAMES), hostname=PROVIDER_HOSTNAME))
        bearer = stack.enter_context(Provider("tls", oauth=idp, oauth_mechanisms=("OAUTHBEARER",),
                                              ssl_context=test_ca.issue(PROVIDER_CERT_NAMES),
                                              hostname=PROVIDER_HOSTNAME))
        billing = stack.enter_context(Provider("starttls", users={BILLING_USER: BILLING_PASSWORD}, ca=test_ca))
        first = {"o365": idp.issue_refresh_token(CLIENT_ID, OAUTH_USER),
                 "bearer": idp.issue_refresh_token(CLIENT_ID, BEARER_USER)}
        for relay, token in first.items():
            (work / f"{relay}.refresh").write_text(token + "\n")
        source = work / "smtpconf.yaml"
        source.write_text(CONFIG.format(o365_port=o365.port, bearer_port=bearer.port, billing_port=billing.port,
                                        ca=test_ca.ca_pem_path, oauth_user=OAUTH_USER, bearer_user=BEARER_USER,
                                        client_id=CLIENT_ID, token_url=idp.token_url, billing_user=BILLING_USER))
        pf = PostfixInstance()
        stack.callback(pf.close)
        # Under the instance's directory (0755): the pipe user must reach the script and tokens.
        map_dir, oauth2_dir, script = pf.config_dir / "smtpconf", pf.base_dir / "oauth2", pf.base_dir / "bin" / "smtpconf-oauth2"
        lint = lint_path(source)
        assert lint.config is not None
        os.environ["SMTPCONF_TEST_BILLING"] = BILLING_PASSWORD
        try:
            rendered = render(lint.config, ["postfix"], {
                "postfix_map_dir": str(map_dir), "postfix_oauth2_dir": str(oauth2_dir),
                "postfix_oauth2_script": str(script)})
        finally:
            del os.environ["SMTPCONF_TEST_BILLING"]
        files = {f.path.removeprefix("postfix/web/"): (f.content, f.mode) for f in rendered}
        _install(pf, files, map_dir, oauth2_dir, script)
        lab = Lab(pf, idp, o365, bearer, billing, map_dir, oauth2_dir, script, first, files)
        first_run = lab.refresher()
        assert (first_run.returncode, first_run.stdout, first_run.stderr) == (0, "", "")
        pf.start()
        yield lab


def _mode(path: Path) -> tuple[int, int, str]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode), st.st_uid, grp.getgrgid(st.st_gid).gr_name


def test_rendered_oauth2_files(lab: Lab) -> None:
    master = lab.postfix.postconf_raw("-M", "smtpconf_oauth2_o365/unix").stdout.split()
    assert master[:10] == ["smtpconf_oauth2_o365", "unix", "-", "n", "n", "-", "-", "pipe", "flags=q", "null_sender="]
    assert f"user={PIPE_USER}" in master
    assert lab.postfix.get("default_transport") == "smtpconf_oauth2_o365"
    assert lab.postfix.get("smtpconf_oauth2_bearer_destination_recipient_limit") == "1"
    msmtp = (lab.map_dir / "msmtp-bearer.conf").read_text()
    assert "auth oauthbearer\n" in msmtp and "tls_starttls off\n" in msmtp
    assert f"passwordeval /bin/cat {lab.oauth2_dir}/bearer.access\n" in msmtp
    assert lab.postfix.check() == ""
    assert lab.postfix.postconf_warnings() == ""


def test_oauth2_default_relay_delivers_authenticated_with_xoauth2(lab: Lab) -> None:
    before = len(lab.o365.messages)
    queue_id = lab.postfix.inject("app@example.test", RCPT)
    lab.postfix.wait_log(rf"postfix/pipe\[\d+\]: {queue_id}: to=<{RCPT}>.*relay=smtpconf_oauth2_o365.*status=sent")
    message = lab.o365.wait_for_messages(before + 1)[before]
    assert (message.mail_from, message.rcpt_tos, message.auth_user, message.tls) == (
        "app@example.test", [RCPT], OAUTH_USER, True)


def test_oauth2_sender_relay_uses_oauthbearer_over_implicit_tls(lab: Lab) -> None:
    before = len(lab.bearer.messages)
    queue_id = lab.postfix.inject("alerts@bearer.example.test", [RCPT, "second@example.org"])
    for rcpt in (RCPT, "second@example.org"):  # one msmtp run per recipient
        lab.postfix.wait_log(rf"{queue_id}: to=<{rcpt}>.*relay=smtpconf_oauth2_bearer.*status=sent")
    messages = lab.bearer.wait_for_messages(before + 2)[before:]
    assert sorted(r for m in messages for r in m.rcpt_tos) == sorted([RCPT, "second@example.org"])
    assert {(m.mail_from, m.auth_user, m.tls) for m in messages} == {("alerts@bearer.example.test", BEARER_USER, True)}


def test_password_sender_relay_in_the_same_group_still_works(lab: Lab) -> None:
    before = len(lab.billing.messages)
    queue_id = lab.postfix.inject("billing@example.test", RCPT)
    lab.postfix.wait_log(rf"postfix/smtp\[\d+\]: {queue_id}: to=<{RCPT}>.*"
                         rf"relay=localhost\[127\.0\.0\.1\]:{lab.billing.port}.*status=sent")
    message = lab.billing.wait_for_messages(before + 1)[before]
    assert (message.mail_from, message.auth_user, message.tls) == ("billing@example.test", BILLING_USER, True)


def test_bounce_leaves_with_the_null_sender(lab: Lab) -> None:
    before = len(lab.o365.messages)
    queue_id = lab.postfix.inject("<>", RCPT)
    lab.postfix.wait_log(rf"{queue_id}: to=<{RCPT}>.*status=sent")
    assert lab.o365.wait_for_messages(before + 1)[before].mail_from == "<>"


def test_refresher_makes_no_request_while_the_token_is_fresh(lab: Lab) -> None:
    grants = len(lab.idp.token_grants())
    done = lab.refresher()
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert len(lab.idp.token_grants()) == grants


def test_expired_token_defers_and_the_refresher_renews_it_with_rotation(lab: Lab) -> None:
    pf, idp = lab.postfix, lab.idp
    # A short-lived token, renewed now (as the timer would when it is due) and left to expire.
    idp.access_ttl = 1.0
    assert lab.refresher("--force").returncode == 0
    expired = lab.token("o365", "access")
    deadline = time.monotonic() + 30
    while idp.valid_access_token(expired) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert idp.valid_access_token(expired) is None

    mark, before = pf.log_size(), len(lab.o365.messages)
    queue_id = pf.inject("app@example.test", RCPT)
    line = pf.wait_log(rf"{queue_id}: to=<{RCPT}>.*relay=smtpconf_oauth2_o365.*status=deferred.*", since=mark).group(0)
    # The server refused the token: deferred (not bounced) with msmtp's reason, no token logged.
    assert "authentication failed" in line, line
    assert queue_id in pf.queue_ids()
    assert len(lab.o365.messages) == before

    idp.access_ttl = 3600.0
    refresh_before = lab.token("o365", "refresh")
    done = lab.refresher()
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    refresh_after = lab.token("o365", "refresh")
    # Rotated: the old refresh token is dead at the IdP, the new one is on disk, root-only.
    assert refresh_after != refresh_before
    assert not idp.refresh_token_valid(refresh_before)
    assert idp.refresh_token_valid(refresh_after)
    assert _mode(lab.oauth2_dir / "o365.refresh") == (0o600, 0, "root")
    assert _mode(lab.oauth2_dir / "o365.access") == (0o640, 0, PIPE_USER)
    assert idp.valid_access_token(lab.token("o365", "access")) == OAUTH_USER

    mark = pf.log_size()
    pf.flush()
    pf.wait_log(rf"{queue_id}: to=<{RCPT}>.*relay=smtpconf_oauth2_o365.*status=sent", since=mark, timeout=60)
    assert lab.o365.wait_for_messages(before + 1)[before].auth_user == OAUTH_USER


def test_no_token_in_the_log(lab: Lab) -> None:
    log = lab.postfix.log_text()
    for relay in ("o365", "bearer"):
        for token in (lab.first_refresh[relay], lab.token(relay, "refresh"), lab.token(relay, "access")):
            assert token not in log
    assert BILLING_PASSWORD not in log


def test_revoked_refresh_token_is_reported_without_the_token(lab: Lab) -> None:
    # Last: it kills the bearer relay's login.
    token = lab.token("bearer", "refresh")
    lab.idp.revoke(token)
    done = lab.refresher("--force")
    assert done.returncode == 1
    assert "oauth2-bearer.json" in done.stderr and "invalid_grant" in done.stderr, done.stderr
    assert "smtpconf oauth2 login" in done.stderr
    assert token not in done.stderr + done.stdout
    assert lab.token("bearer", "refresh") == token  # nothing was overwritten


def test_refresher_units_pass_systemd_analyze(lab: Lab, tmp_path: Path) -> None:
    """The timer and service (there is no systemd as PID 1 here to run them; cron is what the
    role installs on such hosts): systemd's own checker finds nothing wrong, the command included."""
    analyze = need_program("systemd-analyze", "systemd")
    for name in ("smtpconf-oauth2.service", "smtpconf-oauth2.timer"):
        (tmp_path / name).write_bytes(lab.files[name][0])
    assert f"ExecStart={lab.script} refresh {lab.map_dir}\n" in (tmp_path / "smtpconf-oauth2.service").read_text()
    done = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / "smtpconf-oauth2.timer"),
                           str(tmp_path / "smtpconf-oauth2.service")], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    cron = lab.files["smtpconf-oauth2.cron"][0].decode()
    assert f"*/5 * * * * root {lab.script} refresh {lab.map_dir}\n" in cron

"""The real proof of the ``postfix`` target: a private Postfix relays real mail with it.

One rendered fleet group drives one private Postfix instance (tests/support/postfix.py). Its
relays are aiosmtpd "providers" on loopback that require AUTH and record who authenticated:

* ``mailhub``   STARTTLS, the default relay;
* ``billing``   implicit TLS ("465"), a sender relay: the two kinds mixed need transports;
* ``badpass``   the mailhub server again, with a wrong password, as a sender relay: sender-
                dependent authentication must pick this credential and the server refuses it;
* ``wrongname`` STARTTLS with a certificate for another name, as a sender relay;
* ``public``    STARTTLS without ``ca_file`` (verified against the system CAs, like Gmail), its
                certificate from a CA the system does not trust, as a sender relay.

Relay hosts are ``localhost``, the way users name relays: with ``tls_level: verify`` Postfix
matches the relay's host name against the certificate's DNS names. (An IP-literal relay verifies
only against an IP-address SAN, and only with newer Postfix/OpenSSL builds: see docs/postfix.md.)
``localhost`` is in /etc/hosts, and the test instance looks hosts up natively, never in DNS.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

from smtpconf.render.postfix import MAPS
from tests.support.postfix import PostfixInstance
from tests.support.smtp_fixtures import test_ca  # noqa: F401  (session fixture)
from tests.support.smtpserver import Provider, TestCA

pytestmark = pytest.mark.integration

MAILHUB_USER, MAILHUB_PASSWORD = "ops@example.test", "mailhub-Secret-1"
BILLING_USER, BILLING_PASSWORD = "billing-key", "billing Secret 2"  # a space: legal in sasl_passwd
WRONG_PASSWORD = "not-the-password"
LOCAL_HOST = "smtpconf-test.localdomain"  # the test instance's myhostname
RCPT = "someone@example.org"

CONFIG = """\
version: 1
relays:
  mailhub:
    host: localhost
    port: {mailhub_port}
    security: starttls
    ca_file: {ca}
    username: {mailhub_user}
    password: {{env: SMTPCONF_TEST_MAILHUB}}
  billing:
    host: localhost
    port: {billing_port}
    security: tls
    ca_file: {ca}
    username: {billing_user}
    password: {{file: billing.secret}}
  badpass:
    host: localhost
    port: {mailhub_port}
    security: starttls
    ca_file: {ca}
    username: {mailhub_user}
    password: {{command: "printf %s {wrong}"}}
  wrongname:
    host: localhost
    port: {wrongname_port}
    security: starttls
    ca_file: {ca}
    username: {mailhub_user}
    password: {{env: SMTPCONF_TEST_MAILHUB}}
  public:
    host: localhost
    port: {public_port}
    security: starttls
    username: {mailhub_user}
    password: {{env: SMTPCONF_TEST_MAILHUB}}
fleet:
  web:
    hosts: [{local_host}]
    relay: mailhub
    sender_relays:
      billing@example.test: billing
      "@badpass.example.test": badpass
      "@wrongname.example.test": wrongname
      "@public.example.test": public
    rewrite_sender: ops@example.test
    tls_level: verify
"""


class Lab(NamedTuple):
    postfix: PostfixInstance
    mailhub: Provider
    billing: Provider
    wrongname: Provider
    public: Provider
    public_ca: TestCA  # the public relay's CA, in no system trust store
    rendered: Path  # postfix/web/ of the render
    render_output: str  # everything smtpconf printed


def _render(config: Path, out: Path, map_dir: Path) -> str:
    env = dict(os.environ, SMTPCONF_TEST_MAILHUB=MAILHUB_PASSWORD)
    done = subprocess.run(
        [sys.executable, "-m", "smtpconf", "render", str(config), "-o", str(out), "--only", "postfix",
         "--postfix-map-dir", str(map_dir)],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _apply(pf: PostfixInstance, rendered: Path, map_dir: Path) -> None:
    """What docs/postfix.md tells an operator to do, against the private instance."""
    map_dir.mkdir(mode=0o755)
    for name in (*MAPS, "ca_bundle.pem"):
        shutil.copy2(rendered / name, map_dir / name)  # copy2 keeps sasl_passwd's 0600
    for name in MAPS:
        pf.postmap(map_dir / name)
    settings = [line for line in (rendered / "main.cf").read_text().splitlines() if line]
    pf.postconf(*settings)
    # `postconf -M -e service/type = entry` adds or replaces: re-applying never duplicates.
    for line in (rendered / "master.cf").read_text().splitlines():
        if line and not line.startswith("#"):
            name, kind = line.split()[:2]
            pf.postconf_raw("-M", "-e", f"{name}/{kind} = {line}")


@pytest.fixture(scope="module")
def lab(test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:  # noqa: F811
    work = tmp_path_factory.mktemp("postfix-relay")
    with ExitStack() as stack:
        mailhub = stack.enter_context(Provider("starttls", users={MAILHUB_USER: MAILHUB_PASSWORD}, ca=test_ca))
        billing = stack.enter_context(Provider("tls", users={BILLING_USER: BILLING_PASSWORD}, ca=test_ca))
        wrongname = stack.enter_context(Provider(
            "starttls", users={MAILHUB_USER: MAILHUB_PASSWORD},
            ssl_context=test_ca.issue(["smtp.other-name.example.test"])))
        public_ca = stack.enter_context(TestCA(work / "public-ca"))
        public = stack.enter_context(Provider(
            "starttls", users={MAILHUB_USER: MAILHUB_PASSWORD}, ssl_context=public_ca.issue(["localhost"])))
        (work / "billing.secret").write_text(BILLING_PASSWORD + "\n")
        config = work / "smtpconf.yaml"
        config.write_text(CONFIG.format(
            mailhub_port=mailhub.port, billing_port=billing.port, wrongname_port=wrongname.port,
            public_port=public.port,
            ca=test_ca.ca_pem_path, mailhub_user=MAILHUB_USER, billing_user=BILLING_USER,
            wrong=WRONG_PASSWORD, local_host=LOCAL_HOST))
        pf = PostfixInstance()  # not started yet: settings go in first, as on a fresh host
        stack.callback(pf.close)  # stops every process of the instance, deletes its directory
        map_dir = pf.config_dir / "smtpconf"
        output = _render(config, work / "out", map_dir)
        rendered = work / "out" / "postfix" / "web"
        _apply(pf, rendered, map_dir)
        yield Lab(pf, mailhub, billing, wrongname, public, public_ca, rendered, output)


@pytest.fixture(scope="module")
def running(lab: Lab) -> Lab:
    lab.postfix.start()
    return lab


def test_rendered_files_are_consistent_and_private(lab: Lab) -> None:
    assert stat.S_IMODE((lab.rendered / "sasl_passwd").stat().st_mode) == 0o600
    for password in (MAILHUB_PASSWORD, BILLING_PASSWORD, WRONG_PASSWORD):
        assert password not in lab.render_output
    pf = lab.postfix
    relayhost = pf.get("relayhost")
    assert re.fullmatch(r"\[localhost\]:\d+", relayhost)
    # The password map answers for exactly the next hop Postfix will connect to.
    sasl = f"hash:{pf.config_dir}/smtpconf/sasl_passwd"
    assert pf.postmap_query(relayhost, sasl) == f"{MAILHUB_USER}:{MAILHUB_PASSWORD}"
    billing_hop = pf.postmap_query("billing@example.test", f"hash:{pf.config_dir}/smtpconf/sender_relay")
    assert billing_hop == f"[localhost]:{lab.billing.port}"
    assert pf.postmap_query(billing_hop, sasl) == f"{BILLING_USER}:{BILLING_PASSWORD}"


def test_postfix_check_and_postconf_print_no_warning(lab: Lab) -> None:
    assert lab.postfix.check() == ""
    assert lab.postfix.postconf_warnings() == ""


def _delivered(provider: Provider, mail_from: str, before: int) -> list[object]:
    return [m for m in provider.messages[before:] if m.mail_from == mail_from]


def test_ordinary_sender_goes_to_default_relay_with_its_credential(running: Lab) -> None:
    before = len(running.mailhub.messages)
    queue_id = running.postfix.inject(f"cron@{LOCAL_HOST}", RCPT)
    running.postfix.wait_log(rf"postfix/smtp\[\d+\]: {queue_id}: to=<{RCPT}>.*"
                             rf"relay=localhost\[127\.0\.0\.1\]:{running.mailhub.port}.*status=sent")
    message = running.mailhub.wait_for_messages(before + 1)[before]
    # rewrite_sender: the host's own address leaves as the group's address (smtp_generic_maps).
    assert message.mail_from == "ops@example.test"
    assert message.auth_user == MAILHUB_USER
    assert message.tls
    assert message.rcpt_tos == [RCPT]


def test_sender_relay_uses_implicit_tls_relay_with_its_own_credential(running: Lab) -> None:
    before_billing, before_hub = len(running.billing.messages), len(running.mailhub.messages)
    queue_id = running.postfix.inject("billing@example.test", RCPT)
    # Delivered by the implicit-TLS transport of master.cf (the log names the service).
    running.postfix.wait_log(rf"postfix/smtpconf_smtps/smtp\[\d+\]: {queue_id}: to=<{RCPT}>.*"
                             rf"relay=localhost\[127\.0\.0\.1\]:{running.billing.port}.*status=sent")
    message = running.billing.wait_for_messages(before_billing + 1)[before_billing]
    assert message.mail_from == "billing@example.test"
    assert message.auth_user == BILLING_USER
    assert message.tls
    assert not _delivered(running.mailhub, "billing@example.test", before_hub)


def test_certificate_for_another_name_is_refused(running: Lab) -> None:
    pf = running.postfix
    mark = pf.log_size()
    queue_id = pf.inject("alerts@wrongname.example.test", RCPT)
    line = pf.wait_log(rf"{queue_id}: to=<{RCPT}>.*status=deferred.*", since=mark).group(0)
    assert "Server certificate not verified" in line, line
    # Nothing reached the impostor: no AUTH (the password never left), no message.
    assert list(running.wrongname.auth_attempts) == []
    assert list(running.wrongname.messages) == []
    assert queue_id in pf.queue_ids()


def test_wrong_password_defers_with_the_servers_auth_error(running: Lab) -> None:
    pf = running.postfix
    mark, before = pf.log_size(), len(running.mailhub.messages)
    attempts_before = len(running.mailhub.auth_attempts)
    queue_id = pf.inject("app@badpass.example.test", RCPT)
    pf.wait_log(r"SASL authentication failed; server localhost\[127\.0\.0\.1\] said: 535 5\.7\.8 "
                r"Authentication credentials invalid", since=mark)
    pf.wait_log(rf"{queue_id}: to=<{RCPT}>.*status=deferred", since=mark)
    # The sender-keyed credential was used, not the default relay's one for the same server.
    assert (MAILHUB_USER, False) in list(running.mailhub.auth_attempts)[attempts_before:]
    assert not _delivered(running.mailhub, "app@badpass.example.test", before)
    assert WRONG_PASSWORD not in pf.log_text()
    assert queue_id in pf.queue_ids()


def test_password_never_leaves_outside_tls(lab: Lab) -> None:
    # AUTH PLAIN/LOGIN only inside TLS: a relay whose STARTTLS is stripped gets no password.
    assert lab.postfix.get("smtp_sasl_security_options") == "noplaintext, noanonymous"
    assert lab.postfix.get("smtp_sasl_tls_security_options") == "noanonymous"


def test_relay_without_ca_file_is_verified_against_the_ca_path(running: Lab) -> None:
    """The group mixes private-CA relays and a "public" one: CAfile and CApath together, set
    explicitly (the delivery tests above show the private CA still verifies)."""
    pf = running.postfix
    assert pf.get("smtp_tls_CApath") == "/etc/ssl/certs"
    assert pf.get("tls_append_default_CA") == "no"
    mark = pf.log_size()
    queue_id = pf.inject("alerts@public.example.test", RCPT)
    line = pf.wait_log(rf"{queue_id}: to=<{RCPT}>.*status=deferred.*", since=mark).group(0)
    # Its CA is in no trust store: refused before AUTH, and not vouched for by the private CA.
    assert "Server certificate not verified" in line, line
    assert list(running.public.auth_attempts) == []
    # With that CA in the CApath (a copy of the rendered setting pointing at a test directory),
    # the same queued message is delivered: Postfix consults smtp_tls_CApath for this relay.
    # The instance directory (0755): smtp(8) reads CApath after dropping privileges to postfix.
    ca_dir = pf.base_dir / "capath"
    ca_dir.mkdir(mode=0o755)
    shutil.copy(running.public_ca.ca_pem_path, ca_dir / "public-ca.pem")
    (ca_dir / "public-ca.pem").chmod(0o644)
    subprocess.run(["openssl", "rehash", str(ca_dir)], check=True, capture_output=True)
    pf.postconf(f"smtp_tls_CApath = {ca_dir}")
    try:
        pf.reload()
        mark = pf.log_size()
        pf.flush()
        pf.wait_log(rf"{queue_id}: to=<{RCPT}>.*relay=localhost\[127\.0\.0\.1\]:{running.public.port}"
                    rf".*status=sent", since=mark)
        assert (MAILHUB_USER, True) in list(running.public.auth_attempts)
    finally:
        pf.postconf("smtp_tls_CApath = /etc/ssl/certs")
        pf.reload()

"""Fleet routing proven with real Postfix (SPEC §8): relay lists fail over, recipient routes win,
and every relay logs in with its own credential.

One rendered fleet group drives one private Postfix instance (tests/support/postfix.py). Its relays
are aiosmtpd providers on loopback (tests/support/smtpserver.py), each with its own account, so
the provider that received a message and the user it logged in as say which route and which
credential Postfix took:

* ``dead``     nothing listens on its port (connections refused);
* ``busy``     answers every connection ``421 4.7.0`` (over its sending limit);
* ``backup``   the second relay of both failover lists;
* ``partner``  the recipient route of ``partner.example``;
* ``billing``  one sender relay: ``billing@example.test``'s own, found by sender
               (smtp_sender_dependent_authentication is on in this group).

    relay: [dead, backup]                              # (1) refused -> the second
    sender_relays:
      ops@example.test: [busy, backup]                 # (2) 421 -> the second
      billing@example.test: billing
    recipient_relays:
      partner.example: partner                         # (3) a recipient route
      "@fallback.example": [dead, partner]             # (4) a recipient list, all combined
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

from smtpconf.render.postfix import MAPS
from tests.support.postfix import PostfixInstance
from tests.support.smtp_fixtures import test_ca  # noqa: F401  (session fixture)
from tests.support.smtpserver import Provider, Received, TestCA, closed_port

pytestmark = pytest.mark.integration

LOCAL_HOST = "smtpconf-test.localdomain"  # the test instance's myhostname
USERS = {name: (f"{name}-user", f"{name}-Secret-{index}") for index, name in
         enumerate(("dead", "busy", "backup", "partner", "billing"))}

CONFIG = """\
version: 1
relays:
{relays}
fleet:
  web:
    hosts: [{local_host}]
    relay: [dead, backup]
    sender_relays:
      ops@example.test: [busy, backup]
      billing@example.test: billing
    recipient_relays:
      partner.example: partner
      "@fallback.example": [dead, partner]
    tls_level: verify
"""

RELAY = """\
  {name}:
    host: localhost
    port: {port}
    security: starttls
    ca_file: {ca}
    username: {user}
    password: {{env: SMTPCONF_TEST_{upper}}}
"""


class Lab(NamedTuple):
    postfix: PostfixInstance
    providers: dict[str, Provider]
    rendered: Path


def _env() -> dict[str, str]:
    return dict(os.environ, **{f"SMTPCONF_TEST_{name.upper()}": password for name, (_, password) in USERS.items()})


def _apply(pf: PostfixInstance, rendered: Path, map_dir: Path) -> None:
    """What docs/postfix.md tells an operator to do, against the private instance."""
    map_dir.mkdir(mode=0o755)
    for name in (*MAPS, "ca_bundle.pem"):
        shutil.copy2(rendered / name, map_dir / name)
    for name in MAPS:
        pf.postmap(map_dir / name)
    pf.postconf(*[line for line in (rendered / "main.cf").read_text().splitlines() if line])
    for line in (rendered / "master.cf").read_text().splitlines():
        if line and not line.startswith("#"):
            name, kind = line.split()[:2]
            pf.postconf_raw("-M", "-e", f"{name}/{kind} = {line}")


@pytest.fixture(scope="module")
def lab(test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:  # noqa: F811
    work = tmp_path_factory.mktemp("postfix-routing")
    with ExitStack() as stack:
        providers = {
            name: stack.enter_context(Provider(
                "starttls", users={USERS[name][0]: USERS[name][1]}, ca=test_ca,
                greeting_reply="421 4.7.0 smtp.busy.test sending limit reached, try later" if name == "busy" else None))
            for name in ("busy", "backup", "partner", "billing")
        }
        ports = {name: p.port for name, p in providers.items()} | {"dead": closed_port()}
        relays = "".join(RELAY.format(name=name, port=ports[name], ca=test_ca.ca_pem_path, user=USERS[name][0],
                                      upper=name.upper()) for name in USERS)
        config = work / "smtpconf.yaml"
        config.write_text(CONFIG.format(relays=relays, local_host=LOCAL_HOST))
        pf = PostfixInstance()
        stack.callback(pf.close)
        map_dir = pf.config_dir / "smtpconf"
        done = subprocess.run(
            [sys.executable, "-m", "smtpconf", "render", str(config), "-o", str(work / "out"), "--only", "postfix",
             "--postfix-map-dir", str(map_dir)],
            capture_output=True, text=True, env=_env(), timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout + done.stderr
        for _, password in USERS.values():
            assert password not in done.stdout + done.stderr
        rendered = work / "out" / "postfix" / "web"
        _apply(pf, rendered, map_dir)
        assert pf.check() == ""
        assert pf.postconf_warnings() == ""
        pf.start()
        yield Lab(pf, providers, rendered)


def _deliver(lab: Lab, sender: str, rcpt: str, via: str) -> Received:
    """Inject one message and wait until Postfix logs it sent through relay ``via``; the message
    as that provider received it."""
    provider = lab.providers[via]
    before = len(provider.messages)
    queue_id = lab.postfix.inject(sender, rcpt)
    lab.postfix.wait_log(rf"{queue_id}: to=<{rcpt}>.*relay=localhost\[127\.0\.0\.1\]:{provider.port},.*status=sent",
                         timeout=40)
    received = [m for m in provider.wait_for_messages(before + 1)[before:] if m.mail_from == sender]
    assert len(received) == 1, received
    # Failing over happens within the one delivery attempt: the message was never deferred.
    assert not re.search(rf"{queue_id}: .*status=deferred", lab.postfix.log_text())
    return received[0]


def test_the_maps_key_every_relay_by_its_own_next_hop(lab: Lab) -> None:
    pf = lab.postfix
    sasl = f"hash:{pf.config_dir}/smtpconf/sasl_passwd"
    relayhost = pf.get("relayhost")
    hops = [hop.strip() for hop in relayhost.split(",")]
    assert hops == ["[localhost]:" + hops[0].rsplit(":", 1)[1], f"[localhost]:{lab.providers['backup'].port}"]
    assert pf.postmap_query(hops[0], sasl) == "%s:%s" % USERS["dead"]
    assert pf.postmap_query(hops[1], sasl) == "%s:%s" % USERS["backup"]
    # Only a sender with one relay has a sender key: a list's relays are found by next hop.
    assert pf.postmap_query("billing@example.test", sasl) == "%s:%s" % USERS["billing"]
    assert pf.postmap_query("ops@example.test", sasl) is None
    transport = f"hash:{pf.config_dir}/smtpconf/transport"
    assert pf.postmap_query("partner.example", transport) == f"smtpconf_route:[localhost]:{lab.providers['partner'].port}"


def test_refused_first_relay_fails_over_to_the_second_with_its_credential(lab: Lab) -> None:
    mark = lab.postfix.log_size()
    message = _deliver(lab, f"cron@{LOCAL_HOST}", "someone@example.org", via="backup")
    assert message.auth_user == USERS["backup"][0] and message.tls
    assert "Connection refused" in lab.postfix.log_text()[mark:]


def test_first_relay_answering_421_fails_over_to_the_second(lab: Lab) -> None:
    mark = lab.postfix.log_size()
    message = _deliver(lab, "ops@example.test", "someone@example.org", via="backup")
    assert message.auth_user == USERS["backup"][0]
    assert lab.providers["busy"].messages == [] and lab.providers["busy"].auth_attempts == []
    log = lab.postfix.log_text()[mark:]
    assert "refused to talk to me: 421 4.7.0 smtp.busy.test sending limit reached" in log
    assert "postfix/smtpconf_route/smtp[" in log  # the list's own transport


def test_recipient_domain_goes_through_its_route_and_other_mail_through_the_default(lab: Lab) -> None:
    message = _deliver(lab, f"cron@{LOCAL_HOST}", "ceo@partner.example", via="partner")
    assert message.auth_user == USERS["partner"][0] and message.rcpt_tos == ["ceo@partner.example"]
    other = _deliver(lab, f"cron@{LOCAL_HOST}", "ceo@elsewhere.example", via="backup")
    assert other.auth_user == USERS["backup"][0]


def test_sender_recipient_and_default_routes_combined(lab: Lab) -> None:
    # billing@ has its own relay (found by sender, with sender-dependent authentication on)...
    billing = _deliver(lab, "billing@example.test", "payer@example.org", via="billing")
    assert billing.auth_user == USERS["billing"][0]
    # ...but its mail to a routed domain takes the route and the route's credential, not billing's.
    routed = _deliver(lab, "billing@example.test", "ap@partner.example", via="partner")
    assert routed.auth_user == USERS["partner"][0]
    # A recipient list fails over too: dead is refused, partner takes it with its own login.
    listed = _deliver(lab, "ops@example.test", "x@fallback.example", via="partner")
    assert listed.auth_user == USERS["partner"][0]
    for name in ("backup", "partner", "billing"):
        attempts = lab.providers[name].auth_attempts
        assert attempts and all(a.success and a.user == USERS[name][0] for a in attempts), (name, attempts)


def test_why_not_by_sender_a_sender_key_gives_every_relay_of_the_list_one_credential(lab: Lab) -> None:
    """The keying docs/postfix.md explains, shown the other way round (this test runs last: it
    changes the instance). With smtp_sender_dependent_authentication on and a sender key, Postfix
    finds the sender's credential first at every destination of the list: the second relay is
    offered the first one's login and refuses it."""
    pf, map_dir = lab.postfix, lab.postfix.config_dir / "smtpconf"
    with (map_dir / "sasl_passwd").open("a") as sasl:
        sasl.write("ops@example.test %s:%s\n" % USERS["busy"])
    transport = (map_dir / "sender_transport").read_text().replace("ops@example.test smtpconf_route",
                                                                   "ops@example.test smtp")
    (map_dir / "sender_transport").write_text(transport)
    for name in ("sasl_passwd", "sender_transport"):
        pf.postmap(map_dir / name)
    pf.reload()
    backup = lab.providers["backup"]
    before = len(backup.auth_attempts)
    queue_id = pf.inject("ops@example.test", "someone@example.org")
    pf.wait_log(rf"{queue_id}: .*status=deferred .*SASL authentication failed", timeout=40)
    assert backup.auth_attempts[before:][:1] == [(USERS["busy"][0], False)]

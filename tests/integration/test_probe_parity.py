"""One dialogue, one diagnosis: for the same misbehaving server, the role's ``smtp_probe`` module
(run by Ansible on the host) and ``smtpconf check`` name the same rule with the same message, and
``smtpconf send-test`` fails with that message at that step. All three speak
roles/smtp_relay/module_utils/smtp_dialogue.py; this proves nobody forked it."""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_ansible_smtp_probe import run_module
from tests.support.live import ScriptedServer, key_lines, run_check, smtpconf
from tests.support.smtpserver import LOOPBACK, Provider, Tarpit, TestCA, closed_port

pytestmark = pytest.mark.integration

USERS = {"relayuser": "relaypass"}
TIMEOUT = 2

# relay -> (security in the file, the rule both must name)
EXPECTED: dict[str, tuple[str, str | None]] = {
    "good-starttls": ("starttls", None),
    "good-tls": ("tls", None),
    "no-starttls": ("starttls", "starttls-not-offered"),
    "plain-on-tls-port": ("tls", "tls-handshake-failed"),
    "tls-on-starttls-port": ("starttls", "tls-handshake-failed"),
    "wrong-name": ("starttls", "cert-hostname-mismatch"),
    "expired": ("tls", "cert-expired"),
    "untrusted": ("starttls", "cert-untrusted"),
    "no-auth": ("starttls", "auth-not-offered"),
    "tarpit": ("starttls", "probe-timeout"),
    "refuses-service": ("starttls", "probe-unreachable"),
    "refuses-ehlo": ("starttls", "probe-unreachable"),
    "not-smtp": ("starttls", "probe-unreachable"),
    "closed": ("starttls", "probe-unreachable"),
}


def _servers(ca: TestCA, other: TestCA, stack: contextlib.ExitStack) -> dict[str, int]:
    def provider(mode: str, **kwargs: Any) -> Callable[[], int]:
        if mode != "plain" and "ssl_context" not in kwargs and kwargs.get("offer_starttls", True):
            kwargs["ssl_context"] = ca.issue([LOOPBACK])
        return lambda: stack.enter_context(Provider(mode, **kwargs)).port  # type: ignore[arg-type]

    def scripted(greeting: str = "220 scripted.test ESMTP", **replies: str | None) -> Callable[[], int]:
        return lambda: stack.enter_context(ScriptedServer(greeting, replies)).port

    start = {
        "good-starttls": provider("starttls", users=USERS),
        "good-tls": provider("tls", users=USERS),
        "no-starttls": provider("starttls", users=USERS, offer_starttls=False),
        "plain-on-tls-port": provider("plain", users=USERS),
        "tls-on-starttls-port": provider("tls", users=USERS),
        "wrong-name": provider("starttls", users=USERS, ssl_context=ca.issue(["other.test"])),
        "expired": provider("tls", users=USERS, ssl_context=ca.issue([LOOPBACK], expired=True)),
        "untrusted": provider("starttls", users=USERS, ssl_context=other.issue([LOOPBACK])),
        "no-auth": provider("starttls"),
        "tarpit": lambda: stack.enter_context(Tarpit()).port,
        "refuses-service": scripted("554 5.7.1 go away"),
        "refuses-ehlo": scripted(EHLO="502 5.5.2 EHLO not here"),
        "not-smtp": scripted("SSH-2.0-OpenSSH_9.6"),
        "closed": closed_port,
    }
    return {relay: start[relay]() for relay in EXPECTED}


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, tuple[str | None, str]]]]:
    """relay -> {"check": (rule, message), "role": (rule, message), "send-test": (None, its FAIL line)}"""
    tmp = tmp_path_factory.mktemp("parity")
    with contextlib.ExitStack() as stack:
        ca, other = TestCA(tmp / "ca"), TestCA(tmp / "other-ca")
        ports = _servers(ca, other, stack)
        lines = ["version: 1", "relays:"]
        for relay, (security, _) in EXPECTED.items():
            lines += [f"  {relay}:", f"    host: {LOOPBACK}", f"    port: {ports[relay]}", f"    security: {security}",
                      f"    ca_file: {ca.ca_pem_path}", "    username: relayuser", "    password: {env: RELAY_PASSWORD}"]
        text = "\n".join(lines) + "\n"
        config = tmp / "smtpconf.yaml"
        config.write_text(text)
        check = run_check(config, "--no-dns", "--timeout", str(TIMEOUT))

        def role(relay: str) -> dict[str, Any]:
            work = tmp / relay
            work.mkdir()
            return run_module(work, host=LOOPBACK, port=ports[relay], security=EXPECTED[relay][0],
                              ca_pem=ca.ca_pem.decode(), timeout=TIMEOUT)

        def send_test(relay: str) -> str:
            done = smtpconf("send-test", str(config), "--relay", relay, "--to", "ops@example.test", "--from",
                            "dev@example.test", "--timeout", str(TIMEOUT), env={"RELAY_PASSWORD": "relaypass"})
            return "\n".join(line for line in done.stdout.splitlines() if line.startswith("FAIL"))

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            roles = dict(zip(EXPECTED, pool.map(role, EXPECTED)))
            sent = dict(zip(EXPECTED, pool.map(send_test, EXPECTED)))
    at = {line: relay for relay, line in key_lines(text).items()}
    found: dict[str, dict[str, tuple[str | None, str]]] = {
        relay: {"check": (None, ""), "role": (None, ""), "send-test": (None, sent[relay])} for relay in EXPECTED}
    for finding in check.findings:
        if finding["line"] in at and finding["rule"] not in ("provider-credential-hint",):
            assert found[at[finding["line"]]]["check"][0] is None, check.findings  # one rule per server
            found[at[finding["line"]]]["check"] = (finding["rule"], finding["message"])
    for relay, result in roles.items():
        found[relay]["role"] = (result.get("rule"), re.sub(r"^\[[a-z-]+\] ", "", result.get("msg", "")))
    yield found


@pytest.mark.parametrize("relay", list(EXPECTED))
def test_the_role_and_check_give_the_same_diagnosis(relay: str,
                                                   ran: dict[str, dict[str, tuple[str | None, str]]]) -> None:
    (check_rule, check_said), (role_rule, role_said) = ran[relay]["check"], ran[relay]["role"]
    assert check_rule == role_rule == EXPECTED[relay][1], ran[relay]
    # check adds why it matters for this file ("..., but the file has credentials for it").
    assert check_said.startswith(role_said), ran[relay]


# send-test goes on to AUTH where the probes stop (a server without AUTH fails at its AUTH step):
# the relays whose problem is in the dialogue, and the step send-test shows it at.
SEND_TEST_STEP = {"no-starttls": "TLS", "plain-on-tls-port": "TLS", "tls-on-starttls-port": "greeting",
                  "wrong-name": "TLS", "expired": "TLS", "untrusted": "TLS", "tarpit": "greeting",
                  "refuses-service": "greeting", "refuses-ehlo": "EHLO", "not-smtp": "greeting", "closed": "connect"}


@pytest.mark.parametrize("relay", list(SEND_TEST_STEP))
def test_send_test_fails_with_the_probes_diagnosis(relay: str,
                                                   ran: dict[str, dict[str, tuple[str | None, str]]]) -> None:
    role_said, failed = ran[relay]["role"][1], ran[relay]["send-test"][1]
    assert len(failed.splitlines()) == 1 and failed.endswith(role_said), ran[relay]
    assert failed.split()[1] == SEND_TEST_STEP[relay], failed

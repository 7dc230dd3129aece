"""``smtpconf check`` against real SMTP servers on loopback, resolved through a real nsd.

One file lists a relay per server; one run of the command probes them all concurrently. Each
misbehaving server must give exactly its rule id, the good ones nothing. Host names exist only in
the nsd test zone, so a probe that did not resolve through ``--nameserver`` fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.live import ScriptedServer, rules_by_key, run_check
from tests.support.nsd import NsdServer, zone_text
from tests.support.smtpserver import Provider, Tarpit, TestCA, closed_port

pytestmark = pytest.mark.integration

USERS = {"relayuser": "relaypass"}
ZONE = "probe.test"
TIMEOUT = "2"  # the tarpit and the TLS-on-STARTTLS server cost this much; everything else is fast

# relay name -> (security in the file, with credentials?, expected rule ids)
EXPECTED: dict[str, tuple[str, bool, list[str]]] = {
    "good-starttls": ("starttls", True, []),
    "good-tls": ("tls", True, []),
    "no-starttls": ("starttls", True, ["starttls-not-offered"]),
    "plain-on-tls-port": ("tls", True, ["tls-handshake-failed"]),
    "tls-on-starttls-port": ("starttls", True, ["tls-handshake-failed"]),
    "wrong-name": ("starttls", True, ["cert-hostname-mismatch"]),
    "expired": ("tls", True, ["cert-expired"]),
    "expiring": ("starttls", True, ["cert-expiring"]),
    "untrusted": ("starttls", True, ["cert-untrusted"]),
    "auth-before-tls": ("starttls", True, ["auth-before-tls"]),
    "no-auth": ("starttls", True, ["auth-not-offered"]),
    "no-auth-no-credentials": ("starttls", False, []),
    "tarpit": ("starttls", True, ["probe-timeout"]),
    "refuses-service": ("starttls", True, ["probe-unreachable"]),
    "refuses-ehlo": ("starttls", True, ["probe-unreachable"]),
    "closed": ("starttls", True, ["probe-unreachable"]),
    "no-address": ("starttls", True, ["dns-no-address"]),
}


def _servers(ca: TestCA, other_ca: TestCA, stack: contextlib.ExitStack) -> dict[str, int]:
    def name(relay: str) -> str:
        return f"{relay}.{ZONE}"

    def provider(relay: str, mode: str, **kwargs: Any) -> int:
        if mode != "plain" and "ssl_context" not in kwargs and kwargs.get("offer_starttls", True):
            kwargs["ssl_context"] = ca.issue([name(relay)])
        return stack.enter_context(Provider(mode, hostname=name(relay), **kwargs)).port  # type: ignore[arg-type]

    ports = {
        "good-starttls": provider("good-starttls", "starttls", users=USERS),
        "good-tls": provider("good-tls", "tls", users=USERS),
        "no-starttls": provider("no-starttls", "starttls", users=USERS, offer_starttls=False),
        "plain-on-tls-port": provider("plain-on-tls-port", "plain", users=USERS),
        "tls-on-starttls-port": provider("tls-on-starttls-port", "tls", users=USERS),
        "wrong-name": provider("wrong-name", "starttls", users=USERS, ssl_context=ca.issue(["other.test"])),
        "expired": provider("expired", "tls", users=USERS, ssl_context=ca.issue([name("expired")], expired=True)),
        "expiring": provider("expiring", "starttls", users=USERS,
                             ssl_context=ca.issue([name("expiring")], expiring_soon=True)),
        "untrusted": provider("untrusted", "starttls", users=USERS, ssl_context=other_ca.issue([name("untrusted")])),
        "auth-before-tls": provider("auth-before-tls", "starttls", users=USERS, auth_before_tls=True),
        "no-auth": provider("no-auth", "starttls"),
        "tarpit": stack.enter_context(Tarpit()).port,
        "refuses-service": stack.enter_context(ScriptedServer("554 5.7.1 go away")).port,
        "refuses-ehlo": stack.enter_context(ScriptedServer(replies={"EHLO": "502 5.5.2 EHLO not here"})).port,
        "closed": closed_port(),
        "no-address": closed_port(),
    }
    ports["no-auth-no-credentials"] = ports["no-auth"]
    return ports


def _config(ports: dict[str, int], ca_file: Path) -> str:
    lines = ["version: 1", "relays:"]
    for relay, (security, credentials, _) in EXPECTED.items():
        host = f"{relay}.{ZONE}" if relay != "no-auth-no-credentials" else f"no-auth.{ZONE}"
        lines += [f"  {relay}:", f"    host: {host}", f"    port: {ports[relay]}", f"    security: {security}",
                  f"    ca_file: {ca_file}"]
        if credentials:
            lines += ["    username: relayuser", "    password: {env: RELAY_PASSWORD}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, list[str]], Any]]:
    tmp = tmp_path_factory.mktemp("probes")
    records = [(relay, "A", "127.0.0.1") for relay in EXPECTED if relay not in ("no-address", "no-auth-no-credentials")]
    with contextlib.ExitStack() as stack:
        ca, other_ca = TestCA(tmp / "ca"), TestCA(tmp / "other-ca")
        ports = _servers(ca, other_ca, stack)
        dns = stack.enter_context(NsdServer({ZONE: zone_text(ZONE, records)}))
        text = _config(ports, ca.ca_pem_path)
        config = tmp / "smtpconf.yaml"
        config.write_text(text)
        run = run_check(config, "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", TIMEOUT)
        yield rules_by_key(text, run.findings), run


@pytest.mark.parametrize("relay", list(EXPECTED))
def test_each_server_gives_exactly_its_rule(relay: str, outcome: tuple[dict[str, list[str]], Any]) -> None:
    by_relay, run = outcome
    assert sorted(by_relay[relay]) == EXPECTED[relay][2], run.findings


def test_messages_name_the_mode_mismatch(outcome: tuple[dict[str, list[str]], Any]) -> None:
    _, run = outcome
    messages = {f["message"] for f in run.findings if f["rule"] == "tls-handshake-failed"}
    assert any("plaintext SMTP server" in m and "security: tls" in m for m in messages), messages
    assert any("speaks implicit TLS" in m and "security: starttls" in m for m in messages), messages


def test_refusals_say_what_was_refused(outcome: tuple[dict[str, list[str]], Any]) -> None:
    _, run = outcome
    messages = {f["message"] for f in run.findings if f["rule"] == "probe-unreachable"}
    assert any("refused EHLO: 502 5.5.2 EHLO not here" in m for m in messages), messages
    assert any("refuses service: 554 5.7.1 go away" in m for m in messages), messages


def test_the_exit_code_reflects_errors(outcome: tuple[dict[str, list[str]], Any]) -> None:
    _, run = outcome
    assert run.returncode == 1


def test_probes_run_concurrently_within_the_limit(tmp_path: Path) -> None:
    """Six tarpits with --timeout 1: all at once is about one second; --concurrency 2 must take
    three rounds, and no more: a probe that timed out hangs up at once instead of waiting for an
    answer to QUIT while it holds its slot."""
    with Tarpit(count=6) as tarpit, NsdServer({ZONE: zone_text(ZONE, [("slow", "A", "127.0.0.1")])}) as dns:
        config = tmp_path / "smtpconf.yaml"
        config.write_text("version: 1\nrelays:\n" + "".join(
            f"  t{i}:\n    host: slow.{ZONE}\n    port: {port}\n" for i, port in enumerate(tarpit.ports)))
        wide = run_check(config, "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", "1", "--concurrency", "50")
        narrow = run_check(config, "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", "1", "--concurrency", "2")
    for run in (wide, narrow):
        assert [f["rule"] for f in run.findings] == ["probe-timeout"] * 6, run.findings
    assert wide.seconds < 2.5, wide.seconds
    assert 3 <= narrow.seconds < 4.5, narrow.seconds


def test_probes_never_send_credentials(tmp_path: Path) -> None:
    with TestCA(tmp_path / "ca") as ca, Provider("starttls", users=USERS, ssl_context=ca.issue([f"good.{ZONE}"]),
                                                 auth_before_tls=True) as server, \
            NsdServer({ZONE: zone_text(ZONE, [("good", "A", "127.0.0.1")])}) as dns:
        config = tmp_path / "smtpconf.yaml"
        config.write_text(f"version: 1\nrelays:\n  r:\n    host: good.{ZONE}\n    port: {server.port}\n"
                          f"    security: starttls\n    ca_file: {ca.ca_pem_path}\n    username: relayuser\n"
                          "    password: {env: RELAY_PASSWORD}\n")
        run = run_check(config, "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", TIMEOUT)
        assert [f["rule"] for f in run.findings] == ["auth-before-tls"]
        assert list(server.auth_attempts) == [] and list(server.messages) == []


def test_a_trailing_dot_is_the_same_endpoint_probed_once(tmp_path: Path) -> None:
    with ScriptedServer() as server, NsdServer({ZONE: zone_text(ZONE, [("dot", "A", "127.0.0.1")])}) as dns:
        config = tmp_path / "smtpconf.yaml"
        config.write_text("version: 1\nrelays:\n" + "".join(
            f"  {name}:\n    host: {host}\n    port: {server.port}\n    security: none\n"
            for name, host in (("plain", f"dot.{ZONE}"), ("absolute", f"dot.{ZONE}."))))
        run = run_check(config, "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", TIMEOUT)
    assert run.findings == [], run.findings
    assert [line for line in server.received if line.startswith("EHLO")] == ["EHLO [127.0.0.1]"], server.received


def test_auth_in_the_old_spelling_counts(tmp_path: Path) -> None:
    """``250-AUTH=PLAIN LOGIN`` alone (no ``AUTH PLAIN LOGIN`` line) still offers AUTH."""
    ehlo = "250-scripted.test\r\n250 AUTH=PLAIN LOGIN"
    with ScriptedServer(replies={"EHLO": ehlo}) as server, \
            NsdServer({ZONE: zone_text(ZONE, [("old", "A", "127.0.0.1")])}) as dns:
        config = tmp_path / "smtpconf.yaml"
        config.write_text(f"version: 1\nrelays:\n  r:\n    host: old.{ZONE}\n    port: {server.port}\n"
                          "    security: none  # smtpconf: ignore[plaintext-auth]\n    username: relayuser\n"
                          "    password: {env: RELAY_PASSWORD}\n")
        run = run_check(config, "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", TIMEOUT)
    assert run.findings == [], run.findings

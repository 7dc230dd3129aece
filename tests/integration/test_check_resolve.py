"""``smtpconf check`` resolves like the clients will (SPEC §10): without ``--nameserver`` the
addresses to probe come from the system's resolver (``/etc/hosts``, then DNS), bounded by
``--timeout``; with it, every query goes to that server; a fleet relay only ``/etc/hosts`` knows
gets ``dns-hosts-only``, because Postfix looks relays up in DNS.

The "system" is made real and private: each run happens in its own mount namespace (unshare),
where /etc/hosts and /etc/resolv.conf are bind-mounted over with test files, and resolv.conf
names a real nsd on a loopback address, port 53. Nothing outside the namespace changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.support.gate import need_program, need_root, unavailable
from tests.support.live import ROOT, rules_by_key
from tests.support.nsd import NsdServer, port_is_free, zone_text
from tests.support.smtpserver import Provider, TestCA

pytestmark = pytest.mark.integration

ZONE = "res.test"
DNS_HOST = "127.0.53.1"  # resolv.conf takes no port: nsd serves port 53 of its own loopback address
SILENT_HOST = "127.0.53.2"  # a "DNS server" that never answers
USERS = {"relayuser": "relaypass"}


class Run(NamedTuple):
    returncode: int
    report: dict[str, Any]
    stderr: str
    seconds: float


def run_isolated(hosts: str, resolv: str, tmp: Path, *args: str) -> Run:
    """``smtpconf check ARGS --format json`` with these /etc/hosts and /etc/resolv.conf."""
    unshare = need_program("unshare", "util-linux")
    need_root("bind-mounts test /etc/hosts and /etc/resolv.conf in a private mount namespace")
    (tmp / "hosts").write_text(hosts)
    (tmp / "resolv.conf").write_text(resolv)
    script = 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"'
    argv = [unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(tmp / "hosts"),
            str(tmp / "resolv.conf"), sys.executable, "-m", "smtpconf", "check", *args, "--format", "json"]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "RELAY_PASSWORD": "relaypass"})
    seconds = time.monotonic() - started
    if done.returncode not in (0, 1):
        if "mount" in done.stderr and "permission" in done.stderr.lower():
            unavailable(f"cannot bind-mount in a mount namespace here: {done.stderr.strip()}")
        raise AssertionError(done.stderr)
    return Run(done.returncode, json.loads(done.stdout), done.stderr, seconds)


def _hosts(*extra: str) -> str:
    return "127.0.0.1 localhost\n::1 localhost ip6-localhost\n" + "".join(f"{line}\n" for line in extra)


class Stand(NamedTuple):
    ca: TestCA
    port: int  # one STARTTLS server, certificate for every name used here
    dns: NsdServer


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stand]:
    if not port_is_free(53, DNS_HOST):
        unavailable(f"port 53 of {DNS_HOST} is taken")
    names = ["localhost", f"hostsonly.{ZONE}", f"indns.{ZONE}", f"accountonly.{ZONE}"]
    with contextlib.ExitStack() as stack:
        ca = TestCA(tmp_path_factory.mktemp("resolve-ca"))
        server = stack.enter_context(Provider("starttls", hostname=f"indns.{ZONE}", users=USERS,
                                              ssl_context=ca.issue(names)))
        # An empty localhost zone: DNS says "no such address", as resolvers do for it (RFC 6761 §6.3).
        zones = {ZONE: zone_text(ZONE, [("indns", "A", "127.0.0.1")]), "localhost": zone_text("localhost")}
        dns = stack.enter_context(NsdServer(zones, host=DNS_HOST, port=53))
        yield Stand(ca, server.port, dns)


def _config(stand: Stand, path: Path) -> str:
    lines = ["version: 1", "relays:"]
    for name, host in (("local", "localhost"), ("hostsonly", f"hostsonly.{ZONE}"), ("indns", f"indns.{ZONE}"),
                       ("accountonly", f"accountonly.{ZONE}")):
        lines += [f"  {name}:", f"    host: {host}", f"    port: {stand.port}", "    security: starttls",
                  f"    ca_file: {stand.ca.ca_pem_path}", "    username: relayuser",
                  "    password: {env: RELAY_PASSWORD}"]
    # Postfix uses the relays of fleet groups; accountonly is only for mail clients.
    lines += ["fleet:", "  web:", "    hosts: [web1.example.com]", "    relay: hostsonly", "    tls_level: verify",
              "  app:", "    hosts: [app1.example.com]", "    relay: indns", "    tls_level: verify",
              "  lo:", "    hosts: [lo1.example.com]", "    relay: local", "    tls_level: verify"]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


HOSTS = _hosts(f"127.0.0.1 hostsonly.{ZONE}", f"127.0.0.1 accountonly.{ZONE}")
RESOLV = f"nameserver {DNS_HOST}\noptions timeout:1 attempts:1\n"


@pytest.fixture(scope="module")
def system_run(stand: Stand, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, list[str]], Run]:
    tmp = tmp_path_factory.mktemp("resolve")
    text = _config(stand, tmp / "smtpconf.yaml")
    run = run_isolated(HOSTS, RESOLV, tmp, str(tmp / "smtpconf.yaml"), "--timeout", "5")
    return rules_by_key(text, run.report["findings"]), run


def test_without_nameserver_hosts_file_names_are_probed(system_run: tuple[dict[str, list[str]], Run]) -> None:
    by_key, run = system_run
    assert by_key["accountonly"] == [] and by_key["indns"] == [], run.report["findings"]
    endpoints = {e["host"]: e for e in run.report["observations"][0]["endpoints"]}
    for host in ("localhost", f"hostsonly.{ZONE}", f"accountonly.{ZONE}", f"indns.{ZONE}"):
        seen = endpoints[host]
        assert seen["resolved_by"] == "system" and seen["probed"] and seen["auth_mechanisms"], seen
        assert seen["address"] in ("127.0.0.1", "::1"), seen


def test_a_fleet_relay_only_the_hosts_file_knows_is_said_so(system_run: tuple[dict[str, list[str]], Run]) -> None:
    by_key, run = system_run
    assert by_key["hostsonly"] == ["dns-hosts-only"] and by_key["local"] == ["dns-hosts-only"], run.report["findings"]
    [message] = [f["message"] for f in run.report["findings"]
                 if f["rule"] == "dns-hosts-only" and f"hostsonly.{ZONE}" in f["message"]]
    assert "smtp_host_lookup = dns" in message and "127.0.0.1" in message, message
    assert run.returncode == 0  # a warning


def test_with_nameserver_every_query_goes_there(stand: Stand, tmp_path: Path) -> None:
    text = _config(stand, tmp_path / "smtpconf.yaml")
    # The system resolver would answer for every name (hosts file); --nameserver must not ask it.
    run = run_isolated(HOSTS, RESOLV, tmp_path, str(tmp_path / "smtpconf.yaml"), "--timeout", "5",
                       "--nameserver", f"{DNS_HOST}:53")
    by_key = rules_by_key(text, run.report["findings"])
    assert by_key["hostsonly"] == ["dns-no-address"] and by_key["accountonly"] == ["dns-no-address"]
    assert by_key["local"] == ["dns-no-address"] and by_key["indns"] == []
    [indns] = [e for e in run.report["observations"][0]["endpoints"] if e["host"] == f"indns.{ZONE}"]
    assert indns["resolved_by"] == "dns" and indns["probed"]


def test_a_silent_system_resolver_is_bounded_by_the_timeout(stand: Stand, tmp_path: Path) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read: queries vanish
    try:
        silent.bind((SILENT_HOST, 53))
        config = tmp_path / "smtpconf.yaml"
        config.write_text(f"version: 1\nrelays:\n  r:\n    host: nowhere.{ZONE}\n    port: {stand.port}\n")
        # glibc would wait 5 s x 3 attempts; the check must give up after --timeout.
        run = run_isolated(_hosts(), f"nameserver {SILENT_HOST}\noptions timeout:5 attempts:3\n", tmp_path,
                           str(config), "--timeout", "1")
    finally:
        silent.close()
    rules = [(f["rule"], f["message"]) for f in run.report["findings"]]
    assert [r for r, _ in rules] == ["dns-timeout"], rules
    assert "system resolver gave no answer within 1s" in rules[0][1], rules
    assert run.seconds < 8, run.seconds  # not the 15 s glibc would take

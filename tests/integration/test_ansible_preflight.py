"""The rendered playbook's ``--tags preflight`` for real (SPEC §8): ansible-playbook, connection
local, on this machine before the role was ever applied, against aiosmtpd providers on loopback.

Before anything is installed or changed, and without Postfix (the role's Postfix commands are
pointed at a path that does not exist), every relay of the host's group is probed from the host:
a live relay passes, a dead one fails naming host, relay, address and port; no file is written and
the relay password (a canary) is never sent or shown.
"""

from __future__ import annotations

import secrets
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from smtpconf.cli import main as smtpconf_main
from tests.support import ansible_run
from tests.support.gate import need_root
from tests.support.smtp_fixtures import test_ca  # noqa: F401  (session fixture)
from tests.support.smtpserver import Provider, TestCA, closed_port

pytestmark = pytest.mark.integration

USER = "relayuser"
NO_POSTFIX = "/nonexistent/smtpconf-preflight"


class Preflight(NamedTuple):
    run: ansible_run.Run
    config_dir: Path  # the Postfix config directory the role would manage
    canary: str


def preflight(work: Path, relays: str, relay: str) -> Preflight:
    canary = f"CANARY-{secrets.token_hex(8)}"
    source = work / "smtpconf.yaml"
    source.write_text(textwrap.dedent("""\
        version: 1
        relays:
        """) + relays + textwrap.dedent(f"""\
        fleet:
          web:
            hosts: [localhost]
            relay: {relay}
        """))
    assert smtpconf_main(["render", str(source), "-o", str(work / "out"), "--only", "ansible"]) == 0
    config_dir = work / "etc-postfix"  # never created: nothing is installed or written
    vars_file = work / "vars.yml"
    vars_file.write_text(yaml.safe_dump({
        "smtp_relay_postfix_config_dir": str(config_dir),
        **{f"vault_{name}": canary for name in ("live", "dead", "v6")},
        # No Postfix: a task that ran postconf, postfix or postmap would fail.
        "smtp_relay__postconf": f"{NO_POSTFIX}/postconf",
        "smtp_relay__postfix": f"{NO_POSTFIX}/postfix",
        "smtp_relay__postmap": f"{NO_POSTFIX}/postmap",
    }))
    run = ansible_run.run(
        [ansible_run.program("ansible-playbook"), "-i", "inventory.ini", "playbook.yml", "--tags", "preflight",
         "-e", "ansible_connection=local", "-e", "ansible_become=false", "-e", f"@{vars_file}", "-v"],
        cwd=work / "out" / "ansible", home=work / "home")
    return Preflight(run, config_dir, canary)


def relay(name: str, host: str, port: int, ca: Path) -> str:
    return textwrap.indent(textwrap.dedent(f"""\
        {name}:
          host: "{host}"
          port: {port}
          security: starttls
          ca_file: {ca}
          username: {USER}
          password: {{vault: vault_{name}}}
        """), "  ")


@pytest.fixture(scope="module")
def live(test_ca: TestCA) -> Provider:  # noqa: F811
    need_root("the playbook runs as root on this machine, as on a fleet host")
    with Provider("starttls", users={USER: "not-the-canary"}, ca=test_ca) as provider:
        yield provider


def test_preflight_passes_for_a_live_relay_and_changes_nothing(live: Provider, test_ca: TestCA,  # noqa: F811
                                                               tmp_path: Path) -> None:
    done = preflight(tmp_path, relay("live", "localhost", live.port, test_ca.ca_pem_path), "live")
    assert done.run.returncode == 0, done.run.output
    recap = done.run.recap()
    assert recap["changed"] == 0 and recap["failed"] == 0 and recap["ok"] > 0, done.run.output
    assert "Probe each relay of the group from this host" in done.run.output
    assert f"'address': '127.0.0.1'" in done.run.output or '"address": "127.0.0.1"' in done.run.output
    assert not done.config_dir.exists()
    assert done.canary not in done.run.output
    assert live.auth_attempts == [] and live.messages == []  # probed, never logged in


def test_preflight_fails_naming_the_dead_relay(live: Provider, test_ca: TestCA,  # noqa: F811
                                               tmp_path: Path) -> None:
    dead = closed_port()
    relays = relay("dead", "localhost", dead, test_ca.ca_pem_path) + relay("live", "localhost", live.port,
                                                                           test_ca.ca_pem_path)
    done = preflight(tmp_path, relays, "[dead, live]")
    assert done.run.returncode != 0
    out = done.run.output
    assert f"[probe-unreachable] from localhost: relay 'dead' localhost IPv4 127.0.0.1 port {dead}: " in out, out
    assert "Connection refused" in out
    assert "(item=live)" in out and "failed: [localhost] (item=live)" not in out  # the live one passed
    assert done.run.recap()["changed"] == 0
    assert not done.config_dir.exists()
    assert done.canary not in out


def test_preflight_probes_ipv6_addresses(test_ca: TestCA, tmp_path: Path) -> None:  # noqa: F811
    # An IPv6 relay address (here the loopback ::1, where nothing listens on that port).
    port = closed_port()
    done = preflight(tmp_path, relay("v6", "::1", port, test_ca.ca_pem_path), "v6")
    assert done.run.returncode != 0
    assert f"[probe-unreachable] from localhost: relay 'v6' ::1 IPv6 [::1] port {port}: " in done.run.output, \
        done.run.output
    assert not done.config_dir.exists()

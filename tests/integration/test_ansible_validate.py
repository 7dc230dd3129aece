"""The role refuses bad variables before it touches the host, and says which variable is wrong.

Used without smtpconf (variables written by hand), so the role's own checks are what stands
between a typo and a broken mail setup. The config directory does not exist: any task that got
as far as the host would fail differently (or create it), which the tests would notice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from smtpconf.resources import resource_path
from tests.support import ansible_run

pytestmark = pytest.mark.integration

CANARY = "CANARY-validate-7f3a"

GOOD: dict[str, Any] = {
    "smtp_relay_relay": "main",
    "smtp_relay_relays": {
        "main": {"host": "smtp.example.test", "port": 587, "security": "starttls",
                 "username": "u", "password": "{{ vault_main }}"},
        "smtps": {"host": "smtps.example.test", "port": 465, "security": "tls"},
    },
    "smtp_relay_install_packages": False,
}


def apply(tmp_path: Path, variables: dict[str, Any]) -> tuple[ansible_run.Run, Path]:
    config_dir = tmp_path / "postfix"  # does not exist: nothing may create it
    play = [{"name": "Apply smtp_relay", "hosts": "localhost", "gather_facts": False,
             "vars": {"smtp_relay_postfix_config_dir": str(config_dir), **variables},
             "roles": ["smtp_relay"]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    roles = resource_path("roles")
    result = ansible_run.run([ansible_run.program("ansible-playbook"), "-i", "localhost,", "-c", "local",
                              "-e", f"vault_main={CANARY}", "play.yml"], cwd=tmp_path, home=tmp_path / "home",
                             env={"ANSIBLE_ROLES_PATH": str(roles)})
    return result, config_dir


@pytest.mark.parametrize(("change", "message"), [
    ({"smtp_relay_relay": "nope"}, "smtp_relay_relay is 'nope', which is not a key of smtp_relay_relays"),
    ({"smtp_relay_sender_relays": {"a@example.test": "nope"}},
     "smtp_relay_sender_relays['a@example.test'] is 'nope'"),
    ({"smtp_relay_relays": {**GOOD["smtp_relay_relays"],
                            "main": {"host": "h", "port": 587, "security": "ssl"}}},
     "smtp_relay_relays.main needs host, port (1-65535) and security"),
    ({"smtp_relay_relays": {**GOOD["smtp_relay_relays"],
                            "main": {"host": "h", "port": 587, "security": "starttls", "username": "u"}}},
     "smtp_relay_relays.main.password is undefined or empty"),
    ({"smtp_relay_relays": {**GOOD["smtp_relay_relays"],
                            "main": {**GOOD["smtp_relay_relays"]["main"], "password": "{{ vault_typo }}"}}},
     "'vault_typo' is undefined"),
    ({"smtp_relay_relay": "smtps", "smtp_relay_tls_level": "may"},
     "smtp_relay_relays.smtps uses implicit TLS (security: tls), which needs smtp_relay_tls_level encrypt"),
    ({"smtp_relay_tls_level": "strong"}, "smtp_relay_tls_level"),
    # smtpconf's tls-level-unsupported: levels that need per-relay data (TLSA, fingerprints).
    ({"smtp_relay_tls_level": "dane"}, "value of smtp_relay_tls_level must be one of: none, may, encrypt, verify, secure"),
    ({"smtp_relay_tls_level": "fingerprint"}, "value of smtp_relay_tls_level must be one of"),
    # smtpconf's relay-tls-conflict, for the default relay and for a sender relay.
    ({"smtp_relay_relays": {**GOOD["smtp_relay_relays"], "open": {"host": "h", "port": 25, "security": "none"}},
      "smtp_relay_relay": "open"},
     "smtp_relay_relays.open has security: none, but smtp_relay_tls_level verify requires TLS"),
    ({"smtp_relay_relays": {**GOOD["smtp_relay_relays"], "open": {"host": "h", "port": 25, "security": "none"}},
      "smtp_relay_sender_relays": {"@lan.example.test": "open"}, "smtp_relay_tls_level": "encrypt"},
     "smtp_relay_relays.open has security: none, but smtp_relay_tls_level encrypt requires TLS"),
    ({"smtp_relay_relays": None}, "smtp_relay_relays"),
    # Relay lists and recipient routes (SPEC §8).
    ({"smtp_relay_relay": ["main", "nope"]},
     'smtp_relay_relay is ["main", "nope"], which is not a list, without repeats, of keys of smtp_relay_relays'),
    ({"smtp_relay_relay": ["main", "main"]}, "which is not a list, without repeats, of keys"),
    ({"smtp_relay_relay": []}, "smtp_relay_relay is [], which is not a list"),
    ({"smtp_relay_recipient_relays": {"partner.example": "nope"}},
     "smtp_relay_recipient_relays['partner.example'] is 'nope', which is not a key"),
    ({"smtp_relay_sender_relays": {"a@example.test": ["main", "smtps"]}},
     "smtp_relay_sender_relays['a@example.test'] lists main, smtps: a list's relays must all use implicit TLS"),
])
def test_bad_variables_fail_before_touching_the_host(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    variables = {**GOOD, **change}
    if variables["smtp_relay_relays"] is None:
        del variables["smtp_relay_relays"]
    result, config_dir = apply(tmp_path, variables)
    assert result.returncode != 0
    assert " ".join(message.split()) in " ".join(result.output.split()), result.output
    assert not config_dir.exists()
    assert CANARY not in result.output


def test_plaintext_relay_not_in_use_and_may_level_pass_validation(tmp_path: Path) -> None:
    """relay-tls-conflict only concerns relays in use, and only levels that require TLS."""
    relays = {**GOOD["smtp_relay_relays"], "open": {"host": "h", "port": 25, "security": "none"}}
    for variables in ({**GOOD, "smtp_relay_relays": relays},  # "open" defined but unused
                      {**GOOD, "smtp_relay_relays": {"open": relays["open"]}, "smtp_relay_relay": "open",
                       "smtp_relay_tls_level": "may"}):
        # The run goes on to the host (a config directory that does not exist) and fails there.
        result, _ = apply(tmp_path, variables)
        assert "has security: none" not in result.output, result.output
        assert "Check that no relay in use is plaintext-only" in result.output, result.output


TWO_GROUPS = """\
version: 1
relays:
  main:
    host: smtp.example.test
    port: 587
    security: starttls
    username: u
    password: {vault: vault_main}
  smtps:
    host: smtps.example.test
    port: 465
    security: tls
fleet:
  web:
    hosts: [web1.example.test]
    relay: main
  batch:
    hosts: [batch1.example.test]
    relay: smtps
"""


def test_host_in_two_fleet_groups_fails_before_touching_the_host(tmp_path: Path) -> None:
    """smtpconf's lint refuses a host in two fleet groups (fleet-host-duplicate), but the user's own
    inventory can still list one there: Ansible would merge both groups' group_vars into a mixture
    of two relay configurations. The generated playbook names all fleet groups, and the role
    refuses such a host in its validation."""
    from smtpconf.cli import main as smtpconf_main

    (tmp_path / "smtpconf.yaml").write_text(TWO_GROUPS)
    assert smtpconf_main(["render", str(tmp_path / "smtpconf.yaml"), "-o", str(tmp_path / "out"),
                          "--only", "ansible"]) == 0
    ansible_dir = tmp_path / "out" / "ansible"
    config_dir = tmp_path / "postfix"  # does not exist: nothing may create it

    def playbook(inventory: str) -> ansible_run.Run:
        (tmp_path / "inventory.ini").write_text(inventory)
        return ansible_run.run([ansible_run.program("ansible-playbook"), "-i", str(tmp_path / "inventory.ini"),
                                "playbook.yml", "-e", "ansible_connection=local", "-e", "ansible_become=false",
                                "-e", f"smtp_relay_postfix_config_dir={config_dir}",
                                "-e", "smtp_relay_install_packages=false", "-e", f"vault_main={CANARY}"],
                               cwd=ansible_dir, home=tmp_path / "home")

    result = playbook("[web]\nlocalhost\n\n[batch]\nlocalhost\n")
    assert result.returncode != 0
    message = ("localhost is in the fleet groups web, batch, and would get a mixture of their relay settings; "
               "keep the host in one fleet group only (smtpconf lint reports this as fleet-host-duplicate)")
    assert message in " ".join(result.output.split()), result.output
    recap = result.recap()
    assert (recap["failed"], recap["changed"]) == (1, 0), result.output
    assert not config_dir.exists()
    assert CANARY not in result.output

    # The same host in one of the groups only passes this check, and the run goes on to the host.
    result = playbook("[web]\nlocalhost\n\n[batch]\n")
    assert "Check that the host is in at most one fleet group" in result.output, result.output
    assert "fleet-host-duplicate" not in result.output, result.output

"""Fleet-group TLS rules (smtpconf/rules/fleet.py): each with a file that passes and one that fails."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import lint_text, rules_at

RELAYS = """
    version: 1
    relays:
      smtps: {host: smtp.example.com, port: 465, security: tls, username: app, password: {env: P1}}
      submission: {host: smtp.example.com, port: 587, security: starttls, username: app, password: {env: P2}}
      open: {host: mx.lab.example.test, port: 2525, security: none}
    fleet:
"""


def lint_fleet(tmp_path: Path, fleet: str) -> list[tuple[int, str]]:
    return rules_at(lint_text(tmp_path, RELAYS + fleet).findings)


def test_implicit_tls_relay_with_verify_or_encrypt_passes(tmp_path: Path) -> None:
    assert lint_fleet(tmp_path, """
      web: {relay: smtps}
      batch: {relay: submission, sender_relays: {billing@example.com: smtps}, tls_level: encrypt}
    """) == []


def test_implicit_tls_relay_below_encrypt_is_wrappermode_required(tmp_path: Path) -> None:
    result = lint_text(tmp_path, RELAYS + """
      web:
        relay: submission
        sender_relays: {billing@example.com: smtps}
        tls_level: may
    """)
    errors = [f for f in result.findings if f.rule == "wrappermode-required"]
    assert [(f.line, f.level) for f in errors] == [(12, "error")]
    assert "relay 'smtps' uses implicit TLS (port 465)" in errors[0].message
    assert "not may" in errors[0].message


def test_authenticating_over_optional_tls_is_tls_level_weak(tmp_path: Path) -> None:
    result = lint_text(tmp_path, RELAYS + """
      web:
        relay: submission
        tls_level: may
    """)
    assert [(f.line, f.rule, f.level) for f in result.findings] == [(11, "tls-level-weak", "warning")]
    assert "'submission'" in result.findings[0].message


def test_unauthenticated_relay_with_may_is_not_weak(tmp_path: Path) -> None:
    # No password to leak: opportunistic TLS to an open lab smarthost is a choice, not a leak.
    assert lint_fleet(tmp_path, """
      lab: {relay: open, tls_level: may}
    """) == []


def test_tls_required_from_a_plaintext_relay_is_relay_tls_conflict(tmp_path: Path) -> None:
    assert lint_fleet(tmp_path, """
      lab: {relay: open}
    """) == [(9, "relay-tls-conflict")]  # the group: tls_level is the default


def test_hosts_in_one_group_each_pass(tmp_path: Path) -> None:
    assert lint_fleet(tmp_path, """
      web: {relay: submission, hosts: [web1.example.com, web2.example.com]}
      db: {relay: submission, hosts: [db1.example.com]}
      empty: {relay: submission, hosts: []}
    """) == []


def test_host_in_two_groups_is_fleet_host_duplicate(tmp_path: Path) -> None:
    result = lint_text(tmp_path, RELAYS + """
      web:
        relay: submission
        hosts: [web1.example.com, shared.example.com]
      db:
        relay: submission
        hosts:
          - db1.example.com
          - Shared.Example.com.
    """)
    dupes = [f for f in result.findings if f.rule == "fleet-host-duplicate"]
    # At the second occurrence (the list item), naming both groups.
    assert [(f.line, f.col, f.level) for f in dupes] == [(16, 9, "error")]
    assert "'Shared.Example.com.'" in dupes[0].message
    assert "fleet groups 'web' and 'db'" in dupes[0].message
    assert [f.rule for f in result.findings] == ["fleet-host-duplicate"]

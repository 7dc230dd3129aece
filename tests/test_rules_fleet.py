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


# Relay lists and recipient routes (SPEC §8): every bad item is reported where it is written.
ROUTES = """
    version: 1
    relays:
      a: {host: a.example.com, port: 587, security: starttls, username: app, password: {env: PA}}
      b: {host: b.example.com, port: 587, security: starttls, username: app, password: {env: PB}}
      smtps: {host: c.example.com, port: 465, security: tls, username: app, password: {env: PC}}
      a2: {host: a.example.com, port: 587, security: starttls, username: other, password: {env: PD}}
      o365: {provider: office365, auth: oauth2, username: app@example.com,
             oauth2: {client_id: 00000000-0000-0000-0000-000000000001, tenant: example.com,
                      refresh_token: {env: RT}}}
    fleet:
"""


def lint_routes(tmp_path: Path, fleet: str) -> list[tuple[int, int, str]]:
    return sorted((f.line, f.col, f.rule) for f in lint_text(tmp_path, ROUTES + fleet).findings)


def test_failover_lists_and_recipient_routes_pass(tmp_path: Path) -> None:
    assert lint_routes(tmp_path, """
      web:
        relay: [a, b]
        sender_relays: {billing@example.com: [smtps], "@example.com": o365}
        recipient_relays: {partner.example: [b, a], "@other.example": smtps, 例子.测试: o365}
    """) == []


def test_bad_list_items_are_errors_at_the_item(tmp_path: Path) -> None:
    assert lint_routes(tmp_path, """
      web:
        relay: [a, b, a, nope]
        sender_relays: {billing@example.com: []}
        recipient_relays: {"192.0.2.1": [b, missing]}
    """) == [(14, 19, "relay-list-duplicate"), (14, 22, "unknown-reference"), (15, 42, "schema"),
             (16, 24, "schema"), (16, 41, "unknown-reference")]


def test_recipient_domain_that_is_not_a_domain_is_a_schema_error_at_the_key(tmp_path: Path) -> None:
    assert lint_routes(tmp_path, """
      web:
        relay: a
        recipient_relays: {"ops@partner.example": b}
    """) == [(15, 24, "schema")]


def test_one_domain_twice_is_recipient_relay_duplicate(tmp_path: Path) -> None:
    result = lint_text(tmp_path, ROUTES + """
      web:
        relay: a
        recipient_relays:
          partner.example: b
          "@Partner.Example.": a
    """)
    assert [(f.line, f.rule) for f in result.findings] == [(17, "recipient-relay-duplicate")]
    assert "same transport_maps key as 'partner.example'" in result.findings[0].message


def test_list_mixing_implicit_tls_and_starttls_is_an_error(tmp_path: Path) -> None:
    result = lint_text(tmp_path, ROUTES + """
      web:
        relay: [a, smtps]
        recipient_relays: {partner.example: smtps}
    """)
    assert [(f.line, f.rule) for f in result.findings] == [(14, "relay-failover-mixed-tls")]
    assert "'smtps' use implicit TLS and 'a' do not" in result.findings[0].message


def test_oauth2_relay_in_a_list_is_an_error_at_the_item(tmp_path: Path) -> None:
    assert lint_routes(tmp_path, """
      web:
        relay: a
        sender_relays: {billing@example.com: [b, o365]}
    """) == [(15, 46, "relay-failover-oauth2")]


def test_list_relay_sharing_a_next_hop_with_another_login_is_an_error(tmp_path: Path) -> None:
    # As default relay and single sender relay the two accounts work (looked up by sender)...
    assert lint_routes(tmp_path, """
      web: {relay: a, sender_relays: {billing@example.com: a2}}
    """) == []
    # ...but a list finds credentials by next hop only.
    assert lint_routes(tmp_path, """
      web: {relay: a, recipient_relays: {partner.example: [b, a2]}}
    """) == [(13, 59, "relay-nexthop-shared")]

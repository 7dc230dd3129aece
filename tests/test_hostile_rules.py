"""Values that a generated file's real reader would misread are lint errors at their line and
column (smtpconf/rules/hostile.py, and fleet hosts in smtpconf/rules/references.py). The premises,
shown with the real readers: tests/integration/test_hostile_readers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtpconf.findings import Finding
from tests.helpers import lint_text, rules_at

RELAYS = """\
version: 1
relays:
  ops: {host: smtp.example.com, port: 587, security: starttls}
  other: {host: smtp2.example.com, port: 587, security: starttls}
"""


def only(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


def test_a_sender_key_starting_with_a_hash_is_an_error_at_the_key(tmp_path: Path) -> None:
    result = lint_text(tmp_path, RELAYS + """\
fleet:
  web:
    hosts: [web1.example.com]
    relay: ops
    sender_relays:
      "#billing@example.com": other
      "billing#x@example.com": other
""")
    (finding,) = only(result.findings, "postfix-map-comment")
    assert (finding.line, finding.col) == (10, 7)
    assert "'#billing@example.com'" in finding.message


@pytest.mark.parametrize("name", ["all", "ungrouped"])
def test_a_fleet_group_named_like_an_ansible_implicit_group_is_an_error(tmp_path: Path, name: str) -> None:
    result = lint_text(tmp_path, RELAYS + f"""\
fleet:
  {name}:
    hosts: []
    relay: ops
  web: {{hosts: [web1.example.com], relay: ops}}
""")
    assert rules_at(only(result.findings, "fleet-group-reserved")) == [(6, "fleet-group-reserved")]
    assert only(result.findings, "fleet-group-reserved")[0].col == 3


@pytest.mark.parametrize("email, shown", [
    ("b%U%H@example.com", "%U"), ("ops%M@example.com", "%M"), ("x%C@example.com", "%C"),
    ("x%F@example.com", "%F"), ("*@example.com", "*"), ("ops?@example.com", "?"),
])
def test_an_address_msmtp_would_expand_or_match_is_an_error(tmp_path: Path, email: str, shown: str) -> None:
    result = lint_text(tmp_path, f"""\
version: 1
accounts:
  - email: "{email}"
    host: smtp.example.com
""")
    (finding,) = only(result.findings, "msmtp-from-pattern")
    assert (finding.line, finding.col) == (3, 12) and f"'{shown}'" in finding.message


def test_plain_percent_and_hash_addresses_are_not_msmtp_patterns(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """\
version: 1
accounts:
  - {email: "50%off@example.com", host: smtp.example.com}
  - {email: "a#b@example.com", host: smtp.example.com}
""")
    assert only(result.findings, "msmtp-from-pattern") == []


@pytest.mark.parametrize("host, problem", [
    ("10.0.0.5:2222", "is HOST:PORT, not a host"),
    ("web1.example.com:22", "a host name"),
    ("beef:1", "is HOST:PORT, not a host"),
    ("fe80::1::2", "not a valid IPv6 address"),
    ("xn--zz.example.com", "not a valid internationalized host name"),
])
def test_fleet_hosts_an_inventory_would_misread_are_errors_at_their_position(tmp_path: Path, host: str,
                                                                             problem: str) -> None:
    result = lint_text(tmp_path, RELAYS + f"""\
fleet:
  web:
    relay: ops
    hosts:
      - web0.example.com
      - "{host}"
""")
    errors = [f for f in result.findings if f.level == "error"]
    assert [(f.line, f.col, f.rule) for f in errors] == [(10, 9, "schema")]
    assert problem in errors[0].message


def test_ipv6_and_idn_fleet_hosts_pass(tmp_path: Path) -> None:
    result = lint_text(tmp_path, RELAYS + """\
fleet:
  web: {relay: ops, hosts: ["2001:db8::5", "web.münchen.example", 192.0.2.7]}
""")
    assert [f for f in result.findings if f.level == "error"] == []

from __future__ import annotations

from pathlib import Path

from tests.helpers import lint_text, rules_at


def test_matching_ports_and_modes_pass(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays:
          a: {host: smtp.example.com, port: 465, security: tls}
          b: {host: smtp.example.com, port: 587, security: starttls}
          c: {provider: gmail, port: 465}
        """)
    assert result.findings == []


def test_465_with_starttls_and_587_with_tls_are_errors_at_the_security_value(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays:
          a: {host: smtp.example.com, port: 465, security: starttls}
        accounts:
          - email: u@example.com
            host: smtp.example.com
            port: 587
            security: tls
            incoming: {host: imap.example.com, port: 993, security: starttls}
        """)
    assert rules_at(result.findings) == [(4, "tls-port-mismatch"), (9, "tls-port-mismatch"), (10, "tls-port-mismatch")]
    first = result.findings[0]
    assert (first.col, first.message) == (52, "relay 'a': port 465 expects implicit TLS, but security is starttls")


def test_credentials_over_security_none(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays:
          ok: {host: mx.example.com, port: 2525, security: none}
          bad: {host: mx.example.com, port: 2525, security: none, username: u, password: {env: P}}
        """)
    assert rules_at(result.findings) == [(5, "plaintext-auth")]


def test_port_25_submission_is_a_warning(tmp_path: Path) -> None:
    result = lint_text(tmp_path, "version: 1\nrelays:\n  a: {host: smtp.example.com, port: 25}\n")
    assert [(f.line, f.rule, f.level) for f in result.findings] == [(3, "port-25-submission", "warning")]


def test_ca_file_must_exist_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    result = lint_text(tmp_path, """
        version: 1
        relays:
          good: {host: a.example.com, ca_file: ca.pem}
          bad: {host: b.example.com, ca_file: missing.pem}
        """)
    assert rules_at(result.findings) == [(5, "ca-file-missing")]


def test_a_finding_can_be_silenced_on_its_line(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays:
          lab: {host: lab.example.test, port: 2525, security: none, password: {env: P}}  # smtpconf: ignore[plaintext-auth]
        """)
    assert result.findings == []

"""Postfix-specific fleet rules (smtpconf/rules/postfix.py): a passing and a failing file each."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import lint_text, rules_at


def findings(tmp_path: Path, text: str) -> list[tuple[int, str]]:
    return rules_at(lint_text(tmp_path, text).findings)


def test_complete_credentials_pass(tmp_path: Path) -> None:
    assert findings(tmp_path, """
        version: 1
        relays:
          gmail: {provider: gmail, username: ops@example.com, password: {env: GMAIL_APP_PASSWORD}}
          lab: {host: smtp.lab.example.test, port: 587, security: starttls}
        fleet:
          web: {relay: gmail, sender_relays: {"@lab.example.test": lab}}
        """) == [(4, "provider-credential-hint")]


def test_half_a_credential_is_sasl_credential_incomplete(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays:
          nouser:
            host: smtp.example.com
            port: 587
            password: {env: P}
          nopass:
            host: smtp.example.com
            port: 2587
            username: app
          sendgrid: {provider: sendgrid}
          unused: {host: smtp.example.com, port: 587, username: app}
        fleet:
          web:
            relay: nouser
            sender_relays: {a@example.com: nopass, b@example.com: sendgrid}
        """)
    hits = [f for f in result.findings if f.rule == "sasl-credential-incomplete"]
    assert [(f.line, f.level) for f in hits] == [(7, "error"), (11, "error"), (12, "error")]
    assert "relay 'nouser' has a password but no username" in hits[0].message
    assert "fleet group 'web'" in hits[1].message
    assert "relay 'sendgrid' has a username but no password" in hits[2].message  # preset's "apikey"


def test_username_with_colon_is_sasl_username_colon(tmp_path: Path) -> None:
    text = """
        version: 1
        relays:
          r: {host: smtp.example.com, port: 587, username: USER, password: {env: P}}
        fleet:
          web: {relay: r}
        """
    assert findings(tmp_path, text.replace("USER", "domain-user")) == []
    assert findings(tmp_path, text.replace("USER", "domain:user")) == [(4, "sasl-username-colon")]


def test_sender_keys_differing_in_case_are_sender_relay_duplicate(tmp_path: Path) -> None:
    text = """
        version: 1
        relays:
          a: {host: a.example.com, port: 587}
          b: {host: b.example.com, port: 587}
        fleet:
          web:
            relay: a
            sender_relays:
              billing@example.com: b
              SECOND: a
        """
    assert findings(tmp_path, text.replace("SECOND", "alerts@example.com")) == []
    result = lint_text(tmp_path, text.replace("SECOND", "Billing@Example.com"))
    assert rules_at(result.findings) == [(11, "sender-relay-duplicate")]
    assert result.findings[0].col == 7  # at the key, not the relay name


def test_rewrite_to_an_address_of_another_relay_is_rewrite_sender_routing(tmp_path: Path) -> None:
    text = """
        version: 1
        relays:
          gmail: {host: smtp.gmail.com, port: 587}
          ses: {host: email-smtp.eu-west-1.amazonaws.com, port: 587}
        fleet:
          web:
            relay: gmail
            sender_relays: {"@billing.example.com": ses, ops@example.com: gmail}
            rewrite_sender: ADDRESS
        """
    assert findings(tmp_path, text.replace("ADDRESS", "ops@example.com")) == []
    result = lint_text(tmp_path, text.replace("ADDRESS", "noreply@billing.example.com"))
    assert [(f.line, f.rule, f.level) for f in result.findings] == [(10, "rewrite-sender-routing", "warning")]
    assert "goes through 'gmail', not 'ses'" in result.findings[0].message


def test_levels_smtpconf_cannot_configure_are_tls_level_unsupported(tmp_path: Path) -> None:
    text = """
        version: 1
        relays:
          r: {host: smtp.example.com, port: 587}
        fleet:
          web: {relay: r, tls_level: LEVEL}
        """
    for level in ("verify", "secure", "encrypt"):
        assert findings(tmp_path, text.replace("LEVEL", level)) == []
    for level in ("fingerprint", "dane", "dane-only"):
        assert findings(tmp_path, text.replace("LEVEL", level)) == [(6, "tls-level-unsupported")]

from __future__ import annotations

from pathlib import Path

from tests.helpers import lint_text, rules_at


def test_microsoft_passwords_are_retired_outlook_now_office365_at_the_end_of_2026(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays:
          out: {provider: outlook, username: x@outlook.com, password: {env: X}}
          m365: {provider: office365, username: x@corp.example, password: {env: X}}
          byhost: {host: smtp.office365.com, username: x@corp.example, password: {env: X}}
          gmail: {provider: gmail, username: x@gmail.com, password: {env: X}}
          ok: {provider: office365, username: x@corp.example, oauth2: {client_id: c, refresh_token: {env: R}}}
        """)
    retired = [(f.line, f.level) for f in result.findings if f.rule == "basic-auth-retired"]
    assert retired == [(4, "error"), (5, "warning"), (6, "warning")]
    assert "December 2026" in next(f.message for f in result.findings if f.line == 5 and f.rule == "basic-auth-retired")


def test_oauth2_needs_client_id_refresh_token_and_a_token_url(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays:
          a: {provider: gmail, username: a@example.com, oauth2: {refresh_token: {env: R}}}
          b: {host: smtp.example.test, auth: oauth2, oauth2: {client_id: c, refresh_token: {env: R}}}
          c: {host: smtp.example.test, oauth2: {client_id: c, refresh_token: {env: R}, token_url: "https://idp.example.test/token"}}
          d: {provider: office365, username: d@example.com, auth: oauth2}
        """)
    messages = {f.line: f.message for f in result.findings if f.rule == "oauth2-incomplete"}
    assert sorted(messages) == [4, 5, 7]
    assert "client_id" in messages[4] and "refresh_token" not in messages[4]
    assert "token_url" in messages[5] and "no preset" in messages[5]


def test_oauth2_over_plaintext_is_an_error_and_inline_tokens_are_never_repeated(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays:
          lab:
            host: smtp.lab.example.test
            port: 2525
            security: none
            oauth2: {client_id: c, refresh_token: 1//0gRefReSh-T0ken, token_url: "http://127.0.0.1:9/token",
                     client_secret: GOCSPX-s3cret}
        """)
    assert rules_at(result.findings) == [(7, "oauth2-plaintext"), (8, "inline-secret"), (9, "inline-secret")]
    text = " ".join(f.message for f in result.findings)
    assert "RefReSh" not in text and "s3cret" not in text


def test_the_model_fills_the_preset_endpoints_tenant_and_incoming_scope(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        accounts:
          - email: xiaohua@corp.example
            provider: office365
            incoming: {provider: office365}
            oauth2: {client_id: c, tenant: corp.example, refresh_token: {file: x.refresh}}
          - {email: lab@lab.example.test, relay: lab}
        relays:
          lab: {host: smtp.lab.example.test, port: 587, username: relayuser, password: {env: LAB}}
        """)
    assert result.config is not None
    account, shared = result.config.accounts
    oauth2 = account.login.oauth2
    assert account.login.auth == "oauth2" and oauth2 is not None
    assert oauth2.token_url == "https://login.microsoftonline.com/corp.example/oauth2/v2.0/token"
    assert oauth2.scopes == ("https://outlook.office.com/SMTP.Send", "offline_access",
                             "https://outlook.office.com/IMAP.AccessAsUser.All")
    assert account.login.mechanisms == ("XOAUTH2",)
    assert oauth2.refresh_token is not None and oauth2.refresh_token.ref == str(tmp_path / "x.refresh")
    # An account with no credential of its own logs in as its relay: one login, for every stage.
    assert shared.login is result.config.relays["lab"].login
    assert (shared.username, shared.password) == ("relayuser", result.config.relays["lab"].password)

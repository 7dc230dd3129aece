from __future__ import annotations

from pathlib import Path

from tests.helpers import lint_text


def test_hint_names_what_the_provider_expects_once_per_provider(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays:
          mail163: {provider: "163", username: a@163.com, password: {env: AUTH_CODE}}
        accounts:
          - {email: a@gmail.com, provider: gmail, password: {env: A}}
          - {email: b@gmail.com, provider: gmail, password: {env: B}}
          - {email: c@example.com, provider: office365, password: {env: C}}
        """)
    hints = [(f.line, f.level, f.message) for f in result.findings if f.rule == "provider-credential-hint"]
    assert [(line, level) for line, level, _ in hints] == [(4, "info"), (6, "info"), (8, "info")]
    assert "authorization code (授权码)" in hints[0][2]
    assert "app password" in hints[1][2]
    assert "SMTP AUTH" in hints[2][2]


def test_no_hint_without_credentials_or_provider(tmp_path: Path) -> None:
    result = lint_text(tmp_path, "version: 1\nrelays: {a: {provider: gmail}, b: {host: x.example, password: {env: P}}}\n")
    assert result.findings == []

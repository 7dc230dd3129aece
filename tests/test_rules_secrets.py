from __future__ import annotations

from pathlib import Path

from tests.helpers import lint_text, rules_at


def test_references_pass_and_inline_values_fail_without_being_repeated(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays:
          a: {host: a.example.com, password: {env: A}}
          b: {host: b.example.com, password: {file: /run/secrets/b}}
          c: {host: c.example.com, password: {command: pass show c}}
          d: {host: d.example.com, password: {vault: vault_d}}
          e: {host: e.example.com, password: S3cr3t-value}
        accounts:
          - {email: u@example.com, host: smtp.example.com, password: "0th3r-s3cret"}
        """)
    assert rules_at(result.findings) == [(8, "inline-secret"), (10, "inline-secret")]
    text = " ".join(f.message for f in result.findings)
    assert "S3cr3t" not in text and "0th3r" not in text

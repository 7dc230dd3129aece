from __future__ import annotations

from pathlib import Path

import pytest

from smtpconf.model import presets
from tests.helpers import lint_text

REQUIRED_PRESETS = {"gmail", "outlook", "office365", "163", "126", "qq", "yahoo", "icloud", "fastmail", "zoho",
                    "ses", "sendgrid", "mailgun"}


def test_every_required_preset_has_documented_settings() -> None:
    table = presets()
    assert REQUIRED_PRESETS <= set(table)
    for preset in table.values():
        assert preset.smtp and preset.note and preset.docs.startswith("https://")
        assert {s.security for s in preset.smtp} <= {"starttls", "tls"}
    assert table["gmail"].smtp[0] == ("smtp.gmail.com", 587, "starttls")
    assert ("smtp.gmail.com", 465, "tls") in table["gmail"].smtp
    assert table["163"].smtp[0] == ("smtp.163.com", 465, "tls")
    assert table["office365"].smtp[0] == ("smtp.office365.com", 587, "starttls")
    assert table["sendgrid"].username == "apikey"
    assert "授权码" in table["163"].note and "app password" in table["gmail"].note


def build(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    result = lint_text(tmp_path, text)
    assert result.config is not None, result.findings
    return result.config


def test_presets_fill_endpoints_and_explicit_fields_win(tmp_path: Path) -> None:
    config = build(tmp_path, """
        version: 1
        relays:
          a: {provider: gmail}
          b: {provider: gmail, port: 465}
          c: {provider: ses, host: email-smtp.eu-west-1.amazonaws.com}
          d: {host: smtp.example.com}
          e: {host: smtp.example.com, port: 465}
          f: {provider: sendgrid, password: {env: SENDGRID_KEY}}
        """)
    r = config.relays
    assert (r["a"].endpoint.host, r["a"].endpoint.port, r["a"].endpoint.security) == ("smtp.gmail.com", 587, "starttls")
    assert (r["b"].endpoint.port, r["b"].endpoint.security) == (465, "tls")  # Gmail documents 465 as implicit TLS
    assert r["c"].endpoint.host == "email-smtp.eu-west-1.amazonaws.com" and r["c"].endpoint.port == 587
    assert (r["d"].endpoint.port, r["d"].endpoint.security) == (587, "starttls")
    assert r["e"].endpoint.security == "tls"
    assert r["f"].username == "apikey"


def test_accounts_default_username_incoming_and_relay_endpoints(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    config = build(tmp_path, """
        version: 1
        relays:
          lab: {host: smtp.lab.test, port: 2587, security: starttls, ca_file: ca.pem}
        accounts:
          - {email: 小明@example.com, name: 小明, provider: gmail}
          - {email: dev@lab.test, relay: lab}
          - {email: u@例子.测试, host: smtp.例子.测试, incoming: {host: imap.例子.测试, protocol: pop3}}
        """)
    gmail, lab, idn = config.accounts
    assert gmail.username == "小明@example.com"
    assert gmail.incoming is not None and gmail.incoming.endpoint.host == "imap.gmail.com"
    assert (lab.smtp.host, lab.smtp.port, lab.smtp.ca_file) == ("smtp.lab.test", 2587, str(tmp_path / "ca.pem"))
    assert lab.incoming is None
    assert idn.smtp.host_ascii == "smtp.xn--fsqu00a.xn--0zwm56d" and idn.domain_ascii == "xn--fsqu00a.xn--0zwm56d"
    assert idn.incoming is not None and (idn.incoming.protocol, idn.incoming.endpoint.port) == ("pop3", 995)


def test_secret_references_hide_values(tmp_path: Path) -> None:
    config = build(tmp_path, """
        version: 1
        relays:
          a: {host: x.example, password: {file: secret.txt}}
          b: {host: y.example, password: not-in-repr}  # smtpconf: ignore[inline-secret]
        """)
    assert config.relays["a"].password.ref == str(tmp_path / "secret.txt")  # relative to the file
    assert "not-in-repr" not in repr(config.relays["b"])
    assert config.relays["b"].password.describe() == "an inline password"


def test_the_model_is_immutable(tmp_path: Path) -> None:
    config = build(tmp_path, "version: 1\nrelays: {a: {host: x.example}}\n")
    with pytest.raises(TypeError):
        config.relays["b"] = config.relays["a"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        config.relays["a"].name = "z"  # type: ignore[misc]

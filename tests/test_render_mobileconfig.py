"""The mobileconfig target: Apple configuration profiles, read back with plistlib."""

from __future__ import annotations

import dataclasses
import plistlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from smtpconf.errors import RenderError, UnwritableValue
from smtpconf.lint import lint_path
from smtpconf.render import render
from smtpconf.render.escape import xml
from tests.support.cli_clients import OAUTH2_EMAILS, OAuth2Render, oauth2_out  # noqa: F401  (fixture)
from tests.support.render import (
    ACCOUNTS_YAML, ALERTS_NAME, FILE_SECRET, IDN_DOMAIN, IDN_SMTP, MUENCHEN, SECRET_VALUES, render_ok, tree,
    write_config,
)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("mobileconfig")
    manifest = render_ok(write_config(base, ACCOUNTS_YAML), base / "out", "mobileconfig")
    assert {e["account"]: e["path"] for e in manifest["files"]}["用户@例子.测试"] == (
        "mobileconfig/用户@例子.测试.mobileconfig")
    return base / "out"


def load(out: Path, email: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the profile, its single mail payload)."""
    with open(out / "mobileconfig" / f"{email}.mobileconfig", "rb") as handle:
        profile = plistlib.load(handle)
    (mail,) = profile["PayloadContent"]
    return profile, mail


def test_starttls_account(out: Path) -> None:
    profile, mail = load(out, "xiaoming@example.com")
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert {k: mail[k] for k in (
        "EmailAddress", "EmailAccountName", "EmailAccountType",
        "OutgoingMailServerHostName", "OutgoingMailServerPortNumber", "OutgoingMailServerUseSSL",
        "OutgoingMailServerAuthentication", "OutgoingMailServerUsername",
        "IncomingMailServerHostName", "IncomingMailServerPortNumber", "IncomingMailServerUseSSL",
        "IncomingMailServerAuthentication", "IncomingMailServerUsername")} == {
        "EmailAddress": "xiaoming@example.com", "EmailAccountName": "小明", "EmailAccountType": "EmailTypeIMAP",
        "OutgoingMailServerHostName": "smtp.gmail.com", "OutgoingMailServerPortNumber": 587,
        # Apple has one flag for STARTTLS and implicit TLS alike.
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerUsername": "xiaoming@example.com",
        "IncomingMailServerHostName": "imap.gmail.com", "IncomingMailServerPortNumber": 993,
        "IncomingMailServerUseSSL": True, "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerUsername": "xiaoming@example.com",
    }


def test_implicit_tls_account_and_plist_special_characters(out: Path) -> None:
    profile, mail = load(out, "alerts@163.com")
    assert (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"],
            mail["OutgoingMailServerUseSSL"]) == ("smtp.163.com", 465, True)
    assert mail["EmailAccountName"] == ALERTS_NAME
    assert ALERTS_NAME in profile["PayloadDescription"]
    raw = (out / "mobileconfig" / "alerts@163.com.mobileconfig").read_bytes()
    assert b"A &amp; B &lt;ops&gt;" in raw  # escaped as plistlib escapes (quotes stay as they are)


def test_idn_and_pop3(out: Path) -> None:
    _, idn = load(out, "用户@例子.测试")
    assert (idn["OutgoingMailServerHostName"], idn["IncomingMailServerHostName"]) == (IDN_SMTP, f"imap.{IDN_DOMAIN}")
    assert idn["EmailAddress"] == idn["OutgoingMailServerUsername"] == "用户@例子.测试"
    assert idn["EmailAccountName"] == "小明"
    _, pop = load(out, "ops@münchen.example")
    assert pop["EmailAccountType"] == "EmailTypePOP"
    assert (pop["IncomingMailServerHostName"], pop["IncomingMailServerPortNumber"]) == (f"pop.{MUENCHEN}", 995)
    assert pop["OutgoingMailServerUsername"] == pop["IncomingMailServerUsername"] == "ops"
    # One login, one password: the device asks once, although SMTP and POP are different hosts.
    assert pop["OutgoingPasswordSameAsIncomingPassword"] is True


def test_no_password_in_any_profile(out: Path) -> None:
    for path, (content, mode) in tree(out).items():
        for value in [*SECRET_VALUES.values(), FILE_SECRET, "pass show", "secret.txt"]:
            assert value.encode() not in content, path
        if path.endswith(".mobileconfig"):
            payload = plistlib.loads(content)["PayloadContent"][0]
            assert not [k for k in payload if "Password" in k and k != "OutgoingPasswordSameAsIncomingPassword"]
            assert mode == 0o644


def test_uuids_are_valid_unique_and_derived_from_content(tmp_path: Path) -> None:
    config = write_config(tmp_path / "a", ACCOUNTS_YAML)
    render_ok(config, tmp_path / "one", "mobileconfig")
    render_ok(config, tmp_path / "two", "mobileconfig")
    assert tree(tmp_path / "one") == tree(tmp_path / "two")  # same input, same bytes

    ids = []
    for path in (tmp_path / "one" / "mobileconfig").iterdir():
        profile = plistlib.loads(path.read_bytes())
        for payload in (profile, profile["PayloadContent"][0]):
            uuid.UUID(payload["PayloadUUID"])  # well formed
            ids.append(payload["PayloadUUID"])
    assert len(ids) == len(set(ids)) == 8

    # A changed setting is a new profile version (new UUIDs) of the same profile (same identifier,
    # so installing it replaces the old one).
    changed = write_config(tmp_path / "b", ACCOUNTS_YAML.replace("port: 587", "port: 2587"))
    render_ok(changed, tmp_path / "three", "mobileconfig")
    before = plistlib.loads((tmp_path / "one/mobileconfig/ops@münchen.example.mobileconfig").read_bytes())
    after = plistlib.loads((tmp_path / "three/mobileconfig/ops@münchen.example.mobileconfig").read_bytes())
    assert after["PayloadContent"][0]["OutgoingMailServerPortNumber"] == 2587
    assert after["PayloadIdentifier"] == before["PayloadIdentifier"]
    assert after["PayloadUUID"] != before["PayloadUUID"]
    unchanged = "xiaoming@example.com.mobileconfig"
    assert (tmp_path / "one/mobileconfig" / unchanged).read_bytes() == (
        tmp_path / "three/mobileconfig" / unchanged).read_bytes()


def test_account_without_incoming_server_gets_no_profile(tmp_path: Path) -> None:
    # com.apple.mail.managed requires an IMAP or POP server: a device would refuse the profile.
    config = write_config(tmp_path, """\
        version: 1
        accounts:
          - {email: robot@corp.example, host: smtp.corp.example, port: 465, password: {env: R}}
          - {email: human@corp.example, host: smtp.corp.example, port: 465, password: {env: H},
             incoming: {host: imap.corp.example}}
        """)
    manifest = render_ok(config, tmp_path / "out", "mobileconfig")
    assert [e["account"] for e in manifest["files"]] == ["human@corp.example"]
    assert not (tmp_path / "out/mobileconfig/robot@corp.example.mobileconfig").exists()
    # Not silently: the render tells the user which account got nothing, and why.
    notes: list[str] = []
    lint = lint_path(config)
    assert lint.config is not None
    render(lint.config, ["mobileconfig"], {}, notes)
    assert len(notes) == 1
    assert "robot@corp.example" in notes[0] and "human@corp.example" not in notes[0]
    assert "incoming" in notes[0]


def test_skipped_accounts_are_one_bounded_note(tmp_path: Path) -> None:
    accounts = "".join(f"  - {{email: robot{i}@corp.example, host: smtp.corp.example, port: 465}}\n"
                       for i in range(25))
    config = write_config(tmp_path, "version: 1\naccounts:\n" + accounts)
    lint = lint_path(config)
    assert lint.config is not None
    notes: list[str] = []
    assert render(lint.config, ["mobileconfig"], {}, notes) == []
    assert len(notes) == 1 and "robot9@corp.example" in notes[0] and "and 15 more" in notes[0]
    assert "robot10@corp.example" not in notes[0]


@pytest.mark.parametrize("bad", ["\ufffe", "\uffff", "\ud800", "\x0b"])
def test_characters_xml_cannot_hold_are_refused(tmp_path: Path, bad: str) -> None:
    # The schema keeps these out of display names; this is the second line (plistlib itself
    # would write U+FFFE, U+FFFF and lone surrogates into an ill-formed plist).
    with pytest.raises(UnwritableValue, match=f"U\\+{ord(bad):04X} cannot be written in XML"):
        xml(f"A{bad}B")
    config = write_config(tmp_path, """\
        version: 1
        accounts:
          - {email: human@corp.example, name: Human, host: smtp.corp.example, port: 465,
             incoming: {host: imap.corp.example}}
        """)
    lint = lint_path(config)
    assert lint.config is not None
    account = dataclasses.replace(lint.config.accounts[0], name=f"Hu{bad}man")
    broken = dataclasses.replace(lint.config, accounts=(account,))
    for target in ("mobileconfig", "thunderbird", "autodiscover"):
        with pytest.raises(RenderError, match=f"{target}: character U\\+{ord(bad):04X}"):
            render(broken, [target])
    assert xml("A & <b> \t\n 小明 \U0001f600") == "A &amp; &lt;b&gt; \t\n 小明 \U0001f600"


def test_plaintext_relay_without_password(tmp_path: Path) -> None:
    config = write_config(tmp_path, """\
        version: 1
        accounts:
          - {email: printer@lab.example, host: smtp.lab.example, port: 2525, security: none,
             incoming: {host: imap.lab.example, port: 143, security: starttls}}
        """)
    render_ok(config, tmp_path / "out", "mobileconfig")
    _, mail = load(tmp_path / "out", "printer@lab.example")
    assert (mail["OutgoingMailServerUseSSL"], mail["OutgoingMailServerAuthentication"]) == (False, "EmailAuthNone")
    assert (mail["IncomingMailServerUseSSL"], mail["IncomingMailServerPortNumber"]) == (True, 143)
    assert mail["IncomingMailServerAuthentication"] == "EmailAuthPassword"


def test_every_template_filter_is_used_by_a_template() -> None:
    # escape.FILTERS is what templates/ may call; a filter nothing uses is dead weight there.
    import re

    from smtpconf.render.escape import FILTERS

    root = Path(__file__).resolve().parents[1]
    text = "".join(p.read_text(encoding="utf-8") for p in (root / "templates").rglob("*.j2"))
    used = set(re.findall(r"\|\s*([A-Za-z_]+)", text))
    assert set(FILTERS) <= used, set(FILTERS) - used


def test_oauth2_accounts_get_no_mobileconfig_and_a_note_says_what_to_do(oauth2_out: OAuth2Render) -> None:
    # The format has no OAuth2: a file would have the client ask for a password the provider
    # refuses. The password accounts of the same file keep theirs.
    written = {p.name for p in (oauth2_out.out / "mobileconfig").iterdir()}
    assert not {f"{email}.mobileconfig" for email in OAUTH2_EMAILS} & written
    assert "pw@corp.example.mobileconfig" in written
    [note] = [n for n in oauth2_out.notes if n.startswith("no mobileconfig profile") and "OAuth2" in n]
    assert all(email in note for email in OAUTH2_EMAILS) and ("sign-in" in note or "sign in" in note)


def test_implicit_tls_on_587_is_rendered_with_a_note_that_apple_mail_will_use_starttls(tmp_path: Path) -> None:
    # Apple's payload has one UseSSL flag; Mail does implicit TLS on 465/993/995 and STARTTLS elsewhere.
    config = write_config(tmp_path, """\
        version: 1
        accounts:
          - {email: a@charter.net, provider: spectrum, password: {env: P}}
          - {email: b@corp.example, host: smtp.corp.example, port: 465, password: {env: B},
             incoming: {host: imap.corp.example}}
        """)
    lint = lint_path(config)
    assert lint.config is not None and not [f for f in lint.findings if f.level == "error"]
    notes: list[str] = []
    files = render(lint.config, ["mobileconfig"], {}, notes)
    assert len(files) == 2
    [note] = [n for n in notes if "STARTTLS" in n]
    assert "mobile.charter.net:587 (tls, a@charter.net)" in note and "corp.example" not in note
    render_ok(config, tmp_path / "out", "mobileconfig")
    _, mail = load(tmp_path / "out", "a@charter.net")
    assert (mail["OutgoingMailServerPortNumber"], mail["OutgoingMailServerUseSSL"]) == (587, True)

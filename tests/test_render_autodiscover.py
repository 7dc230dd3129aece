"""The autodiscover target: Outlook POX responses, parsed and their values checked."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.cli_clients import OAUTH2_EMAILS, OAuth2Render, oauth2_out  # noqa: F401  (fixture)
from tests.support.render import (
    ACCOUNTS_YAML, ALERTS_NAME, FILE_SECRET, IDN_DOMAIN, IDN_SMTP, MUENCHEN, SECRET_VALUES, render_ok, tree,
    write_config,
)

NS = {
    "a": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
    "o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a",
}


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("autodiscover")
    manifest = render_ok(write_config(base, ACCOUNTS_YAML), base / "out", "autodiscover")
    assert [(e["path"], e["account"]) for e in manifest["files"]][0] == (
        "autodiscover/xiaoming@example.com.xml", "xiaoming@example.com")
    assert len(manifest["files"]) == 4
    return base / "out"


def response(out: Path, email: str) -> ET.Element:
    root = ET.parse(out / "autodiscover" / f"{email}.xml").getroot()
    assert root.tag == f"{{{NS['a']}}}Autodiscover"
    found = root.find("o:Response", NS)
    assert found is not None
    return found


def protocols(resp: ET.Element) -> list[dict[str, str]]:
    return [{child.tag.split("}")[1]: child.text or "" for child in proto}
            for proto in resp.findall("o:Account/o:Protocol", NS)]


def test_starttls_is_encryption_tls(out: Path) -> None:
    resp = response(out, "xiaoming@example.com")
    assert resp.findtext("o:User/o:DisplayName", namespaces=NS) == "小明"
    assert resp.findtext("o:User/o:AutoDiscoverSMTPAddress", namespaces=NS) == "xiaoming@example.com"
    assert resp.findtext("o:Account/o:AccountType", namespaces=NS) == "email"
    assert resp.findtext("o:Account/o:Action", namespaces=NS) == "settings"
    imap, smtp = protocols(resp)  # the mailbox first, then SMTP
    assert imap == {"Type": "IMAP", "Server": "imap.gmail.com", "Port": "993", "DomainRequired": "off",
                    "LoginName": "xiaoming@example.com", "SPA": "off", "SSL": "on", "Encryption": "SSL",
                    "AuthRequired": "on"}
    assert smtp == {"Type": "SMTP", "Server": "smtp.gmail.com", "Port": "587", "DomainRequired": "off",
                    "LoginName": "xiaoming@example.com", "SPA": "off", "SSL": "on", "Encryption": "TLS",
                    "AuthRequired": "on", "UsePOPAuth": "off", "SMTPLast": "off"}


def test_implicit_tls_is_encryption_ssl_and_names_are_escaped(out: Path) -> None:
    resp = response(out, "alerts@163.com")
    assert resp.findtext("o:User/o:DisplayName", namespaces=NS) == ALERTS_NAME
    smtp = protocols(resp)[-1]
    assert (smtp["Type"], smtp["Server"], smtp["Port"], smtp["Encryption"], smtp["SPA"]) == (
        "SMTP", "smtp.163.com", "465", "SSL", "off")


def test_idn_hosts_are_punycode(out: Path) -> None:
    resp = response(out, "用户@例子.测试")
    assert resp.findtext("o:User/o:DisplayName", namespaces=NS) == "小明"
    imap, smtp = protocols(resp)
    assert (imap["Server"], smtp["Server"]) == (f"imap.{IDN_DOMAIN}", IDN_SMTP)
    assert smtp["LoginName"] == "用户@例子.测试" and smtp["Encryption"] == "SSL"


def test_pop3_and_a_username_that_is_not_the_address(out: Path) -> None:
    resp = response(out, "ops@münchen.example")
    # No name in the file: the address is what Outlook shows.
    assert resp.findtext("o:User/o:DisplayName", namespaces=NS) == "ops@münchen.example"
    pop, smtp = protocols(resp)
    assert (pop["Type"], pop["Server"], pop["Port"], pop["LoginName"]) == ("POP3", f"pop.{MUENCHEN}", "995", "ops")
    assert (smtp["Server"], smtp["Port"], smtp["Encryption"], smtp["LoginName"]) == (
        f"mail.{MUENCHEN}", "587", "TLS", "ops")


def test_account_without_incoming_server_has_only_smtp(tmp_path: Path) -> None:
    config = write_config(tmp_path, """\
        version: 1
        accounts:
          - {email: robot@corp.example, host: smtp.corp.example, port: 465, password: {env: R}}
        """)
    render_ok(config, tmp_path / "out", "autodiscover")
    (smtp,) = protocols(response(tmp_path / "out", "robot@corp.example"))
    assert (smtp["Type"], smtp["Encryption"], smtp["AuthRequired"]) == ("SMTP", "SSL", "on")


def test_no_secret_in_any_file(out: Path) -> None:
    for path, (content, _) in tree(out).items():
        for value in [*SECRET_VALUES.values(), FILE_SECRET, "pass show", "secret.txt"]:
            assert value.encode() not in content, path


def test_plaintext_relay_without_password(tmp_path: Path) -> None:
    config = write_config(tmp_path, """\
        version: 1
        accounts:
          - {email: printer@lab.example, host: smtp.lab.example, port: 2525, security: none}
        """)
    render_ok(config, tmp_path / "out", "autodiscover")
    (smtp,) = protocols(response(tmp_path / "out", "printer@lab.example"))
    assert (smtp["Port"], smtp["SSL"], smtp["Encryption"], smtp["AuthRequired"]) == ("2525", "off", "None", "off")


def test_oauth2_accounts_get_no_autodiscover_and_a_note_says_what_to_do(oauth2_out: OAuth2Render) -> None:
    # The format has no OAuth2: a file would have the client ask for a password the provider
    # refuses. The password accounts of the same file keep theirs.
    written = {p.name for p in (oauth2_out.out / "autodiscover").iterdir()}
    assert not {f"{email}.xml" for email in OAUTH2_EMAILS} & written
    assert "pw@corp.example.xml" in written
    [note] = [n for n in oauth2_out.notes if n.startswith("no autodiscover file") and "OAuth2" in n]
    assert all(email in note for email in OAUTH2_EMAILS) and ("sign-in" in note or "sign in" in note)

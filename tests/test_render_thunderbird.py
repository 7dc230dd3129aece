"""The thunderbird target: Mozilla autoconfig files, checked against the ISPDB format and, for the
gmail and 163 presets, against what the public ISPDB publishes for gmail.com and 163.com."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest

from tests.support.render import (
    ACCOUNTS_YAML, ALERTS_NAME, FILE_SECRET, IDN_DOMAIN, IDN_SMTP, MUENCHEN, SECRET_VALUES, render_ok, tree,
    write_config,
)

ISPDB = Path(__file__).parent / "data" / "ispdb"
# (output directory, the manifest the render printed)
Rendered = Tuple[Path, Dict[str, Any]]
SERVER_CHILDREN = ["hostname", "port", "socketType", "username", "authentication"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    base = tmp_path_factory.mktemp("thunderbird")
    config = write_config(base, ACCOUNTS_YAML)
    manifest = render_ok(config, base / "out", "thunderbird")
    return base / "out", manifest


def account_file(out: Path, email: str) -> ET.Element:
    return ET.parse(out / "thunderbird" / f"{email}.xml").getroot()


def domain_file(out: Path, domain: str) -> ET.Element:
    return ET.parse(out / "thunderbird" / "domains" / domain / "mail" / "config-v1.1.xml").getroot()


def servers(root: ET.Element, kind: str) -> list[dict[str, str]]:
    """``kind`` is incomingServer or outgoingServer: each as {type, hostname, port, ...}."""
    found = []
    for server in root.iter(kind):
        values = {child.tag: (child.text or "") for child in server}
        values["type"] = server.get("type", "")
        found.append(values)
    return found


def test_manifest_has_one_file_per_account_and_per_domain(rendered: Rendered) -> None:
    out, manifest = rendered
    owners = {(e.get("account"), e.get("domain")): e["path"] for e in manifest["files"]}
    assert owners[("xiaoming@example.com", None)] == "thunderbird/xiaoming@example.com.xml"
    assert owners[(None, "example.com")] == "thunderbird/domains/example.com/mail/config-v1.1.xml"
    assert owners[(None, IDN_DOMAIN)] == f"thunderbird/domains/{IDN_DOMAIN}/mail/config-v1.1.xml"
    assert len(manifest["files"]) == 4 + 4  # four accounts in four domains
    assert all(e["target"] == "thunderbird" for e in manifest["files"])


def test_ispdb_structure(rendered: Rendered) -> None:
    out, _ = rendered
    for path in (out / "thunderbird").rglob("*.xml"):
        root = ET.parse(path).getroot()
        assert root.tag == "clientConfig" and root.get("version") == "1.1", path
        provider = root.find("emailProvider")
        assert provider is not None and provider.get("id"), path
        assert [c.tag for c in provider][:3] == ["domain", "displayName", "displayShortName"], path
        for kind in ("incomingServer", "outgoingServer"):
            for server in provider.findall(kind):
                assert [c.tag for c in server] == SERVER_CHILDREN, path
                assert server.findtext("socketType") in ("SSL", "STARTTLS", "plain")
                assert server.findtext("authentication") == "password-cleartext"
                assert server.findtext("port", "").isdigit()


def test_starttls_account(rendered: Rendered) -> None:
    out, _ = rendered
    root = account_file(out, "xiaoming@example.com")
    assert servers(root, "outgoingServer") == [{
        "type": "smtp", "hostname": "smtp.gmail.com", "port": "587", "socketType": "STARTTLS",
        "username": "xiaoming@example.com", "authentication": "password-cleartext"}]
    assert servers(root, "incomingServer") == [{
        "type": "imap", "hostname": "imap.gmail.com", "port": "993", "socketType": "SSL",
        "username": "xiaoming@example.com", "authentication": "password-cleartext"}]
    assert root.findtext("emailProvider/displayName") == "小明"
    assert root.findtext("emailProvider/domain") == "example.com"


def test_implicit_tls_account_and_xml_special_characters(rendered: Rendered) -> None:
    out, _ = rendered
    root = account_file(out, "alerts@163.com")
    (smtp,) = servers(root, "outgoingServer")
    assert (smtp["hostname"], smtp["port"], smtp["socketType"]) == ("smtp.163.com", "465", "SSL")
    assert root.findtext("emailProvider/displayName") == ALERTS_NAME


def test_idn_hosts_are_punycode_and_unicode_text_survives(rendered: Rendered) -> None:
    out, _ = rendered
    root = account_file(out, "用户@例子.测试")
    (smtp,) = servers(root, "outgoingServer")
    (imap,) = servers(root, "incomingServer")
    assert smtp["hostname"] == IDN_SMTP and smtp["socketType"] == "SSL" and smtp["port"] == "465"
    assert imap["hostname"] == f"imap.{IDN_DOMAIN}" and imap["port"] == "993"
    assert smtp["username"] == "用户@例子.测试"
    assert root.findtext("emailProvider/domain") == IDN_DOMAIN
    assert root.findtext("emailProvider/displayName") == "小明"
    for path in (out / "thunderbird").rglob("*.xml"):
        for hostname in ET.parse(path).getroot().iter("hostname"):
            assert (hostname.text or "").isascii(), path


def test_domain_file_uses_placeholders(rendered: Rendered) -> None:
    out, _ = rendered
    idn = domain_file(out, IDN_DOMAIN)
    assert {s["username"] for s in servers(idn, "outgoingServer") + servers(idn, "incomingServer")} == {
        "%EMAILADDRESS%"}
    assert idn.findtext("emailProvider/displayName") == "例子.测试"
    # ops@münchen.example logs in as "ops": the local part.
    muenchen = domain_file(out, MUENCHEN)
    (pop,) = servers(muenchen, "incomingServer")
    (smtp,) = servers(muenchen, "outgoingServer")
    assert pop["type"] == "pop3" and pop["username"] == smtp["username"] == "%EMAILLOCALPART%"
    assert smtp["socketType"] == "STARTTLS" and smtp["hostname"] == f"mail.{MUENCHEN}"


def test_domain_file_lists_each_server_once_and_flags_usernames_no_placeholder_can_express(
        tmp_path: Path) -> None:
    config = write_config(tmp_path, """\
        version: 1
        accounts:
          - {email: a@corp.example, host: smtp.corp.example, port: 587, username: alice,
             password: {env: A}, incoming: {host: imap.corp.example}}
          - {email: b@corp.example, host: smtp.corp.example, port: 587, username: bob-corp,
             password: {env: B}, incoming: {host: imap.corp.example}}
          - {email: c@corp.example, host: smtp2.corp.example, port: 465, username: c@corp.example,
             password: {env: C}}
        """)
    render_ok(config, tmp_path / "out", "thunderbird")
    text = (tmp_path / "out/thunderbird/domains/corp.example/mail/config-v1.1.xml").read_text(encoding="utf-8")
    root = ET.fromstring(text)
    outgoing = servers(root, "outgoingServer")
    assert [(s["hostname"], s["port"], s["socketType"]) for s in outgoing] == [
        ("smtp.corp.example", "587", "STARTTLS"), ("smtp2.corp.example", "465", "SSL")]
    assert [s["username"] for s in outgoing] == ["%EMAILADDRESS%", "%EMAILADDRESS%"]
    assert len(servers(root, "incomingServer")) == 1
    assert "different usernames" in text  # the first server's logins (alice, bob-corp) are flagged


def test_no_secret_in_any_file(rendered: Rendered) -> None:
    out, _ = rendered
    for path, (content, mode) in tree(out).items():
        for value in [*SECRET_VALUES.values(), FILE_SECRET, "pass show"]:
            assert value.encode() not in content, path
        assert mode == 0o644 or path.endswith("manifest.json")


# --- agreement with the public Thunderbird ISPDB ------------------------------------------------

def ispdb_servers(domain: str, kind: str) -> list[dict[str, Any]]:
    """The published servers of ``kind`` (incomingServer / outgoingServer) for ``domain``."""
    root = ET.parse(ISPDB / f"{domain}.xml").getroot()
    return [{"type": s.get("type"), "hostname": s.findtext("hostname"), "port": s.findtext("port"),
             "socketType": s.findtext("socketType"), "username": s.findtext("username"),
             "authentication": {a.text for a in s.findall("authentication")}}
            for s in root.iter(kind)]


def assert_published(ours: dict[str, str], published: list[dict[str, Any]]) -> None:
    match = [p for p in published if (p["type"], p["hostname"], p["port"], p["socketType"]) ==
             (ours["type"], ours["hostname"], ours["port"], ours["socketType"])]
    assert match, f"{ours} is not among the servers the ISPDB publishes: {published}"
    assert ours["authentication"] in match[0]["authentication"]


@pytest.mark.parametrize(("provider", "domain", "extra", "port"), [
    ("gmail", "gmail.com", "", "587"),  # the preset default: STARTTLS
    ("gmail", "gmail.com", "port: 465", "465"),  # the documented alternative: implicit TLS
    ("163", "163.com", "", "465"),
])
def test_settings_agree_with_ispdb(tmp_path: Path, provider: str, domain: str, extra: str, port: str) -> None:
    config = write_config(tmp_path, f"""\
        version: 1
        accounts:
          - email: someone@{domain}
            provider: "{provider}"
            password: {{env: SMTPCONF_TEST_PW}}
            {extra}
        """)
    render_ok(config, tmp_path / "out", "thunderbird")
    outgoing = ispdb_servers(domain, "outgoingServer")
    incoming = ispdb_servers(domain, "incomingServer")
    for root in (account_file(tmp_path / "out", f"someone@{domain}"), domain_file(tmp_path / "out", domain)):
        (smtp,) = servers(root, "outgoingServer")
        assert smtp["port"] == port
        assert_published(smtp, outgoing)
        (imap,) = servers(root, "incomingServer")
        assert_published(imap, incoming)
    # The hosted per-domain file logs in the way the ISPDB says: with the whole address.
    hosted = domain_file(tmp_path / "out", domain)
    assert servers(hosted, "outgoingServer")[0]["username"] == outgoing[0]["username"] == "%EMAILADDRESS%"
    assert servers(hosted, "incomingServer")[0]["username"] == incoming[0]["username"] == "%EMAILADDRESS%"


PLAIN_YAML = """\
    version: 1
    accounts:
      - {email: printer@lab.example, host: smtp.lab.example, port: 2525, security: none,
         incoming: {host: imap.lab.example, port: 143, security: starttls}}
    """


def test_plaintext_relay_without_password(tmp_path: Path) -> None:
    render_ok(write_config(tmp_path, PLAIN_YAML), tmp_path / "out", "thunderbird")
    root = account_file(tmp_path / "out", "printer@lab.example")
    (smtp,) = servers(root, "outgoingServer")
    (imap,) = servers(root, "incomingServer")
    assert (smtp["port"], smtp["socketType"], smtp["authentication"]) == ("2525", "plain", "none")
    # The mailbox is still logged in to, over STARTTLS on 143.
    assert (imap["port"], imap["socketType"], imap["authentication"]) == ("143", "STARTTLS", "password-cleartext")

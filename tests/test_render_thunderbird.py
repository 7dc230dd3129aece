"""The thunderbird target: Mozilla autoconfig files, checked against the ISPDB format and, for the
gmail and 163 presets, against what the public ISPDB publishes for gmail.com and 163.com."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest

from tests.support.cli_clients import OAuth2Render, oauth2_out  # noqa: F401  (oauth2_out is a fixture)
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


# --- OAuth2, and agreement with the ISPDB's Google and Microsoft entries ------------------------

OAUTH2_CLIENT = "9e5f94bc-e8a4-4e73-b8be-63364c29d753"


def oauth2_element(root: ET.Element) -> ET.Element | None:
    return root.find("oAuth2")


@pytest.mark.parametrize(("provider", "email", "ispdb", "port"), [
    ("gmail", "someone@gmail.com", "gmail.com", "587"),
    ("office365", "someone@corp.example", "office365.com", "587"),
])
def test_oauth2_settings_have_the_ispdb_shape(tmp_path: Path, provider: str, email: str, ispdb: str,
                                             port: str) -> None:
    config = write_config(tmp_path, f"""\
        version: 1
        accounts:
          - email: {email}
            provider: {provider}
            oauth2: {{client_id: {OAUTH2_CLIENT}, refresh_token: {{file: secret.txt}}}}
        """)
    render_ok(config, tmp_path / "out", "thunderbird")
    published = ET.parse(ISPDB / f"{ispdb}.xml").getroot()
    published_oauth2 = oauth2_element(published)
    assert published_oauth2 is not None
    domain = email.split("@")[1]
    for root in (account_file(tmp_path / "out", email), domain_file(tmp_path / "out", domain)):
        # Where the element sits and what it holds: after <emailProvider>, as the ISPDB has it.
        tags = [child.tag for child in root]
        assert tags == ["emailProvider", "oAuth2"]
        assert [c.tag for c in published].index("oAuth2") == [c.tag for c in published].index("emailProvider") + 1
        ours = oauth2_element(root)
        assert ours is not None
        assert [c.tag for c in ours] == [c.tag for c in published_oauth2] == ["issuer", "scope", "authURL",
                                                                              "tokenURL"]
        assert ours.findtext("issuer") == published_oauth2.findtext("issuer")
        # The scopes name the same permissions (Microsoft's entry spells the resource
        # outlook.office365.com, its documentation outlook.office.com).
        def names(element: ET.Element) -> set[str]:
            return {scope.rsplit("/", 1)[-1] or scope for scope in (element.findtext("scope") or "").split()}
        assert names(ours) <= names(published_oauth2) and names(ours)
        assert (ours.findtext("tokenURL") or "").startswith("https://")
        (smtp,) = servers(root, "outgoingServer")
        (imap,) = servers(root, "incomingServer")
        assert smtp["port"] == port and smtp["authentication"] == imap["authentication"] == "OAuth2"
        assert_published(smtp, ispdb_servers(ispdb, "outgoingServer"))
        assert_published(imap, ispdb_servers(ispdb, "incomingServer"))
        for server in root.iter("outgoingServer"):
            assert [c.tag for c in server] == SERVER_CHILDREN


def test_oauth2_account_file_carries_its_own_identity_provider(oauth2_out: OAuth2Render) -> None:
    root = account_file(oauth2_out.out, "xiaohua@outlook.com")
    element = oauth2_element(root)
    assert element is not None
    assert element.findtext("issuer") == "login.microsoftonline.com"
    assert element.findtext("tokenURL") == "https://login.microsoftonline.com/consumers/oauth2/v2.0/token"
    assert (element.findtext("scope") or "").split() == [
        "https://outlook.office.com/SMTP.Send", "offline_access", "https://outlook.office.com/IMAP.AccessAsUser.All"]
    password = account_file(oauth2_out.out, "pw@corp.example")
    assert oauth2_element(password) is None
    assert {s["authentication"] for s in servers(password, "outgoingServer")} == {"password-cleartext"}


def test_a_domain_with_oauth2_and_password_accounts_offers_both(oauth2_out: OAuth2Render) -> None:
    path = oauth2_out.out / "thunderbird" / "domains" / "corp.example" / "mail" / "config-v1.1.xml"
    text = path.read_text(encoding="utf-8")
    root = ET.fromstring(text)
    (smtp,) = [s for s in root.iter("outgoingServer")]
    # OAuth2 first, as the ISPDB's Google entry lists its two methods.
    assert [a.text for a in smtp.findall("authentication")] == ["OAuth2", "password-cleartext"]
    element = oauth2_element(root)
    assert element is not None and element.findtext("issuer") == "login.microsoftonline.com"
    # The relay's tenant (corp.example) comes first; v@corp.example's default tenant differs.
    assert "/corp.example/" in (element.findtext("authURL") or "")
    assert "another identity provider" in text


def test_an_identity_provider_without_a_preset_gets_no_oauth2_element(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"""\
        version: 1
        accounts:
          - email: pat@corp.example
            host: smtp.corp.example
            port: 587
            oauth2: {{client_id: {OAUTH2_CLIENT}, refresh_token: {{file: secret.txt}},
                      token_url: "https://idp.corp.example/token"}}
        """)
    render_ok(config, tmp_path / "out", "thunderbird")
    text = (tmp_path / "out" / "thunderbird" / "pat@corp.example.xml").read_text(encoding="utf-8")
    root = ET.fromstring(text)
    assert oauth2_element(root) is None and "no smtpconf preset" in text
    assert servers(root, "outgoingServer")[0]["authentication"] == "OAuth2"

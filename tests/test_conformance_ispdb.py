"""Real providers' published settings lint without errors.

Thunderbird's ISPDB (thunderbird/autoconfig, ispdb/) is what mail clients trust for ~160 providers.
Each file is read from ``../shared/conformance/ispdb/`` beside the clone (as CI provides it) and
turned into an smtpconf file: one account per outgoing server, with the provider's first incoming
server, and one more account per further incoming server; host, port and security exactly as
published, OAuth2 where the provider lists it and smtpconf knows its identity provider, else a
password from the environment. Such a file must lint without errors: a provider's documented
settings are what its users must write, however unusual (Charter's implicit TLS on 587).

One documented exception (docs/decisions.md): a server published without TLS (`socketType plain`,
some Japanese ISPs) still sends the password in the clear, and `plaintext-auth` stays an error for
it. The converted file carries the acknowledgement such a user writes,
`# smtpconf: ignore[plaintext-auth]` on the `security: none` line, and the test checks that this is
the only error it silences.

The Apple profile of each such account is also written by ``plist_xml`` and by ``plistlib``, and the
bytes must be the same.
"""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from smtpconf.lint import lint_path
from smtpconf.model import presets
from smtpconf.render.client_settings import incoming
from smtpconf.render.mobileconfig import plist_xml, profile
from tests.support.gate import unavailable

ROOT = Path(__file__).resolve().parents[1]
ISPDB = ROOT.parent / "shared" / "conformance" / "ispdb"
FILES = sorted(p.name for p in ISPDB.glob("*.xml")) if ISPDB.is_dir() else []

_SECURITY = {"SSL": "tls", "STARTTLS": "starttls", "plain": "none"}
_INCOMING = ("imap", "pop3")


_ACKNOWLEDGED = "  # smtpconf: ignore[plaintext-auth]"


def _fill(text: str, local: str, domain: str) -> str:
    return (text.strip().replace("%EMAILADDRESS%", f"{local}@{domain}").replace("%EMAILLOCALPART%", local)
            .replace("%EMAILDOMAIN%", domain))


def _server(node: ET.Element, local: str, domain: str) -> dict[str, Any]:
    return {"host": _fill(node.findtext("hostname", ""), local, domain), "port": int(node.findtext("port", "0")),
            "security": _SECURITY[node.findtext("socketType", "").strip()],
            "username": _fill(node.findtext("username") or "%EMAILADDRESS%", local, domain)}


def _oauth2_preset(host: str) -> bool:
    return any(p.oauth2 is not None and any(s.host == host for s in p.smtp) for p in presets().values())


def account_file(path: Path) -> str:
    """The ISPDB file as an smtpconf file (YAML text)."""
    provider = ET.parse(path).getroot().find("emailProvider")
    assert provider is not None, path
    domain = provider.findtext("domain", "").strip()
    outgoing = [n for n in provider.findall("outgoingServer") if n.get("type") == "smtp"]
    incoming = [n for n in provider.findall("incomingServer") if n.get("type") in _INCOMING]
    pairs = [(out, incoming[0] if incoming else None) for out in outgoing]
    pairs += [(outgoing[0], inc) for inc in incoming[1:]] if outgoing else []
    accounts = []
    for number, (out, inc) in enumerate(pairs, start=1):
        local = f"user{number}"
        account: dict[str, Any] = {"email": f"{local}@{domain}", **_server(out, local, domain)}
        methods = [m.text for m in out.findall("authentication")]
        if methods == ["none"]:
            account.update(auth="none")
            del account["username"]
        elif "OAuth2" in methods and _oauth2_preset(account["host"]):
            account.update(auth="oauth2", oauth2={"client_id": "ispdb-test-client",
                                                  "refresh_token": {"env": "ISPDB_REFRESH_TOKEN"}})
        else:
            account["password"] = {"env": "ISPDB_PASSWORD"}
        if inc is not None:
            account["incoming"] = {"protocol": inc.get("type"), **_server(inc, local, domain)}
        accounts.append(account)
    text = yaml.safe_dump({"version": 1, "accounts": accounts}, sort_keys=False, allow_unicode=True)
    return text.replace("security: none\n", f"security: none{_ACKNOWLEDGED}\n")


@pytest.mark.parametrize("name", FILES or ["(ispdb missing)"])
def test_a_providers_published_settings_lint_without_errors(tmp_path: Path, name: str) -> None:
    if not FILES:
        unavailable(f"Thunderbird's ISPDB is not at {ISPDB} (a copy of shared/ beside the clone)")
    path = tmp_path / "smtpconf.yaml"
    path.write_text(account_file(ISPDB / name), encoding="utf-8")
    result = lint_path(path, name)
    assert result.config is not None and [f for f in result.findings if f.level == "error"] == []
    path.write_text(path.read_text(encoding="utf-8").replace(_ACKNOWLEDGED, ""), encoding="utf-8")
    unacknowledged = lint_path(path, name)
    assert {f.rule for f in unacknowledged.findings if f.level == "error"} <= {"plaintext-auth"}
    # plist_xml writes the bytes plistlib writes, for every profile of the provider's accounts.
    for account in result.config.accounts:
        inbound = incoming(account)
        if inbound is not None and account.login.auth != "oauth2":
            mobile = profile(account, inbound)
            assert plist_xml(mobile) == plistlib.dumps(mobile, fmt=plistlib.FMT_XML, sort_keys=True)


def test_charter_spectrum_587_with_implicit_tls_is_documented_not_a_mismatch(tmp_path: Path) -> None:
    if not FILES:
        unavailable(f"Thunderbird's ISPDB is not at {ISPDB}")
    text = account_file(ISPDB / "charter.net.xml")
    assert "port: 587\n  security: tls\n" in text
    path = tmp_path / "smtpconf.yaml"
    path.write_text(text, encoding="utf-8")
    assert [f for f in lint_path(path, "charter.yaml").findings if f.rule == "tls-port-mismatch"] == []
    # The same pairing written by hand for any other server is the classic mistake, and still an error.
    path.write_text(text.replace("mobile.charter.net", "smtp.example.net"), encoding="utf-8")
    mismatches = [f for f in lint_path(path, "other.yaml").findings if f.rule == "tls-port-mismatch"]
    assert mismatches and all(f.level == "error" for f in mismatches)


def test_the_conversion_covers_every_server_kind() -> None:
    if not FILES:
        unavailable(f"Thunderbird's ISPDB is not at {ISPDB}")
    seen = {(a["port"], a["security"]) for name in FILES
            for a in yaml.safe_load(account_file(ISPDB / name))["accounts"]}
    assert {(465, "tls"), (587, "starttls"), (587, "tls"), (25, "none")} <= seen


def test_a_documented_pairing_is_not_a_mismatch_without_the_suite(tmp_path: Path) -> None:
    from tests.helpers import lint_text

    result = lint_text(tmp_path, """\
        version: 1
        accounts:
          - {email: a@charter.net, provider: spectrum, password: {env: P}}
          - {email: b@charter.net, host: mobile.charter.net, port: 587, security: tls, password: {env: P}}
          - {email: c@example.net, host: smtp.example.net, port: 587, security: tls, password: {env: P}}
          - {email: d@example.net, host: mobile.charter.net, port: 465, security: starttls, password: {env: P}}
        """)
    assert [(f.line, f.rule) for f in result.findings if f.level == "error"] == [
        (5, "tls-port-mismatch"), (6, "tls-port-mismatch")]
    assert result.config is not None
    assert (result.config.accounts[0].smtp.port, result.config.accounts[0].smtp.security) == (587, "tls")

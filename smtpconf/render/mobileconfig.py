"""Apple configuration profiles, ``mobileconfig/<email>.mobileconfig`` (iOS, iPadOS, macOS Mail).

One ``com.apple.mail.managed`` payload per account. Profiles are reproducible: no dates, sorted
keys, and UUIDs derived from content with uuid5 instead of drawn at random, so the same file renders
the same bytes.

The bytes are exactly what ``plistlib.dumps(profile, fmt=FMT_XML, sort_keys=True)`` writes, and a
test holds the two together on every profile of the test files. ``plist_xml`` writes them itself
because plistlib's writer was most of this target's time (the numbers: docs/benchmarks.md).

No password is written: the device asks for it when the profile is installed. Apple's payload
requires an incoming (IMAP or POP) server; an account without one gets no profile, because a device
would refuse to install it, and the render says so in a note.

The payload's authentication is a password or none (``EmailAuthPassword``, ``EmailAuthNone``, and
certificate variants); there is no OAuth2. A profile for an OAuth2 account would have the device
ask for a password that the provider refuses, so such an account gets no profile, and a note
says to add it with the provider's own sign-in (Add Account: Google, Microsoft Exchange,
Outlook.com), which does OAuth2 (SPEC §7).

A profile says only whether a server uses TLS (``UseSSL``); Apple Mail then does implicit TLS on
465, 993 and 995 and STARTTLS elsewhere. An implicit-TLS server on another port (Spectrum's 587)
would silently be spoken to with STARTTLS, so the render says so in a note.
"""

from __future__ import annotations

import json
import re
import uuid
from functools import lru_cache
from typing import Any, Iterator

from smtpconf.model import Account
from smtpconf.render import Note, RenderContext, RenderedFile, listed, safe_name
from smtpconf.render.client_settings import ServerSettings, display_name, incoming, outgoing
from smtpconf.render.escape import xml_chars, xml_chars_all

TARGET = "mobileconfig"
# Fixed namespace for uuid5: smtpconf's profile UUIDs are a function of the account alone.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://smtpconf.invalid/mobileconfig")
ACCOUNT_TYPE = {"imap": "EmailTypeIMAP", "pop3": "EmailTypePOP"}


def render(ctx: RenderContext) -> Iterator[RenderedFile | Note]:
    skipped: list[str] = []
    oauth2: list[str] = []
    other_tls: list[str] = []  # servers whose TLS mode Apple Mail will not use
    for account in ctx.config.accounts:
        if account.login.auth == "oauth2":
            oauth2.append(account.email)
            continue
        inbound = incoming(account)
        if inbound is None:
            skipped.append(account.email)
            continue
        yield RenderedFile(
            f"{TARGET}/{safe_name(account.email)}.mobileconfig",
            plist_xml(profile(account, inbound)),
            TARGET, "account", account.email,
        )
        other_tls += [f"{server.host}:{server.port} ({server.security}, {account.email})"
                      for server in (outgoing(account), inbound) if not _apple_speaks(server)]
    if other_tls:
        yield Note(f"mobileconfig: Apple Mail does implicit TLS only on ports 465, 993 and 995 and STARTTLS "
                   f"on every other port (a profile has one SSL flag per server), so these servers will "
                   f"not connect from the profile as configured: {listed(list(dict.fromkeys(other_tls)))}; "
                   f"set them up by hand on the device")
    if skipped:
        names = listed(skipped)
        yield Note(f"no mobileconfig profile for {names}: Apple's mail payload needs an incoming "
                   f"(IMAP or POP) server, and {'these accounts have' if len(skipped) > 1 else 'the account has'} "
                   f"none (add `incoming:`)")
    if oauth2:
        yield Note(f"no mobileconfig profile for {listed(oauth2)}: the account logs in with OAuth2, which "
                   f"Apple's mail payload cannot express (it would ask for a password the provider refuses); "
                   f"on the device, add the account with the provider's own sign-in (Add Account)")


def _uses_tls(server: ServerSettings) -> bool:
    # Apple has one flag for both: with UseSSL on, Mail does implicit TLS on 465/993/995 and
    # STARTTLS on other ports. Only a server without TLS gets false.
    return server.security != "none"


def _apple_speaks(server: ServerSettings) -> bool:
    """Whether Apple Mail, given UseSSL, uses the TLS mode the server speaks: implicit TLS on a port
    other than 465/993/995 (Spectrum's 587) silently becomes STARTTLS, STARTTLS on 465 implicit TLS."""
    return server.security == "none" or (server.security == "tls") == (server.port in _APPLE_IMPLICIT_TLS_PORTS)


_APPLE_IMPLICIT_TLS_PORTS = frozenset({465, 993, 995})


def _auth(server: ServerSettings) -> str:
    return "EmailAuthPassword" if server.authenticates else "EmailAuthNone"


def profile(account: Account, inbound: ServerSettings) -> dict[str, Any]:
    smtp = outgoing(account)
    name = display_name(account)
    mail: dict[str, Any] = {
        "EmailAccountDescription": account.email,
        "EmailAccountName": name,
        "EmailAccountType": ACCOUNT_TYPE[inbound.protocol],
        "EmailAddress": account.email,
        "IncomingMailServerAuthentication": _auth(inbound),
        "IncomingMailServerHostName": inbound.host,
        "IncomingMailServerPortNumber": inbound.port,
        "IncomingMailServerUseSSL": _uses_tls(inbound),
        "IncomingMailServerUsername": inbound.username,
        "OutgoingMailServerAuthentication": _auth(smtp),
        "OutgoingMailServerHostName": smtp.host,
        "OutgoingMailServerPortNumber": smtp.port,
        "OutgoingMailServerUseSSL": _uses_tls(smtp),
        "OutgoingMailServerUsername": smtp.username,
        # An account has one password for both servers (the model has no separate incoming secret):
        # with the same login, the device asks for it once.
        "OutgoingPasswordSameAsIncomingPassword": smtp.authenticates and smtp.username == inbound.username,
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
    }
    # Every other string of the profile is made of these; check them before they are hashed.
    xml_chars_all([value for value in mail.values() if isinstance(value, str)])
    # The identifier names the account, so installing a newer profile for the same address replaces
    # the old one; the UUIDs follow the content, so a changed setting is a new profile version.
    identity = uuid.uuid5(NAMESPACE, "account:" + account.email.lower())
    content = uuid.uuid5(NAMESPACE, json.dumps(mail, sort_keys=True, ensure_ascii=False))
    mail.update({
        "PayloadDisplayName": f"Mail: {account.email}",
        "PayloadIdentifier": f"smtpconf.{identity}.mail",
        "PayloadUUID": str(uuid.uuid5(content, "mail")).upper(),
    })
    return {
        "PayloadContent": [mail],
        "PayloadDescription": f"Mail settings for {name} <{account.email}>, generated by smtpconf.",
        "PayloadDisplayName": f"Mail: {account.email}",
        "PayloadIdentifier": f"smtpconf.{identity}",
        "PayloadRemovalDisallowed": False,
        "PayloadType": "Configuration",
        "PayloadUUID": str(uuid.uuid5(content, "profile")).upper(),
        "PayloadVersion": 1,
    }


PLIST_HEADER = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
                '<plist version="1.0">\n')
# A string plist_text must look at: a character outside XML's Char production or CR (which
# plistlib turns into LF), or one it escapes.
_PLIST_ATTENTION = re.compile("[^\t\n\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[&<>]")


def plist_xml(value: dict[str, Any]) -> bytes:
    """An XML property list, byte for byte as ``plistlib.dumps(value, fmt=plistlib.FMT_XML,
    sort_keys=True)`` writes it, for the types a profile holds: dict, list, str, bool and int.
    A string XML cannot hold is ``UnwritableValue`` (plistlib refuses control characters but writes
    U+FFFE, U+FFFF and lone surrogates into an ill-formed file)."""
    lines = [PLIST_HEADER]
    _plist_value(value, "", lines)
    lines.append("</plist>\n")
    return "".join(lines).encode("utf-8")


def _plist_value(value: object, indent: str, lines: list[str]) -> None:
    if isinstance(value, str):
        lines.append(f"{indent}<string>{_plist_text(value)}</string>\n")
    elif isinstance(value, bool):
        lines.append(f"{indent}<true/>\n" if value else f"{indent}<false/>\n")
    elif isinstance(value, int):
        lines.append(f"{indent}<integer>{value:d}</integer>\n")
    elif isinstance(value, (dict, list)):
        # A container: empty, one tag of its own; else its items one tab further in.
        tag = "dict" if isinstance(value, dict) else "array"
        if not value:
            lines.append(f"{indent}<{tag}/>\n")
            return
        lines.append(f"{indent}<{tag}>\n")
        inner = indent + "\t"
        if isinstance(value, list):
            for item in value:
                _plist_value(item, inner, lines)
        else:
            for key, item in sorted(value.items()):
                lines.append(f"{inner}<key>{_plist_key(key)}</key>\n")
                if isinstance(item, str):  # most values: written here, without one more call
                    lines.append(f"{inner}<string>{_plist_text(item)}</string>\n")
                else:
                    _plist_value(item, inner, lines)
        lines.append(f"{indent}</{tag}>\n")
    else:
        raise TypeError(f"a profile holds no {type(value).__name__}")


@lru_cache(maxsize=256)
def _plist_key(key: str) -> str:
    """Keys are the same few dozen in every profile: each is escaped once."""
    return _plist_text(key)


def _plist_text(text: str) -> str:
    if _PLIST_ATTENTION.search(text) is None:
        return text
    xml_chars(text)
    # What plistlib does: line ends become LF, then &, < and > are escaped (quotes need not be).
    return (text.replace("\r\n", "\n").replace("\r", "\n")
            .replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))

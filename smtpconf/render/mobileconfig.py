"""Apple configuration profiles, ``mobileconfig/<email>.mobileconfig`` (iOS, iPadOS, macOS Mail).

One ``com.apple.mail.managed`` payload per account, written with ``plistlib`` (which does the plist
escaping). Profiles are reproducible: no dates, sorted keys, and UUIDs derived from content with
uuid5 instead of drawn at random, so the same file renders the same bytes.

No password is written: the device asks for it when the profile is installed. Apple's payload
requires an incoming (IMAP or POP) server; an account without one gets no profile, because a device
would refuse to install it, and the render says so in a note.
"""

from __future__ import annotations

import json
import plistlib
import uuid
from typing import Any, Iterator

from smtpconf.model import Account
from smtpconf.render import RenderContext, RenderedFile, listed, safe_name
from smtpconf.render.client_settings import ServerSettings, display_name, incoming, outgoing
from smtpconf.render.escape import xml_chars

TARGET = "mobileconfig"
# Fixed namespace for uuid5: smtpconf's profile UUIDs are a function of the account alone.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://smtpconf.invalid/mobileconfig")
ACCOUNT_TYPE = {"imap": "EmailTypeIMAP", "pop3": "EmailTypePOP"}


def render(ctx: RenderContext) -> Iterator[RenderedFile]:
    skipped: list[str] = []
    for account in ctx.config.accounts:
        inbound = incoming(account)
        if inbound is None:
            skipped.append(account.email)
            continue
        yield RenderedFile(
            f"{TARGET}/{safe_name(account.email)}.mobileconfig",
            plistlib.dumps(profile(account, inbound), fmt=plistlib.FMT_XML, sort_keys=True),
            TARGET, "account", account.email,
        )
    if skipped:
        names = listed(skipped)
        ctx.notes.append(f"no mobileconfig profile for {names}: Apple's mail payload needs an incoming "
                         f"(IMAP or POP) server, and {'these accounts have' if len(skipped) > 1 else 'the account has'} "
                         f"none (add `incoming:`)")


def _check_xml_chars(value: object) -> None:
    """A ValueError for any string a plist (XML) cannot hold. plistlib refuses only some of them
    (control characters) and writes U+FFFE, U+FFFF and lone surrogates into an ill-formed file."""
    if isinstance(value, str):
        xml_chars(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_xml_chars(key)
            _check_xml_chars(item)
    elif isinstance(value, list):
        for item in value:
            _check_xml_chars(item)


def _uses_tls(server: ServerSettings) -> bool:
    # Apple has one flag for both: with UseSSL on, Mail does implicit TLS on 465/993/995 and
    # STARTTLS on other ports. Only a server without TLS gets false.
    return server.security != "none"


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
    # Every other string of the profile is made of these.
    _check_xml_chars(mail)
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

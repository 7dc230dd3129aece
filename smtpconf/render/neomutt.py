"""neomutt: one muttrc per account, ``neomutt/<email>.muttrc``.

Use with ``neomutt -F FILE`` or ``source FILE`` from a muttrc. ``smtp_url`` carries the security
mode in its scheme (``smtps://`` is implicit TLS, ``smtp://`` plus ``ssl_starttls`` is STARTTLS);
the password comes from a command in backticks, which neomutt runs when it reads the file.

An OAuth2 login sets ``smtp_authenticators`` (and ``imap_``/``pop_authenticators``) to the login's
mechanism and ``smtp_oauth_refresh_command`` (and the incoming one) to ``smtpconf oauth2 token``.
neomutt runs that command with ``sh -c`` each time it authenticates; the value itself is a
literal single-quoted muttrc string, not a backtick command, so neomutt expands nothing in it
(SPEC §11) and the command's own words are shell-quoted. neomutt's POP speaks OAUTHBEARER only
(20220429: "xoauth2 is not a valid authenticator" for pop_authenticators): an XOAUTH2 login's POP
server is left out, with a note.
"""

from __future__ import annotations

from typing import Any, Iterator

from smtpconf.model import Account
from smtpconf.render import SECRET_MODE, Note, RenderContext, RenderedFile, account_files, listed
from smtpconf.render.command_line_clients import address_ascii, credential_source
from smtpconf.render.client_settings import ServerSettings, display_name, incoming, outgoing
from smtpconf.render.escape import url_userinfo

TARGET = "neomutt"
TEMPLATE = "neomutt/muttrc.j2"

# URL schemes by (protocol, security): implicit TLS has its own scheme; STARTTLS and none share
# the plain one, and ssl_starttls / ssl_force_tls decide between them.
_SCHEME = {
    ("smtp", "tls"): "smtps", ("smtp", "starttls"): "smtp", ("smtp", "none"): "smtp",
    ("imap", "tls"): "imaps", ("imap", "starttls"): "imap", ("imap", "none"): "imap",
    ("pop3", "tls"): "pops", ("pop3", "starttls"): "pop", ("pop3", "none"): "pop",
}


def server_url(server: ServerSettings, *, with_user: bool = True) -> str:
    # RFC 3986 userinfo: an address's "@" (and anything else unusual) must be percent-encoded;
    # neomutt decodes it. IPv6 literals go in brackets.
    host = f"[{server.host}]" if ":" in server.host else server.host
    user = url_userinfo(server.username) + "@" if with_user and server.username else ""
    return f"{_SCHEME[(server.protocol, server.security)]}://{user}{host}:{server.port}/"


# SASL mechanisms neomutt (20220429) implements itself for OAuth2, per protocol.
_OAUTH2_MECHANISMS = {"smtp": {"xoauth2", "oauthbearer"}, "imap": {"xoauth2", "oauthbearer"},
                      "pop3": {"oauthbearer"}}


# Why an account's file sets up sending only (its incoming server is left out), as the note that
# lists those accounts says it.
_SENDING_ONLY = {
    "tls": "one of the account's servers uses STARTTLS and the other none, and neomutt's TLS settings "
           "are global, so the incoming server cannot be used safely with the same file (see the comment in it)",
    "pop-xoauth2": "the account reads mail over POP with OAuth2 XOAUTH2, and neomutt's POP speaks only "
                   "OAUTHBEARER (use IMAP, or oauth2.mechanism: oauthbearer where the provider takes it)",
}


def render(ctx: RenderContext) -> Iterator[RenderedFile | Note]:
    sending_only: dict[str, list[str]] = {reason: [] for reason in _SENDING_ONLY}
    yield from account_files(ctx, TARGET, TEMPLATE, ".muttrc",
                             lambda account: _data(ctx, account, sending_only), SECRET_MODE)
    for reason, emails in sending_only.items():
        if emails:
            yield Note(f"neomutt files for {listed(emails)} set up sending only: {_SENDING_ONLY[reason]}")


def _data(ctx: RenderContext, account: Account, sending_only: dict[str, list[str]]) -> dict[str, Any]:
    """The template's values; an account whose incoming server must be left out joins
    ``sending_only`` under the reason."""
    smtp = outgoing(account)
    inbound = incoming(account)
    unusable_oauth2 = None
    if inbound is not None and inbound.oauth2 and inbound.oauth2.mechanism not in _OAUTH2_MECHANISMS[inbound.protocol]:
        unusable_oauth2, inbound = inbound, None
        sending_only["pop-xoauth2"].append(account.email)
    # ssl_force_tls and ssl_starttls are global in neomutt, not per server. With a STARTTLS
    # server and a plaintext one, either TLS is not forced and an attacker who strips STARTTLS
    # gets the STARTTLS server's password, or it is forced and the plaintext server cannot be
    # reached. The SMTP server is what this file is for: the incoming server is left out.
    unusable_incoming = None
    if inbound is not None and {smtp.security, inbound.security} == {"starttls", "none"}:
        unusable_incoming, inbound = inbound, None
        sending_only["tls"].append(account.email)
    securities = {smtp.security} | ({inbound.security} if inbound else set())
    ca_files = [f for f in (account.smtp.ca_file, account.incoming.endpoint.ca_file
                            if account.incoming and inbound else None) if f]
    return {
        "account": account.email,
        "from_address": address_ascii(account.email),
        "real_name": display_name(account),
        "smtp_url": server_url(smtp, with_user=smtp.authenticates),
        "authenticates": smtp.authenticates,
        # The OAuth2 refresh command runs at each login; the password's backticks when the file is read.
        "password": credential_source(ctx.config, account, "neomutt",
                                      "each time neomutt logs in" if smtp.oauth2 else "when neomutt reads this file"),
        "mechanism": smtp.oauth2.mechanism if smtp.oauth2 else None,  # neomutt's names: xoauth2, oauthbearer
        "unusable_oauth2": unusable_oauth2._asdict() if unusable_oauth2 else None,
        "incoming": inbound._asdict() | {"url": server_url(inbound)} if inbound else None,
        "left_out": unusable_incoming._asdict() | {"smtp_security": smtp.security} if unusable_incoming else None,
        # Both are global in neomutt: force TLS only when no server of this account is plaintext.
        "starttls": "starttls" in securities,
        "force_tls": "none" not in securities,
        "ca_file": ca_files[0] if ca_files else None,
        "ca_files_differ": len(set(ca_files)) > 1,
    }

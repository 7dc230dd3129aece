"""Outlook Autodiscover POX responses, ``autodiscover/<email>.xml``.

What a web server answers to Outlook's ``POST /autodiscover/autodiscover.xml`` for that address.
The SMTP block carries the difference generators tend to lose: ``Encryption SSL`` for implicit TLS
(465) and ``TLS`` for STARTTLS (587).

The POX schema has no OAuth2 (nor any token) setting: a response for an OAuth2 account would have
Outlook ask for a password that the provider refuses. Such an account gets no file, and a note
says to add it in Outlook with the provider's own sign-in (SPEC §7).
"""

from __future__ import annotations

from typing import Any, Iterator

from smtpconf.model import Account
from smtpconf.render import Note, RenderContext, RenderedFile, account_files, listed
from smtpconf.render.client_settings import display_name, incoming, outgoing

TARGET = "autodiscover"
TEMPLATE = "autodiscover/autodiscover.xml.j2"


def render(ctx: RenderContext) -> Iterator[RenderedFile | Note]:
    oauth2 = [account for account in ctx.config.accounts if account.login.auth == "oauth2"]
    yield from account_files(ctx, TARGET, TEMPLATE, ".xml", _data,
                             accounts=[a for a in ctx.config.accounts if a.login.auth != "oauth2"] if oauth2 else None)
    if oauth2:
        yield Note(f"no autodiscover file for {listed([a.email for a in oauth2])}: OAuth2 logins have no "
                   f"place in Outlook's Autodiscover response, which would make Outlook ask for a password "
                   f"the provider refuses; add the account in Outlook and sign in with the provider")


def _data(account: Account) -> dict[str, Any]:
    inbound = incoming(account)
    # The mailbox block first, then SMTP: the order Exchange's own POX responses use.
    servers = ([inbound] if inbound else []) + [outgoing(account)]
    return {"email": account.email, "display_name": display_name(account), "servers": servers}

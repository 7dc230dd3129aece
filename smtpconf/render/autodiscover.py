"""Outlook Autodiscover POX responses, ``autodiscover/<email>.xml``.

What a web server answers to Outlook's ``POST /autodiscover/autodiscover.xml`` for that address.
The SMTP block carries the difference generators tend to lose: ``Encryption SSL`` for implicit TLS
(465) and ``TLS`` for STARTTLS (587).
"""

from __future__ import annotations

from typing import Any, Iterator

from smtpconf.model import Account
from smtpconf.render import RenderContext, RenderedFile, account_files
from smtpconf.render.client_settings import display_name, incoming, outgoing

TARGET = "autodiscover"
TEMPLATE = "autodiscover/autodiscover.xml.j2"


def render(ctx: RenderContext) -> Iterator[RenderedFile]:
    return account_files(ctx, TARGET, TEMPLATE, ".xml", _data)


def _data(account: Account) -> dict[str, Any]:
    inbound = incoming(account)
    # The mailbox block first, then SMTP: the order Exchange's own POX responses use.
    servers = ([inbound] if inbound else []) + [outgoing(account)]
    return {"email": account.email, "display_name": display_name(account), "servers": servers}

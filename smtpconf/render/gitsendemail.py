"""git send-email: one gitconfig snippet per account, ``git-send-email/<email>.gitconfig``.

Use with ``git config --global include.path FILE`` or ``git -c include.path=FILE send-email``.
The password comes from a git credential helper scoped to this account's server: git send-email
asks for credentials with protocol ``smtp``, host ``smtpServer:smtpServerPort`` and the
``smtpUser`` as username (git-send-email, ``smtp_auth_maybe``), which is the URL
``smtp://USER@HOST:PORT`` with the user percent-encoded (git's ``credential_format``).

An OAuth2 login cannot go that way: git send-email's SMTP client is Net::SMTP with Authen::SASL,
and Debian 12's Authen::SASL 2.16 has no XOAUTH2 (2.18 added it) and no OAUTHBEARER. So the
snippet sets ``sendemail.sendmailCmd`` to msmtp with every setting on its command line (``--host``
makes msmtp read no configuration file, so the snippet stands alone), its ``--passwordeval``
running ``smtpconf oauth2 token``. git send-email runs ``sh -c 'CMD "$@"' - -i [-f SENDER]
RECIPIENTS...`` and writes the message to its standard input (git-send-email, ``send_message``),
which is msmtp's sendmail interface. msmtp and smtpconf must both be on PATH.
"""

from __future__ import annotations

from typing import Any, Iterator

from smtpconf.model import Account
from smtpconf.render import SECRET_MODE, RenderContext, RenderedFile, account_files
from smtpconf.render.command_line_clients import mailbox, smtp_settings
from smtpconf.render.escape import url_userinfo

TARGET = "git-send-email"
TEMPLATE = "git-send-email/gitconfig.j2"


def render(ctx: RenderContext) -> Iterator[RenderedFile]:
    return account_files(ctx, TARGET, TEMPLATE, ".gitconfig", lambda account: _data(ctx, account), SECRET_MODE)


def _data(ctx: RenderContext, account: Account) -> dict[str, Any]:
    if account.login.auth == "oauth2":  # msmtp sends, and runs the token command
        client, when = "msmtp", "each time git send-email sends"
    else:
        client, when = "git send-email", "when git send-email logs in"
    settings = smtp_settings(ctx.config, account, client, when)
    return settings | {
        "from_mailbox": mailbox(account.name, settings["from_address"]),
        "credential_url": f"smtp://{url_userinfo(settings['username'])}@{settings['host']}:{settings['port']}",
    }

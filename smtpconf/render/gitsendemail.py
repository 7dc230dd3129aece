"""git send-email: one gitconfig snippet per account, ``git-send-email/<email>.gitconfig``.

Use with ``git config --global include.path FILE`` or ``git -c include.path=FILE send-email``.
The password comes from a git credential helper scoped to this account's server: git send-email
asks for credentials with protocol ``smtp``, host ``smtpServer:smtpServerPort`` and the
``smtpUser`` as username (git-send-email, ``smtp_auth_maybe``), which is the URL
``smtp://USER@HOST:PORT`` with the user percent-encoded (git's ``credential_format``).
"""

from __future__ import annotations

from typing import Any, Iterator

from smtpconf.model import Account
from smtpconf.render import SECRET_MODE, RenderContext, RenderedFile, account_files
from smtpconf.render.client_settings import outgoing
from smtpconf.render.command_line_clients import address_ascii, mailbox, password_source
from smtpconf.render.escape import url_userinfo

TARGET = "git-send-email"
TEMPLATE = "git-send-email/gitconfig.j2"


def render(ctx: RenderContext) -> Iterator[RenderedFile]:
    return account_files(ctx, TARGET, TEMPLATE, ".gitconfig", _data, SECRET_MODE)


def _data(account: Account) -> dict[str, Any]:
    smtp = outgoing(account)
    return {
        "account": account.email,
        "host": smtp.host,
        "port": smtp.port,
        "security": smtp.security,
        "ca_file": account.smtp.ca_file,
        "authenticates": smtp.authenticates,
        "username": smtp.username,
        "from_mailbox": mailbox(account.name, address_ascii(account.email)),
        "credential_url": f"smtp://{url_userinfo(smtp.username)}@{smtp.host}:{smtp.port}",
        "password": password_source(account, "git send-email", "when git send-email logs in"),
    }

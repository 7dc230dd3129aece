"""msmtp: one msmtprc per account, ``msmtp/<email>.msmtprc``.

Use with ``msmtp -C FILE -a EMAIL rcpt < message`` or append to ``~/.msmtprc``. The password is
never in the file: ``passwordeval`` runs the command that prints it. An OAuth2 login is
``auth xoauth2`` or ``auth oauthbearer`` (msmtp 1.8 has both), and ``passwordeval`` runs
``smtpconf oauth2 token``, whose output msmtp sends as the bearer token. Mode 0600 all the same:
the file says how to get the password, and it is meant to become ``~/.msmtprc``, which msmtp's
documentation wants private because people paste passwords into it.
"""

from __future__ import annotations

from typing import Any, Iterator

from smtpconf.model import Account
from smtpconf.render import SECRET_MODE, RenderContext, RenderedFile, account_files
from smtpconf.render.command_line_clients import address_ascii, password_source, token_source
from smtpconf.render.client_settings import outgoing

TARGET = "msmtp"
TEMPLATE = "msmtp/msmtprc.j2"


def render(ctx: RenderContext) -> Iterator[RenderedFile]:
    return account_files(ctx, TARGET, TEMPLATE, ".msmtprc", lambda account: _data(ctx, account), SECRET_MODE)


def _data(ctx: RenderContext, account: Account) -> dict[str, Any]:
    smtp = outgoing(account)
    when = "each time msmtp sends"
    password = (token_source(ctx.config, account, "msmtp", when) if smtp.oauth2
                else password_source(account, "msmtp", when))
    return {
        "account": account.email,
        "host": smtp.host,
        "port": smtp.port,
        "security": smtp.security,
        "from_address": address_ascii(account.email),
        "authenticates": smtp.authenticates,
        "mechanism": smtp.oauth2.mechanism if smtp.oauth2 else None,  # msmtp's names: xoauth2, oauthbearer
        "username": smtp.username,
        "password_command": password.command,
        "password_note": password.note,
        "ca_file": account.smtp.ca_file,
    }

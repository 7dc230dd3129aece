"""msmtp: one msmtprc per account, ``msmtp/<email>.msmtprc``.

Use with ``msmtp -C FILE -a EMAIL rcpt < message`` or append to ``~/.msmtprc``. The password is
never in the file: ``passwordeval`` runs the command that prints it. An OAuth2 login is
``auth xoauth2`` or ``auth oauthbearer`` (msmtp 1.8 has both), and ``passwordeval`` runs
``smtpconf oauth2 token``, whose output msmtp sends as the bearer token. Mode 0600 all the same:
the file says how to get the password, and it is meant to become ``~/.msmtprc``, which msmtp's
documentation wants private because people paste passwords into it.
"""

from __future__ import annotations

from typing import Iterator

from smtpconf.render import SECRET_MODE, RenderContext, RenderedFile, account_files
from smtpconf.render.command_line_clients import smtp_settings

TARGET = "msmtp"
TEMPLATE = "msmtp/msmtprc.j2"


def render(ctx: RenderContext) -> Iterator[RenderedFile]:
    return account_files(ctx, TARGET, TEMPLATE, ".msmtprc",
                         lambda account: smtp_settings(ctx.config, account, "msmtp", "each time msmtp sends"),
                         SECRET_MODE)

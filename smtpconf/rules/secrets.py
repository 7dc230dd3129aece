"""Secrets in the file."""

from __future__ import annotations

from typing import Iterator

from smtpconf.model import Config
from smtpconf.rules import Hit, rule


@rule("inline-secret", "error")
def inline_secret(config: Config) -> Iterator[Hit]:
    """A password, OAuth2 refresh token or client secret is written into the file as plain text.

    The file is committed, reviewed and copied; a password in it leaks with every copy. Reference
    the secret instead: `{env: NAME}` (an environment variable), `{file: PATH}` (a file such as
    /run/secrets/...), `{command: CMD}` (a password manager, e.g. `pass show mail/ops`) or
    `{vault: VAR}` (an Ansible Vault variable, resolved at deploy time). The message never repeats
    the value.
    """
    for who, login, _ in config.written_logins():
        oauth2 = login.oauth2
        for what, secret in (("password", login.password),
                             ("refresh_token", oauth2.refresh_token if oauth2 else None),
                             ("client_secret", oauth2.client_secret if oauth2 else None)):
            if secret is not None and secret.inline:
                yield Hit(secret.path, f"{who}: {what} {_MESSAGE}")


_MESSAGE = ("is written inline; use {env: NAME}, {file: PATH}, {command: CMD} or "
            "{vault: VAR} and keep the value out of the file")

"""Secrets in the file."""

from __future__ import annotations

from typing import Iterator

from smtpconf.model import Config
from smtpconf.rules import Hit, rule


@rule("inline-secret", "error")
def inline_secret(config: Config) -> Iterator[Hit]:
    """A password is written into the file as plain text.

    The file is committed, reviewed and copied; a password in it leaks with every copy. Reference
    the secret instead: `{env: NAME}` (an environment variable), `{file: PATH}` (a file such as
    /run/secrets/...), `{command: CMD}` (a password manager, e.g. `pass show mail/ops`) or
    `{vault: VAR}` (an Ansible Vault variable, resolved at deploy time). The message never repeats
    the value.
    """
    for relay in config.relays.values():
        if relay.password is not None and relay.password.inline:
            yield Hit(relay.password.path, f"relay '{relay.name}': {_MESSAGE}")
    for account in config.accounts:
        if account.password is not None and account.password.inline:
            yield Hit(account.password.path, f"account {account.email}: {_MESSAGE}")


_MESSAGE = ("password is written inline; use {env: NAME}, {file: PATH}, {command: CMD} or "
            "{vault: VAR} and keep the value out of the file")

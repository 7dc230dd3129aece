"""Accounts as a whole."""

from __future__ import annotations

from typing import Iterator

from smtpconf.model import Config
from smtpconf.rules import Hit, rule


@rule("duplicate-account", "error")
def duplicate_account(config: Config) -> Iterator[Hit]:
    """Two accounts have the same email address.

    Every account is rendered into files named after its address (autoconfig, msmtprc, profiles),
    so a second entry would overwrite the first, or be silently ignored by the client. Addresses
    are compared case-insensitively, as mail systems do for the domain and almost always for the
    local part. Merge the two entries or fix the address.
    """
    first: dict[str, int] = {}
    for account in config.accounts:
        key = account.email.lower()
        if key in first:
            line = config.doc.pos(config.accounts[first[key]].path + ("email",))[0]
            yield Hit(account.path + ("email",), f"account {account.email} is already defined at line {line}")
        else:
            first[key] = account.path[1]  # type: ignore[assignment]

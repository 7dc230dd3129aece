"""How the command-line clients (msmtp, neomutt, git send-email) get an account's password and
address, shared so the three cannot disagree.

No secret value is ever read here: a secret reference becomes a shell command that the client
runs when it needs the password (msmtp ``passwordeval``, neomutt backticks, a git credential
helper). A vault secret exists only for Ansible at deploy time, so the client asks its user.
"""

from __future__ import annotations

from typing import NamedTuple

from smtpconf.model import Account, to_ascii_host
from smtpconf.render.escape import secret_command


class PasswordSource(NamedTuple):
    command: str | None  # a shell command printing the password; None: the client asks
    note: str  # one line for a comment in the rendered file: where the password comes from


def password_source(account: Account, client: str, when: str) -> PasswordSource:
    """``when`` completes "the command runs ...", e.g. "each time msmtp sends"."""
    secret = account.password
    command = secret_command(secret)
    if command is not None:
        assert secret is not None
        return PasswordSource(command, f"password from {secret.describe()}; the command runs {when}")
    if secret is not None and secret.inline:
        # Lint refuses this (inline-secret) unless silenced; even then the value is not copied.
        return PasswordSource(None, f"no password here: the smtpconf file has it inline, which is never "
                                    f"copied into client files; {client} will ask for it")
    if secret is not None and secret.kind == "vault":
        return PasswordSource(None, f"no password here: it is the Ansible variable {secret.ref}, "
                                    f"resolved only at deploy time; {client} will ask for it")
    return PasswordSource(None, f"no password source in the smtpconf file; {client} will ask for it")


def address_ascii(email: str) -> str:
    """The address as it goes on the wire without SMTPUTF8: the domain as punycode A-labels."""
    local, _, domain = email.rpartition("@")
    return f"{local}@{to_ascii_host(domain)}"


# RFC 5322 "specials": a display name holding one of these must be a quoted-string.
_SPECIALS = set('()<>[]:;@\\,."')


def mailbox(name: str | None, address: str) -> str:
    """``Name <address>`` for a From header, the name quoted when RFC 5322 requires it. A non-ASCII
    name stays as it is: the client encodes it (RFC 2047) when it writes the header."""
    if not name:
        return address
    if any(ch in _SPECIALS for ch in name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"

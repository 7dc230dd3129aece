"""How the command-line clients (msmtp, neomutt, git send-email) get an account's SMTP settings,
password or OAuth2 access token and address, shared so the three cannot disagree.

No secret value is ever read here: a secret reference becomes a shell command that the client
runs when it needs the password (msmtp ``passwordeval``, neomutt backticks, a git credential
helper). A vault secret exists only for Ansible at deploy time, so the client asks its user.

An OAuth2 login gets the token command instead: ``smtpconf oauth2 token FILE --account EMAIL``
(SPEC §7), which prints a valid access token, refreshing it with the refresh token the smtpconf
file names. ``smtpconf`` is found on the PATH of whoever runs the client, and FILE is the
smtpconf file's absolute path at render time: the client file works where that file is. Always
``--account``, also for an account that logs in with its relay's login: the command reads that
account's Login from the model, which for such an account is the relay's own (one fact, one
owner), and the client file names the account it is for.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from smtpconf.errors import UnwritableValue
from smtpconf.model import Account, Config, to_ascii_host
from smtpconf.render.client_settings import outgoing
from smtpconf.render.escape import secret_command, shell


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


# A line break would end the client's setting early and start another (msmtprc, muttrc and
# gitconfig are line-based); a lone surrogate is a file name that is not UTF-8.
_UNWRITABLE_IN_COMMAND = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


@lru_cache(maxsize=16)
def _quoted_source(path: Path) -> str | None:
    """The smtpconf file's absolute path as one shell word; None when no client file can hold it.
    Once per file, not per account (resolving is a system call)."""
    absolute = str(path.resolve())
    return None if _UNWRITABLE_IN_COMMAND.search(absolute) else shell(absolute)


def token_command(config: Config, account: Account) -> str:
    """The shell command that prints an access token for ``account``'s OAuth2 login.
    ``UnwritableValue`` (the render refuses) when the smtpconf file's path cannot be written in one."""
    source = _quoted_source(config.doc.path.absolute())  # absolute: a cached relative path outlives a chdir
    if source is None:
        raise UnwritableValue(f"the smtpconf file's path {str(config.doc.path.resolve())!r} holds a control "
                              f"character or is not UTF-8, and the token command of {account.email} must name it; "
                              "move the file to a plain path")
    return f"smtpconf oauth2 token {source} --account {shell(account.email)}"


def token_source(config: Config, account: Account, client: str, when: str) -> PasswordSource:
    """Where an OAuth2 login's access token comes from: the token command, unless its refresh
    token cannot be read on the client's machine. ``when`` as for ``password_source``."""
    login = account.login
    assert login.auth == "oauth2" and login.oauth2 is not None
    refresh = login.oauth2.refresh_token
    if refresh is not None and refresh.kind == "vault":
        return PasswordSource(None, f"no token command: the OAuth2 refresh token is the Ansible variable "
                                    f"{refresh.ref}, resolved only at deploy time; for {client}, give "
                                    f"oauth2.refresh_token a file, env or command this machine can read")
    via = f" with the refresh token from {refresh.describe()}" if refresh is not None and not refresh.inline else ""
    return PasswordSource(token_command(config, account),
                          f"OAuth2 ({login.oauth2.sasl_name}): the access token comes from `smtpconf oauth2 token`"
                          f"{via} (smtpconf must be on PATH); the command runs {when}")


def credential_source(config: Config, account: Account, client: str, when: str) -> PasswordSource:
    """What ``client`` logs in with: the token command for an OAuth2 login, else the account's
    password source. ``when`` as for ``password_source``."""
    if account.login.auth == "oauth2":
        return token_source(config, account, client, when)
    return password_source(account, client, when)


def smtp_settings(config: Config, account: Account, client: str, when: str) -> dict[str, Any]:
    """The template values of sending through msmtp or git send-email: the server, TLS, login and
    envelope sender, with ``credential_source(config, account, client, when)`` as ``password``."""
    smtp = outgoing(account)
    return {
        "account": account.email,
        "host": smtp.host,
        "port": smtp.port,
        "security": smtp.security,
        "ca_file": account.smtp.ca_file,
        "from_address": address_ascii(account.email),
        "authenticates": smtp.authenticates,
        "username": smtp.username,
        "mechanism": smtp.oauth2.mechanism if smtp.oauth2 else None,  # msmtp's names: xoauth2, oauthbearer
        "password": credential_source(config, account, client, when),
    }


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

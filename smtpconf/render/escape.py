"""Escaping for every output format, in one place. Templates apply these as Jinja filters.

The schema already keeps newlines and control characters out of hosts, names and map keys; these
functions are the second line: they make any value safe for the syntax it lands in.
"""

from __future__ import annotations

import shlex
from xml.sax.saxutils import escape as _xml_escape

from smtpconf.model import SecretRef


def xml(value: object) -> str:
    """Text or attribute content in XML (autoconfig, autodiscover)."""
    return _xml_escape(str(value), {'"': "&quot;", "'": "&apos;"})


def shell(value: object) -> str:
    """One POSIX shell word."""
    return shlex.quote(str(value))


def msmtp(value: object) -> str:
    """An msmtprc argument. msmtp takes the rest of the line and, when it begins and ends with a
    double quote, strips that one pair; there are no escapes inside (msmtp 1.8, checked with a real
    server). So wrapping any value in one more pair of quotes always gives back the value."""
    text = str(value)
    if text and all(ch.isalnum() or ch in "@._-+/:=%" for ch in text):
        return text
    return '"' + text + '"'


def muttrc(value: object) -> str:
    """A muttrc value in single quotes (no expansion inside; a quote is closed, escaped, reopened)."""
    return "'" + str(value).replace("'", "'\\''") + "'"


def muttrc_command(value: object) -> str:
    """A command inside muttrc backticks (within double quotes): neomutt reads backslash escapes
    there, and an unescaped backtick would end the command early (checked with neomutt 2022)."""
    return str(value).replace("\\", "\\\\").replace("`", "\\`")


def gitconfig(value: object) -> str:
    """A git-config value: double-quoted, with backslash and quote escaped."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def zone(value: object) -> str:
    """A zone-file character-string: quoted, split into 255-byte chunks (RFC 1035 §3.3)."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    chunks = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join(f'"{chunk}"' for chunk in chunks)


def postfix(value: object) -> str:
    """A main.cf value or lookup-table field. The schema forbids whitespace, commas and control
    characters in everything that reaches Postfix; refuse rather than write a broken table."""
    text = str(value)
    if not text or any(ch.isspace() or ch == "," or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValueError(f"value not allowed in a Postfix setting or table: {text!r}")
    return text


def secret_command(secret: SecretRef | None) -> str | None:
    """A shell command that prints the secret, for clients that run one (msmtp passwordeval,
    neomutt backticks, git credential helpers). None when the client cannot resolve it (vault)."""
    if secret is None:
        return None
    if secret.kind == "env":
        return f"printenv {shell(secret.ref)}"
    if secret.kind == "file":
        return f"cat {shell(secret.ref)}"
    if secret.kind == "command":
        return secret.ref
    return None  # vault: resolved by Ansible only; inline: refused by lint, never written


FILTERS = {
    "xml": xml,
    "shell": shell,
    "msmtp": msmtp,
    "muttrc": muttrc,
    "muttrc_command": muttrc_command,
    "gitconfig": gitconfig,
    "zone": zone,
    "postfix": postfix,
    "secret_command": secret_command,
}

"""Escaping for every output format, in one place. Templates apply these as Jinja filters.

The schema already keeps newlines and control characters out of hosts, names and map keys; these
functions are the second line: they make any value safe for the syntax it lands in, or refuse it
with ``UnwritableValue`` (the render then writes nothing and says why, as a user's mistake).
"""

from __future__ import annotations

import re
import shlex
from urllib.parse import quote
from xml.sax.saxutils import escape as _xml_escape

from smtpconf.errors import UnwritableValue
from smtpconf.model import SecretRef

# Anything outside XML 1.0's Char production (https://www.w3.org/TR/xml/#charsets).
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_chars(value: object) -> str:
    """The text, if every character is one XML 1.0 can hold (its ``Char`` production: tab, line
    feed, carriage return, U+0020-U+D7FF, U+E000-U+FFFD, U+10000-U+10FFFF); ``UnwritableValue`` otherwise.
    No escape exists for the others (``&#xFFFE;`` is ill-formed too), so parsers reject the file."""
    text = str(value)
    bad = _NOT_XML_CHAR.search(text)
    if bad:
        raise UnwritableValue(f"character U+{ord(bad.group()):04X} cannot be written in XML: {text!r}")
    return text


def xml_chars_all(texts: list[str]) -> None:
    """``xml_chars`` for each text: one search answers for all of them, and only when it finds a
    bad character is each checked, so that the error names the text that holds it."""
    if _NOT_XML_CHAR.search("".join(texts)):
        for text in texts:
            xml_chars(text)


# Anything xml() must look at: a character XML cannot hold, or one it escapes. Most values (hosts,
# addresses, ports) have none, and one search answers for them: 50,000 files call xml() 200,000 times.
_XML_ATTENTION = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[&<>\"']")


def xml(value: object) -> str:
    """Text or attribute content in XML (autoconfig, autodiscover)."""
    text = str(value)
    if _XML_ATTENTION.search(text) is None:
        return text
    return _xml_escape(xml_chars(text), {'"': "&quot;", "'": "&apos;"})


def shell(value: object) -> str:
    """One POSIX shell word."""
    return shlex.quote(str(value))


_MSMTP_BARE = re.compile(r"[\w@.+/:=%-]+")  # \w: str.isalnum() characters and "_"


def _one_line(text: str) -> str:
    """msmtprc, muttrc and gitconfig are read line by line: a line break in a value would start a
    setting of its own. The schema lets none into values; a path can still hold one, from the
    directory the smtpconf file is in."""
    if "\n" in text or "\r" in text:
        raise UnwritableValue(f"a line break cannot be written in this setting: {text!r}")
    return text


def msmtp(value: object) -> str:
    """An msmtprc argument. msmtp takes the rest of the line and, when it begins and ends with a
    double quote, strips that one pair; there are no escapes inside (msmtp 1.8, checked with a real
    server). So wrapping any value in one more pair of quotes always gives back the value."""
    text = str(value)
    return text if _MSMTP_BARE.fullmatch(text) else '"' + _one_line(text) + '"'


def muttrc(value: object) -> str:
    """A muttrc value in single quotes (no expansion inside; a quote is closed, escaped, reopened)."""
    return "'" + _one_line(str(value)).replace("'", "'\\''") + "'"


# RFC 3986 unreserved characters, which percent-encoding leaves alone, and "@", which it encodes.
_UNRESERVED_OR_AT = re.compile(r"[A-Za-z0-9_.~@-]*")


def url_userinfo(value: str) -> str:
    """A username for the userinfo of a URL: everything but unreserved characters percent-encoded,
    as ``urllib.parse.quote(value, safe="")`` does (an address's "@" becomes %40). Most usernames
    are plain addresses, answered without quote's byte-by-byte loop."""
    if _UNRESERVED_OR_AT.fullmatch(value):
        return value.replace("@", "%40")
    return quote(value, safe="")


def gitconfig(value: object) -> str:
    """A git-config value: double-quoted, with backslash and quote escaped."""
    return '"' + _one_line(str(value)).replace("\\", "\\\\").replace('"', '\\"') + '"'


def zone(value: object) -> str:
    """A zone-file character-string: quoted, split into 255-byte chunks (RFC 1035 §3.3)."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    chunks = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join(f'"{chunk}"' for chunk in chunks)


def nginx(value: object) -> str:
    """One nginx configuration argument, double-quoted: nginx reads ``\\`` and ``\"`` in quotes.
    ``$`` has no escape (nginx expands variables in paths), so a value holding it, or a control
    character, is refused (the lint rule site-path-unsafe reports it first)."""
    text = str(value)
    if "$" in text or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise UnwritableValue(f"value not allowed in an nginx setting: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def postfix(value: object) -> str:
    """A main.cf value or lookup-table field. The schema forbids whitespace, commas and control
    characters in everything that reaches Postfix; refuse rather than write a broken table."""
    text = str(value)
    if not text or any(ch.isspace() or ch == "," or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise UnwritableValue(f"value not allowed in a Postfix setting or table: {text!r}")
    return text


def secret_command(secret: SecretRef | None) -> str | None:
    """A shell command that prints the secret, for clients that run one (msmtp passwordeval,
    neomutt backticks, git credential helpers). None when the client cannot resolve it (vault)."""
    if secret is None:
        return None
    if secret.kind == "env":
        return f"printenv {shell(secret.ref)}"
    if secret.kind == "file":
        if secret.ref.startswith("~/"):  # the home of whoever runs the client, not of who rendered
            return f'cat "$HOME"/{shell(secret.ref[2:])}'
        return f"cat {shell(secret.ref)}"
    if secret.kind == "command":
        return secret.ref
    return None  # vault: resolved by Ansible only; inline: refused by lint, never written


# The Jinja filters of templates/. postfix() and secret_command() are called from Python only
# (the role's templates use built-in filters, so that Ansible renders the same bytes).
FILTERS = {
    "xml": xml,
    "shell": shell,
    "msmtp": msmtp,
    "muttrc": muttrc,
    "gitconfig": gitconfig,
    "zone": zone,
    "nginx": nginx,
}

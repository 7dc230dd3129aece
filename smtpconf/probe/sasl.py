"""The SASL mechanisms as send-test speaks them: PLAIN and LOGIN in UTF-8, and the OAuth2 ones,
with a refusal decoded into words.

XOAUTH2 (Google's and Microsoft's): ``user=U^Aauth=Bearer T^A^A``. OAUTHBEARER (RFC 7628 §3.1):
the GS2 header ``n,a=U,`` then ``^Ahost=H^Aport=P^Aauth=Bearer T^A^A``. Both go in the initial
response of ``AUTH`` (RFC 4954 §4): one round trip, and no 334 unless the server refuses.

A refusal comes in three shapes (:mod:`smtpconf.probe.auth` says what to do about each):

- Google's XOAUTH2: ``334 <base64 JSON {"status","schemes","scope"}>``; the client must answer
  with an empty line, then gets ``535 5.7.8``.
- RFC 7628 §3.2.2 (OAUTHBEARER): ``334 <base64 JSON {"status","scope","openid-configuration"}>``;
  the client must answer with a lone %x01 (``AQ==``), then gets ``535``.
- Microsoft: ``535 5.7.3 Authentication unsuccessful`` at once; and to a password, once Basic
  auth is off, ``550 5.7.30 Basic authentication is not supported for Client Submission``.

The token is only ever inside the base64 of the AUTH line: nothing here puts it in a message,
and :func:`scrub` takes it out of any text a server might echo back.
"""

from __future__ import annotations

import base64
import binascii
import json
import smtplib
from typing import NamedTuple

from smtpconf.findings import printable
from smtpconf.probe.steps import text

MAX_CHALLENGES = 2  # a refusal is one 334; a server that keeps challenging gets "*" (RFC 4954 §4)


def xoauth2_message(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def _saslname(value: str) -> str:
    # RFC 5801 §4: "," and "=" are escaped in the GS2 authzid.
    return value.replace("=", "=3D").replace(",", "=2C")


def oauthbearer_message(user: str, host: str, port: int, token: str) -> bytes:
    return f"n,a={_saslname(user)},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


def password_exchange(client: smtplib.SMTP, mechanism: str, user: str, password: str) -> tuple[int, bytes]:
    """``AUTH PLAIN`` (RFC 4616, initial response) or ``AUTH LOGIN``, in UTF-8: smtplib's login
    encodes the credentials as ASCII and fails on a non-ASCII password. The final reply."""
    if mechanism == "PLAIN":
        code, reply = client.docmd("AUTH", "PLAIN " + _b64(f"\0{user}\0{password}"))
    else:
        code, reply = client.docmd("AUTH", "LOGIN")
        for value in (user, password):  # answers to "Username:" and "Password:"
            if code != 334:
                break
            code, reply = client.docmd(_b64(value))
    if code == 334:
        code, reply = client.docmd("*")  # a server that asks for more: cancel (RFC 4954 §4)
    return code, reply


def _b64(value: str) -> str:
    return base64.b64encode(value.encode("utf-8")).decode("ascii")


class SaslResult(NamedTuple):
    code: int
    reply: str  # the final reply's text (235 on success)
    challenge: str | None  # the decoded error challenge of a refusal, in words; None without one


def authenticate(client: smtplib.SMTP, mechanism: str, user: str, token: str, host: str, port: int) -> SaslResult:
    """``AUTH mechanism`` with the initial response; answers an error challenge the way the
    mechanism requires, so that the server ends the exchange with its final reply. Raises what
    smtplib raises for a lost connection."""
    message = (xoauth2_message(user, token) if mechanism == "XOAUTH2"
               else oauthbearer_message(user, host, port, token))
    code, reply = client.docmd("AUTH", f"{mechanism} {base64.b64encode(message).decode('ascii')}")
    challenge = None
    for _ in range(MAX_CHALLENGES):
        if code != 334:
            break
        challenge = describe_challenge(reply)
        # XOAUTH2 (Google): an empty response; OAUTHBEARER (RFC 7628 §3.2.3): a lone %x01.
        code, reply = client.docmd("" if mechanism == "XOAUTH2" else "AQ==")
    if code == 334:
        code, reply = client.docmd("*")  # cancel (RFC 4954 §4): 501 follows
    return SaslResult(code, scrub(text(reply), token), scrub(challenge, token) if challenge else None)


def describe_challenge(reply: bytes) -> str:
    """A refusal's 334 challenge in words: its JSON fields (status, schemes, scope,
    openid-configuration), or the decoded text when it is no JSON."""
    try:
        raw = base64.b64decode(reply.strip(), validate=True)
    except (binascii.Error, ValueError):
        return f"an undecodable challenge '{printable(text(reply))}'"
    decoded = raw.decode("utf-8", "replace")
    try:
        fields = json.loads(decoded)
    except ValueError:
        return f"'{printable(decoded, 200)}'"
    if not isinstance(fields, dict):
        return f"'{printable(decoded, 200)}'"
    known = ("status", "schemes", "scope", "openid-configuration")
    order = [k for k in known if k in fields] + sorted(k for k in fields if k not in known)
    return ", ".join(f"{printable(str(k), 40)} {printable(str(fields[k]), 120)}" for k in order[:8])


def scrub(said: str, token: str) -> str:
    return said.replace(token, "[token]") if token else said

"""send-test's connection: the probe's steps, then smtplib from AUTH on.

Connect, greeting, EHLO and STARTTLS (or implicit TLS) are the shared SMTP dialogue's blocking
:class:`~smtpconf.probe.dialogue.Session`, the one the role's ``smtp_probe`` module speaks and whose
rules ``smtpconf check`` follows: the same server gets the same diagnosis (rule words, mode
mismatch both ways, certificate table) from all three. It connects to the address the resolve
step found while TLS checks the host name in the file, each read waits what is left of the
session's :class:`~smtpconf.probe.steps.Clock`, and each reply is bounded (100 lines, 64 KiB).
Each step prints its line as it ends.

After the capabilities following TLS, the connection is handed to smtplib (AUTH, MAIL FROM, RCPT
TO, DATA), which reads every reply with the same 64 KiB budget (SPEC §11: a session is bounded in
reply size as well as in time).
"""

from __future__ import annotations

import smtplib
import ssl
from typing import Any

from smtpconf.findings import printable
from smtpconf.model import Endpoint
from smtpconf.probe.dialogue import MAX_REPLY_BYTES, REPLY_TOO_LONG, Failed, Session, UnusableCA, mechanisms
from smtpconf.probe.steps import Clock, fail, step

# The send-test step each phase of the dialogue is shown as.
_STEP = {"connect": "connect", "TLS handshake": "TLS", "greeting": "greeting", "EHLO": "EHLO",
         "STARTTLS": "TLS", "EHLO after STARTTLS": "EHLO"}


class ReplyTooLong(smtplib.SMTPException):
    pass


class _Capped:
    """The reply stream, counting: smtplib caps each line (8 KiB), not how many there are."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.left = raw, MAX_REPLY_BYTES

    def readline(self, size: int = -1) -> bytes:
        line: bytes = self.raw.readline(size)
        self.left -= len(line)
        if self.left < 0:
            raise ReplyTooLong(REPLY_TOO_LONG)
        return line

    def close(self) -> None:
        self.raw.close()


class _Bounded(smtplib.SMTP):
    """smtplib on a connection the dialogue opened, every reply read with a budget of
    MAX_REPLY_BYTES."""

    _host: str  # the TLS server name; smtplib sets it, typeshed does not declare it

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            self.file = self.sock.makefile("rb")  # as smtplib does
        if isinstance(self.file, _Capped):
            self.file.left = MAX_REPLY_BYTES
        elif self.file is not None:
            self.file = _Capped(self.file)
        return super().getreply()


def tls_context(ep: Endpoint) -> ssl.SSLContext:
    from smtpconf.probe.tls import client_context

    try:
        return client_context(ep.ca_file)
    except UnusableCA as exc:
        raise fail("TLS", str(exc)) from None


def connect(ep: Endpoint, address: str, clock: Clock) -> smtplib.SMTP:
    """The dialogue up to the capabilities after TLS, a line per step; then smtplib's client."""
    context = tls_context(ep) if ep.security != "none" else None
    session = Session(ep.host_ascii, ep.port, ep.security, context, clock.seconds, address=address,
                      left=clock.left, report=lambda phase: _report(session, phase, address))
    try:
        caps = session.open()
    except Failed as failed:
        session.close(quit=failed.in_step)
        raise fail(_STEP.get(session.phase, session.phase), failed.message) from None
    except BaseException:  # --timeout for the whole session (SessionTimeout), ^C
        session.close()
        raise
    client = _Bounded(local_hostname="localhost", timeout=clock.left())  # no host: it does not connect
    client._host = ep.host_ascii
    client.sock = session.detach()
    client.does_esmtp = True
    client.esmtp_features = {name.lower(): value for name, value in caps.items()}
    return client


def _report(session: Session, phase: str, address: str) -> None:
    if phase == "connect":
        step("connect", True, f"{address}:{session.port}")
    elif phase == "greeting":
        step("greeting", True, session.greeting)
    elif phase == "TLS handshake":
        how = "implicit TLS" if session.security == "tls" else "STARTTLS"
        step("TLS", True, f"{how}: {_tls_detail(session)}")
    elif phase in ("EHLO", "EHLO after STARTTLS"):
        caps = session.capabilities
        # With the AUTH mechanisms: whether the login's is among them is the next step's question.
        features = [name + (f" {' '.join(mechanisms(caps))}" if name == "AUTH" else "")
                    for name in sorted(caps, key=str.lower)]
        step("EHLO", True, "offers " + (printable(", ".join(features), 300) or "nothing"))


def _tls_detail(session: Session) -> str:
    sock = session.sock
    if isinstance(sock, ssl.SSLSocket):
        return f"{sock.version()}, certificate verified for {session.host}"
    return "established"

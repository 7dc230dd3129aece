"""The smtplib client send-test drives: it connects to the address the resolve step found while
TLS checks the host name in the file, and reads every reply with a budget (SPEC §11: a session is
bounded in reply size as well as in time)."""

from __future__ import annotations

import smtplib
import socket
import ssl
from typing import Any

from smtpconf.model import Endpoint
from smtpconf.probe.steps import Clock, fail, step, text

MAX_REPLY = 64 * 1024  # bytes of one reply; an EHLO list or an OAuth2 error is far shorter


class ReplyTooLong(smtplib.SMTPException):
    pass


class _Capped:
    """The reply stream, counting: smtplib caps each line (8 KiB), not how many there are."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.left = raw, MAX_REPLY

    def readline(self, size: int = -1) -> bytes:
        line: bytes = self.raw.readline(size)
        self.left -= len(line)
        if self.left < 0:
            raise ReplyTooLong(f"the server's reply is longer than {MAX_REPLY // 1024} KiB: not reading on")
        return line

    def close(self) -> None:
        self.raw.close()


class _Bounded(smtplib.SMTP):
    """Every reply read with a budget of MAX_REPLY bytes (SPEC §11: bounded in reply size)."""

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            self.file = self.sock.makefile("rb")  # as smtplib does; it drops it again after STARTTLS
        if isinstance(self.file, _Capped):
            self.file.left = MAX_REPLY
        elif self.file is not None:
            self.file = _Capped(self.file)
        return super().getreply()


class _Plain(_Bounded):
    """smtplib, connecting to a resolved address while TLS still checks the host name."""

    _host: str  # the TLS server name; smtplib sets it, typeshed does not declare it

    def __init__(self, address: str, **kwargs: Any) -> None:
        self.address, self.phase = address, "connect"
        super().__init__(**kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((self.address, port), timeout, self.source_address)
        self.phase = "greeting"
        return sock


class _Implicit(_Bounded, smtplib.SMTP_SSL):
    _host: str  # as in _Plain

    def __init__(self, address: str, **kwargs: Any) -> None:
        self.address, self.phase = address, "connect"
        super().__init__(**kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((self.address, port), timeout, self.source_address)
        self.phase = "TLS"
        wrapped = self.context.wrap_socket(sock, server_hostname=self._host)
        self.phase = "greeting"
        return wrapped


def tls_context(ep: Endpoint) -> ssl.SSLContext:
    from smtpconf.probe.dialogue import UnusableCA
    from smtpconf.probe.tls import client_context

    try:
        return client_context(ep.ca_file)
    except UnusableCA as exc:
        raise fail("TLS", str(exc)) from None


def connect(ep: Endpoint, address: str, clock: Clock) -> smtplib.SMTP:
    from smtpconf.probe.dialogue import cert_problem

    client: _Plain | _Implicit
    timeout = clock.left()  # for each read; time_limit bounds them together
    if ep.security == "tls":
        client = _Implicit(address, timeout=timeout, context=tls_context(ep))
    else:
        client = _Plain(address, timeout=timeout)
    # smtplib takes the TLS server name from __init__'s host, which would connect at once: set it.
    client._host = ep.host_ascii
    try:
        code, banner = client.connect(ep.host_ascii, ep.port)
    except ssl.SSLCertVerificationError as exc:
        raise fail("TLS", cert_problem(exc)[1]) from None
    except (ssl.SSLError, ConnectionResetError) as exc:
        if client.phase == "TLS":
            raise fail("TLS", f"handshake failed ({exc}): is this port plaintext/STARTTLS? try security: "
                              "starttls") from None
        raise fail(client.phase, str(exc)) from None
    except (OSError, smtplib.SMTPException) as exc:
        # smtplib turns a read timeout into SMTPServerDisconnected("... timed out").
        if client.phase == "greeting" and (isinstance(exc, TimeoutError) or "timed out" in str(exc)):
            hint = " (an implicit-TLS port? try security: tls)" if ep.security != "tls" else ""
            raise fail("connect", f"connected to {address}:{ep.port}, but no greeting within {clock.seconds:g}s{hint}") from None
        raise fail("connect", f"{address}:{ep.port}: {exc}") from None
    if ep.security == "tls":
        step("connect", True, f"{address}:{ep.port}")
        step("TLS", True, f"implicit TLS: {tls_detail(client)}")
        step("greeting", True, f"{code} {text(banner)}")
    else:
        step("connect", True, f"{address}:{ep.port}: {code} {text(banner)}")
    return client


def tls_detail(client: smtplib.SMTP) -> str:
    sock = client.sock
    if isinstance(sock, ssl.SSLSocket):
        return f"{sock.version()}, certificate verified for {client._host}"  # type: ignore[attr-defined]
    return "established"

"""The SMTP dialogue up to AUTH, written once: connect, greeting, EHLO, STARTTLS or implicit TLS,
certificate verification, and the smtpconf live rule id and message for each way it goes wrong.

    connect ─► (implicit TLS) ─► greeting ─► EHLO ─► (STARTTLS ─► TLS ─► EHLO) ─► capabilities

Three callers speak it, and give the same diagnosis for the same server:

- the smtp_relay role's ``smtp_probe`` module, on each managed host: :class:`Session` (blocking
  sockets). This file is the role's ``module_utils/smtp_dialogue.py``, which Ansible ships with the
  module, so it uses the Python standard library only;
- ``smtpconf send-test``: the same :class:`Session`, then smtplib from AUTH on
  (``smtpconf/probe/client.py``);
- ``smtpconf check``, thousands of endpoints at once: its own asyncio I/O
  (``smtpconf/probe/smtp.py``) around the parts here that do no I/O: :class:`Reply`,
  :func:`ehlo_command`, the checks of each reply (:func:`greeted`, :func:`ehlo_capabilities`,
  :func:`starttls_offered`, :func:`starttls_accepted`), :func:`cert_problem` and the messages.

smtpconf imports this file as ``smtpconf.probe.dialogue`` (a symlink to it); a wheel and a rendered
role get a copy.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from functools import lru_cache
from typing import Callable

MAX_REPLY_LINES = 100  # a hostile server must not make us read forever: in lines ...
MAX_REPLY_BYTES = 64 * 1024  # ... and in bytes (an EHLO list or an OAuth2 error is far shorter)
REPLY_TOO_LONG = f"a reply longer than {MAX_REPLY_BYTES // 1024} KiB: not reading on"
_CHUNK = 4096

# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h).
_NOT_YET_VALID, _EXPIRED = 9, 10
_HOSTNAME_MISMATCH, _IP_MISMATCH = 62, 64


class Failed(Exception):
    """A problem that ends the dialogue: an smtpconf live rule id and its message. ``in_step``: the
    server answered a command and still waits for the next one, so a QUIT is polite (not after a
    failed handshake or a broken reply)."""

    def __init__(self, rule: str, message: str, *, in_step: bool = False) -> None:
        super().__init__(message)
        self.rule, self.message, self.in_step = rule, message, in_step


class NotAReply(ValueError):
    """What the server sent is not an SMTP reply, or one longer than we read."""


class UnusableCA(ValueError):
    """The CA certificates given for an endpoint cannot be used."""


# --- Replies and capabilities (no I/O) ---------------------------------------------------------

class Reply:
    """One SMTP reply (RFC 5321 §4.2), fed line by line as read: :meth:`add` each line with its
    CRLF until it returns True, then ``code`` and ``lines`` (the text after each code)."""

    __slots__ = ("code", "lines", "size")

    def __init__(self) -> None:
        self.code: int = 0
        self.lines: list[str] = []
        self.size: int = 0

    def add(self, raw: bytes) -> bool:
        if not raw:
            raise ConnectionResetError("the server closed the connection")
        self.size += len(raw)
        if self.size > MAX_REPLY_BYTES:
            raise NotAReply(REPLY_TOO_LONG)
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        head = line[:3]
        if len(head) < 3 or not (head.isascii() and head.isdigit()):
            raise NotAReply(f"not an SMTP reply: {line[:60]!r}")
        self.lines.append(line[4:])
        if line[3:4] != "-":
            self.code = int(head)
            return True
        if len(self.lines) >= MAX_REPLY_LINES:
            raise NotAReply(f"a reply longer than {MAX_REPLY_LINES} lines")
        return False


def ehlo_command(local_address: str) -> str:
    # An address literal is always a valid EHLO argument; an IPv6 one needs its tag (RFC 5321 §4.1.3).
    return f"EHLO [{'IPv6:' if ':' in local_address else ''}{local_address}]"


def capabilities(lines: list[str]) -> dict[str, str]:
    """The EHLO extensions (upper-case keyword -> parameters), from a 250 reply's lines."""
    caps = {words.split(" ", 1)[0].upper(): (words.split(" ", 1) + [""])[1] for words in lines[1:]}
    # "250-AUTH=LOGIN PLAIN": the pre-RFC 2554 spelling that old Outlook clients need, and that some
    # servers send alone; it lists the same mechanisms.
    for key in [k for k in caps if k.startswith("AUTH=")]:
        mechanisms = f"{key[5:]} {caps.pop(key)}".split()
        caps["AUTH"] = " ".join(dict.fromkeys(caps.get("AUTH", "").split() + mechanisms))
    return caps


def mechanisms(caps: dict[str, str]) -> tuple[str, ...]:
    """The SASL mechanisms offered (upper case, each once; () without AUTH)."""
    return tuple(dict.fromkeys(caps.get("AUTH", "").upper().split()))


def plaintext_greeting(raw: bytes) -> str | None:
    """The first line a server sent, if it looks like an SMTP greeting (after a failed implicit-TLS
    handshake, on a fresh plaintext connection)."""
    line = raw.decode("utf-8", "replace").strip()
    return line if line[:3].isascii() and line[:3].isdigit() else None


# --- The checks of each step: the reply, or the Failed that ends the dialogue ------------------

def _said(code: int, lines: list[str]) -> str:
    return f"{code} {' '.join(lines)}"


def greeted(where: str, code: int, lines: list[str]) -> str:
    """The greeting line, if it is a 220."""
    if code != 220:
        raise Failed("probe-unreachable", f"{where}: the server refuses service: {_said(code, lines)}", in_step=True)
    return _said(code, lines)


def ehlo_capabilities(where: str, code: int, lines: list[str]) -> dict[str, str]:
    if code != 250:
        # Without EHLO there is no capability list: "offers nothing" would blame STARTTLS.
        raise Failed("probe-unreachable", f"{where}: the server refused EHLO: {_said(code, lines)}", in_step=True)
    return capabilities(lines)


def starttls_offered(where: str, caps: dict[str, str]) -> None:
    if "STARTTLS" not in caps:
        raise Failed("starttls-not-offered", f"{where} does not offer STARTTLS after EHLO "
                                             f"(it offers: {', '.join(sorted(caps)) or 'nothing'})", in_step=True)


def starttls_accepted(where: str, code: int, lines: list[str]) -> None:
    if code != 220:
        raise Failed("tls-handshake-failed", f"{where} refused STARTTLS: {_said(code, lines)}", in_step=True)


def auth_before_tls(where: str, caps: dict[str, str]) -> str | None:
    """The ``auth-before-tls`` message when a STARTTLS server offers AUTH in plaintext."""
    return f"{where} offers AUTH {caps['AUTH']} before STARTTLS, in plaintext" if "AUTH" in caps else None


def auth_not_offered(where: str, security: str) -> str:
    return f"{where} does not offer AUTH{' after TLS' if security != 'none' else ''}"


# --- Messages ----------------------------------------------------------------------------------

def describe(exc: BaseException) -> str:
    """What went wrong, in a few words (never a traceback)."""
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and isinstance(exc.errno, int) and exc.errno > 0:
        # The system's words, whoever raised it (asyncio says "Connect call failed ('::1', 25)").
        return os.strerror(exc.errno)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def connect_failed(where: str, errors: list[str]) -> str:
    return f"{where}: cannot connect ({'; '.join(errors)})"


def timeout_message(phase: str, where: str, limit: float) -> str:
    """``probe-timeout``, named by what was being waited for when the time ran out."""
    if phase == "connect":
        return f"{where}: no TCP connection within {limit:g}s (packets dropped by a firewall?)"
    if phase == "greeting":
        return (f"{where}: connected, but no SMTP greeting within {limit:g}s (a tarpit, a filtering "
                "firewall, or a server that expects another security mode)")
    return f"{where}: the server stopped answering during {phase} (limit {limit:g}s)"


def lost_message(where: str, phase: str, exc: BaseException) -> str:
    """``probe-unreachable``: the server hung up or spoke nonsense in the middle of the dialogue."""
    return f"{where}: connection failed during {phase}: {describe(exc)}"


def implicit_tls_message(where: str, security: str) -> str:
    """``tls-handshake-failed``: silent on a plaintext port, but a TLS handshake succeeds."""
    return (f"{where} speaks implicit TLS (no plaintext greeting; a TLS handshake succeeds), but it is "
            f"configured as security: {security}: use security: tls")


def plaintext_message(where: str, greeting: str) -> str:
    """``tls-handshake-failed``: the implicit-TLS handshake failed, and a plaintext connection greets."""
    return (f"{where} is a plaintext SMTP server (it greets '{greeting[:60]}'), but it is configured as "
            "security: tls (implicit TLS): use security: starttls, or the provider's implicit-TLS port")


def handshake_message(where: str, exc: BaseException, *, after_starttls: bool) -> str:
    return f"{where}: TLS handshake{' after STARTTLS' if after_starttls else ''} failed: {describe(exc)}"


def cert_problem(exc: ssl.SSLCertVerificationError) -> tuple[str, str]:
    """The rule id and message for a failed certificate verification."""
    code, message = exc.verify_code, exc.verify_message or str(exc)
    if code == _EXPIRED:
        return "cert-expired", "the server certificate has expired"
    if code == _NOT_YET_VALID:
        return "cert-expired", "the server certificate is not valid yet (check the clocks)"
    if code == _HOSTNAME_MISMATCH:
        return "cert-hostname-mismatch", f"the server certificate is not valid for this name ({message})"
    if code == _IP_MISMATCH:
        return "cert-hostname-mismatch", f"the server certificate is not valid for this IP address ({message})"
    return "cert-untrusted", f"the server certificate is not trusted: {message}"


# --- TLS contexts ------------------------------------------------------------------------------

def verifying_context(ca_file: str | None = None, ca_pem: str | None = None) -> ssl.SSLContext:
    """Verification always on: the system store, or only the given CA (a file, or PEM text) for a
    private relay, as Postfix's ``smtp_tls_CAfile`` does. Raises :class:`UnusableCA`."""
    try:
        if ca_pem is not None:
            return ssl.create_default_context(cadata=ca_pem)
        return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    except (OSError, ValueError, TypeError) as exc:
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        if ca_pem is not None:
            raise UnusableCA(f"ca_pem is not a usable PEM CA certificate ({why})") from None
        raise UnusableCA(f"cannot use ca_file {ca_file}: {why}") from None


@lru_cache(maxsize=1)
def sniffing_context() -> ssl.SSLContext:
    """Only to learn *whether* a server speaks TLS at all (a mode mismatch), never to trust it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- The blocking session (the role's module, send-test) ---------------------------------------

_HANDSHAKE_ERRORS = (ssl.SSLError, ConnectionError, EOFError)


class Session:
    """One blocking connection to ``address`` (default: ``host``) as far as the capabilities after
    TLS; the certificate must be valid for ``host``. Every read waits ``left()`` seconds (default:
    ``timeout`` each); ``timeout`` is the limit messages name. ``report(phase)`` is called as each
    phase ends (send-test prints its step lines). :meth:`open` raises :class:`Failed`."""

    def __init__(self, host: str, port: int, security: str, context: ssl.SSLContext | None, timeout: float, *,
                 address: str | None = None, where: str | None = None, left: Callable[[], float] | None = None,
                 report: Callable[[str], None] | None = None) -> None:
        self.host, self.port, self.security, self.context, self.timeout = host, port, security, context, timeout
        self.address = address or host
        self.where = where or f"{host}:{port}"
        self.left: Callable[[], float] = left or (lambda: timeout)
        self.report = report
        self.sock: socket.socket | None = None
        self.phase = "connect"
        self.greeting = ""
        self.capabilities: dict[str, str] = {}
        self._buffer = bytearray()
        self._reply = Reply()

    def open(self) -> dict[str, str]:
        """connect ─► (implicit TLS) ─► greeting ─► EHLO ─► (STARTTLS ─► TLS ─► EHLO): the
        capabilities after TLS."""
        try:
            self._connect()
            if self.security == "tls":
                self._step("TLS handshake")
                self._tls(after_starttls=False)
            self._step("greeting")
            self.greeting = greeted(self.where, *self._greeting())
            self._step("EHLO")
            caps = self.ehlo()
            if self.security == "starttls":
                self._step("STARTTLS")
                starttls_offered(self.where, caps)
                starttls_accepted(self.where, *self.command("STARTTLS"))
                self._step("TLS handshake")
                self._tls(after_starttls=True)
                self._step("EHLO after STARTTLS")
                caps = self.ehlo()
            self._step("")
            return caps
        except socket.timeout:
            raise Failed("probe-timeout", timeout_message(self.phase, self.where, self.timeout)) from None
        except (OSError, NotAReply) as exc:
            raise Failed("probe-unreachable", lost_message(self.where, self.phase, exc)) from None

    def _step(self, phase: str) -> None:
        if self.report is not None:
            self.report(self.phase)
        self.phase = phase

    def _connect(self) -> None:
        try:
            self.sock = socket.create_connection((self.address, self.port), timeout=self.left())
        except socket.timeout:
            raise Failed("probe-timeout", timeout_message("connect", self.where, self.timeout)) from None
        except OSError as exc:
            raise Failed("probe-unreachable", connect_failed(self.where, [f"{self.address}: {describe(exc)}"])) from None

    def _tls(self, *, after_starttls: bool) -> None:
        assert self.sock is not None and self.context is not None
        # Nothing read before the handshake may count after it (RFC 3207 §6).
        self._buffer.clear()
        self.sock.settimeout(self.left())
        try:
            self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            rule, why = cert_problem(exc)
            raise Failed(rule, f"{self.where}: {why}") from None
        except _HANDSHAKE_ERRORS as exc:
            greeting = None if after_starttls else self._plaintext_greeting()
            if greeting is not None:
                raise Failed("tls-handshake-failed", plaintext_message(self.where, greeting)) from None
            raise Failed("tls-handshake-failed", handshake_message(self.where, exc, after_starttls=after_starttls)) \
                from None

    def _plaintext_greeting(self) -> str | None:
        try:
            with socket.create_connection((self.address, self.port), timeout=min(3.0, self.left())) as sock:
                return plaintext_greeting(sock.recv(512))
        except OSError:
            return None

    def _greeting(self) -> tuple[int, list[str]]:
        """The greeting, waited for as long as the time limit allows (servers delay it on purpose:
        postscreen's pregreet test). On a plaintext port a server still silent at half time gets a
        TLS handshake on a second connection: one that completes is an implicit-TLS server."""
        if self.security == "tls":
            return self.reply()
        limit = self.left()
        deadline = time.monotonic() + limit
        try:
            return self.reply(limit / 2)
        except socket.timeout:
            pass
        if self._speaks_tls(max(0.1, deadline - time.monotonic())):
            raise Failed("tls-handshake-failed", implicit_tls_message(self.where, self.security))
        return self.reply(max(0.1, deadline - time.monotonic()))

    def _speaks_tls(self, timeout: float) -> bool:
        try:
            with socket.create_connection((self.address, self.port), timeout=timeout) as sock:
                with sniffing_context().wrap_socket(sock, server_hostname=self.host):
                    return True
        except OSError:
            return False

    def _line(self) -> bytes:
        assert self.sock is not None
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 or len(self._buffer) > MAX_REPLY_BYTES:
                cut = end + 1 if end >= 0 else len(self._buffer)
                line = bytes(self._buffer[:cut])
                del self._buffer[:cut]
                return line
            chunk = self.sock.recv(_CHUNK)
            if not chunk:  # the end of the stream: what is left, then b""
                line = bytes(self._buffer)
                self._buffer.clear()
                return line
            self._buffer += chunk

    def reply(self, timeout: float | None = None) -> tuple[int, list[str]]:
        """One reply, each read waiting ``timeout`` (default ``left()``). A reply cut by a timeout
        goes on where it stopped on the next call."""
        assert self.sock is not None
        self.sock.settimeout(self.left() if timeout is None else timeout)
        reply = self._reply
        while not reply.add(self._line()):
            pass
        self._reply = Reply()
        return reply.code, reply.lines

    def command(self, line: str) -> tuple[int, list[str]]:
        assert self.sock is not None
        self.sock.settimeout(self.left())
        self.sock.sendall(line.encode("ascii") + b"\r\n")
        return self.reply()

    def ehlo(self) -> dict[str, str]:
        assert self.sock is not None
        self.capabilities = ehlo_capabilities(self.where, *self.command(ehlo_command(self.sock.getsockname()[0])))
        return self.capabilities

    def detach(self) -> socket.socket:
        """The connection, for a client that goes on (send-test's AUTH): nothing is left unread."""
        assert self.sock is not None
        sock, self.sock = self.sock, None
        self._buffer.clear()
        return sock

    def close(self, *, quit: bool = False) -> None:
        """Hang up; with ``quit``, say QUIT first (waiting a second at most for the answer)."""
        if self.sock is None:
            return
        try:
            if quit:
                self.sock.settimeout(min(1.0, self.left()))
                self.sock.sendall(b"QUIT\r\n")
                self.reply(min(1.0, self.left()))
        except (OSError, NotAReply):
            pass
        finally:
            self.sock.close()
            self.sock = None

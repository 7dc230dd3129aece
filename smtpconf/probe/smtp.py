"""The SMTP probe: one connection to one endpoint, as a careful mail client would make it.

connect ─► (implicit TLS) ─► greeting ─► EHLO ─► STARTTLS ─► EHLO ─► AUTH offered? ─► QUIT

It never sends credentials, a MAIL FROM or a message. Each way it can go wrong maps to one live
rule id (SPEC §4); the first problem that stops the dialogue ends the probe, so a server gives
its own rule id and not a cascade of consequences. What the server offers for AUTH after TLS is
part of the result: whether it suits a login is for each use of the endpoint to judge
(``auth-mechanism-missing``, in :mod:`smtpconf.probe.endpoints`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from typing import Any, NamedTuple

from smtpconf.model import Endpoint
from smtpconf.probe.observations import ProbeSeen
from smtpconf.probe.tls import (CertProblem, cert_problem, certificate_seen, client_context, expiring_problem,
                                insecure_context)

MAX_REPLY_LINES = 100  # a hostile server must not make us read forever


class Problem(NamedTuple):
    rule: str
    message: str
    auth_only: bool = False  # only reported for uses of the endpoint that have credentials


class Probed(NamedTuple):
    problems: list[Problem]
    # The SASL mechanisms advertised after TLS (upper case; () without AUTH); None when the
    # dialogue did not get that far.
    mechanisms: tuple[str, ...] | None
    seen: ProbeSeen | None = None  # address, TLS version, certificate, time: for the check's report


class _Stop(Exception):
    """A problem that ends the dialogue. ``in_step``: the server answered a command and still
    waits for the next one, so a QUIT is polite (not after a failed handshake or a broken reply)."""

    def __init__(self, problem: Problem, *, in_step: bool = False) -> None:
        self.problem = problem
        self.in_step = in_step


class _Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str) -> None:
        self.reader, self.writer, self.where = reader, writer, where

    async def reply(self) -> tuple[int, list[str]]:
        lines: list[str] = []
        while len(lines) < MAX_REPLY_LINES:
            raw = await self.reader.readline()
            if not raw:
                raise ConnectionResetError("the server closed the connection")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise ValueError(f"not an SMTP reply: {line[:60]!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines
        raise ValueError(f"reply longer than {MAX_REPLY_LINES} lines")

    async def command(self, line: str) -> tuple[int, list[str]]:
        self.writer.write(line.encode("ascii") + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def ehlo(self) -> dict[str, str]:
        # An address literal is always a syntactically valid EHLO argument (RFC 5321 §4.1.4).
        sockname = self.writer.get_extra_info("sockname") or ("127.0.0.1",)
        host = sockname[0]
        code, lines = await self.command(f"EHLO [{'IPv6:' if ':' in host else ''}{host}]")
        if code != 250:
            # Without EHLO there is no capability list: "offers nothing" would blame STARTTLS.
            raise _Stop(Problem("probe-unreachable", f"{self.where}: the server refused EHLO: {code} "
                                                     f"{' '.join(lines)}"), in_step=True)
        caps = {words.split(" ", 1)[0].upper(): (words.split(" ", 1) + [""])[1] for words in lines[1:]}
        # "250-AUTH=LOGIN PLAIN": the pre-RFC 2554 spelling that old Outlook clients need, and
        # that some servers send alone; it lists the same mechanisms.
        for key in [k for k in caps if k.startswith("AUTH=")]:
            mechanisms = f"{key[5:]} {caps.pop(key)}".split()
            caps["AUTH"] = " ".join(dict.fromkeys(caps.get("AUTH", "").split() + mechanisms))
        return caps


async def probe(endpoint: Endpoint, addresses: tuple[str, ...], timeout: float) -> Probed:
    """Probe ``endpoint`` at ``addresses`` (from the resolver). The whole probe is bounded by
    ``timeout``; what was being waited for when it ran out names the ``probe-timeout``."""
    where = f"{endpoint.host_ascii}:{endpoint.port}"
    state = {"phase": "connect"}
    session: _Session | None = None
    sock: socket.socket | None = None
    started = time.monotonic()
    found: list[Problem] = []  # problems that do not stop the dialogue (auth-before-tls, cert-expiring)
    polite = False  # QUIT only when the server waits for a command; otherwise hang up at once
    try:
        async with asyncio.timeout(timeout):
            sock = await _connect(endpoint, addresses, where)
            if endpoint.security == "tls":
                state["phase"] = "TLS handshake"
                session, found = await _open_tls(endpoint, sock, where)
            else:
                session = _Session(*await asyncio.open_connection(sock=sock), where)
            mechanisms = await _dialogue(endpoint, session, where, state, started, timeout, found)
            polite = True
            return Probed(found, mechanisms, _seen(session, sock, started))
    except _Stop as stop:
        polite = stop.in_step
        return Probed(found + [stop.problem], None, _seen(session, sock, started))
    except TimeoutError:
        return Probed(found + [Problem("probe-timeout", _timeout_message(state["phase"], where, timeout))], None,
                      _seen(session, sock, started))
    except (OSError, ValueError, EOFError, asyncio.IncompleteReadError) as exc:
        # The server hung up or spoke nonsense in the middle of the dialogue.
        return Probed(found + [Problem("probe-unreachable", f"{where}: connection failed during "
                                                            f"{state['phase']}: {_describe(exc)}")], None,
                      _seen(session, sock, started))
    finally:
        # After a timeout or a broken dialogue, a QUIT would only wait for a server that does not
        # answer, holding the probe's concurrency slot: abort instead.
        if session is not None and polite:
            await _close(session)
        elif session is not None:
            session.writer.transport.abort()
        elif sock is not None:
            sock.close()


def _seen(session: _Session | None, sock: socket.socket | None, started: float) -> ProbeSeen:
    """What the probe got to see before it ended: read before the connection is closed."""
    peer = session.writer.get_extra_info("peername") if session is not None else None
    if peer is None and sock is not None:
        with contextlib.suppress(OSError):
            peer = sock.getpeername()
    ssl_object = session.writer.get_extra_info("ssl_object") if session is not None else None
    version = ssl_object.version() if ssl_object is not None else None
    cert = certificate_seen(ssl_object.getpeercert()) if ssl_object is not None else None
    return ProbeSeen(str(peer[0]) if peer else None, version, cert, time.monotonic() - started)


def _timeout_message(phase: str, where: str, timeout: float) -> str:
    if phase == "connect":
        return f"{where}: no TCP connection within {timeout:g}s (packets dropped by a firewall?)"
    if phase == "greeting":
        return (f"{where}: connected, but no SMTP greeting within {timeout:g}s (a tarpit, a filtering "
                "firewall, or a server that expects another security mode)")
    return f"{where}: the server stopped answering during {phase} (limit {timeout:g}s)"


async def _connect(endpoint: Endpoint, addresses: tuple[str, ...], where: str) -> socket.socket:
    """A connected socket. Streams are layered on later, so that on an implicit-TLS port the TLS
    layer sees the very first byte the server sends (a plaintext greeting makes it fail at once)."""
    errors = []
    loop = asyncio.get_running_loop()
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (address, endpoint.port))
            return sock
        except OSError as exc:  # refused, no route: try the next address
            sock.close()
            errors.append(f"{address}: {_describe(exc)}")
        except BaseException:
            sock.close()
            raise
    raise _Stop(Problem("probe-unreachable", f"{where}: cannot connect ({'; '.join(errors)})"))


async def _dialogue(endpoint: Endpoint, session: _Session, where: str, state: dict[str, str],
                    started: float, timeout: float, problems: list[Problem]) -> tuple[str, ...]:
    """The dialogue up to the capabilities after TLS; returns the AUTH mechanisms offered then."""
    state["phase"] = "greeting"
    code, lines = await _greeting(endpoint, session, where, started, timeout)
    if code != 220:
        raise _Stop(Problem("probe-unreachable", f"{where}: the server refuses service: {code} {' '.join(lines)}"),
                    in_step=True)
    state["phase"] = "EHLO"
    caps = await session.ehlo()
    if endpoint.security == "starttls":
        if "STARTTLS" not in caps:
            raise _Stop(Problem("starttls-not-offered", f"{where} does not offer STARTTLS after EHLO "
                                                        f"(it offers: {', '.join(sorted(caps)) or 'nothing'})"),
                        in_step=True)
        if "AUTH" in caps:
            problems.append(Problem("auth-before-tls", f"{where} offers AUTH {caps['AUTH']} before STARTTLS, "
                                                       "in plaintext"))
        state["phase"] = "STARTTLS"
        code, lines = await session.command("STARTTLS")
        if code != 220:
            raise _Stop(Problem("tls-handshake-failed", f"{where} refused STARTTLS: {code} {' '.join(lines)}"),
                        in_step=True)
        state["phase"] = "TLS handshake"
        problems += await _start_tls(endpoint, session, where)
        state["phase"] = "EHLO after STARTTLS"
        caps = await session.ehlo()
    if "AUTH" not in caps:
        after = " after TLS" if endpoint.security != "none" else ""
        problems.append(Problem("auth-not-offered", f"{where} does not offer AUTH{after}, but the file has "
                                                    f"credentials for it", auth_only=True))
    return tuple(dict.fromkeys(caps.get("AUTH", "").upper().split()))


async def _greeting(endpoint: Endpoint, session: _Session, where: str, started: float,
                    timeout: float) -> tuple[int, list[str]]:
    """Wait for the 220 greeting as long as the time limit allows (servers delay it on purpose:
    postscreen's pregreet test). On a plaintext port, if the server is still silent halfway
    through, a second connection tries a TLS handshake: a server that completes one is an
    implicit-TLS server configured as ``starttls``/``none``, which is a mismatch to name."""
    greeting = asyncio.ensure_future(session.reply())
    sniff: asyncio.Future[bool] | None = None
    done: set[asyncio.Future[Any]]  # greeting and sniff: tasks of different result types
    try:
        if endpoint.security == "tls":
            return await greeting
        half = max(0.0, timeout / 2 - (time.monotonic() - started))
        done, _ = await asyncio.wait({greeting}, timeout=half)
        if greeting in done:
            return greeting.result()
        sniff = asyncio.ensure_future(_speaks_tls(endpoint, session))
        done, _ = await asyncio.wait({greeting, sniff}, return_when=asyncio.FIRST_COMPLETED)
        if sniff in done and not sniff.exception() and sniff.result():
            raise _Stop(Problem("tls-handshake-failed", (
                f"{where} speaks implicit TLS (no plaintext greeting; a TLS handshake succeeds), but the "
                f"file says security: {endpoint.security}: use security: tls")))
        return await greeting
    finally:
        for task in (greeting, sniff):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


async def _speaks_tls(endpoint: Endpoint, session: _Session) -> bool:
    peer = session.writer.get_extra_info("peername")
    try:
        _, writer = await asyncio.open_connection(peer[0], peer[1], ssl=insecure_context(),
                                                  server_hostname=endpoint.host_ascii)
    except (OSError, ssl.SSLError):
        return False
    writer.transport.abort()
    return True


def _context(endpoint: Endpoint, where: str) -> ssl.SSLContext:
    try:
        return client_context(endpoint.ca_file)
    except CertProblem as problem:
        raise _Stop(Problem("cert-untrusted", f"{where}: {problem}")) from None


def _verified(endpoint: Endpoint, writer: asyncio.StreamWriter, where: str) -> list[Problem]:
    ssl_object = writer.get_extra_info("ssl_object")
    expiring = expiring_problem(ssl_object.getpeercert() if ssl_object else None)
    return [Problem("cert-expiring", f"{where}: {expiring}")] if expiring else []


_HANDSHAKE_ERRORS = (ssl.SSLError, ConnectionError, EOFError, asyncio.IncompleteReadError)


async def _open_tls(endpoint: Endpoint, sock: socket.socket, where: str) -> tuple[_Session, list[Problem]]:
    """Implicit TLS (port 465): the handshake is the first thing on the connection."""
    context = _context(endpoint, where)
    peer = sock.getpeername()
    try:
        reader, writer = await asyncio.open_connection(sock=sock, ssl=context, server_hostname=endpoint.host_ascii)
    except ssl.SSLCertVerificationError as exc:
        rule, why = cert_problem(exc)
        raise _Stop(Problem(rule, f"{where}: {why}")) from None
    except _HANDSHAKE_ERRORS as exc:
        greeting = await _plaintext_greeting(peer)
        if greeting is not None:
            raise _Stop(Problem("tls-handshake-failed", (
                f"{where} is a plaintext SMTP server (it greets '{greeting[:60]}'), but the file says "
                "security: tls (implicit TLS): use security: starttls, or the provider's implicit-TLS "
                "port"))) from None
        raise _Stop(Problem("tls-handshake-failed", f"{where}: TLS handshake failed: {_describe(exc)}")) from None
    return _Session(reader, writer, where), _verified(endpoint, writer, where)


async def _start_tls(endpoint: Endpoint, session: _Session, where: str) -> list[Problem]:
    """STARTTLS (RFC 3207) on the plaintext session, after the server's 220."""
    context = _context(endpoint, where)
    try:
        await session.writer.start_tls(context, server_hostname=endpoint.host_ascii)
    except ssl.SSLCertVerificationError as exc:
        rule, why = cert_problem(exc)
        raise _Stop(Problem(rule, f"{where}: {why}")) from None
    except _HANDSHAKE_ERRORS as exc:
        raise _Stop(Problem("tls-handshake-failed", f"{where}: TLS handshake after STARTTLS failed: "
                                                    f"{_describe(exc)}")) from None
    return _verified(endpoint, session.writer, where)


async def _plaintext_greeting(peer: tuple[str, int]) -> str | None:
    """After a failed implicit-TLS handshake: does a fresh plaintext connection get a greeting?"""
    writer = None
    try:
        async with asyncio.timeout(3):
            reader, writer = await asyncio.open_connection(peer[0], peer[1])
            line = (await reader.readline()).decode("utf-8", "replace").strip()
    except (OSError, TimeoutError):
        return None
    finally:
        if writer is not None:
            writer.transport.abort()
    return line if line[:3].isdigit() else None


async def _close(session: _Session) -> None:
    """QUIT politely if the server still listens, but never wait long for it."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1):
            if not session.writer.is_closing():
                session.writer.write(b"QUIT\r\n")
                await session.writer.drain()
                await session.reader.readline()
    session.writer.transport.abort()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__

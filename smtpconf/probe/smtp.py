"""The SMTP probe: one connection to one endpoint, as a careful mail client would make it.

connect ─► (implicit TLS) ─► greeting ─► EHLO ─► STARTTLS ─► EHLO ─► AUTH offered? ─► QUIT

It never sends credentials, a MAIL FROM or a message. Each way it can go wrong maps to one live
rule id (SPEC §4); the first problem that stops the dialogue ends the probe, so a server gives
its own rule id and not a cascade of consequences. What the server offers for AUTH after TLS is
part of the result: whether it suits a login is for each use of the endpoint to judge
(``auth-mechanism-missing``, in :mod:`smtpconf.probe.endpoints`).

The dialogue's rules (reading a reply, EHLO, the capabilities, each step's check, the certificate
table and every message) are :mod:`smtpconf.probe.dialogue`, which the role's ``smtp_probe`` module
and ``send-test`` speak too, so the same server gets the same diagnosis from all three. What is
this module's own is the asyncio I/O that lets ``check`` probe thousands of endpoints at once: the
connection to the resolved addresses, the streams, the TLS layers, the half-time TLS sniff on a
silent plaintext port, and the whole probe's time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from typing import Any, NamedTuple

from smtpconf.model import Endpoint
from smtpconf.probe.dialogue import (Failed, Reply, UnusableCA, auth_before_tls, auth_not_offered, cert_problem,
                                     connect_failed, describe, ehlo_capabilities, ehlo_command, greeted,
                                     handshake_message, implicit_tls_message, lost_message, mechanisms,
                                     plaintext_greeting, plaintext_message, sniffing_context, starttls_accepted,
                                     starttls_offered, timeout_message)
from smtpconf.probe.observations import ProbeSeen
from smtpconf.probe.tls import certificate_seen, client_context, expiring_problem


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


class _Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str) -> None:
        self.reader, self.writer, self.where = reader, writer, where

    async def reply(self) -> tuple[int, list[str]]:
        reply = Reply()
        while not reply.add(await self.reader.readline()):
            pass
        return reply.code, reply.lines

    async def command(self, line: str) -> tuple[int, list[str]]:
        self.writer.write(line.encode("ascii") + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def ehlo(self) -> dict[str, str]:
        sockname = self.writer.get_extra_info("sockname") or ("127.0.0.1",)
        return ehlo_capabilities(self.where, *await self.command(ehlo_command(sockname[0])))


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
    except Failed as stop:
        polite = stop.in_step
        return Probed(found + [Problem(stop.rule, stop.message)], None, _seen(session, sock, started))
    except TimeoutError:
        return Probed(found + [Problem("probe-timeout", timeout_message(state["phase"], where, timeout))], None,
                      _seen(session, sock, started))
    except (OSError, ValueError, EOFError, asyncio.IncompleteReadError) as exc:
        # The server hung up or spoke nonsense (NotAReply) in the middle of the dialogue.
        return Probed(found + [Problem("probe-unreachable", lost_message(where, state["phase"], exc))], None,
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
            errors.append(f"{address}: {describe(exc)}")
        except BaseException:
            sock.close()
            raise
    raise Failed("probe-unreachable", connect_failed(where, errors))


async def _dialogue(endpoint: Endpoint, session: _Session, where: str, state: dict[str, str],
                    started: float, timeout: float, problems: list[Problem]) -> tuple[str, ...]:
    """The dialogue up to the capabilities after TLS; returns the AUTH mechanisms offered then."""
    state["phase"] = "greeting"
    greeted(where, *await _greeting(endpoint, session, where, started, timeout))
    state["phase"] = "EHLO"
    caps = await session.ehlo()
    if endpoint.security == "starttls":
        starttls_offered(where, caps)
        plaintext_auth = auth_before_tls(where, caps)
        if plaintext_auth:
            problems.append(Problem("auth-before-tls", plaintext_auth))
        state["phase"] = "STARTTLS"
        starttls_accepted(where, *await session.command("STARTTLS"))
        state["phase"] = "TLS handshake"
        problems += await _start_tls(endpoint, session, where)
        state["phase"] = "EHLO after STARTTLS"
        caps = await session.ehlo()
    offered = mechanisms(caps)
    if not offered:
        problems.append(Problem("auth-not-offered", f"{auth_not_offered(where, endpoint.security)}, but the file "
                                                    "has credentials for it", auth_only=True))
    return offered


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
            raise Failed("tls-handshake-failed", implicit_tls_message(where, endpoint.security))
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
        _, writer = await asyncio.open_connection(peer[0], peer[1], ssl=sniffing_context(),
                                                  server_hostname=endpoint.host_ascii)
    except (OSError, ssl.SSLError):
        return False
    writer.transport.abort()
    return True


def _context(endpoint: Endpoint, where: str) -> ssl.SSLContext:
    try:
        return client_context(endpoint.ca_file)
    except UnusableCA as problem:
        raise Failed("cert-untrusted", f"{where}: {problem}") from None


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
        raise Failed(rule, f"{where}: {why}") from None
    except _HANDSHAKE_ERRORS as exc:
        greeting = await _plaintext_greeting(peer)
        if greeting is not None:
            raise Failed("tls-handshake-failed", plaintext_message(where, greeting)) from None
        raise Failed("tls-handshake-failed", handshake_message(where, exc, after_starttls=False)) from None
    return _Session(reader, writer, where), _verified(endpoint, writer, where)


async def _start_tls(endpoint: Endpoint, session: _Session, where: str) -> list[Problem]:
    """STARTTLS (RFC 3207) on the plaintext session, after the server's 220."""
    context = _context(endpoint, where)
    try:
        await session.writer.start_tls(context, server_hostname=endpoint.host_ascii)
    except ssl.SSLCertVerificationError as exc:
        rule, why = cert_problem(exc)
        raise Failed(rule, f"{where}: {why}") from None
    except _HANDSHAKE_ERRORS as exc:
        raise Failed("tls-handshake-failed", handshake_message(where, exc, after_starttls=True)) from None
    return _verified(endpoint, session.writer, where)


async def _plaintext_greeting(peer: tuple[str, int]) -> str | None:
    """After a failed implicit-TLS handshake: does a fresh plaintext connection get a greeting?"""
    writer = None
    try:
        async with asyncio.timeout(3):
            reader, writer = await asyncio.open_connection(peer[0], peer[1])
            line = await reader.readline()
    except (OSError, TimeoutError):
        return None
    finally:
        if writer is not None:
            writer.transport.abort()
    return plaintext_greeting(line)


async def _close(session: _Session) -> None:
    """QUIT politely if the server still listens, but never wait long for it."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1):
            if not session.writer.is_closing():
                session.writer.write(b"QUIT\r\n")
                await session.writer.drain()
                await session.reader.readline()
    session.writer.transport.abort()


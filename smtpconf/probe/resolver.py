"""DNS for the live checks: one asynchronous resolver, one answer vocabulary.

Every query of ``smtpconf check`` goes through :class:`Resolver`. With ``--nameserver``, that
server answers everything, the addresses the SMTP probes connect to included. Without it, those
addresses come from the system's resolver (``/etc/hosts``, then DNS: getaddrinfo), because that
is how msmtp, Thunderbird and git send-email will find the host; the record checks (SPF, DMARC,
...) and Postfix's relay lookups still ask DNS, as receivers and Postfix do.

An answer is ``found``, ``missing`` (NXDOMAIN, or the name exists without records of that type)
or ``unknown`` (timeout, SERVFAIL, REFUSED, network error). The distinction is the point: a
resolver that did not answer must never be reported as a record that does not exist.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import TYPE_CHECKING, Literal, NamedTuple

from smtpconf.errors import UsageError
from smtpconf.model import address_literal, canonical_host

if TYPE_CHECKING:
    import dns.asyncresolver
    import dns.resolver

Status = Literal["found", "missing", "unknown"]
_SYSTEM_THREADS = 64  # getaddrinfo calls at once: each holds a thread for the whole lookup


class Answer(NamedTuple):
    status: Status
    records: tuple[str, ...] = ()  # presentation text; TXT strings joined (RFC 7208 §3.3)
    reason: str = ""  # why missing/unknown, for messages

    @property
    def found(self) -> bool:
        return self.status == "found"


def parse_nameserver(value: str) -> tuple[str, int]:
    """``HOST[:PORT]`` / ``[V6]:PORT`` / bare IPv6 → (address, port). A name is resolved once by
    the system, because the DNS server itself must be known before dnspython can ask it."""
    host, port = value, 53
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], value)
    elif value.count(":") == 1:
        host, _, text = value.partition(":")
        port = _port(text, value)
    literal = address_literal(host)
    if literal is not None:
        return literal, port
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise UsageError(f"--nameserver {value}: cannot resolve {host}: {exc}") from None
    return str(info[0][4][0]), port


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"--nameserver {value}: port must be a number 1-65535")
    return int(text)


class Resolver:
    """dnspython's async resolver with a per-query time limit, a shared concurrency limit and a
    cache of answers (SPF trees of many domains share includes; endpoints share hosts)."""

    def __init__(self, nameserver: str | None, timeout: float, limit: asyncio.Semaphore) -> None:
        self.system = not nameserver  # addresses to connect to come from getaddrinfo
        self._lifetime = timeout
        # One try may be lost (UDP): retry within the limit instead of giving up on the first drop.
        self._try = max(0.5, min(2.0, timeout / 2))
        self._dns: dns.asyncresolver.Resolver | None = None
        # The server dnswire asks first. dnspython itself is imported only when an answer needs it
        # (it is a sixth of a 1,000-domain check's time); /etc/resolv.conf is read at once, so
        # that a machine without one is told so before anything starts.
        self._server: tuple[str, int] | None = parse_nameserver(nameserver) if nameserver else None
        if not nameserver:
            import dns.inet

            resolver = self._dnspython()
            # A plain DNS server's address, told from a DoH URL as dnspython itself tells them apart.
            first = resolver.nameservers[0] if resolver.nameservers else None
            if isinstance(first, str) and dns.inet.is_address(first):
                self._server = (first, resolver.port)
        self._limit = limit
        self._timeout = timeout
        self._cache: dict[tuple[str, str], asyncio.Task[Answer]] = {}
        self._system: dict[str, asyncio.Task[Answer]] = {}
        self._threads = asyncio.Semaphore(_SYSTEM_THREADS)

    def _dnspython(self) -> dns.asyncresolver.Resolver:
        if self._dns is None:
            import dns.asyncresolver
            import dns.resolver

            if self._server is not None and not self.system:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = [self._server[0]]
                resolver.port = self._server[1]
            else:
                try:
                    resolver = dns.asyncresolver.Resolver()
                except dns.resolver.NoResolverConfiguration:
                    raise UsageError("no DNS resolver configured here: give --nameserver HOST[:PORT]") from None
            resolver.lifetime, resolver.timeout = self._lifetime, self._try
            self._dns = resolver
        return self._dns

    def lookup(self, name: str, rdtype: str) -> asyncio.Task[Answer]:
        key = (canonical_host(name), rdtype)
        task = self._cache.get(key)
        if task is None:
            task = self._cache[key] = asyncio.ensure_future(self._query(key[0], rdtype))
        return task

    async def _query(self, name: str, rdtype: str) -> Answer:
        async with self._limit:
            started = time.monotonic()
            plain = await self._plain(name, rdtype)
            if plain is not None:
                return plain
            import dns.exception
            import dns.name
            import dns.resolver

            try:
                qname = dns.name.from_text(name)
            except (dns.exception.DNSException, UnicodeError) as exc:
                return Answer("missing", reason=f"{name!r} is not a valid DNS name ({exc})")
            lifetime = max(0.1, self._lifetime - (time.monotonic() - started))
            try:
                answer = await self._dnspython().resolve(qname, rdtype, search=False, raise_on_no_answer=False,
                                                         lifetime=lifetime)
            except dns.resolver.NXDOMAIN:
                return Answer("missing", reason="NXDOMAIN (the name does not exist)")
            except dns.resolver.LifetimeTimeout:
                return Answer("unknown", reason=f"no answer within {self._lifetime:g}s")
            except dns.resolver.NoNameservers as exc:
                return Answer("unknown", reason=_no_nameservers_reason(exc))
            except (dns.exception.DNSException, OSError) as exc:
                return Answer("unknown", reason=str(exc) or type(exc).__name__)
        rrset = answer.rrset
        if rrset is None:
            return Answer("missing", reason=f"no {rdtype} record")
        if rdtype == "TXT":
            records = tuple(b"".join(r.strings).decode("utf-8", "replace") for r in rrset)
        else:
            records = tuple(r.to_text() for r in rrset)
        return Answer("found", records)

    async def _plain(self, name: str, rdtype: str) -> Answer | None:
        """The first try through :mod:`smtpconf.probe.dnswire` (the plain answer, cheaply), at
        the first server; None leaves the question to dnspython, within what is left of the time."""
        from smtpconf.probe.dnswire import ask

        if self._server is None:
            return None
        plain = await ask(self._server[0], self._server[1], name, rdtype, self._try)
        if plain is None:
            return None
        status, records = plain
        if status == "nxdomain":
            return Answer("missing", reason="NXDOMAIN (the name does not exist)")
        if status == "nodata":
            return Answer("missing", reason=f"no {rdtype} record")
        return Answer("found", records)

    async def addresses(self, host: str) -> Answer:
        """A and AAAA of ``host`` (an IP literal is its own answer). Found if either has records;
        unknown if neither has and one of them could not be asked."""
        literal = address_literal(host)
        if literal is not None:
            return Answer("found", (literal,))
        a, aaaa = await asyncio.gather(self.lookup(host, "A"), self.lookup(host, "AAAA"))
        if a.found or aaaa.found:
            return Answer("found", a.records + aaaa.records)
        if "unknown" in (a.status, aaaa.status):
            unknown = a if a.status == "unknown" else aaaa
            return Answer("unknown", reason=unknown.reason)
        return Answer("missing", reason=a.reason)


    def client_addresses(self, host: str) -> asyncio.Task[Answer]:
        """The addresses a mail client would connect to: the system's resolver's answer, or DNS
        (through ``--nameserver``) when one was given."""
        key = canonical_host(host)
        task = self._system.get(key)
        if task is None:
            job = self._getaddrinfo(key) if self.system else self.addresses(key)
            task = self._system[key] = asyncio.ensure_future(job)
        return task

    async def _getaddrinfo(self, host: str) -> Answer:
        literal = address_literal(host)
        if literal is not None:
            return Answer("found", (literal,))
        async with self._limit, self._threads:
            try:
                async with asyncio.timeout(self._timeout):
                    infos = await _system_lookup(host)
            except TimeoutError:
                return Answer("unknown", reason=f"the system resolver gave no answer within {self._timeout:g}s")
            except socket.gaierror as exc:
                if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                    return Answer("missing", reason="the system resolver (/etc/hosts, then DNS) does not know it")
                return Answer("unknown", reason=f"the system resolver failed: {exc.strerror or exc}")
            except (OSError, UnicodeError) as exc:
                return Answer("unknown", reason=f"the system resolver failed: {exc}")
        records = tuple(dict.fromkeys(infos))
        return Answer("found", records) if records else Answer("missing", reason="no address")


async def _system_lookup(host: str) -> list[str]:
    """``getaddrinfo`` in a daemon thread. Not ``loop.getaddrinfo``: its executor's threads are
    joined when the command ends, so a system resolver that never answers would hold the exit past
    ``--timeout``; an abandoned daemon thread does not."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[str]] = loop.create_future()

    def settle(result: list[str] | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or [])

    def work() -> None:
        try:
            infos: list[str] | None = [str(i[4][0]) for i in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]
        except BaseException as exc:  # handed to the event loop, raised there
            error: BaseException | None = exc
            infos = None
        else:
            error = None
        try:
            loop.call_soon_threadsafe(settle, infos, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    threading.Thread(target=work, name=f"getaddrinfo {host}", daemon=True).start()
    return await future


def _no_nameservers_reason(exc: dns.resolver.NoNameservers) -> str:
    # The errors list names what each server said (SERVFAIL, REFUSED, connection refused...).
    errors = exc.kwargs.get("errors") or []
    said = sorted({str(e[3]) for e in errors if len(e) > 3}) if errors else []
    return "no usable answer from the resolver" + (f" ({'; '.join(said)})" if said else "")

"""DNS for the live checks: one asynchronous resolver, one answer vocabulary.

Every query of ``smtpconf check`` goes through :class:`Resolver`, including the address lookups of
the hosts the SMTP probes connect to, so ``--nameserver`` really means *every* query.

An answer is ``found``, ``missing`` (NXDOMAIN, or the name exists without records of that type)
or ``unknown`` (timeout, SERVFAIL, REFUSED, network error). The distinction is the point: a
resolver that did not answer must never be reported as a record that does not exist.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Literal, NamedTuple

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from smtpconf.errors import UsageError

Status = Literal["found", "missing", "unknown"]


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
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
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
        if nameserver:
            address, port = parse_nameserver(nameserver)
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [address]
            self._resolver.port = port
        else:
            try:
                self._resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise UsageError("no DNS resolver configured here: give --nameserver HOST[:PORT]") from None
        # One try may be lost (UDP): retry within the limit instead of giving up on the first drop.
        self._resolver.lifetime = timeout
        self._resolver.timeout = max(0.5, min(2.0, timeout / 2))
        self._limit = limit
        self._cache: dict[tuple[str, str], asyncio.Task[Answer]] = {}

    def lookup(self, name: str, rdtype: str) -> asyncio.Task[Answer]:
        key = (name.lower().rstrip("."), rdtype)
        task = self._cache.get(key)
        if task is None:
            task = self._cache[key] = asyncio.ensure_future(self._query(key[0], rdtype))
        return task

    async def _query(self, name: str, rdtype: str) -> Answer:
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.DNSException, UnicodeError) as exc:
            return Answer("missing", reason=f"{name!r} is not a valid DNS name ({exc})")
        async with self._limit:
            try:
                answer = await self._resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                return Answer("missing", reason="NXDOMAIN (the name does not exist)")
            except dns.resolver.LifetimeTimeout:
                return Answer("unknown", reason=f"no answer within {self._resolver.lifetime:g}s")
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

    async def addresses(self, host: str) -> Answer:
        """A and AAAA of ``host`` (an IP literal is its own answer). Found if either has records;
        unknown if neither has and one of them could not be asked."""
        try:
            return Answer("found", (str(ipaddress.ip_address(host.strip("[]"))),))
        except ValueError:
            pass
        a, aaaa = await asyncio.gather(self.lookup(host, "A"), self.lookup(host, "AAAA"))
        if a.found or aaaa.found:
            return Answer("found", a.records + aaaa.records)
        if "unknown" in (a.status, aaaa.status):
            unknown = a if a.status == "unknown" else aaaa
            return Answer("unknown", reason=unknown.reason)
        return Answer("missing", reason=a.reason)


def _no_nameservers_reason(exc: dns.resolver.NoNameservers) -> str:
    # The errors list names what each server said (SERVFAIL, REFUSED, connection refused...).
    errors = exc.kwargs.get("errors") or []
    said = sorted({str(e[3]) for e in errors if len(e) > 3}) if errors else []
    return "no usable answer from the resolver" + (f" ({'; '.join(said)})" if said else "")

"""smtpconf.probe.dnswire, the cheap first try of every DNS question, held to dnspython: for the
same questions to the same real nsd, each answer it gives is the one dnspython gives, and it
gives none (dnspython asks) for everything outside the plain case."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

import dns.asyncresolver
import dns.resolver
import pytest

from smtpconf.probe import dnswire
from tests.support.nsd import NsdServer, zone_text

pytestmark = pytest.mark.integration

Z = "wire.test"
LONG_SPF = "v=spf1 " + " ".join(f"ip4:192.0.2.{i}" for i in range(60)) + " -all"  # > 255 bytes: several strings
RECORDS = [
    ("@", "TXT", LONG_SPF), ("@", "TXT", "second record, ünïcode"), ("@", "MX", "10 Mx1.Wire.Test."),
    ("@", "MX", "20 mx2.wire.test."), ("a", "A", "192.0.2.1"), ("a", "A", "192.0.2.2"),
    ("a", "AAAA", "2001:db8::1"), ("mapped", "AAAA", "::ffff:192.0.2.1"), ("nullmx", "MX", "0 ."),
    ("_submission._tcp", "SRV", "0 1 587 smtp.wire.test."), ("_imaps._tcp", "SRV", "0 0 0 ."),
    ("alias", "CNAME", "a.wire.test."), ("empty", "TXT", '""'),
]
QUESTIONS = [
    (Z, "TXT"), (Z, "MX"), (f"a.{Z}", "A"), (f"a.{Z}", "AAAA"), (f"mapped.{Z}", "AAAA"), (f"nullmx.{Z}", "MX"),
    (f"_submission._tcp.{Z}", "SRV"), (f"_imaps._tcp.{Z}", "SRV"), (f"empty.{Z}", "TXT"),
    (f"nothing.{Z}", "TXT"),  # NXDOMAIN
    (f"a.{Z}", "TXT"), (f"a.{Z}", "MX"),  # the name exists, no such record
    (f"A.WIRE.TEST", "A"),  # case does not matter
]


@pytest.fixture(scope="module")
def nsd() -> Iterator[NsdServer]:
    with NsdServer({Z: zone_text(Z, RECORDS)}) as server:
        yield server


async def _dnspython(port: int, name: str, rdtype: str) -> tuple[str, tuple[str, ...]]:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], port
    try:
        answer = await resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return "nxdomain", ()
    if answer.rrset is None:
        return "nodata", ()
    if rdtype == "TXT":
        return "found", tuple(b"".join(r.strings).decode("utf-8", "replace") for r in answer.rrset)
    return "found", tuple(r.to_text() for r in answer.rrset)


@pytest.mark.parametrize("name, rdtype", QUESTIONS)
def test_the_plain_answer_is_dnspythons(nsd: NsdServer, name: str, rdtype: str) -> None:
    ours = asyncio.run(dnswire.ask("127.0.0.1", nsd.port, name, rdtype, 3))
    theirs = asyncio.run(_dnspython(nsd.port, name, rdtype))
    assert ours is not None
    assert (ours[0], sorted(ours[1])) == (theirs[0], sorted(theirs[1]))


def test_a_cname_is_left_to_dnspython(nsd: NsdServer) -> None:
    assert asyncio.run(dnswire.ask("127.0.0.1", nsd.port, f"alias.{Z}", "A", 3)) is None


def test_a_refusal_is_left_to_dnspython(nsd: NsdServer) -> None:
    assert asyncio.run(dnswire.ask("127.0.0.1", nsd.port, "elsewhere.example", "TXT", 3)) is None


def test_names_and_types_it_does_not_handle_are_left_to_dnspython() -> None:
    assert dnswire.question("has space.wire.test", "TXT") is None
    assert dnswire.question("例子.test", "TXT") is None  # callers pass A-labels; anything else: dnspython
    assert dnswire.question(Z, "CAA") is None
    assert dnswire.question("a." * 130 + "test", "A") is None


def test_hostile_answers_are_left_to_dnspython() -> None:
    asked = dnswire.question(Z, "MX")
    assert asked is not None
    header = struct.pack("!HHHHHH", 7, 0x8180, 1, 1, 0, 0)
    loop = header + asked + b"\xc0\x0c" + struct.pack("!HHIH", 15, 1, 60, 4) + b"\x00\x0a\xc0" + bytes((12 + len(asked) + 14,))
    assert dnswire.parse(loop, 7, asked, "MX") is None  # a compression pointer to itself
    assert dnswire.parse(header + asked[:5], 7, asked, "MX") is None  # cut short
    assert dnswire.parse(header + asked, 8, asked, "MX") is None  # another id
    truncated = struct.pack("!HHHHHH", 7, 0x8380, 1, 0, 0, 0) + asked
    assert dnswire.parse(truncated, 7, asked, "MX") is None  # TC: dnspython retries over TCP

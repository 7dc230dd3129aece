"""One DNS question over UDP, for the plain answer only; dnspython answers everything else.

A check of 1,000 domains asks some 7,000 questions, and dnspython spends about a millisecond of
CPU on each (names, rdata objects, the resolver's machinery): that was nine tenths of the run.
Nearly every answer is the plain case, though: NOERROR or NXDOMAIN, not truncated, the question
echoed, and records of the type asked for at the name asked about. This module builds the query
and reads that case in a few dozen lines; for anything else — a CNAME, truncation, SERVFAIL,
REFUSED, a name with characters that need escaping, an unknown record type, a lost packet — it
returns None and the caller asks dnspython, so the unusual cases keep dnspython's handling.
tests/integration/test_dnswire.py holds it to dnspython's answers for the same zones.

Each question gets its own socket (a random source port) and a random id, as dnspython does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import struct
from typing import Literal

TYPES = {"A": 1, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33}
_LABEL = re.compile(rb"^[A-Za-z0-9_-]{1,63}$")
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
# EDNS(0) OPT with a 1232-byte UDP payload (the DNS flag day 2020 size): long SPF records fit.
_OPT = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)

Plain = tuple[Literal["found", "nxdomain", "nodata"], tuple[str, ...]]


def question(name: str, rdtype: str) -> bytes | None:
    """The QNAME, QTYPE and QCLASS of ``name`` (no trailing dot), or None when this module does
    not handle it (a type it cannot read, a label that needs escaping, a name too long)."""
    code = TYPES.get(rdtype)
    if code is None or not name:
        return None
    wire = bytearray()
    for label in name.encode("ascii", "replace").split(b"."):
        if not _LABEL.match(label):
            return None
        wire += bytes((len(label),)) + label
    wire += b"\x00"
    if len(wire) > 255:
        return None
    return bytes(wire) + struct.pack("!HH", code, 1)


def query(qid: int, asked: bytes) -> bytes:
    # RD set (we ask a recursive resolver, or an authoritative server that ignores it); EDNS(0).
    return _HEADER.pack(qid, 0x0100, 1, 0, 0, 1) + asked + _OPT


def _name(data: bytes, offset: int) -> tuple[bytes, int]:
    """The name at ``offset`` as written, with compression pointers followed (RFC 1035 §4.1.4),
    and the offset after it. Raises ValueError on a malformed or hostile name."""
    labels: list[bytes] = []
    end = None
    jumps = 0
    while True:
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            jumps += 1
            if jumps > 32:
                raise ValueError("compression loop")
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise ValueError("unknown label type")
        if length == 0:
            return b".".join(labels), (end if end is not None else offset + 1)
        label = data[offset + 1:offset + 1 + length]
        if len(label) != length or not _LABEL.match(label):
            raise ValueError("label this module does not print")
        labels.append(label)
        offset += 1 + length


def _target(data: bytes, offset: int) -> str:
    name, _ = _name(data, offset)
    return name.decode("ascii") + "."


def parse(data: bytes, qid: int, asked: bytes, rdtype: str) -> Plain | None:
    """The plain answer to the question ``asked`` with id ``qid``, or None for dnspython."""
    try:
        return _parse(data, qid, asked, TYPES[rdtype])
    except (IndexError, ValueError, struct.error, UnicodeError):
        return None


def _parse(data: bytes, qid: int, asked: bytes, code: int) -> Plain | None:
    rid, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(data)
    rcode = flags & 0x000F
    # QR set, QUERY, not truncated, the same id, one question.
    if rid != qid or not flags & 0x8000 or flags & 0x7800 or flags & 0x0200 or qdcount != 1:
        return None
    if rcode not in (0, 3):  # SERVFAIL, REFUSED, ...: dnspython words them
        return None
    if data[12:12 + len(asked)].lower() != asked.lower():
        return None
    qname = asked[:-4]
    offset = 12 + len(asked)
    records: list[str] = []
    for _ in range(ancount):
        owner, offset = _name(data, offset)
        rtype, rclass, _ttl, length = _RR.unpack_from(data, offset)
        offset += _RR.size
        rdata = data[offset:offset + length]
        if len(rdata) != length or rclass != 1 or rtype != code or _wire(owner).lower() != qname.lower():
            return None  # a CNAME, a signature, another name: dnspython follows those
        records.append(_text(data, offset, rdata, code))
        offset += length
    if rcode == 3:
        return ("nxdomain", ()) if not records else None
    return ("found", tuple(records)) if records else ("nodata", ())


def _wire(name: bytes) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in name.split(b".") if label) + b"\x00"


def _text(data: bytes, offset: int, rdata: bytes, code: int) -> str:
    """The record as dnspython's ``to_text()`` writes it (TXT: the strings joined, RFC 7208 §3.3)."""
    if code == 1:
        if len(rdata) != 4:
            raise ValueError("A")
        return str(ipaddress.IPv4Address(rdata))
    if code == 28:
        if len(rdata) != 16:
            raise ValueError("AAAA")
        import dns.ipv6

        return dns.ipv6.inet_ntoa(rdata)
    if code == 16:
        strings, at = [], 0
        while at < len(rdata):
            size = rdata[at]
            chunk = rdata[at + 1:at + 1 + size]
            if len(chunk) != size:
                raise ValueError("TXT")
            strings.append(chunk)
            at += 1 + size
        return b"".join(strings).decode("utf-8", "replace")
    if code == 15:
        (preference,) = struct.unpack_from("!H", rdata)
        return f"{preference} {_target(data, offset + 2)}"
    if code == 33:
        priority, weight, port = struct.unpack_from("!HHH", rdata)
        return f"{priority} {weight} {port} {_target(data, offset + 6)}"
    raise ValueError("type")


async def ask(address: str, port: int, name: str, rdtype: str, timeout: float) -> Plain | None:
    """Send one question and read the plain answer; None when dnspython should ask instead."""
    asked = question(name, rdtype)
    if asked is None:
        return None
    qid = int.from_bytes(os.urandom(2), "big")
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.connect((address, port))  # a connected UDP socket only hears that server
            await loop.sock_sendall(sock, query(qid, asked))
            async with asyncio.timeout(timeout):
                while True:
                    data = await loop.sock_recv(sock, 65535)
                    if data[:2] == qid.to_bytes(2, "big"):
                        return parse(data, qid, asked, rdtype)
        except (OSError, TimeoutError):
            return None

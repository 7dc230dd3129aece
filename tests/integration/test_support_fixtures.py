"""Prove the real-server fixtures work: NSD answers on loopback, a private Postfix relays mail.

Every later integration test builds on these two fixtures, so their failures should show up
here, with a clear message, rather than as a confusing failure in a relay or DNS-check test.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import dns.flags
import dns.message
import dns.query
import dns.resolver
import pytest

from tests.support.gate import need_program, need_root
from tests.support.nsd import NsdServer, ZoneError, port_is_free, txt_rdata, zone_text
from tests.support.postfix import PostfixInstance, free_tcp_port

pytestmark = pytest.mark.integration

# Longer than 255 bytes, so it must be served as several character-strings, and longer than
# fits a 512-byte UDP reply without EDNS, so truncation + TCP fallback is exercised too.
LONG_SPF = (
    "v=spf1 "
    + " ".join(f"ip4:198.51.100.{i}" for i in range(30))
    + " include:_spf.example.net ~all"
)


# --------------------------------------------------------------------------------------------
# NSD
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nsd() -> Iterator[NsdServer]:
    need_program("nsd", "nsd")
    zones = {
        "example.test": zone_text(
            "example.test",
            [
                ("@", "MX", "10 mx.example.test."),
                ("mx", "A", "127.0.0.1"),
                ("@", "TXT", LONG_SPF),
                ("_dmarc", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@example.test"),
                ("_submission._tcp", "SRV", "0 1 587 mx.example.test."),
                ("_submissions._tcp", "SRV", "0 1 465 mx.example.test."),
            ],
        ),
        "second.test": zone_text("second.test", [("www", "A", "127.0.0.2")]),
    }
    with NsdServer(zones) as server:
        yield server


def _resolver(server: NsdServer) -> dns.resolver.Resolver:
    # configure=False: never read /etc/resolv.conf, so nothing can leak to a real resolver.
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.host]
    resolver.port = server.port
    resolver.lifetime = 5
    return resolver


def test_nsd_answers_on_a_free_high_port(nsd: NsdServer) -> None:
    assert nsd.port > 1024
    assert nsd.running
    for name in ("example.test", "second.test"):
        response = dns.query.udp(
            dns.message.make_query(name, "SOA"), "127.0.0.1", port=nsd.port, timeout=2
        )
        assert response.flags & dns.flags.AA, f"{name}: not authoritative"
        assert response.answer


def test_nsd_serves_a_mx_srv_records(nsd: NsdServer) -> None:
    resolver = _resolver(nsd)
    assert [r.address for r in resolver.resolve("mx.example.test", "A")] == ["127.0.0.1"]
    assert [r.address for r in resolver.resolve("www.second.test", "A")] == ["127.0.0.2"]
    mx = resolver.resolve("example.test", "MX")
    assert [(r.preference, r.exchange.to_text()) for r in mx] == [(10, "mx.example.test.")]
    srv = resolver.resolve("_submission._tcp.example.test", "SRV")
    assert [(r.priority, r.weight, r.port, r.target.to_text()) for r in srv] == [
        (0, 1, 587, "mx.example.test.")
    ]
    srv_tls = resolver.resolve("_submissions._tcp.example.test", "SRV")
    assert [r.port for r in srv_tls] == [465]


def test_nsd_serves_long_spf_txt_split_into_character_strings(nsd: NsdServer) -> None:
    query = dns.message.make_query("example.test", "TXT", use_edns=0, payload=4096)
    response = dns.query.udp(query, "127.0.0.1", port=nsd.port, timeout=2)
    (rrset,) = response.answer
    (txt,) = list(rrset)
    assert len(txt.strings) >= 2 and all(len(s) <= 255 for s in txt.strings)
    assert b"".join(txt.strings).decode() == LONG_SPF

    # Without EDNS the answer does not fit 512 bytes: NSD sets TC, and the stub resolver
    # (which smtpconf uses) must retry over TCP, which NSD also serves.
    plain = dns.query.udp(
        dns.message.make_query("example.test", "TXT"), "127.0.0.1", port=nsd.port, timeout=2
    )
    assert plain.flags & dns.flags.TC
    answer = _resolver(nsd).resolve("example.test", "TXT")
    assert [b"".join(r.strings).decode() for r in answer] == [LONG_SPF]
    dmarc = _resolver(nsd).resolve("_dmarc.example.test", "TXT")
    assert b"".join(list(dmarc)[0].strings).decode().startswith("v=DMARC1;")


def test_nsd_missing_name_is_nxdomain(nsd: NsdServer) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):
        _resolver(nsd).resolve("nope.example.test", "A")


def test_txt_rdata_quotes_and_splits() -> None:
    assert txt_rdata('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert txt_rdata("x" * 300) == '"' + "x" * 255 + '" "' + "x" * 45 + '"'


def test_nsd_reports_a_broken_zone_clearly() -> None:
    need_program("nsd", "nsd")
    bad = zone_text("broken.test", [("host", "A", "999.0.0.1")])
    with pytest.raises(
        ZoneError, match=r"broken\.test.*\n.*:\d+: invalid IPv4 address '999\.0\.0\.1'"
    ):
        NsdServer({"broken.test": bad}).start()


def test_nsd_stop_leaves_no_process() -> None:
    need_program("nsd", "nsd")
    server = NsdServer({"stop.test": zone_text("stop.test")})
    with server:
        assert server.processes(), "expected NSD processes while running"
        port = server.port
    assert server.processes() == []
    assert not server.running
    assert server.directory is None
    # Port released: another server can bind it immediately.
    assert port_is_free(port)


# --------------------------------------------------------------------------------------------
# A recording SMTP sink (the "upstream relay" Postfix hands mail to)
# --------------------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool


@dataclass
class RecordingHandler:
    messages: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                bytes(envelope.original_content or envelope.content),
                session.ssl is not None,
            )
        )
        self.arrived.set()
        return "250 2.0.0 Ok: recorded by test sink"

    def wait(self, timeout: float) -> Received:
        assert self.arrived.wait(timeout), "no message reached the sink"
        return self.messages[-1]


@pytest.fixture
def sink() -> Iterator[tuple[RecordingHandler, int]]:
    from aiosmtpd.controller import Controller

    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_tcp_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture
def postfix() -> Iterator[PostfixInstance]:
    need_root("a private Postfix instance must be started by root")
    need_program("postfix", "postfix")
    need_program("swaks", "swaks")
    instance = PostfixInstance()
    try:
        yield instance
    finally:
        instance.close()


# --------------------------------------------------------------------------------------------
# Postfix
# --------------------------------------------------------------------------------------------


def test_private_postfix_config_is_clean(postfix: PostfixInstance) -> None:
    assert postfix.check() == ""
    assert postfix.postconf_warnings() == ""
    settings = postfix.postconf_n()
    assert f"config_directory = {postfix.config_dir}" in settings
    assert f"queue_directory = {postfix.queue_dir}" in settings
    assert "inet_interfaces = 127.0.0.1" in settings
    assert "mydestination =" in settings
    # The only inet listener is our loopback port: never port 25, never a wildcard address.
    services = postfix.postconf_raw("-M").stdout
    inet = [line for line in services.splitlines() if " inet " in line]
    assert inet == [line for line in inet if line.startswith(f"127.0.0.1:{postfix.smtpd_port} ")]
    assert len(inet) == 1


def test_check_reports_problems(postfix: PostfixInstance) -> None:
    postfix.postconf("smtpconf_not_a_parameter = 1")
    assert "unused parameter: smtpconf_not_a_parameter=1" in postfix.postconf_warnings()
    assert postfix.check().count("unused parameter") == 1  # deduplicated


def test_postfix_relays_via_relayhost_to_sink(
    postfix: PostfixInstance, sink: tuple[RecordingHandler, int]
) -> None:
    handler, sink_port = sink
    postfix.postconf(f"relayhost = [127.0.0.1]:{sink_port}")
    postfix.start()
    assert postfix.running
    assert postfix.check() == ""

    started = time.monotonic()
    queue_id = postfix.inject("app@example.test", "ops@example.org", subject="fixture relay test")
    message = handler.wait(timeout=20)
    assert time.monotonic() - started < 20
    assert message.mail_from == "app@example.test"
    assert message.rcpt_tos == ["ops@example.org"]
    assert b"Subject: fixture relay test" in message.content
    postfix.wait_log(
        rf"{queue_id}: to=<ops@example.org>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{sink_port},.*status=sent",
        timeout=10,
    )
    postfix.wait_queue_empty(timeout=10)
    assert "Mail queue is empty" in postfix.mailq()

    pids = postfix.processes()
    assert pids
    postfix.stop()
    assert postfix.processes() == []
    assert not postfix.running


def test_postfix_defers_then_flush_delivers(postfix: PostfixInstance) -> None:
    """Mail to a dead relay stays queued (visible in postqueue) and goes out on flush()."""
    from aiosmtpd.controller import Controller

    port = free_tcp_port()
    postfix.postconf(f"relayhost = [127.0.0.1]:{port}")
    with postfix:
        queue_id = postfix.inject("app@example.test", "later@example.org")
        postfix.wait_log(rf"{queue_id}: .*status=deferred .*Connection refused", timeout=15)
        (entry,) = postfix.queue()
        assert entry["queue_id"] == queue_id and entry["queue_name"] == "deferred"
        assert postfix.queue_ids() == [queue_id]

        handler = RecordingHandler()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            postfix.flush()
            assert handler.wait(timeout=20).rcpt_tos == ["later@example.org"]
            postfix.wait_queue_empty(timeout=10)
        finally:
            controller.stop()
    assert postfix.processes() == []


def test_postfix_relays_over_verified_starttls(postfix: PostfixInstance, tmp_path: Path) -> None:
    """smtp_tls_CAfile from a test directory works: Postfix verifies a trustme certificate."""
    import trustme
    from aiosmtpd.controller import Controller

    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)

    handler = RecordingHandler()
    port = free_tcp_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True
    )
    controller.start()
    try:
        # [localhost] resolves through /etc/hosts (DNS lookups are disabled in the instance)
        # and is the name Postfix matches against the certificate at level "secure".
        postfix.postconf(
            f"relayhost = [localhost]:{port}",
            "smtp_tls_security_level = secure",
            f"smtp_tls_CAfile = {ca_file}",
        )
        postfix.start()
        queue_id = postfix.inject("app@example.test", "tls@example.org")
        message = handler.wait(timeout=20)
        assert message.tls and message.rcpt_tos == ["tls@example.org"]
        postfix.wait_log(
            r"Verified TLS connection established to localhost\[127\.0\.0\.1\]", timeout=10
        )
        postfix.wait_log(rf"{queue_id}: to=<tls@example.org>.*status=sent", timeout=10)
    finally:
        postfix.stop()
        controller.stop()

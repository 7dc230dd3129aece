"""The rendered zone lines, served by a real NSD: nsd-checkzone accepts them (NsdServer runs it
on start) and a resolver gets the SRV, SPF and DMARC records back over DNS."""

from __future__ import annotations

from pathlib import Path

import dns.resolver
import pytest

from tests.support.cli_clients import IDN_DOMAIN, IDN_IMAP, IDN_SMTP  # noqa: F401
from tests.support.cli_clients import clients_out  # noqa: F401  (fixture)
from tests.support.nsd import NsdServer, zone_text

pytestmark = pytest.mark.integration


def resolver_for(server: NsdServer) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.host]
    resolver.port = server.port
    resolver.lifetime = 5.0
    return resolver


def test_nsd_serves_the_rendered_records(clients_out: Path) -> None:
    zones = {}
    for path in sorted((clients_out / "dns").iterdir()):
        domain = path.name.removesuffix(".zone")
        # SOA, NS and the name server's address from the helper, then the rendered lines as they are.
        zones[domain] = zone_text(domain) + path.read_text(encoding="utf-8")
    with NsdServer(zones) as server:
        resolver = resolver_for(server)

        def srv(name: str) -> list[tuple[int, int, int, str]]:
            return sorted((r.priority, r.weight, r.port, r.target.to_text()) for r in resolver.resolve(name, "SRV"))

        def txt(name: str) -> list[str]:
            return [b"".join(r.strings).decode() for r in resolver.resolve(name, "TXT")]

        assert srv(f"_submissions._tcp.{IDN_DOMAIN}") == [(0, 1, 465, f"{IDN_SMTP}.")]
        assert srv(f"_imaps._tcp.{IDN_DOMAIN}") == [(0, 1, 993, f"{IDN_IMAP}.")]
        assert srv("_submission._tcp.example.com") == [(10, 1, 587, "smtp.gmail.com."),
                                                       (11, 1, 587, "smtp.example.com.")]
        assert srv("_pop3s._tcp.lab.example.test") == [(0, 1, 995, "pop.lab.example.test.")]
        assert txt("example.com") == ["v=spf1 include:_spf.google.com a:smtp.example.com ~all"]
        assert txt("_dmarc.example.com") == ["v=DMARC1; p=quarantine"]
        assert txt("_dmarc.office.example") == ["v=DMARC1; p=none"]

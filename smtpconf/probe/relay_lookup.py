"""The relays of fleet groups, looked up the way Postfix will look them up.

Postfix's SMTP client finds a relay host in DNS (``smtp_host_lookup = dns``, the default), not
through ``/etc/hosts``; msmtp, Thunderbird and git ask the system's resolver, which reads
``/etc/hosts`` first. So a relay that only ``/etc/hosts`` knows works from a laptop and fails from
the fleet: ``dns-hosts-only`` says so. With ``--nameserver`` every lookup is DNS already, and a
name DNS does not know is ``dns-no-address`` on the relay itself.
"""

from __future__ import annotations

import asyncio

from smtpconf.model import Config, Relay, address_literal
from smtpconf.probe.hit import LiveHit
from smtpconf.probe.resolver import Resolver


def fleet_relays(config: Config) -> list[Relay]:
    """The relays some fleet group sends through, each once, in the file's order of groups."""
    relays: dict[str, Relay] = {}
    for group in config.fleet.values():
        for relay in config.relays_of(group):
            relays.setdefault(relay.name, relay)
    return list(relays.values())


async def postfix_lookups(config: Config, resolver: Resolver) -> list[LiveHit]:
    if not resolver.system:
        return []
    hits = await asyncio.gather(*(_lookup(relay, resolver) for relay in fleet_relays(config)))
    return [hit for hit in hits if hit is not None]


async def _lookup(relay: Relay, resolver: Resolver) -> LiveHit | None:
    host = relay.endpoint.host_ascii
    if address_literal(host):
        return None  # an address literal is not looked up at all
    client, dns = await asyncio.gather(resolver.client_addresses(host), resolver.addresses(host))
    if not client.found or dns.found:
        return None  # not found at all is dns-no-address on the relay (endpoints.py)
    if dns.status == "unknown":
        return LiveHit(relay.path, "dns-timeout", f"DNS lookup of {host}, as Postfix makes it: {dns.reason}; "
                                                  "result unknown")
    return LiveHit(relay.path, "dns-hosts-only", (
        f"only the system's hosts file knows {host} ({', '.join(client.records)}); DNS says "
        f"{dns.reason}: relay '{relay.name}' is used by the fleet, and Postfix looks relays up in DNS "
        "(smtp_host_lookup = dns), so it will not find it"))

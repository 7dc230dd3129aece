"""Fleet groups as Postfix will see them: credentials, lookup keys, sender rewriting, TLS levels.

Each rule here is a mistake that Postfix itself reports late or never: at delivery time, as a
deferred message, or not at all (a map entry silently shadowed, a credential silently unused).
"""

from __future__ import annotations

from typing import Iterator

from smtpconf.model import Config, FleetGroup, Relay
from smtpconf.rules import Hit, rule
from smtpconf.rules.fleet import group_relays


def _relay_users(config: Config) -> dict[str, list[FleetGroup]]:
    """Relay name -> the fleet groups that relay through it, in file order."""
    users: dict[str, list[FleetGroup]] = {}
    for group in config.fleet.values():
        for relay in group_relays(config, group):
            users.setdefault(relay.name, []).append(group)
    return users


def _names(relays: tuple[str, ...]) -> str:
    return ", then ".join(f"'{name}'" for name in relays)


def _group_names(groups: list[FleetGroup]) -> str:
    names = ", ".join(f"'{g.name}'" for g in groups)
    return f"fleet group{'s' if len(groups) > 1 else ''} {names}"


@rule("sasl-credential-incomplete", "error")
def sasl_credential_incomplete(config: Config) -> Iterator[Hit]:
    """A relay used by a fleet group has a password but no username, or a username but no password.

    Postfix's `sasl_passwd` holds `username:password` per relay; with half of it Postfix cannot
    log in, and sends without AUTH — which a submission server answers with "530 Authentication
    required", so every message is deferred. Give both `username` and `password` (a preset such
    as `sendgrid` supplies the username), or neither for a relay that needs no login.
    """
    users = _relay_users(config)
    for name, groups in users.items():
        relay = config.relays[name]
        if relay.password is not None and relay.username is None:
            yield Hit(relay.password.path, f"relay '{name}' has a password but no username; "
                                           f"{_group_names(groups)} cannot log in to it")
        elif relay.password is None and relay.username is not None and relay.login.auth != "oauth2":
            explicit = "username" in relay.login.explicit
            yield Hit(relay.path + ("username",) if explicit else relay.path,
                      f"relay '{name}' has a username but no password; {_group_names(groups)} would send "
                      "without logging in", at_key=not explicit)


@rule("sasl-username-colon", "error")
def sasl_username_colon(config: Config) -> Iterator[Hit]:
    """A relay used by a fleet group has a username containing `:`.

    Postfix's `sasl_passwd` stores `username:password` and splits it at the first colon, so the
    relay would receive a truncated username and a wrong password. Relays that need such a
    username cannot be used from Postfix's password map.
    """
    for name, groups in _relay_users(config).items():
        relay = config.relays[name]
        if relay.username is not None and ":" in relay.username:
            explicit = "username" in relay.login.explicit
            yield Hit(relay.path + ("username",) if explicit else relay.path,
                      f"relay '{name}': sasl_passwd splits \"username:password\" at the first ':', so "
                      f"{_group_names(groups)} would log in with a wrong username")


@rule("sender-relay-duplicate", "error")
def sender_relay_duplicate(config: Config) -> Iterator[Hit]:
    """Two `sender_relays` entries of a fleet group differ only in upper/lower case.

    Postfix looks senders up case-insensitively: `Billing@Example.com` and `billing@example.com`
    are the same key in the `sender_relay` map, `postmap` warns about a duplicate entry, and only
    one of the two relays is ever used. Keep one entry per address or domain.
    """
    for group in config.fleet.values():
        seen: dict[str, str] = {}
        for entry in group.sender_relays:
            folded = entry.sender.casefold()
            if folded in seen:
                yield Hit(entry.path, f"fleet group '{group.name}': sender '{entry.sender}' is the same "
                                      f"Postfix lookup key as '{seen[folded]}' (case does not matter)",
                          at_key=True)
            else:
                seen[folded] = entry.sender


@rule("rewrite-sender-routing", "warning")
def rewrite_sender_routing(config: Config) -> Iterator[Hit]:
    """`rewrite_sender` is an address that `sender_relays` sends through another relay.

    Postfix chooses the relay (and the credential) by the sender as it was submitted, and only
    then rewrites it with `smtp_generic_maps`. Local mail (`root@web1`) therefore leaves through
    the group's default relay, yet claims to be from an address that belongs to another relay;
    providers reject or rewrite a sender their account does not own (Gmail, SES). Rewrite to an
    address of the default relay's account, or make that relay the default.
    """
    for group in config.fleet.values():
        address = group.rewrite_sender
        if address is None:
            continue
        lowered = address.lower()
        domain = "@" + lowered.rsplit("@", 1)[1]
        # Postfix's lookup order: the full address, then @domain.
        match = next((s for s in group.sender_relays if s.sender.lower() == lowered), None) or next(
            (s for s in group.sender_relays if s.sender.lower() == domain), None)
        if match is not None and match.relay != group.relay:
            yield Hit(group.path + ("rewrite_sender",),
                      f"fleet group '{group.name}': local mail is rewritten to {address}, but Postfix picks "
                      f"the relay before rewriting: it goes through {_names(group.relay)}, not {_names(match.relay)} "
                      f"(sender_relays '{match.sender}')")


@rule("tls-level-unsupported", "error")
def tls_level_unsupported(config: Config) -> Iterator[Hit]:
    """A fleet group's `tls_level` is `fingerprint`, `dane` or `dane-only`.

    `fingerprint` needs the relay certificate's fingerprints, and `dane`/`dane-only` need
    DNSSEC-validated TLSA records with `smtp_dns_support_level = dnssec`; smtpconf configures
    neither. Postfix then defers every message (`fingerprint`, `dane-only`) or silently falls
    back to opportunistic TLS (`dane`), which can leak the relay password. Use `verify` (the
    default) or `secure`.
    """
    for group in config.fleet.values():
        if group.tls_level in ("fingerprint", "dane", "dane-only"):
            yield Hit(group.path + ("tls_level",),
                      f"fleet group '{group.name}': tls_level {group.tls_level} needs settings smtpconf does "
                      "not write (certificate fingerprints or DNSSEC/TLSA); use verify or secure")


@rule("recipient-relay-duplicate", "error")
def recipient_relay_duplicate(config: Config) -> Iterator[Hit]:
    """Two `recipient_relays` entries of a fleet group name the same recipient domain.

    Postfix's `transport_maps` has one entry per domain, looked up without case: `partner.example`,
    `@Partner.Example` and `partner.example.` (and an IDN name and its `xn--` spelling) are one key,
    `postmap` warns about a duplicate entry, and only one of the relays is ever used. Keep one entry
    per domain; a domain that needs a second relay gets a list: `partner.example: [a, b]`.
    """
    for group in config.fleet.values():
        seen: dict[str, str] = {}
        for entry in group.recipient_relays:
            if entry.key in seen:
                yield Hit(entry.path, f"fleet group '{group.name}': recipient domain '{entry.domain}' is the same "
                                      f"transport_maps key as '{seen[entry.key]}'", at_key=True)
            else:
                seen[entry.key] = entry.domain


@rule("relay-nexthop-shared", "error")
def relay_nexthop_shared(config: Config) -> Iterator[Hit]:
    """Two relays of a fleet group share a host and port but log in differently, and one of them is
    in a relay list or a recipient route.

    A relay list (and a recipient route) finds each relay's credential by the next hop Postfix is
    trying, `[host]:port`, in `sasl_passwd` (docs/postfix.md says why the sender cannot be the key
    there). One next hop holds one credential: two accounts at `[smtp.gmail.com]:587` cannot both be
    reached that way, and one of them would log in with the other's password. Two such relays work
    as the default relay and a single `sender_relays` relay (looked up by sender); otherwise use
    one account per host.
    """
    for group in config.fleet.values():
        routes = {r.path for r in group.recipient_relays}
        by_hop = [(path, names) for path, names in group.relay_lists() if len(names) > 1 or path in routes]
        if not by_hop:
            continue
        owners: dict[str, str] = {}
        for relay in config.relays_of(group):
            hop = f"[{relay.endpoint.host_ascii.rstrip('.').lower()}]:{relay.endpoint.port}"
            owners.setdefault(hop, relay.name)
        reported: set[str] = set()
        for path, names in by_hop:
            for index, name in enumerate(names):
                relay = config.relays[name]
                hop = f"[{relay.endpoint.host_ascii.rstrip('.').lower()}]:{relay.endpoint.port}"
                owner = config.relays[owners[hop]]
                if owner.name == name or name in reported or _same_login(owner, relay):
                    continue
                reported.add(name)
                yield Hit(path + (index,) if len(names) > 1 else path,
                          f"fleet group '{group.name}': relay '{name}' shares {hop} with relay '{owner.name}', "
                          f"which logs in differently; Postfix finds one credential per next hop, so '{name}' "
                          f"would log in as '{owner.name}'")


def _same_login(a: Relay, b: Relay) -> bool:
    return (a.login.auth, a.username, a.password and a.password.ref) == (b.login.auth, b.username,
                                                                          b.password and b.password.ref)

"""Fleet groups: how Postfix reaches the relays."""

from __future__ import annotations

from typing import Iterator

from smtpconf.load import JsonPath
from smtpconf.model import Config, FleetGroup, Relay, canonical_host, tls_level_at_least
from smtpconf.rules import Hit, rule


def group_relays(config: Config, group: FleetGroup) -> list[Relay]:
    return config.relays_of(group)


def _level_path(group: FleetGroup, config: Config) -> JsonPath:
    return group.path + ("tls_level",) if "tls_level" in group.explicit else group.path


@rule("wrappermode-required", "error")
def wrappermode_required(config: Config) -> Iterator[Hit]:
    """A fleet group relays through an implicit-TLS relay (465) with `tls_level` below `encrypt`.

    Postfix reaches an implicit-TLS ("SMTPS", port 465) relay only with `smtp_tls_wrappermode = yes`,
    and wrapper mode requires `smtp_tls_security_level` encrypt or stronger: with `may` or `none`
    Postfix connects in plaintext and the relay hangs up, or the mail is deferred. Set `tls_level`
    to `verify` (the default), `secure` or `encrypt`, or use the relay's STARTTLS port (587).
    """
    for group in config.fleet.values():
        if tls_level_at_least(group.tls_level, "encrypt"):
            continue
        for relay in group_relays(config, group):
            if relay.endpoint.security == "tls":
                yield Hit(_level_path(group, config),
                          f"fleet group '{group.name}': relay '{relay.name}' uses implicit TLS (port "
                          f"{relay.endpoint.port}); Postfix's smtp_tls_wrappermode needs tls_level encrypt "
                          f"or stronger, not {group.tls_level}")


@rule("tls-level-weak", "warning")
def tls_level_weak(config: Config) -> Iterator[Hit]:
    """A fleet group authenticates to a relay with `tls_level` below `encrypt`.

    With `may`, Postfix uses TLS only when the relay offers it; anyone who strips STARTTLS from the
    relay's greeting gets the SMTP password. With `none` it never uses TLS. Use `verify` (the
    default: TLS with a verified certificate), `secure`, or at least `encrypt`.
    """
    for group in config.fleet.values():
        if tls_level_at_least(group.tls_level, "encrypt"):
            continue
        relays = [r for r in group_relays(config, group)
                  if r.authenticates and r.endpoint.security != "tls"]  # implicit TLS: wrappermode-required
        if relays:
            names = ", ".join(f"'{r.name}'" for r in relays)
            yield Hit(_level_path(group, config),
                      f"fleet group '{group.name}': tls_level {group.tls_level} may send the password for "
                      f"{names} without TLS; use verify")


@rule("relay-tls-conflict", "error")
def relay_tls_conflict(config: Config) -> Iterator[Hit]:
    """A fleet group requires TLS (`tls_level` encrypt or stronger) from a relay set to `security: none`.

    Postfix would defer every message for that relay, because the relay is declared to have no
    TLS. Either the relay offers STARTTLS (set `security: starttls`) or the group's `tls_level` must
    allow plaintext — which, with a password, is the `tls-level-weak` problem.
    """
    for group in config.fleet.values():
        if not tls_level_at_least(group.tls_level, "encrypt"):
            continue
        for relay in group_relays(config, group):
            if relay.endpoint.security == "none":
                yield Hit(_level_path(group, config),
                          f"fleet group '{group.name}': tls_level {group.tls_level} requires TLS, but relay "
                          f"'{relay.name}' has security none")


@rule("fleet-host-duplicate", "error")
def fleet_host_duplicate(config: Config) -> Iterator[Hit]:
    """A host is listed in two fleet groups.

    Each fleet group is an Ansible group: for a host in two of them Ansible merges both groups'
    variables (the group whose name sorts last silently wins), while the `postfix` target renders
    a different configuration for each group — two answers for one host's Postfix. Put each host
    in exactly one group; a host that needs another sender's relay gets it through
    `sender_relays`. Host names are compared without case, trailing dot or IDN spelling.
    """
    first: dict[str, str] = {}
    for group in config.fleet.values():
        for index, host in enumerate(group.hosts):
            key = canonical_host(host)
            if key not in first:
                first[key] = group.name
            elif first[key] != group.name:
                yield Hit(group.path + ("hosts", index),
                          f"host '{host}' is in fleet groups '{first[key]}' and '{group.name}': Ansible would "
                          f"merge both groups' variables, and the postfix target renders a different "
                          f"configuration for each")


@rule("relay-failover-mixed-tls", "error")
def relay_failover_mixed_tls(config: Config) -> Iterator[Hit]:
    """A relay list of a fleet group mixes implicit TLS (465) and STARTTLS or plain relays.

    Postfix tries a list's relays (`relay: [a, b]`, a `sender_relays` or `recipient_relays` list) one
    after the other with one transport, and `smtp_tls_wrappermode` is a setting of the transport, not
    of a destination: the relays of the other kind would never be reached (a STARTTLS relay answers
    a TLS handshake with its plaintext greeting). Use relays of one kind in a list — most providers
    offer both 465 and 587 — or give the list's relays the same `security`.
    """
    for group in config.fleet.values():
        for path, names in group.relay_lists():
            kinds = {name: config.relays[name].endpoint.security == "tls" for name in names
                     if config.relays[name].login.auth != "oauth2"}
            if len(set(kinds.values())) > 1:
                implicit = [n for n, tls in kinds.items() if tls]
                other = [n for n, tls in kinds.items() if not tls]
                yield Hit(path, f"fleet group '{group.name}': relays {_quoted(implicit)} use implicit TLS and "
                                f"{_quoted(other)} do not; one Postfix transport cannot try both kinds")


@rule("relay-failover-oauth2", "error")
def relay_failover_oauth2(config: Config) -> Iterator[Hit]:
    """A relay list of more than one relay contains an OAuth2 relay (`auth: oauth2`).

    Postfix hands an OAuth2 relay's mail to msmtp through a pipe(8) transport of its own
    (docs/postfix.md), and a transport has exactly one way to deliver: Postfix tries a list's
    destinations inside one smtp transport, never one transport after another. In a list, the
    OAuth2 relay would be reached without its token or the other relays never. Use an OAuth2 relay
    alone (as `relay`, a sender's or a recipient domain's relay); for a fallback, list password
    relays only.
    """
    for group in config.fleet.values():
        for path, names in group.relay_lists():
            if len(names) < 2:
                continue
            for index, name in enumerate(names):
                if config.relays[name].login.auth == "oauth2":
                    yield Hit(path + (index,), f"fleet group '{group.name}': OAuth2 relay '{name}' cannot be "
                                               "part of a relay list; Postfix cannot fall over from its pipe "
                                               "transport to another relay, nor back")


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)

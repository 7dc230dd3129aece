"""The model: typed, immutable relays, accounts, fleet groups and domains, with presets applied.

``build`` takes a document that passed the schema and the reference check, so it can trust shapes
and names. Every object keeps the path of the YAML node it came from; ``config.doc.pos(path)`` gives
its line and column, so later stages can point at the user's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple

import yaml

from smtpconf.load import Document, JsonPath

# Postfix smtp_tls_security_level values, weakest first. Below "encrypt" TLS is optional.
TLS_LEVELS = ("none", "may", "encrypt", "dane", "dane-only", "fingerprint", "verify", "secure")
DEFAULT_TLS_LEVEL = "verify"

# Submission defaults (RFC 8314 §3.3: implicit TLS on 465; RFC 6409: 587 with STARTTLS).
_DEFAULT_PORT = {"tls": 465, "starttls": 587, "none": 25}
_INCOMING_DEFAULT_PORT = {("imap", "tls"): 993, ("imap", "starttls"): 143, ("imap", "none"): 143,
                          ("pop3", "tls"): 995, ("pop3", "starttls"): 110, ("pop3", "none"): 110}


class Server(NamedTuple):
    host: str
    port: int
    security: str


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    smtp: tuple[Server, ...]  # the documented submission endpoints, the default first
    incoming: Mapping[str, Server]  # "imap" / "pop3"
    username: str | None
    note: str
    docs: str
    spf_includes: tuple[str, ...] = ()  # documented SPF includes of its sending servers, first to publish


@lru_cache(maxsize=1)
def presets() -> Mapping[str, Preset]:
    """The built-in provider presets, read from ``providers.yaml`` (data, not code)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(Path(__file__).with_name("providers.yaml"), encoding="utf-8") as handle:
        raw: dict[str, Any] = yaml.load(handle, Loader=loader)
    return MappingProxyType({
        name: Preset(
            name=name,
            title=entry["title"],
            smtp=tuple(Server(**s) for s in entry["smtp"]),
            incoming=MappingProxyType({p: Server(**s) for p, s in entry.get("incoming", {}).items()}),
            username=entry.get("username"),
            note=" ".join(entry["note"].split()),
            docs=entry["docs"],
            spf_includes=tuple(entry.get("spf", ())),
        )
        for name, entry in raw.items()
    })


@dataclass(frozen=True)
class SecretRef:
    """Where a password comes from. The value itself is never held here, except an inline string
    (the lint error ``inline-secret``), which ``repr`` hides."""

    kind: str  # env | file | command | vault | inline
    ref: str = field(repr=False)
    path: JsonPath = ()

    @property
    def inline(self) -> bool:
        return self.kind == "inline"

    def describe(self) -> str:
        """Safe to print: names the reference, never an inline value."""
        return "an inline password" if self.inline else f"{self.kind} {self.ref}"


@dataclass(frozen=True)
class Endpoint:
    host: str  # as written; IDN names stay Unicode here
    port: int
    security: str  # starttls | tls | none
    ca_file: str | None  # absolute path
    provider: str | None
    path: JsonPath
    explicit: frozenset[str] = frozenset()  # the fields the user wrote (the rest came from a preset)

    @property
    def host_ascii(self) -> str:
        """The host as DNS and SMTP see it: IDN labels as punycode A-labels."""
        return to_ascii_host(self.host)

    @property
    def key(self) -> tuple[str, int, str, str | None]:
        """Identity for probing: endpoints with the same key are probed once. ``smtp.example.com.``
        (absolute) and ``SMTP.example.com`` are the same server."""
        return (self.host_ascii.rstrip(".").lower(), self.port, self.security, self.ca_file)


@dataclass(frozen=True)
class Relay:
    name: str
    endpoint: Endpoint
    username: str | None
    password: SecretRef | None
    path: JsonPath

    @property
    def authenticates(self) -> bool:
        return self.password is not None


@dataclass(frozen=True)
class Incoming:
    endpoint: Endpoint
    protocol: str  # imap | pop3
    username: str


@dataclass(frozen=True)
class Account:
    email: str
    name: str | None
    smtp: Endpoint
    username: str
    password: SecretRef | None
    incoming: Incoming | None
    relay: str | None
    path: JsonPath

    @property
    def domain(self) -> str:
        return self.email.rsplit("@", 1)[1]

    @property
    def domain_ascii(self) -> str:
        return to_ascii_host(self.domain)


@dataclass(frozen=True)
class SenderRelay:
    sender: str  # user@example.com or @example.com
    relay: str
    path: JsonPath


@dataclass(frozen=True)
class FleetGroup:
    name: str
    hosts: tuple[str, ...]
    relay: str
    sender_relays: tuple[SenderRelay, ...]
    rewrite_sender: str | None
    tls_level: str
    path: JsonPath


@dataclass(frozen=True)
class DomainPolicy:
    name: str
    relays: tuple[str, ...]
    dkim_selectors: tuple[str, ...]
    dmarc_policy: str | None
    srv: bool
    path: JsonPath


@dataclass(frozen=True)
class Config:
    doc: Document
    relays: Mapping[str, Relay]
    accounts: tuple[Account, ...]
    fleet: Mapping[str, FleetGroup]
    domains: Mapping[str, DomainPolicy]

    @property
    def file(self) -> str:
        return self.doc.file


def preset_of(endpoint: Endpoint) -> Preset | None:
    """The provider behind an endpoint: its ``provider``, or the preset whose documented host it is
    (a relay written with SES's regional host and no ``provider`` is still SES)."""
    if endpoint.provider:
        return presets().get(endpoint.provider)
    return _preset_for_host(endpoint.host_ascii.rstrip(".").lower())


@lru_cache(maxsize=1024)
def _preset_for_host(host: str) -> Preset | None:
    if host.startswith("email-smtp.") and host.endswith(".amazonaws.com"):  # SES: one host per region
        return presets()["ses"]
    return next((p for p in presets().values() if any(server.host == host for server in p.smtp)), None)


def to_ascii_host(host: str) -> str:
    if host.isascii():
        return host
    return host.rstrip(".").encode("idna").decode("ascii")


def tls_level_at_least(level: str, minimum: str) -> bool:
    return TLS_LEVELS.index(level) >= TLS_LEVELS.index(minimum)


def secret(doc: Document, value: Any, path: JsonPath) -> SecretRef | None:
    if value is None:
        return None
    if isinstance(value, str):
        return SecretRef("inline", value, path)
    (kind, ref), = value.items()
    # Relative to the smtpconf file, like ca_file; "~/..." stays as written: it is resolved where
    # the secret is read (a client file runs on its user's machine, with that user's home).
    if kind == "file" and not ref.startswith("~"):
        ref = _resolve_file(doc, ref)
    return SecretRef(kind, ref, path)


def _resolve_file(doc: Document, value: str | None) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (doc.path.parent / path).resolve())


def endpoint(doc: Document, raw: Mapping[str, Any], path: JsonPath, *,
             base: Server | None = None, base_ca: str | None = None,
             preset_servers: tuple[Server, ...] = ()) -> Endpoint:
    """An SMTP endpoint: explicit fields over the preset (or relay) they name.

    With a preset, an explicit port picks the documented security for that port (Gmail on 465 is
    implicit TLS), and an explicit security picks the documented port for it.
    """
    port, security = raw.get("port"), raw.get("security")
    chosen = base
    if preset_servers:
        matches = [s for s in preset_servers
                   if (port is None or s.port == port) and (security is None or s.security == security)]
        chosen = matches[0] if matches else preset_servers[0]
    host = raw.get("host") or (chosen.host if chosen else "")
    if security is None:
        if chosen is not None and (port is None or port == chosen.port):
            security = chosen.security
        else:
            security = "tls" if port in (465, 2465, 994) else "starttls"
    if port is None:
        port = chosen.port if chosen is not None and chosen.security == security else _DEFAULT_PORT[security]
    return Endpoint(
        host=host, port=port, security=security,
        ca_file=_resolve_file(doc, raw.get("ca_file")) or base_ca,
        provider=raw.get("provider"), path=path,
        explicit=frozenset(k for k in ("host", "port", "security", "ca_file") if k in raw),
    )


def _incoming(doc: Document, raw: Mapping[str, Any] | None, path: JsonPath, account_provider: str | None,
              username: str) -> Incoming | None:
    if raw is None:
        preset = presets().get(account_provider or "")
        if preset is None or "imap" not in preset.incoming:
            return None
        raw = {"provider": account_provider}
    protocol = raw.get("protocol", "imap")
    preset = presets().get(raw.get("provider") or "")
    base = preset.incoming.get(protocol) if preset else None
    port, security = raw.get("port"), raw.get("security")
    host = raw.get("host") or (base.host if base else "")
    if security is None:
        security = base.security if base and port in (None, base.port) else (
            "tls" if port in (993, 995) or port is None else "starttls")
    if port is None:
        port = base.port if base and base.security == security else _INCOMING_DEFAULT_PORT[(protocol, security)]
    ep = Endpoint(host=host, port=port, security=security, ca_file=_resolve_file(doc, raw.get("ca_file")),
                  provider=raw.get("provider"), path=path,
                  explicit=frozenset(k for k in ("host", "port", "security", "ca_file") if k in raw))
    return Incoming(ep, protocol, raw.get("username", username))


def build(doc: Document) -> Config:
    """Build the model from a schema-valid document whose references resolve."""
    data = doc.data
    relays: dict[str, Relay] = {}
    for name, raw in (data.get("relays") or {}).items():
        path = ("relays", name)
        preset = presets().get(raw.get("provider") or "")
        relays[name] = Relay(
            name=name,
            endpoint=endpoint(doc, raw, path, preset_servers=preset.smtp if preset else ()),
            username=raw.get("username", preset.username if preset else None),
            password=secret(doc, raw.get("password"), path + ("password",)),
            path=path,
        )

    accounts = []
    for index, raw in enumerate(data.get("accounts") or []):
        path = ("accounts", index)
        preset = presets().get(raw.get("provider") or "")
        relay = relays.get(raw.get("relay") or "")
        if relay is not None:
            base = relay.endpoint
            smtp = endpoint(doc, raw, path, base=Server(base.host, base.port, base.security), base_ca=base.ca_file)
            smtp = Endpoint(smtp.host, smtp.port, smtp.security, smtp.ca_file, base.provider, path, smtp.explicit)
        else:
            smtp = endpoint(doc, raw, path, preset_servers=preset.smtp if preset else ())
        username = raw.get("username") or (preset.username if preset and preset.username else raw["email"])
        accounts.append(Account(
            email=raw["email"], name=raw.get("name"), smtp=smtp, username=username,
            password=secret(doc, raw.get("password"), path + ("password",)),
            incoming=_incoming(doc, raw.get("incoming"), path + ("incoming",), raw.get("provider"), username),
            relay=raw.get("relay"), path=path,
        ))

    fleet = {
        name: FleetGroup(
            name=name,
            hosts=tuple(raw.get("hosts") or ()),
            relay=raw["relay"],
            sender_relays=tuple(SenderRelay(sender, relay, ("fleet", name, "sender_relays", sender))
                                for sender, relay in (raw.get("sender_relays") or {}).items()),
            rewrite_sender=raw.get("rewrite_sender"),
            tls_level=raw.get("tls_level", DEFAULT_TLS_LEVEL),
            path=("fleet", name),
        )
        for name, raw in (data.get("fleet") or {}).items()
    }
    domains = {
        name: DomainPolicy(
            name=name,
            relays=tuple(raw.get("relays") or ()),
            dkim_selectors=tuple(raw.get("dkim_selectors") or ()),
            dmarc_policy=raw.get("dmarc_policy"),
            srv=bool(raw.get("srv", False)),
            path=("domains", name),
        )
        for name, raw in (data.get("domains") or {}).items()
    }
    return Config(doc, MappingProxyType(relays), tuple(accounts), MappingProxyType(fleet),
                  MappingProxyType(domains))


class EndpointUse(NamedTuple):
    what: str  # "relay 'ses'", "account a@example.com", ...: for messages
    endpoint: Endpoint
    password: SecretRef | None
    smtp: bool  # submission (not an incoming IMAP/POP3 server)


def endpoint_uses(config: Config) -> list[EndpointUse]:
    """Every endpoint in the file with what uses it: relays, accounts' SMTP and incoming servers."""
    uses = [EndpointUse(f"relay '{r.name}'", r.endpoint, r.password, True) for r in config.relays.values()]
    for account in config.accounts:
        uses.append(EndpointUse(f"account {account.email}", account.smtp, account.password, True))
        if account.incoming is not None:
            uses.append(EndpointUse(f"incoming server of {account.email}", account.incoming.endpoint,
                                    account.password, False))
    return uses

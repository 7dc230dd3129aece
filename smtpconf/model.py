"""The model: typed, immutable relays, accounts, fleet groups and domains, with presets applied.

``build`` takes a document that passed the schema and the reference check, so it can trust shapes
and names. Every object keeps the path of the YAML node it came from; ``config.doc.pos(path)`` gives
its line and column, so later stages can point at the user's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Mapping, NamedTuple

import yaml

from smtpconf.load import Document, JsonPath

# Postfix smtp_tls_security_level values, weakest first. Below "encrypt" TLS is optional.
TLS_LEVELS = ("none", "may", "encrypt", "dane", "dane-only", "fingerprint", "verify", "secure")
DEFAULT_TLS_LEVEL = "verify"

# Submission defaults (RFC 8314 §3.3: implicit TLS on 465; RFC 6409: 587 with STARTTLS).
_DEFAULT_PORT = {"tls": 465, "starttls": 587, "none": 25}
_INCOMING_DEFAULT_PORT = {("imap", "tls"): 993, ("imap", "starttls"): 143, ("imap", "none"): 143,
                          ("pop3", "tls"): 995, ("pop3", "starttls"): 110, ("pop3", "none"): 110}


AuthKind = Literal["password", "oauth2", "none"]
Mechanism = Literal["xoauth2", "oauthbearer"]
Security = Literal["starttls", "tls", "none"]  # "tls": implicit TLS (RFC 8314)
MailProtocol = Literal["smtp", "imap", "pop3"]


class Server(NamedTuple):
    host: str
    port: int
    security: Security


@dataclass(frozen=True)
class OAuth2Preset:
    """A provider's identity platform, from ``providers.yaml``. URLs may hold ``{tenant}``."""

    mechanism: Mechanism
    issuer: str
    authorize_url: str
    token_url: str
    device_url: str | None  # None: the provider allows no device flow for mail (Google)
    scopes: tuple[str, ...]
    incoming_scopes: Mapping[str, str]  # protocol -> the extra scope reading mail needs
    tenant: str | None  # the default tenant, where URLs hold {tenant}
    console: str  # where the application is registered


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
    oauth2: OAuth2Preset | None = None


def _oauth2_preset(raw: Mapping[str, Any] | None) -> OAuth2Preset | None:
    if raw is None:
        return None
    return OAuth2Preset(
        mechanism=raw["mechanism"], issuer=raw["issuer"], authorize_url=raw["authorize_url"],
        token_url=raw["token_url"], device_url=raw.get("device_url"), scopes=tuple(raw["scopes"]),
        incoming_scopes=MappingProxyType({protocol: raw[f"{protocol}_scope"] for protocol in ("imap", "pop3")
                                          if f"{protocol}_scope" in raw}),
        tenant=raw.get("tenant"), console=raw["console"],
    )


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
            oauth2=_oauth2_preset(entry.get("oauth2")),
        )
        for name, entry in raw.items()
    })


@dataclass(frozen=True)
class SecretRef:
    """Where a secret (a password, a refresh token, a client secret) comes from. The value itself is never held here, except an inline string
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
    security: Security
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
        return (canonical_host(self.host), self.port, self.security, self.ca_file)


@dataclass(frozen=True)
class OAuth2:
    """An OAuth2 login's client and identity provider, the preset's values under the file's, with
    ``{tenant}`` filled in: every stage reads the final URLs and scopes from here."""

    client_id: str | None  # None: the lint error oauth2-incomplete
    tenant: str | None
    refresh_token: SecretRef | None  # None: the lint error oauth2-incomplete
    client_secret: SecretRef | None
    mechanism: Mechanism
    token_url: str | None  # None: no preset gives one and the file does not (oauth2-incomplete)
    authorize_url: str | None
    device_url: str | None
    scopes: tuple[str, ...]
    issuer: str | None  # the preset's identity provider (Thunderbird's <oAuth2><issuer>)
    path: JsonPath  # the oauth2 block (or, with no block, where auth: oauth2 is written)

    @property
    def complete(self) -> bool:
        return bool(self.client_id and self.refresh_token and self.token_url)

    @property
    def sasl_name(self) -> str:
        """The SASL mechanism as servers advertise it: XOAUTH2 or OAUTHBEARER (RFC 7628)."""
        return self.mechanism.upper()


@dataclass(frozen=True)
class Login:
    """Who logs in to an SMTP server and with what: decided once, in ``build``, and read by
    send-test, every client target, Postfix and the role.

    ``auth`` is the file's ``auth``, or what its fields imply: ``oauth2`` with an ``oauth2`` block,
    ``password`` with a password; without either, a relay sends without AUTH and an account's
    client asks its user for a password (submission always wants AUTH) unless the server has
    ``security: none``.
    """

    auth: AuthKind
    username: str | None
    password: SecretRef | None  # as written; used only with auth: password
    oauth2: OAuth2 | None  # only with auth: oauth2
    path: JsonPath  # the relay or account whose credential this is
    explicit: frozenset[str] = frozenset()  # of username, password, auth, oauth2: what the file wrote

    @property
    def authenticates(self) -> bool:
        return self.auth != "none"

    @property
    def secret(self) -> SecretRef | None:
        """The secret this login reads: the password, or the OAuth2 refresh token."""
        if self.auth == "oauth2":
            return self.oauth2.refresh_token if self.oauth2 else None
        return self.password if self.auth == "password" else None

    @property
    def mechanisms(self) -> tuple[str, ...]:
        """SASL mechanisms this login can use, as servers advertise them."""
        if self.auth == "oauth2" and self.oauth2 is not None:
            return (self.oauth2.sasl_name,)
        if self.auth == "password":
            return ("PLAIN", "LOGIN")
        return ()


@dataclass(frozen=True)
class Relay:
    name: str
    endpoint: Endpoint
    login: Login
    path: JsonPath

    @property
    def username(self) -> str | None:
        return self.login.username

    @property
    def password(self) -> SecretRef | None:
        return self.login.password

    @property
    def authenticates(self) -> bool:
        return self.login.authenticates


@dataclass(frozen=True)
class Incoming:
    endpoint: Endpoint
    protocol: Literal["imap", "pop3"]
    username: str


@dataclass(frozen=True)
class Account:
    email: str
    name: str | None
    smtp: Endpoint
    login: Login  # the account's own, or its relay's when it has no credential of its own
    incoming: Incoming | None
    relay: str | None
    path: JsonPath

    @property
    def username(self) -> str:
        """The SMTP login name (an account always has one: its address by default)."""
        return self.login.username or self.email

    @property
    def password(self) -> SecretRef | None:
        return self.login.password

    @property
    def domain(self) -> str:
        return self.email.rsplit("@", 1)[1]

    @property
    def domain_ascii(self) -> str:
        return to_ascii_host(self.domain)

    @property
    def domain_host(self) -> str:
        """The domain by ``canonical_host``: how accounts are matched to ``domains`` entries."""
        return canonical_host(self.domain)


@dataclass(frozen=True)
class SenderRelay:
    sender: str  # user@example.com or @example.com
    relay: tuple[str, ...]  # relay names, tried in order (a name written alone is a list of one)
    path: JsonPath


@dataclass(frozen=True)
class RecipientRelay:
    """Mail to one recipient domain goes through these relays, in order (Postfix transport_maps)."""

    domain: str  # as written: partner.example or @partner.example
    relay: tuple[str, ...]
    path: JsonPath

    @property
    def key(self) -> str:
        """The transport_maps key: the domain without '@' or trailing dot, in A-labels, lower case."""
        return canonical_host(self.domain.removeprefix("@"))


def relay_names(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A fleet relay value as the file writes it (a name, or a list of names) -> the names."""
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class FleetGroup:
    name: str
    hosts: tuple[str, ...]
    relay: tuple[str, ...]  # the default relays, tried in order
    sender_relays: tuple[SenderRelay, ...]
    rewrite_sender: str | None
    tls_level: str
    path: JsonPath
    explicit: frozenset[str] = frozenset()  # the keys the file wrote (tls_level may be the default)
    recipient_relays: tuple[RecipientRelay, ...] = ()

    def relay_lists(self) -> list[tuple[JsonPath, tuple[str, ...]]]:
        """Every relay list of the group with where the file writes it: default, senders', recipients'."""
        return [(self.path + ("relay",), self.relay),
                *((s.path, s.relay) for s in self.sender_relays),
                *((r.path, r.relay) for r in self.recipient_relays)]


@dataclass(frozen=True)
class Site:
    """Where a domain's discovery site is published (SPEC §9): paths on the web server, as written;
    None where the file gives none (the site target writes a documented placeholder)."""

    root: str | None
    certificate: str | None
    key: str | None
    path: JsonPath


@dataclass(frozen=True)
class MtaSts:
    """The MTA-STS policy a domain publishes (RFC 8461)."""

    mode: str  # testing | enforce | none
    mx: tuple[str, ...]  # as written; "*." matches one label
    max_age: int  # seconds
    path: JsonPath


DEFAULT_MTA_STS_MAX_AGE = 604800  # a week: RFC 8461 §3.2 suggests weeks
MTA_STS_MAX_AGE_LIMIT = 31557600  # RFC 8461 §3.2: max_age is at most a year
DEFAULT_SITE_LANG = ("en", "zh-CN")


@dataclass(frozen=True)
class DomainPolicy:
    name: str  # as written; IDN names stay Unicode here
    relays: tuple[str, ...]
    dkim_selectors: tuple[str, ...]
    dmarc_policy: str | None
    srv: bool
    path: JsonPath
    site: Site | None = None  # the domain's `site:` block: `check` fetches what it publishes
    mta_sts: MtaSts | None = None
    tls_rpt: tuple[str, ...] = ()  # reporting URIs (RFC 8460): mailto:... or https://...
    lang: tuple[str, ...] = DEFAULT_SITE_LANG  # the setup page's languages, in order

    @property
    def host(self) -> str:
        """The name DNS is asked about (``canonical_host``)."""
        return canonical_host(self.name)


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

    def relays_of(self, group: FleetGroup) -> list[Relay]:
        """The relays a fleet group sends through: its default relays, then every relay of every sender
        list, then of every recipient list, each once."""
        names = dict.fromkeys(name for _, names in group.relay_lists() for name in names)
        return [self.relays[name] for name in names]

    def written_logins(self) -> list[tuple[str, Login, Endpoint]]:
        """Each login once, where the file writes it: (who, for messages; the login; the SMTP
        endpoint it logs in to). An account that uses its relay's login is the relay's entry."""
        logins = [(f"relay '{relay.name}'", relay.login, relay.endpoint) for relay in self.relays.values()]
        logins += [(f"account {account.email}", account.login, account.smtp) for account in self.accounts
                   if account.login.path == account.path]
        return logins

    def accounts_of(self, domain: DomainPolicy) -> list[Account]:
        """The accounts whose address is in ``domain`` (compared as DNS names)."""
        return [account for account in self.accounts if account.domain_host == domain.host]


def preset_of(endpoint: Endpoint) -> Preset | None:
    """The provider behind an endpoint: its ``provider``, or the preset whose documented host it is
    (a relay written with SES's regional host and no ``provider`` is still SES)."""
    if endpoint.provider:
        return presets().get(endpoint.provider)
    return _preset_for_host(canonical_host(endpoint.host))


@lru_cache(maxsize=1024)
def _preset_for_host(host: str) -> Preset | None:
    if host.startswith("email-smtp.") and host.endswith(".amazonaws.com"):  # SES: one host per region
        return presets()["ses"]
    return next((p for p in presets().values() if any(server.host == host for server in p.smtp)), None)


def to_ascii_host(host: str) -> str:
    if host.isascii():
        return host
    return host.rstrip(".").encode("idna").decode("ascii")


@lru_cache(maxsize=4096)  # thousands of accounts share a handful of hosts
def address_literal(host: str) -> str | None:
    """The IP address ``host`` is, in its canonical text (``2001:db8::1``), or None for a name.
    Brackets around it (``[2001:db8::1]``, as Postfix writes an address) are allowed. An address
    is never looked up, never an SRV target, never an MTA-STS ``mx`` pattern."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def canonical_host(host: str) -> str:
    """The one spelling every stage compares hosts and domains by: A-labels (punycode), lower case,
    no trailing dot. ``例子.测试``, ``XN--fsqu00a.xn--0zwm56d.`` and ``xn--fsqu00a.xn--0zwm56d`` are
    one name. A name that is no valid IDN (lint reports it) is compared as written."""
    try:
        return to_ascii_host(host).rstrip(".").lower()
    except UnicodeError:
        return host.rstrip(".").lower()


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
    port, security = _port_security(port, security, chosen, _SMTP_DEFAULTS)
    return Endpoint(
        host=raw.get("host") or (chosen.host if chosen else ""), port=port, security=security,
        ca_file=_resolve_file(doc, raw.get("ca_file")) or base_ca,
        provider=raw.get("provider"), path=path,
        explicit=frozenset(k for k in ("host", "port", "security", "ca_file") if k in raw),
    )


class _Defaults(NamedTuple):
    ports: Mapping[str, int]  # security -> its standard port
    implicit_tls_ports: frozenset[int]  # ports that speak TLS from the first byte
    security: Security  # with neither a port nor a preset


# RFC 8314 §3.3 (implicit TLS on 465, 993, 995; NetEase's 994), RFC 6409 (587 with STARTTLS).
_SMTP_DEFAULTS = _Defaults(_DEFAULT_PORT, frozenset({465, 2465, 994}), "starttls")
_INCOMING_DEFAULTS = {
    protocol: _Defaults({security: port for (p, security), port in _INCOMING_DEFAULT_PORT.items() if p == protocol},
                        frozenset({993, 995}), "tls")
    for protocol in ("imap", "pop3")
}


def _port_security(port: int | None, security: Security | None, base: Server | None,
                   defaults: _Defaults) -> tuple[int, Security]:
    """The one inference of a missing port or security: the base (preset or relay) server's when
    what is written agrees with it, else the standard for the other half."""
    if security is None:
        if base is not None and port in (None, base.port):
            security = base.security
        elif port is None:
            security = defaults.security
        else:
            security = "tls" if port in defaults.implicit_tls_ports else "starttls"
    if port is None:
        port = base.port if base is not None and base.security == security else defaults.ports[security]
    return port, security


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
    port, security = _port_security(raw.get("port"), raw.get("security"), base, _INCOMING_DEFAULTS[protocol])
    host = raw.get("host") or (base.host if base else "")
    ep = Endpoint(host=host, port=port, security=security, ca_file=_resolve_file(doc, raw.get("ca_file")),
                  provider=raw.get("provider"), path=path,
                  explicit=frozenset(k for k in ("host", "port", "security", "ca_file") if k in raw))
    return Incoming(ep, protocol, raw.get("username", username))


def _oauth2(doc: Document, raw: Mapping[str, Any], path: JsonPath, preset: Preset | None,
            incoming_protocol: str | None) -> OAuth2:
    block: Mapping[str, Any] = raw.get("oauth2") or {}
    where = path + ("oauth2",) if "oauth2" in raw else path + ("auth",)
    idp = preset.oauth2 if preset else None
    tenant = block.get("tenant") or (idp.tenant if idp else None)

    def url(key: str) -> str | None:
        value = block.get(key) or (getattr(idp, key) if idp else None)
        return value.replace("{tenant}", tenant or "") if value else None

    scopes = tuple(block["scopes"]) if "scopes" in block else (idp.scopes if idp else ())
    if "scopes" not in block and idp and incoming_protocol and incoming_protocol in idp.incoming_scopes:
        scopes += (idp.incoming_scopes[incoming_protocol],)  # one token for sending and reading
    return OAuth2(
        client_id=block.get("client_id"), tenant=tenant,
        refresh_token=secret(doc, block.get("refresh_token"), where + ("refresh_token",)),
        client_secret=secret(doc, block.get("client_secret"), where + ("client_secret",)),
        mechanism=block.get("mechanism") or (idp.mechanism if idp else "xoauth2"),
        token_url=url("token_url"), authorize_url=url("authorize_url"), device_url=url("device_url"),
        scopes=scopes, issuer=idp.issuer if idp and "token_url" not in block else None, path=where,
    )


def _login(doc: Document, raw: Mapping[str, Any], path: JsonPath, endpoint: Endpoint,
           username: str | None, *, default: AuthKind, incoming_protocol: str | None = None) -> Login:
    auth: AuthKind = raw.get("auth") or ("oauth2" if "oauth2" in raw else "password" if "password" in raw
                                         else default)
    return Login(
        auth=auth, username=username,
        password=secret(doc, raw.get("password"), path + ("password",)),
        oauth2=_oauth2(doc, raw, path, preset_of(endpoint), incoming_protocol) if auth == "oauth2" else None,
        path=path, explicit=frozenset(key for key in _OWN_LOGIN if key in raw),
    )


# An account that writes none of these logs in with its relay's login (a shared submission login).
_OWN_LOGIN = ("username", "password", "auth", "oauth2")


def build(doc: Document) -> Config:
    """Build the model from a schema-valid document whose references resolve."""
    data = doc.data
    relays: dict[str, Relay] = {}
    for name, raw in (data.get("relays") or {}).items():
        path = ("relays", name)
        preset = presets().get(raw.get("provider") or "")
        relay_endpoint = endpoint(doc, raw, path, preset_servers=preset.smtp if preset else ())
        relays[name] = Relay(
            name=name,
            endpoint=relay_endpoint,
            login=_login(doc, raw, path, relay_endpoint, raw.get("username", preset.username if preset else None),
                         default="none"),
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
            smtp = replace(smtp, provider=base.provider)
        else:
            smtp = endpoint(doc, raw, path, preset_servers=preset.smtp if preset else ())
        username = raw.get("username") or (preset.username if preset and preset.username else raw["email"])
        incoming = _incoming(doc, raw.get("incoming"), path + ("incoming",), raw.get("provider"), username)
        if relay is not None and not any(key in raw for key in _OWN_LOGIN):
            login = relay.login
        else:
            login = _login(doc, raw, path, smtp, username, default="none" if smtp.security == "none" else "password",
                           incoming_protocol=incoming.protocol if incoming else None)
        accounts.append(Account(
            email=raw["email"], name=raw.get("name"), smtp=smtp, login=login,
            incoming=incoming, relay=raw.get("relay"), path=path,
        ))

    fleet = {
        name: FleetGroup(
            name=name,
            hosts=tuple(raw.get("hosts") or ()),
            relay=relay_names(raw["relay"]),
            sender_relays=tuple(SenderRelay(sender, relay_names(relay), ("fleet", name, "sender_relays", sender))
                                for sender, relay in (raw.get("sender_relays") or {}).items()),
            recipient_relays=tuple(RecipientRelay(domain, relay_names(relay),
                                                  ("fleet", name, "recipient_relays", domain))
                                   for domain, relay in (raw.get("recipient_relays") or {}).items()),
            rewrite_sender=raw.get("rewrite_sender"),
            tls_level=raw.get("tls_level", DEFAULT_TLS_LEVEL),
            path=("fleet", name),
            explicit=frozenset(raw),
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
            **_publishing(raw, ("domains", name)),
        )
        for name, raw in (data.get("domains") or {}).items()
    }
    return Config(doc, MappingProxyType(relays), tuple(accounts), MappingProxyType(fleet),
                  MappingProxyType(domains))


def _publishing(raw: Mapping[str, Any], path: JsonPath) -> dict[str, Any]:
    """A domain's site, MTA-STS, TLS-RPT and page languages (SPEC §9)."""
    site, sts = raw.get("site"), raw.get("mta_sts")
    rua = raw.get("tls_rpt") or ()
    return {
        "site": Site(site.get("root"), site.get("certificate"), site.get("key"), path + ("site",))
        if site is not None else None,
        "mta_sts": MtaSts(sts["mode"], tuple(sts.get("mx") or ()), sts.get("max_age", DEFAULT_MTA_STS_MAX_AGE),
                          path + ("mta_sts",)) if sts is not None else None,
        # An address is a mailto: URI (RFC 8460 §3); the schema lets only addresses and URLs through.
        "tls_rpt": tuple(u if u.startswith(("https://", "http://")) else "mailto:" + u
                         for u in ([rua] if isinstance(rua, str) else rua)),
        "lang": tuple(raw["lang"]) if raw.get("lang") else DEFAULT_SITE_LANG,
    }


class EndpointUse(NamedTuple):
    what: str  # "relay 'ses'", "account a@example.com", ...: for messages
    endpoint: Endpoint
    login: Login
    smtp: bool  # submission (not an incoming IMAP/POP3 server)

    @property
    def password(self) -> SecretRef | None:
        return self.login.password

    @property
    def credential(self) -> SecretRef | None:
        """What the file sends over this connection's AUTH: a password or an OAuth2 token."""
        return self.login.secret if self.login.authenticates else None


def endpoint_uses(config: Config) -> list[EndpointUse]:
    """Every endpoint in the file with what uses it: relays, accounts' SMTP and incoming servers."""
    uses = [EndpointUse(f"relay '{r.name}'", r.endpoint, r.login, True) for r in config.relays.values()]
    for account in config.accounts:
        uses.append(EndpointUse(f"account {account.email}", account.smtp, account.login, True))
        if account.incoming is not None:
            uses.append(EndpointUse(f"incoming server of {account.email}", account.incoming.endpoint,
                                    account.login, False))
    return uses

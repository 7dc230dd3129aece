"""DNS: zone-file lines per domain, ``dns/<domain>.zone``.

For every domain of the file (``domains:`` and the domains of accounts' addresses):

* RFC 6186 / RFC 8314 SRV records that let mail clients find the servers of the domain's
  accounts: ``_submissions._tcp`` (implicit TLS), ``_submission._tcp`` (STARTTLS),
  ``_imaps``/``_imap``/``_pop3s``/``_pop3``. RFC 8314 §5.1: implicit TLS gets the more preferred
  (lower) priority.
* SPF and DMARC suggestions for what sends the domain's mail: the relays named in
  ``domains.DOMAIN.relays`` and the SMTP servers of its accounts.
* With ``mta_sts:``, the ``_mta-sts`` record of the policy the ``site`` target serves (RFC 8461),
  and with ``tls_rpt:`` the ``_smtp._tls`` reporting record (RFC 8460).

A domain that only appears as the address of a provider's own mailboxes (``someone@163.com`` on
the 163 preset) gets no file: its DNS belongs to the provider. Names are absolute (trailing dot,
punycode), so the lines can be pasted into any zone or pulled in with ``$INCLUDE``.
"""

from __future__ import annotations

from typing import Iterable, Iterator, NamedTuple

from smtpconf.model import Account, Config, DomainPolicy, Endpoint, address_literal, canonical_host, preset_of
from smtpconf.render import RenderContext, RenderedFile, safe_name
from smtpconf.render.client_settings import ServerSettings, incoming, outgoing

TARGET = "dns"
TEMPLATE = "dns/zone.j2"
TTL = 3600
DEFAULT_DMARC_POLICY = "none"

# RFC 6186 §3 and RFC 8314 §5.1 service labels, by (protocol, security). A plaintext server shares
# the STARTTLS label: RFC 6186 does not tell them apart (the client negotiates TLS).
SRV_SERVICE = {
    ("smtp", "tls"): "_submissions", ("smtp", "starttls"): "_submission", ("smtp", "none"): "_submission",
    ("imap", "tls"): "_imaps", ("imap", "starttls"): "_imap", ("imap", "none"): "_imap",
    ("pop3", "tls"): "_pop3s", ("pop3", "starttls"): "_pop3", ("pop3", "none"): "_pop3",
}
_PRIORITY_BASE = {"tls": 0, "starttls": 10, "none": 20}

class SrvRecord(NamedTuple):
    owner: str  # absolute: _submission._tcp.example.com.
    priority: int
    weight: int
    port: int
    target: str  # absolute
    users: tuple[str, ...]  # the accounts that use this server, for a comment


class SpfSource(NamedTuple):
    mechanism: str  # include:_spf.google.com, a:smtp.lab.example.test, ip4:192.0.2.1
    senders: tuple[str, ...]  # "relay 'ses'", "account a@example.com"


def render(ctx: RenderContext) -> Iterator[RenderedFile]:
    config = ctx.config
    for domain, accounts in _domains(config).items():
        policy = _policy(config, domain)
        content = ctx.template(
            TEMPLATE,
            domain=domain,
            domain_unicode=_unicode(domain),
            ttl=TTL,
            srv=_srv_records(domain, accounts),
            no_srv=_ip_servers(accounts),
            spf=_spf_sources(config, domain, accounts),
            dkim_selectors=policy.dkim_selectors if policy else (),
            dmarc_policy=(policy.dmarc_policy if policy else None) or DEFAULT_DMARC_POLICY,
            dmarc_from_file=bool(policy and policy.dmarc_policy),
            mta_sts_id=_mta_sts_id(policy),
            tls_rpt=policy.tls_rpt if policy else (),
        )
        yield RenderedFile(f"{TARGET}/{safe_name(domain)}.zone", content, TARGET, "domain", domain)


def _mta_sts_id(policy: DomainPolicy | None) -> str | None:
    """The ``id=`` of the ``_mta-sts`` record: a hash of the policy the site target serves, so it
    changes exactly when the policy does (RFC 8461 §3.1)."""
    if policy is None or policy.mta_sts is None:
        return None
    from smtpconf.render.mta_sts import policy_id, policy_text

    return policy_id(policy_text(policy.mta_sts))


def _unicode(domain: str) -> str:
    """The U-label form, for people reading the file (例子.测试 for xn--fsqu00a.xn--0zwm56d)."""
    try:
        return domain.encode("ascii").decode("idna")
    except UnicodeError:
        return domain


def fqdn(name: str) -> str:
    return canonical_host(name) + "."


def _policy(config: Config, domain: str) -> DomainPolicy | None:
    return next((p for name, p in config.domains.items() if fqdn(name) == fqdn(domain)), None)


def _domains(config: Config) -> dict[str, list[Account]]:
    """Domain (A-labels, lower case, no trailing dot) -> its accounts, in the order of the file."""
    found: dict[str, list[Account]] = {policy.host: [] for policy in config.domains.values()}
    for account in config.accounts:
        found.setdefault(account.domain_host, []).append(account)
    return {domain: accounts for domain, accounts in found.items()
            if fqdn(domain) in {fqdn(name) for name in config.domains}
            or not all(_providers_own_domain(a) for a in accounts)}


def _providers_own_domain(account: Account) -> bool:
    host, domain = fqdn(account.smtp.host), fqdn(account.domain)
    return account.smtp.provider is not None and host.endswith("." + domain)


def _srv_servers(accounts: Iterable[Account]) -> Iterator[tuple[str, str, int, ServerSettings, str]]:
    """(service label, absolute target, port, server, account) for every server of the accounts
    that SRV can name: a server given as an IP address cannot be an SRV target (RFC 2782)."""
    for account in accounts:
        for settings in (outgoing(account), incoming(account)):
            if settings is None or address_literal(settings.host):
                continue
            service = SRV_SERVICE[(settings.protocol, settings.security)]
            yield service, fqdn(settings.host), settings.port, settings, account.email


def expected_srv_services(accounts: Iterable[Account]) -> dict[str, set[tuple[str, int]]]:
    """What a domain's SRV records must hold for its accounts, the one rule both this target and
    the live check (srv-mismatch) follow: owner label ("_submission._tcp") -> {(target host in
    lower-case A-labels without the trailing dot, port)}. Servers given as IP addresses are left
    out, as in the rendered zone."""
    wanted: dict[str, set[tuple[str, int]]] = {}
    for service, target, port, _, _ in _srv_servers(accounts):
        wanted.setdefault(f"{service}._tcp", set()).add((target[:-1], port))
    return wanted


def _srv_records(domain: str, accounts: list[Account]) -> list[SrvRecord]:
    # One record per distinct server and service; a second server for the same service is a
    # fallback with the next priority, in the order of the file.
    servers: dict[tuple[str, str, int], list[tuple[ServerSettings, str]]] = {}
    for service, target, port, settings, email in _srv_servers(accounts):
        servers.setdefault((service, target, port), []).append((settings, email))
    records: list[SrvRecord] = []
    rank: dict[str, int] = {}
    for (service, target, port), uses in servers.items():
        rank[service] = rank.get(service, -1) + 1
        priority = _PRIORITY_BASE[uses[0][0].security] + rank[service]
        users = tuple(dict.fromkeys(email for _, email in uses))
        records.append(SrvRecord(f"{service}._tcp.{domain}.", priority, 1, port, target, users))
    return records


def _ip_servers(accounts: list[Account]) -> list[str]:
    """Servers given as IP addresses: an SRV target must be a host name (RFC 2782)."""
    found = [f"{s.host}:{s.port}" for a in accounts for s in (outgoing(a), incoming(a)) if s and address_literal(s.host)]
    return list(dict.fromkeys(found))


def spf_mechanism(endpoint: Endpoint) -> str:
    """What an SPF record needs to authorize mail sent through ``endpoint``: the provider's
    documented include (providers.yaml), else the server's own address."""
    preset = preset_of(endpoint)
    if preset is not None and preset.spf_includes:
        return f"include:{preset.spf_includes[0]}"
    host = endpoint.host_ascii
    literal = address_literal(host)
    if literal is not None:
        return f"ip{6 if ':' in literal else 4}:{literal}"
    return f"a:{host.rstrip('.').lower()}"


def _spf_sources(config: Config, domain: str, accounts: list[Account]) -> list[SpfSource]:
    policy = _policy(config, domain)
    senders: dict[str, list[str]] = {}
    for name in policy.relays if policy else ():
        relay = config.relays[name]
        senders.setdefault(spf_mechanism(relay.endpoint), []).append(f"relay '{name}'")
    for account in accounts:
        senders.setdefault(spf_mechanism(account.smtp), []).append(f"account {account.email}")
    return [SpfSource(mechanism, tuple(users)) for mechanism, users in senders.items()]

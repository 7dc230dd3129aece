"""What a live check saw, beside what it found wrong: the report of a check that passed.

A check that prints nothing cannot be told from one that skipped everything, so ``check`` also
reports, for each endpoint and each domain, the facts it verified (SPEC §10): the address it
connected to, the TLS version, the certificate, the AUTH mechanisms after TLS and the probe's time;
the SPF lookup count, the DMARC policy in force and where it was found, the MTA-STS mode; for a
domain with a discovery site, each URL fetched and whether it serves what the file renders.

The values are plain data, in a stable order (endpoints by host, port and security; domains by
name), so that two runs against the same servers differ only where the servers do.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple


class CertificateSeen(NamedTuple):
    subject: str  # RFC 4514 string, e.g. "CN=smtp.example.com,O=Example"
    issuer: str
    not_after: str  # ISO 8601, UTC: "2027-01-31T12:00:00Z"
    days_left: int


class ProbeSeen(NamedTuple):
    """What one SMTP probe established (fields are None where the dialogue did not get to them)."""

    address: str | None  # the address the probe connected to
    tls_version: str | None  # "TLSv1.3"
    certificate: CertificateSeen | None
    seconds: float


class EndpointSeen(NamedTuple):
    host: str
    port: int
    security: str
    uses: tuple[str, ...]  # "relay 'lab'", "account a@example.com", in the file's order
    addresses: tuple[str, ...]  # what the name resolved to
    resolved_by: str  # "system" (/etc/hosts, then DNS), "dns" (--nameserver) or "literal"
    probe: ProbeSeen | None  # None: not probed (--no-probe, an incoming server, no address)
    mechanisms: tuple[str, ...] | None  # AUTH after TLS; None when the probe did not get there


class SpfSeen(NamedTuple):
    lookups: int
    limit: int
    over_limit_by: str | None  # the top-level term that takes the count past the limit


class DmarcSeen(NamedTuple):
    policy: str  # what receivers apply: none | quarantine | reject (t=y already applied)
    tag: str  # the tag it comes from: p, sp or np
    published: str  # the tag's own value
    testing: bool  # t=y
    found_at: str  # "_dmarc.example.com"
    organizational_domain: str | None  # None when the walk could not finish
    queries: int  # DNS queries of the tree walk (RFC 9989: at most 8)


class MtaStsSeen(NamedTuple):
    mode: str | None  # enforce | testing | none, from the served policy; None when it was not read
    id: str | None  # the TXT record's id=; None without a record
    unread: str | None = None  # why the policy was not read (--no-probe, unreachable, does not parse)


class DomainSeen(NamedTuple):
    domain: str
    spf: SpfSeen | None
    dmarc: DmarcSeen | None
    mta_sts: MtaStsSeen | None


UrlOutcome = Literal["same", "drift", "unreachable"]


class UrlSeen(NamedTuple):
    method: str  # GET, or POST (Outlook's Autodiscover request)
    url: str
    outcome: UrlOutcome  # drift and unreachable come with their finding


class SiteSeen(NamedTuple):
    domain: str
    urls: tuple[UrlSeen, ...]  # in the order the site target publishes them


class Observations(NamedTuple):
    file: str
    endpoints: list[EndpointSeen]
    domains: list[DomainSeen]
    sites: tuple[SiteSeen, ...] = ()  # domains with site:, unless --no-probe


def as_json(observations: list[Observations]) -> list[dict[str, Any]]:
    """The documented JSON shape (docs/check.md): one object per file."""
    return [{
        "file": o.file,
        "endpoints": [_endpoint_json(e) for e in o.endpoints],
        "domains": [_domain_json(d) for d in o.domains],
        "sites": [{"domain": s.domain, "urls": [u._asdict() for u in s.urls]} for s in o.sites],
    } for o in observations]


def _endpoint_json(e: EndpointSeen) -> dict[str, Any]:
    probe = e.probe
    cert = probe.certificate if probe else None
    return {
        "host": e.host, "port": e.port, "security": e.security, "uses": list(e.uses),
        "addresses": list(e.addresses), "resolved_by": e.resolved_by,
        "probed": probe is not None,
        "address": probe.address if probe else None,
        "tls_version": probe.tls_version if probe else None,
        "certificate": cert._asdict() if cert else None,
        "auth_mechanisms": list(e.mechanisms) if e.mechanisms is not None else None,
        "seconds": round(probe.seconds, 3) if probe else None,
    }


def _domain_json(d: DomainSeen) -> dict[str, Any]:
    return {
        "domain": d.domain,
        "spf": d.spf._asdict() if d.spf else None,
        "dmarc": d.dmarc._asdict() if d.dmarc else None,
        "mta_sts": d.mta_sts._asdict() if d.mta_sts else None,
    }


def describe_endpoint(e: EndpointSeen) -> str:
    """``endpoint smtp.example.com:587 starttls (relay 'lab'): 192.0.2.1, TLSv1.3, ...``"""
    shown = list(e.uses[:3]) + ([f"{len(e.uses) - 3} more"] if len(e.uses) > 3 else [])
    head = f"endpoint {e.host}:{e.port} {e.security} ({', '.join(shown)})"
    if not e.addresses:
        return f"{head}: no address, not probed"
    resolved = {"system": "system resolver", "dns": "DNS", "literal": "address literal"}[e.resolved_by]
    if e.probe is None:
        return f"{head}: {', '.join(e.addresses)} ({resolved}), not probed"
    p = e.probe
    parts = [f"{p.address or ', '.join(e.addresses)} ({resolved})"]
    if p.tls_version:
        parts.append(p.tls_version)
    if p.certificate:
        c = p.certificate
        parts.append(f"certificate {c.subject or '(no subject)'} issued by {c.issuer or '(no issuer)'}, "
                     f"{c.days_left} days to expiry ({c.not_after[:10]})")
    if e.mechanisms is not None:
        after = " after TLS" if e.security != "none" else ""
        parts.append(f"AUTH{after}: {' '.join(e.mechanisms) or 'none offered'}")
    else:
        parts.append("dialogue not completed (see the findings)")
    parts.append(f"probe {p.seconds:.2f} s")
    return f"{head}: {', '.join(parts)}"


def describe_domain(d: DomainSeen) -> str:
    """``domain example.com: SPF 4 of 10 DNS lookups, DMARC p=reject at _dmarc.example.com, ...``"""
    parts = []
    if d.spf:
        over = f" ({d.spf.over_limit_by} takes it over)" if d.spf.over_limit_by else ""
        parts.append(f"SPF {d.spf.lookups} of {d.spf.limit} DNS lookups{over}")
    else:
        parts.append("SPF not verified")
    if d.dmarc:
        m = d.dmarc
        how = f"{m.tag}={m.published}" + (f" t=y (applied as {m.policy})" if m.testing else "")
        org = f", organizational domain {m.organizational_domain}" if m.organizational_domain else ""
        parts.append(f"DMARC {how} at {m.found_at} ({m.queries} queries{org})")
    else:
        parts.append("DMARC not verified")
    if d.mta_sts:
        mode = f"mode {d.mta_sts.mode}" if d.mta_sts.mode else f"policy not read: {d.mta_sts.unread}"
        parts.append(f"MTA-STS id={d.mta_sts.id} ({mode})")
    else:
        parts.append("no MTA-STS")
    return f"domain {d.domain}: {', '.join(parts)}"


def describe_site(s: SiteSeen) -> str:
    """``site example.com: 7 URLs fetched over HTTPS, all serve what the file renders``"""
    counts = {outcome: sum(u.outcome == outcome for u in s.urls) for outcome in ("same", "drift", "unreachable")}
    head = f"site {s.domain}: {len(s.urls)} URL{'s' if len(s.urls) != 1 else ''} fetched over HTTPS"
    if counts["same"] == len(s.urls):
        return f"{head}, all serve what the file renders"
    parts = [f"{counts['same']} serve what the file renders"]
    if counts["drift"]:
        parts.append(f"{counts['drift']} differ (discovery-drift)")
    if counts["unreachable"]:
        parts.append(f"{counts['unreachable']} unreachable (discovery-unreachable)")
    return f"{head}: {', '.join(parts)}"

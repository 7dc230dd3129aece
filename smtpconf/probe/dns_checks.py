"""DNS checks of each ``domains`` entry: SPF, DMARC, DKIM, MTA-STS / TLS-RPT and SRV records.

Every check distinguishes "the record is missing" from "the resolver did not answer": the second
is ``dns-timeout`` and never a claim about the domain.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Iterable, NamedTuple

from smtpconf.model import Account, Config, DomainPolicy, canonical_host, preset_of
from smtpconf.probe.hit import LiveHit
from smtpconf.probe.observations import DmarcSeen, DomainSeen, MtaStsSeen, SpfSeen
from smtpconf.probe.resolver import Answer, Resolver
from smtpconf.probe.spf import LOOKUP_LIMIT, VOID_LIMIT, SpfTree, spf_records, walk

if TYPE_CHECKING:
    from smtpconf.probe.discovery import SiteOptions

DMARC_ORDER = ("none", "quarantine", "reject")
DMARC_WALK_LIMIT = 8  # RFC 9989 §4.10: the tree walk makes at most 8 queries
_DMARC_VERSION = re.compile(r"^\s*v\s*=\s*DMARC1\s*(;|$)", re.IGNORECASE)
_OBSOLETE = {"pct": "pct= is replaced by t=y for testing, t=n otherwise",
             "rf": "rf= is replaced by nothing: remove it", "ri": "ri= is replaced by nothing: remove it"}
_STS_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


class _Announcement(NamedTuple):
    """An optional TXT record that switches a feature on: one record starting with its version tag."""
    what: str  # for messages
    version: str
    several: str  # how a message counts several of them
    section: str  # where the RFC says there is one


_MTA_STS = _Announcement("MTA-STS", "v=STSv1", "v=STSv1 records", "RFC 8461 §3.1")
_TLS_RPT = _Announcement("TLS-RPT", "v=TLSRPTv1", "TLS-RPT records", "RFC 8460 §3")


def _tags(record: str) -> dict[str, str]:
    """``k=v; k=v`` tag lists (DMARC, MTA-STS, TLS-RPT, DKIM): keys lower case, values stripped."""
    tags = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip()
    return tags


def dmarc_walk(domain: str) -> list[str]:
    """The names the RFC 9989 tree walk asks about, in order: the domain itself; then, for a
    domain of 8 labels or more, its last 7 labels; then one label fewer each time, down to the
    top-level domain. At most DMARC_WALK_LIMIT names."""
    labels = domain.split(".")
    below = min(len(labels) - 1, DMARC_WALK_LIMIT - 1)
    return [domain] + [".".join(labels[-keep:]) for keep in range(below, 0, -1)]


def organizational_domain(domain: str, found: list[tuple[str, dict[str, str]]]) -> str:
    """RFC 9989 §4.10.2, from the records of the walk (domain up to where it stopped): the domain of
    a psd=n record; one label below a psd=y record above the domain; else the record with the
    fewest labels."""
    labels = domain.split(".")
    for target, tags in found:
        psd = tags.get("psd", "u").lower()
        if psd == "n":
            return target
        if psd == "y" and target != domain:
            return ".".join(labels[-(target.count(".") + 2):])
    return found[-1][0]


class DomainCheck:
    def __init__(self, config: Config, policy: DomainPolicy, resolver: Resolver,
                 site: SiteFetch | None = None) -> None:
        self.config, self.policy, self.resolver = config, policy, resolver
        self.site = site  # how to fetch the MTA-STS policy; None: not fetched (--no-probe)
        self.domain = policy.host
        self.hits: list[LiveHit] = []
        self.seen_spf: SpfSeen | None = None
        self.seen_dmarc: DmarcSeen | None = None
        self.seen_mta_sts: MtaStsSeen | None = None

    @property
    def seen(self) -> DomainSeen:
        return DomainSeen(self.domain, self.seen_spf, self.seen_dmarc, self.seen_mta_sts)

    def hit(self, rule: str, message: str) -> None:
        self.hits.append(LiveHit(self.policy.path, rule, message))

    def unknown(self, what: str, answer: Answer) -> None:
        self.hit("dns-timeout", f"{what}: {answer.reason}; result unknown")

    async def run(self) -> list[LiveHit]:
        jobs = [self.spf(), self.dmarc(), self.mta_sts(), self.tls_rpt()]
        jobs += [self.dkim(selector) for selector in self.policy.dkim_selectors]
        if self.policy.srv:
            jobs.append(self.srv())
        await asyncio.gather(*jobs)
        return self.hits

    async def spf(self) -> None:
        answer = await self.resolver.lookup(self.domain, "TXT")
        if answer.status == "unknown":
            return self.unknown(f"SPF (TXT {self.domain})", answer)
        records = spf_records(answer)
        if len(records) != 1:
            return self.hit("spf-missing", f"{self.domain} has no SPF record (TXT v=spf1)" if not records else
                            f"{self.domain} has {len(records)} SPF records; receivers treat that as permerror")
        tree = await walk(self.resolver, self.domain, records[0])
        for reason in tree.unknown:
            self.hit("dns-timeout", f"SPF of {self.domain}, {reason}; result unknown")
        for error in tree.errors:
            self.hit("spf-missing", f"the SPF record of {self.domain} is broken: {error} (permerror)")
        if not tree.unknown:
            self.seen_spf = SpfSeen(tree.lookups, LOOKUP_LIMIT, tree.over_limit_by)
        if tree.lookups > LOOKUP_LIMIT:
            self.hit("spf-too-many-lookups", f"the SPF record of {self.domain} needs {tree.lookups} DNS lookups "
                                             f"(limit {LOOKUP_LIMIT}; {tree.over_limit_by} takes it over): "
                                             f"{' '.join(tree.lookup_terms[:15])}")
        if tree.voids > VOID_LIMIT:
            self.hit("spf-too-many-lookups", f"the SPF record of {self.domain} has {tree.voids} void lookups "
                                             f"(limit {VOID_LIMIT}): {' '.join(tree.void_terms)}")
        if not tree.unknown:
            await self.spf_relays(tree)

    async def spf_relays(self, tree: SpfTree) -> None:
        for name in self.policy.relays:
            relay = self.config.relays.get(name)
            if relay is None:
                continue
            # A provider's relay is covered by its documented include (providers.yaml), even though
            # its submission host's address is not one of its sending addresses.
            preset = preset_of(relay.endpoint)
            includes = preset.spf_includes if preset else ()
            if any(i in tree.includes for i in includes):
                continue
            addresses = await self.resolver.addresses(relay.endpoint.host_ascii)
            if not addresses.found:
                continue  # reported on the relay itself (dns-no-address / dns-timeout)
            if any(tree.covers(a) for a in addresses.records):
                continue
            hint = f" (expected include:{includes[0]})" if includes else ""
            self.hit("spf-relay-not-included", f"relay '{name}' ({relay.endpoint.host_ascii}, "
                                               f"{', '.join(addresses.records)}) is not authorized by the SPF "
                                               f"record of {self.domain}{hint}")

    async def dmarc(self) -> None:
        """RFC 9989 §4.10: the DNS tree walk from the domain up, at most 8 queries. The policy in
        force is the first record found; the walk goes on to find the organizational domain, and
        stops at psd=n, or at psd=y above the domain itself (psd=u, the default, does not stop it)."""
        found: list[tuple[str, dict[str, str]]] = []  # (domain, tags), from the domain up
        discarded: list[tuple[str, int]] = []  # (name, how many records) where several were published
        tried: list[str] = []
        finished = True
        for index, target in enumerate(dmarc_walk(self.domain)):
            name = f"_dmarc.{target}"
            answer = await self.resolver.lookup(name, "TXT")
            tried.append(name)
            if answer.status == "unknown":
                if not found:
                    return self.unknown(f"DMARC (TXT {name})", answer)
                finished = False  # the policy is known; only the organizational domain is not
                break
            # §4.10 steps 2 and 7: only records that start with v=DMARC1 count, and several at one
            # name are all discarded (the walk goes on as if there were none).
            records = [r for r in answer.records if _DMARC_VERSION.match(r)]
            if len(records) > 1:
                discarded.append((name, len(records)))
                continue
            if not records:
                continue
            tags = _tags(records[0])
            found.append((target, tags))
            psd = tags.get("psd", "u").lower()
            if psd == "n" or (psd == "y" and index > 0):
                break
        if discarded and discarded[0][0] == f"_dmarc.{self.domain}":
            name, count = discarded[0]
            instead = ""
            if found:
                instead = f"; the policy in force is then the one at _dmarc.{found[0][0]}"
            self.hit("dmarc-missing", f"{count} DMARC records at {name}: receivers discard them all{instead}")
        if not found:
            if not discarded or discarded[0][0] != f"_dmarc.{self.domain}":
                note = "".join(f"; {n} has {c} records, all discarded" for n, c in discarded)
                self.hit("dmarc-missing", f"no DMARC record at {tried[0]}"
                                          + (f" (nor at {', '.join(tried[1:])})" if len(tried) > 1 else "")
                                          + note)
            return
        await self.dmarc_policy(found, len(tried), finished)

    async def dmarc_policy(self, found: list[tuple[str, dict[str, str]]], queries: int, finished: bool) -> None:
        target, tags = found[0]
        name = f"_dmarc.{target}"
        policy = tags.get("p", "").lower()
        if policy not in DMARC_ORDER:
            return self.hit("dmarc-missing", f"the DMARC record at {name} has no valid p= tag "
                                             f"(got '{policy}'); receivers ignore it")
        tag = "p"
        if target != self.domain:
            # §4.10: a record found above the domain applies its subdomain policy: np= when the
            # domain does not exist (no A, AAAA or MX), sp= otherwise, p= when they are absent.
            if tags.get("np", "").lower() in DMARC_ORDER and not await self.exists():
                tag = "np"
            elif tags.get("sp", "").lower() in DMARC_ORDER:
                tag = "sp"
        published = tags[tag].lower()
        testing = tags.get("t", "n").lower() == "y"
        # t=y: receivers apply the policy one level lower (reject as quarantine, quarantine as none).
        in_force = DMARC_ORDER[max(0, DMARC_ORDER.index(published) - 1)] if testing else published
        self.seen_dmarc = DmarcSeen(in_force, tag, published, testing, name,
                                    organizational_domain(self.domain, found) if finished else None, queries)
        obsolete = [key for key in ("pct", "rf", "ri") if key in tags]
        if obsolete:
            self.hit("dmarc-obsolete-tag", f"the DMARC record at {name} has {', '.join(f'{k}={tags[k]}' for k in obsolete)}:"
                                           f" historic since RFC 9989, receivers ignore "
                                           f"{'it' if len(obsolete) == 1 else 'them'} "
                                           f"({'; '.join(_OBSOLETE[k] for k in obsolete)})")
        wanted = self.policy.dmarc_policy
        if wanted in DMARC_ORDER and DMARC_ORDER.index(in_force) < DMARC_ORDER.index(wanted):
            source = f" (inherited from {name})" if target != self.domain else ""
            how = f"{tag}={published}" + (f" with t=y, applied as {in_force}" if testing else "")
            self.hit("dmarc-weak-policy", f"DMARC of {self.domain} has {how}{source}; the file asks for "
                                          f"at least p={wanted}")

    async def exists(self) -> bool:
        """RFC 9989 (as RFC 9091 §2.7): a domain exists for DMARC when it has an A, AAAA or MX
        record. A lookup that got no answer counts as existing: np= is not claimed on a guess."""
        answers = await asyncio.gather(*(self.resolver.lookup(self.domain, t) for t in ("A", "AAAA", "MX")))
        return any(a.status != "missing" for a in answers)

    async def dkim(self, selector: str) -> None:
        name = f"{selector}._domainkey.{self.domain}"
        answer = await self.resolver.lookup(name, "TXT")
        if answer.status == "unknown":
            return self.unknown(f"DKIM (TXT {name})", answer)
        keys = [_tags(r) for r in answer.records if "p=" in r.replace(" ", "")]
        if not keys:
            return self.hit("dkim-missing", f"no DKIM key at {name}")
        if not any(k.get("p") for k in keys):
            self.hit("dkim-missing", f"the DKIM key at {name} is revoked (empty p=)")

    async def announcement(self, name: str, kind: _Announcement) -> dict[str, str] | None:
        """The tags of the one ``kind`` record at ``name``; None when there is none to read, which
        is said where it is a problem (an unanswered lookup, several records, none among the TXT)."""
        answer = await self.resolver.lookup(name, "TXT")
        if answer.status == "unknown":
            self.unknown(f"{kind.what} (TXT {name})", answer)
            return None
        if not answer.found:
            return None  # optional: a domain without MTA-STS or TLS-RPT is not misconfigured
        records = [r for r in answer.records if r.replace(" ", "").startswith(kind.version)]
        if len(records) != 1:
            what = f"no record starting with {kind.version}" if not records else f"{len(records)} {kind.several}"
            self.hit("mta-sts-invalid", f"{name} has {what} ({kind.section})")
            return None
        return _tags(records[0])

    async def mta_sts(self) -> None:
        name = f"_mta-sts.{self.domain}"
        tags = await self.announcement(name, _MTA_STS)
        if tags is None:
            return
        sts_id = tags.get("id", "")
        self.seen_mta_sts = await self.mta_sts_mode(sts_id)
        if not _STS_ID.match(sts_id):
            self.hit("mta-sts-invalid", f"{name}: id= must be 1-32 letters or digits (RFC 8461 §3.1), "
                                        f"got '{sts_id}'")

    async def mta_sts_mode(self, sts_id: str) -> MtaStsSeen:
        """The mode of the policy the record announces, read as a sending MTA reads it (RFC 8461
        §3.3). Only reported: what is wrong with a served policy is the site check's to say
        (discovery.py, for domains with ``site:``)."""
        if self.site is None:
            return MtaStsSeen(None, sts_id, "not fetched (--no-probe)")
        from smtpconf.probe.discovery import FetchError, fetch
        from smtpconf.render.mta_sts import PolicyError, parse_policy
        from smtpconf.render.site import MTA_STS_FILE, published_urls

        url = published_urls(self.domain, MTA_STS_FILE)[0]
        try:
            reply = await fetch(url, self.resolver, self.site.limit, self.site.options)
        except FetchError as exc:
            return MtaStsSeen(None, sts_id, f"{url}: {exc}")
        if reply.status != 200:
            return MtaStsSeen(None, sts_id, f"{url}: HTTP {reply.status}")
        try:
            return MtaStsSeen(parse_policy(reply.body.decode("utf-8")).mode, sts_id)
        except (PolicyError, UnicodeDecodeError) as exc:
            return MtaStsSeen(None, sts_id, f"{url} does not parse: {exc}")

    async def tls_rpt(self) -> None:
        name = f"_smtp._tls.{self.domain}"
        tags = await self.announcement(name, _TLS_RPT)
        if tags is None:
            return
        rua = [u.strip() for u in tags.get("rua", "").split(",") if u.strip()]
        bad = [u for u in rua if not u.lower().startswith(("mailto:", "https:"))]
        if not rua or bad:
            self.hit("mta-sts-invalid", f"{name}: rua= must list mailto: or https: URIs (RFC 8460 §3), "
                                        f"got '{','.join(rua)}'")

    async def srv(self) -> None:
        expected = expected_srv(self.config.accounts_of(self.policy))
        await asyncio.gather(*(self.srv_service(service, wanted) for service, wanted in expected.items()))

    async def srv_service(self, service: str, wanted: set[tuple[str, int]]) -> None:
        name = f"{service}.{self.domain}"
        uses = ", ".join(f"{h}:{p}" for h, p in sorted(wanted))
        answer = await self.resolver.lookup(name, "SRV")
        if answer.status == "unknown":
            return self.unknown(f"SRV {name}", answer)
        if not answer.found:
            return self.hit("srv-mismatch", f"no SRV record {name}; the accounts use {uses}")
        published = set()
        for record in answer.records:
            _priority, _weight, port, target = record.split()
            published.add((canonical_host(target), int(port)))
        if any(target == "" for target, _ in published):  # RFC 6186 §4: target "." = not offered
            return self.hit("srv-mismatch", f"{name} says the service is not offered (target '.'); "
                                            f"the accounts use {uses}")
        missing = wanted - published
        if missing:
            shown = ", ".join(f"{h}:{p}" for h, p in sorted(published))
            self.hit("srv-mismatch", f"{name} points to {shown}; the accounts use "
                                     f"{', '.join(f'{h}:{p}' for h, p in sorted(missing))}")


def expected_srv(accounts: Iterable[Account]) -> dict[str, set[tuple[str, int]]]:
    """The SRV records a domain's accounts imply (RFC 6186, RFC 8314 §5.1): by the one rule the dns
    render target also writes them with, so that a rendered zone never fails srv-mismatch."""
    from smtpconf.render.dns import expected_srv_services

    return expected_srv_services(accounts)


class SiteFetch(NamedTuple):
    """How the MTA-STS policies are fetched: as the discovery sites are (probe/discovery.py)."""

    limit: asyncio.Semaphore
    options: SiteOptions


async def check_domains(config: Config, resolver: Resolver,
                        site: SiteFetch | None = None) -> tuple[list[LiveHit], list[DomainSeen]]:
    checks = [DomainCheck(config, p, resolver, site) for p in config.domains.values()]
    results = await asyncio.gather(*(c.run() for c in checks))
    return [hit for hits in results for hit in hits], sorted((c.seen for c in checks), key=lambda d: d.domain)

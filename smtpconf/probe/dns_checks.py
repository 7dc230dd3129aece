"""DNS checks of each ``domains`` entry: SPF, DMARC, DKIM, MTA-STS / TLS-RPT and SRV records.

Every check distinguishes "the record is missing" from "the resolver did not answer": the second
is ``dns-timeout`` and never a claim about the domain.
"""

from __future__ import annotations

import asyncio
import re
from typing import Iterable

from smtpconf.model import Account, Config, DomainPolicy, preset_of
from smtpconf.probe.hit import LiveHit
from smtpconf.probe.resolver import Answer, Resolver
from smtpconf.probe.spf import LOOKUP_LIMIT, VOID_LIMIT, SpfTree, spf_records, walk

DMARC_ORDER = ("none", "quarantine", "reject")
_STS_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


def _tags(record: str) -> dict[str, str]:
    """``k=v; k=v`` tag lists (DMARC, MTA-STS, TLS-RPT, DKIM): keys lower case, values stripped."""
    tags = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip()
    return tags


class DomainCheck:
    def __init__(self, config: Config, policy: DomainPolicy, resolver: Resolver) -> None:
        self.config, self.policy, self.resolver = config, policy, resolver
        self.domain = policy.host
        self.hits: list[LiveHit] = []

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
        if tree.lookups > LOOKUP_LIMIT:
            self.hit("spf-too-many-lookups", f"the SPF record of {self.domain} needs {tree.lookups} DNS lookups "
                                             f"(limit {LOOKUP_LIMIT}): {' '.join(tree.lookup_terms[:15])}")
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
        # RFC 7489 §6.6.3: without a record of its own, a domain falls under the record of its
        # organizational domain. Without the Public Suffix List here, walk up the parents (as
        # DMARCbis's tree walk does) and stop before the top-level domain.
        labels = self.domain.split(".")
        tried: list[str] = []
        for start in range(max(1, len(labels) - 1)):
            name = "_dmarc." + ".".join(labels[start:])
            answer = await self.resolver.lookup(name, "TXT")
            if answer.status == "unknown":
                return self.unknown(f"DMARC (TXT {name})", answer)
            records = [r for r in answer.records if r.replace(" ", "").lower().startswith("v=dmarc1")]
            if records:
                return self.dmarc_record(name, records, inherited=start > 0)
            tried.append(name)
        self.hit("dmarc-missing", f"no DMARC record at {tried[0]}"
                                  + (f" (nor at {', '.join(tried[1:])})" if len(tried) > 1 else ""))

    def dmarc_record(self, name: str, records: list[str], *, inherited: bool) -> None:
        if len(records) > 1:
            return self.hit("dmarc-missing", f"{len(records)} DMARC records at {name}: receivers ignore them all")
        tags = _tags(records[0])
        policy = tags.get("p", "").lower()
        if policy not in DMARC_ORDER:
            return self.hit("dmarc-missing", f"the DMARC record at {name} has no valid p= tag "
                                             f"(got '{policy}'); receivers ignore it")
        tag = "p"
        if inherited and tags.get("sp", "").lower() in DMARC_ORDER:  # §6.3: sp= is for subdomains
            tag, policy = "sp", tags["sp"].lower()
        wanted = self.policy.dmarc_policy
        if wanted in DMARC_ORDER and DMARC_ORDER.index(policy) < DMARC_ORDER.index(wanted):
            source = f" (inherited from {name})" if inherited else ""
            self.hit("dmarc-weak-policy", f"DMARC of {self.domain} has {tag}={policy}{source}; the file asks for "
                                          f"at least p={wanted}")

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

    async def mta_sts(self) -> None:
        name = f"_mta-sts.{self.domain}"
        answer = await self.resolver.lookup(name, "TXT")
        if answer.status == "unknown":
            return self.unknown(f"MTA-STS (TXT {name})", answer)
        if not answer.found:
            return  # optional: a domain without MTA-STS is not misconfigured
        records = [r for r in answer.records if r.replace(" ", "").startswith("v=STSv1")]
        if len(records) != 1:
            what = "no record starting with v=STSv1" if not records else f"{len(records)} v=STSv1 records"
            return self.hit("mta-sts-invalid", f"{name} has {what} (RFC 8461 §3.1)")
        sts_id = _tags(records[0]).get("id", "")
        if not _STS_ID.match(sts_id):
            self.hit("mta-sts-invalid", f"{name}: id= must be 1-32 letters or digits (RFC 8461 §3.1), "
                                        f"got '{sts_id}'")

    async def tls_rpt(self) -> None:
        name = f"_smtp._tls.{self.domain}"
        answer = await self.resolver.lookup(name, "TXT")
        if answer.status == "unknown":
            return self.unknown(f"TLS-RPT (TXT {name})", answer)
        if not answer.found:
            return
        records = [r for r in answer.records if r.replace(" ", "").startswith("v=TLSRPTv1")]
        if len(records) != 1:
            what = "no record starting with v=TLSRPTv1" if not records else f"{len(records)} TLS-RPT records"
            return self.hit("mta-sts-invalid", f"{name} has {what} (RFC 8460 §3)")
        rua = [u.strip() for u in _tags(records[0]).get("rua", "").split(",") if u.strip()]
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
            published.add((target.rstrip(".").lower(), int(port)))
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


async def check_domains(config: Config, resolver: Resolver) -> list[LiveHit]:
    results = await asyncio.gather(*(DomainCheck(config, p, resolver).run() for p in config.domains.values()))
    return [hit for hits in results for hit in hits]

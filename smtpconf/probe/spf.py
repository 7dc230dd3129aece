"""SPF (RFC 7208) as a receiver would evaluate it, reduced to what ``check`` needs to know.

The walk follows ``include:`` and ``redirect=``, counts the terms that cost a DNS lookup (limit
10, §4.6.4) and the lookups that came back empty (limit 2), and collects what the record
authorizes: networks (``ip4``/``ip6``, and the addresses behind ``a``/``mx``) and the names it
includes. Lookups are made concurrently; the counts do not depend on their order.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from typing import Union

from smtpconf.model import canonical_host
from smtpconf.probe.resolver import Answer, Resolver

LOOKUP_LIMIT = 10
VOID_LIMIT = 2
MX_HOST_LIMIT = 10  # §4.6.4: at most 10 MX names are looked up per mx mechanism
# Enough to say "needs 14 lookups" instead of stopping at 11, but bounded against include loops
# and hostile trees.
_WALK_LIMIT = 40

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@dataclass
class SpfTree:
    lookups: int = 0
    voids: int = 0
    lookup_terms: list[str] = field(default_factory=list)
    void_terms: list[str] = field(default_factory=list)
    networks: list[Network] = field(default_factory=list)
    includes: set[str] = field(default_factory=set)  # include: and redirect= targets, lower case
    pass_all: bool = False
    unknown: list[str] = field(default_factory=list)  # "include:x: no answer within 5s"
    errors: list[str] = field(default_factory=list)  # permerrors other than the limits
    # The lookups of each term of the top record, nested ones included, in the record's order
    # (redirect= last): which term takes the count past the limit does not depend on timing.
    costs: dict[str, int] = field(default_factory=dict)

    def count(self, branch: str | None, term: str) -> None:
        self.lookups += 1
        self.lookup_terms.append(term)
        key = branch or term
        self.costs[key] = self.costs.get(key, 0) + 1

    @property
    def over_limit_by(self) -> str | None:
        """The term of the top record whose lookups take the total past LOOKUP_LIMIT (None when
        within it): the include to flatten or drop first."""
        total = 0
        for term, cost in self.costs.items():
            total += cost
            if total > LOOKUP_LIMIT:
                return term
        return None

    def covers(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return self.pass_all or any(ip.version == net.version and ip in net for net in self.networks)


def spf_records(answer: Answer) -> list[str]:
    """The SPF records among a name's TXT records (§4.5: exactly "v=spf1", then a space or end)."""
    return [r for r in answer.records if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]


async def walk(resolver: Resolver, domain: str, record: str) -> SpfTree:
    tree = SpfTree()
    for term in record.split()[1:]:  # the record's order, whatever order the lookups finish in
        lowered = term.lower()
        name = lowered.lstrip("+-~?").split(":", 1)[0].split("/", 1)[0]
        if name in ("include", "a", "mx", "ptr", "exists"):
            tree.costs[term] = 0
    await _evaluate(resolver, tree, domain, record, frozenset({canonical_host(domain)}), None)
    return tree


async def _evaluate(resolver: Resolver, tree: SpfTree, domain: str, record: str, chain: frozenset[str],
                    branch: str | None) -> None:
    """``chain``: the names being evaluated above this one. Including one of them is a loop;
    including a name twice from different branches is not, and costs its lookups twice (§4.6.4)."""
    jobs = []
    redirect = None
    for term in record.split()[1:]:
        lowered = term.lower()
        if lowered.startswith("redirect="):
            redirect = term.split("=", 1)[1]
            continue
        if "=" in lowered.split(":", 1)[0]:  # exp= and unknown modifiers cost nothing
            continue
        qualifier = lowered[0] if lowered[0] in "+-~?" else "+"
        mechanism = lowered.lstrip("+-~?")
        name, _, arg = mechanism.partition(":")
        name, _, cidr = name.partition("/")
        if name in ("ip4", "ip6"):
            if qualifier == "+":
                try:
                    tree.networks.append(ipaddress.ip_network(arg, strict=False))
                except ValueError:
                    tree.errors.append(f"'{term}' is not a valid network")
            continue
        if name == "all":
            tree.pass_all = tree.pass_all or qualifier == "+"
            continue
        if name not in ("include", "a", "mx", "ptr", "exists"):
            tree.errors.append(f"unknown mechanism '{term}'")
            continue
        tree.count(branch, term)
        if tree.lookups > _WALK_LIMIT or "%" in arg:  # macros depend on the sender: not expandable here
            continue
        target = arg.split("/", 1)[0] if arg else domain
        prefix = cidr or (arg.split("/", 1)[1] if "/" in arg else "")
        if name == "include":
            jobs.append(_include(resolver, tree, term, target, chain, branch or term))
        elif name == "a":
            jobs.append(_address(resolver, tree, term, target, prefix, qualifier == "+"))
        elif name == "mx":
            jobs.append(_mx(resolver, tree, term, target, prefix, qualifier == "+"))
    await asyncio.gather(*jobs)
    # §6.1: redirect= is ignored when the record has an "all" mechanism.
    if redirect and not any(t.lower().lstrip("+-~?") == "all" for t in record.split()):
        tree.count(branch, f"redirect={redirect}")
        if tree.lookups <= _WALK_LIMIT and "%" not in redirect:
            await _include(resolver, tree, f"redirect={redirect}", redirect, chain, branch or f"redirect={redirect}")


async def _include(resolver: Resolver, tree: SpfTree, term: str, target: str, chain: frozenset[str],
                   branch: str) -> None:
    key = canonical_host(target)
    tree.includes.add(key)
    if key in chain:
        tree.errors.append(f"'{term}' includes a record that includes it (a loop)")
        return
    answer = await resolver.lookup(target, "TXT")
    if not _counted(tree, term, answer):
        return
    records = spf_records(answer)
    if len(records) != 1:
        what = "no SPF record" if not records else f"{len(records)} SPF records"
        tree.errors.append(f"'{term}' points to a name with {what}")
        return
    await _evaluate(resolver, tree, target, records[0], chain | {key}, branch)


async def _address(resolver: Resolver, tree: SpfTree, term: str, host: str, prefix: str, authorizes: bool) -> None:
    answer = await resolver.addresses(host)
    if _counted(tree, term, answer) and authorizes:
        _add_networks(tree, answer.records, prefix)


async def _mx(resolver: Resolver, tree: SpfTree, term: str, host: str, prefix: str, authorizes: bool) -> None:
    answer = await resolver.lookup(host, "MX")
    if not _counted(tree, term, answer):
        return
    exchanges = [r.split()[-1].rstrip(".") for r in answer.records][:MX_HOST_LIMIT]
    results = await asyncio.gather(*(resolver.addresses(x) for x in exchanges if x))
    for result in results:
        if result.status == "unknown":
            tree.unknown.append(f"{term}: {result.reason}")
        elif result.found and authorizes:
            _add_networks(tree, result.records, prefix)


def _counted(tree: SpfTree, term: str, answer: Answer) -> bool:
    """Count the answer to a mechanism's own query: a name without the records is a void lookup
    (§4.6.4), and goes on with no records; one that got no answer is unknown, and stops the term."""
    if answer.status == "unknown":
        tree.unknown.append(f"{term}: {answer.reason}")
        return False
    if answer.status == "missing":
        tree.voids += 1
        tree.void_terms.append(term)
    return True


def _add_networks(tree: SpfTree, addresses: tuple[str, ...], prefix: str) -> None:
    # "a/24//64": the first length is for IPv4, the second for IPv6 (§5.6 dual-cidr-length).
    v4, _, v6 = prefix.partition("//")
    for address in addresses:
        ip = ipaddress.ip_address(address)
        length = (v4 if ip.version == 4 else v6) or str(ip.max_prefixlen)
        try:
            tree.networks.append(ipaddress.ip_network(f"{address}/{length}", strict=False))
        except ValueError:
            tree.errors.append(f"bad prefix length '/{length}'")

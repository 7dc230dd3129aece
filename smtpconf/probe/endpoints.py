"""Address lookups and SMTP probes of every endpoint in the file.

Endpoints with the same ``Endpoint.key`` (host, port, security, CA) are looked up and probed
once, even across files; each relay or account that uses one gets the findings at its own line,
judged for its own login: ``auth-mechanism-missing`` when the server's AUTH offers none of the
mechanisms that login uses (``Login.mechanisms``).
"""

from __future__ import annotations

import asyncio
from typing import Callable, NamedTuple

from smtpconf.model import Config, Endpoint, EndpointUse, endpoint_uses, preset_of
from smtpconf.probe.hit import LiveHit
from smtpconf.probe.observations import ProbeSeen
from smtpconf.probe.resolver import Answer, Resolver
from smtpconf.probe.smtp import Probed, Problem, probe

OAUTH2_MECHANISMS = ("XOAUTH2", "OAUTHBEARER")


class Outcome(NamedTuple):
    address: Answer
    problems: list[Problem]  # empty when not probed
    mechanisms: tuple[str, ...] | None = None  # AUTH after TLS; None when not probed that far
    seen: ProbeSeen | None = None  # what the probe saw, for the check's report (observations)


class Prober:
    def __init__(self, resolver: Resolver, limit: asyncio.Semaphore, timeout: float, *, smtp: bool,
                 on_done: Callable[[], None] = lambda: None) -> None:
        self.resolver, self.limit, self.timeout, self.smtp = resolver, limit, timeout, smtp
        self.on_done = on_done
        self._tasks: dict[tuple[object, ...], asyncio.Task[Outcome]] = {}

    def outcome(self, endpoint: Endpoint, probe_it: bool) -> asyncio.Task[Outcome]:
        key = (*endpoint.key, probe_it)
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = asyncio.ensure_future(self._run(endpoint, probe_it))
        return task

    async def _run(self, endpoint: Endpoint, probe_it: bool) -> Outcome:
        try:
            # Resolved before taking a probe slot: the lookups take slots of their own, and a
            # probe holding one while it waits for DNS could starve the resolver.
            # As the clients will: the system's resolver, or --nameserver when given (resolver.py).
            address = await self.resolver.client_addresses(endpoint.host_ascii)
            if not (address.found and probe_it and self.smtp):
                return Outcome(address, [])
            async with self.limit:
                probed: Probed = await probe(endpoint, address.records, self.timeout)
            return Outcome(address, probed.problems, probed.mechanisms, probed.seen)
        finally:
            self.on_done()

    async def check(self, config: Config) -> list[LiveHit]:
        uses = [u for u in endpoint_uses(config) if u.endpoint.host]
        # Incoming (IMAP/POP3) servers get the address check only: the probe speaks SMTP.
        outcomes = await asyncio.gather(*(self.outcome(u.endpoint, u.smtp) for u in uses))
        hits: list[LiveHit] = []
        for use, outcome in zip(uses, outcomes):
            hits += _hits(use, outcome)
        return hits


def _hits(use: EndpointUse, outcome: Outcome) -> list[LiveHit]:
    path, host = use.endpoint.path, use.endpoint.host_ascii
    if outcome.address.status == "missing":
        return [LiveHit(path, "dns-no-address", f"{host} has no address record (A/AAAA): "
                                                f"{outcome.address.reason}")]
    if outcome.address.status == "unknown":
        return [LiveHit(path, "dns-timeout", f"address of {host}: {outcome.address.reason}; "
                                             "not probed, result unknown")]
    hits = [LiveHit(path, p.rule, p.message + (_provider_note(use) if p.rule == "auth-not-offered" else ""))
            for p in outcome.problems if not (p.auth_only and use.credential is None)]
    missing = _mechanism_missing(use, outcome.mechanisms)
    return hits + ([LiveHit(path, "auth-mechanism-missing", missing)] if missing else [])


def _mechanism_missing(use: EndpointUse, offered: tuple[str, ...] | None) -> str | None:
    """The message of ``auth-mechanism-missing``, or None. Judged like ``auth-not-offered``: only
    for a use with a credential; and only when AUTH is offered at all (else that rule speaks)."""
    wanted = use.login.mechanisms
    if not offered or not wanted or use.credential is None or set(wanted) & set(offered):
        return None
    where = f"{use.endpoint.host_ascii}:{use.endpoint.port}"
    after = " after TLS" if use.endpoint.security != "none" else ""
    if use.login.auth == "oauth2":
        needs = f"not {wanted[0]}, which the login of {use.what} uses (auth: oauth2)"
        hint = ("; it takes passwords: check host and port, or log in with auth: password"
                if {"PLAIN", "LOGIN"} & set(offered) else "")
    else:
        needs = f"neither PLAIN nor LOGIN, which the password login of {use.what} needs"
        other = [m for m in OAUTH2_MECHANISMS if m in offered]
        hint = f"; it wants OAuth2: use auth: oauth2 (mechanism {other[0].lower()})" if other else ""
    return f"{where} offers AUTH {' '.join(offered)}{after}, {needs}{hint}" + _provider_note(use)


def _provider_note(use: EndpointUse) -> str:
    # Office 365 turns SMTP AUTH off per mailbox: the preset's note says where to turn it on.
    preset = preset_of(use.endpoint)
    return f" ({preset.title}: {preset.note})" if preset else ""

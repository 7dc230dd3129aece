"""``smtpconf check``: lint, then DNS checks and SMTP probes of everything, concurrently.

Lint errors stop the command before anything goes on the network: the model is only trustworthy
for a file that lints clean (warnings are fine). Then every domain check and every unique endpoint
runs at once under one ``--concurrency`` limit, each query and probe bounded by ``--timeout``, so
the wall time is that of the slowest check, not the sum.

Besides the findings, the check reports what it verified (:mod:`smtpconf.probe.observations`): in
text unless ``--quiet``, and always in json.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, NamedTuple

from smtpconf.errors import UsageError
from smtpconf.findings import Finding, fails
from smtpconf.lint import FileResult, expand, lint_path
from smtpconf.model import Config, Endpoint, address_literal, endpoint_uses

if TYPE_CHECKING:
    from smtpconf.probe.endpoints import Prober
    from smtpconf.probe.hit import LiveHit
    from smtpconf.probe.observations import DomainSeen, EndpointSeen, Observations
    from smtpconf.probe.resolver import Resolver
    from smtpconf.report import ReportFormat

# Each probe slot may hold two descriptors (the connection and, on a silent plaintext port, the
# TLS sniff); the interpreter, the resolver's sockets and the files need a few more.
_FDS_PER_SLOT, _FDS_BASE = 2, 64


class Progress:
    """``checked 12/40`` on stderr, rewritten in place; only for a person watching a terminal."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.enabled = sys.stderr.isatty() and total > 0
        self._shown = 0.0

    def tick(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.enabled and (now - self._shown > 0.1 or self.done == self.total):
            self._shown = now
            sys.stderr.write(f"\rsmtpconf: checked {self.done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


class LiveOptions(NamedTuple):
    """The settings of the live stage."""

    nameserver: str | None = None
    timeout: float = 10.0  # each query and probe
    concurrency: int = 50
    dns: bool = True
    probe: bool = True
    ca_file: str | None = None  # also trusted when fetching the discovery sites (probe/discovery.py)
    https_port: int = 443  # of the discovery sites; another only for a test server

    def checked(self) -> LiveOptions:
        """These options, or a usage error naming the flag (the CLI's types check the numbers
        first; options built by hand get the same answer)."""
        if not 0 < self.timeout < float("inf"):
            raise UsageError("--timeout must be a positive, finite number of seconds")
        if self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if self.ca_file is not None and not os.path.isfile(self.ca_file):
            raise UsageError(f"--ca-file {self.ca_file}: no such file (a PEM file of CA certificates)")
        return self


@dataclass(frozen=True)
class CheckOptions:
    """What ``smtpconf check`` was asked to do (built by the CLI, or by hand)."""

    files: tuple[str, ...]
    live: LiveOptions = LiveOptions()
    format: ReportFormat | None = None  # None: text, or github under GITHUB_ACTIONS (report.default_format)
    strict: bool = False
    quiet: bool = False  # text: the findings only, not what was verified


def execute(options: CheckOptions) -> int:
    from smtpconf.report import default_format, emit
    from smtpconf.rules import all_rules

    live = options.live.checked()
    results = [lint_path(path, file) for path, file in expand(options.files)]
    findings = [f for r in results for f in r.findings]
    skipped = False
    observations: list[Observations] = []
    if live.dns or live.probe:
        if any(f.level == "error" for f in findings):
            skipped = True
        else:
            ensure_descriptors(live.concurrency)
            found, observations = asyncio.run(live_findings(results, live))
            findings += found
    findings = sorted(dict.fromkeys(findings), key=Finding.sort_key)
    fmt = options.format or default_format()
    if fmt == "json":
        from smtpconf.probe.observations import as_json
        from smtpconf.report.json import report

        sys.stdout.write(report(findings, all_rules(), observations=as_json(observations)))
    else:
        if fmt == "text" and not options.quiet:
            from smtpconf.report.text import observations_report

            sys.stdout.write(observations_report(observations))
        emit(findings, all_rules(), fmt)
    if skipped:
        print("smtpconf: live checks skipped: fix the errors above first", file=sys.stderr)
    return 1 if fails(findings, options.strict) else 0


def ensure_descriptors(concurrency: int) -> None:
    """Raise the soft limit on open files as far as ``--concurrency`` needs (up to the hard
    limit); below that, say so before the first probe instead of failing in the middle."""
    try:
        import resource
    except ImportError:  # not on this platform: nothing to check
        return
    needed = concurrency * _FDS_PER_SLOT + _FDS_BASE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard == resource.RLIM_INFINITY or hard >= needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        return
    most = max(1, (hard - _FDS_BASE) // _FDS_PER_SLOT)
    raise UsageError(f"--concurrency {concurrency} needs about {needed} open files, but this process may "
                     f"open at most {hard} (ulimit -n): use --concurrency {most} or less, or raise the limit")


async def live_findings(results: list[FileResult], options: LiveOptions) -> tuple[list[Finding], list[Observations]]:
    # dnspython's resolver is imported here, not at start-up (STYLE: lint stays light).
    from smtpconf.probe.discovery import SiteOptions, check_sites
    from smtpconf.probe.dns_checks import SiteFetch, check_domains
    from smtpconf.probe.endpoints import Prober
    from smtpconf.probe.observations import DomainSeen, Observations
    from smtpconf.probe.relay_lookup import postfix_lookups
    from smtpconf.probe.resolver import Resolver
    from smtpconf.rules import all_rules

    configs = [r.config for r in results if r.config is not None]
    limit = asyncio.Semaphore(options.concurrency)
    resolver = Resolver(options.nameserver, options.timeout, limit)
    keys = {(*u.endpoint.key, u.smtp) for c in configs for u in endpoint_uses(c) if u.endpoint.host}
    progress = Progress(len(keys) + (sum(len(c.domains) for c in configs) if options.dns else 0))
    prober = Prober(resolver, limit, options.timeout, smtp=options.probe, on_done=progress.tick)

    site_options = SiteOptions(options.timeout, options.ca_file, options.https_port)
    # The MTA-STS policies are fetched like the discovery sites: over HTTPS, so not under --no-probe.
    site_fetch = SiteFetch(limit, site_options) if options.probe else None

    async def one(config_index: int) -> tuple[list[Finding], Observations]:
        config = configs[config_index]
        domains: tuple[list[LiveHit], list[DomainSeen]] = ([], [])
        sites = asyncio.ensure_future(check_sites(config, resolver, limit, site_options)) if options.probe else None
        endpoint_hits = asyncio.gather(prober.check(config), postfix_lookups(config, resolver))
        if options.dns:
            (probed, relays), domains = await asyncio.gather(
                endpoint_hits, _counted(check_domains(config, resolver, site_fetch), len(config.domains), progress))
        else:
            probed, relays = await endpoint_hits
        site_hits, sites_seen = await sites if sites is not None else ([], ())
        hits = probed + relays + domains[0] + site_hits
        rules = all_rules()
        found = [config.doc.finding(h.path, rules[h.rule].level, h.rule, h.message, key=True) for h in hits]
        seen = Observations(config.file, await endpoints_seen(config, prober, resolver), domains[1], sites_seen)
        return [f for f in found if not config.doc.ignored(f)], seen

    try:
        per_file = await asyncio.gather(*(one(i) for i in range(len(configs))))
    finally:
        progress.close()
    return [f for found, _ in per_file for f in found], [seen for _, seen in per_file]


async def endpoints_seen(config: Config, prober: Prober, resolver: Resolver) -> list[EndpointSeen]:
    """One entry per endpoint of the file (as probed: once per host, port, security and CA), with
    every relay and account that uses it; sorted, so that two runs compare line by line."""

    from smtpconf.probe.observations import EndpointSeen

    uses: dict[tuple[object, ...], list[str]] = {}
    endpoints: dict[tuple[object, ...], Endpoint] = {}
    for use in endpoint_uses(config):
        if use.endpoint.host:
            key: tuple[object, ...] = (*use.endpoint.key, use.smtp)
            uses.setdefault(key, []).append(use.what)
            endpoints.setdefault(key, use.endpoint)
    seen = []
    for key, endpoint in endpoints.items():
        outcome = await prober.outcome(endpoint, bool(key[-1]))
        how = "literal" if address_literal(endpoint.host_ascii) else "system" if resolver.system else "dns"
        seen.append(EndpointSeen(endpoint.host_ascii, endpoint.port, endpoint.security, tuple(uses[key]),
                                 outcome.address.records, how, outcome.seen, outcome.mechanisms))
    return sorted(seen, key=lambda e: (e.host, e.port, e.security, e.probe is None))


async def _counted(job: Awaitable[tuple[list[LiveHit], list[DomainSeen]]], count: int,
                   progress: Progress) -> tuple[list[LiveHit], list[DomainSeen]]:
    try:
        return await job
    finally:
        for _ in range(count):
            progress.tick()


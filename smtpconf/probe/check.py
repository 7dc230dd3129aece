"""``smtpconf check``: lint, then DNS checks and SMTP probes of everything, concurrently.

Lint errors stop the command before anything goes on the network: the model is only trustworthy
for a file that lints clean (warnings are fine). Then every domain check and every unique endpoint
runs at once under one ``--concurrency`` limit, each query and probe bounded by ``--timeout``, so
the wall time is that of the slowest check, not the sum.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TYPE_CHECKING, Awaitable, NamedTuple

from smtpconf.errors import UsageError
from smtpconf.findings import Finding, fails
from smtpconf.lint import FileResult, expand, lint_path
from smtpconf.model import endpoint_uses

if TYPE_CHECKING:
    from smtpconf.probe.hit import LiveHit


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
    """The flags of the live stage, checked once."""

    nameserver: str | None
    timeout: float
    concurrency: int
    dns: bool
    probe: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LiveOptions:
        if args.timeout <= 0:
            raise UsageError("--timeout must be a positive number of seconds")
        if args.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        return cls(args.nameserver, args.timeout, args.concurrency, not args.no_dns, not args.no_probe)


def run(args: argparse.Namespace) -> int:
    from smtpconf.report import emit
    from smtpconf.rules import all_rules

    options = LiveOptions.from_args(args)
    results = [lint_path(path, file) for path, file in expand(args.files)]
    findings = [f for r in results for f in r.findings]
    skipped = False
    if options.dns or options.probe:
        if any(f.level == "error" for f in findings):
            skipped = True
        else:
            findings += asyncio.run(live_findings(results, options))
    findings = sorted(dict.fromkeys(findings), key=Finding.sort_key)
    emit(findings, all_rules(), args.format)
    if skipped:
        print("smtpconf: live checks skipped: fix the errors above first", file=sys.stderr)
    return 1 if fails(findings, args.strict) else 0


async def live_findings(results: list[FileResult], options: LiveOptions) -> list[Finding]:
    # dnspython's resolver is imported here, not at start-up (STYLE: lint stays light).
    from smtpconf.probe.dns_checks import check_domains
    from smtpconf.probe.endpoints import Prober
    from smtpconf.probe.resolver import Resolver
    from smtpconf.rules import all_rules

    configs = [r.config for r in results if r.config is not None]
    limit = asyncio.Semaphore(options.concurrency)
    resolver = Resolver(options.nameserver, options.timeout, limit)
    keys = {(*u.endpoint.key, u.smtp) for c in configs for u in endpoint_uses(c) if u.endpoint.host}
    progress = Progress(len(keys) + (sum(len(c.domains) for c in configs) if options.dns else 0))
    prober = Prober(resolver, limit, options.timeout, smtp=options.probe, on_done=progress.tick)

    async def one(config_index: int) -> list[Finding]:
        config = configs[config_index]
        jobs = [prober.check(config)]
        if options.dns:
            jobs.append(_counted(check_domains(config, resolver), len(config.domains), progress))
        hits = [hit for part in await asyncio.gather(*jobs) for hit in part]
        rules = all_rules()
        found = [config.doc.finding(h.path, rules[h.rule].level, h.rule, h.message, key=True) for h in hits]
        return [f for f in found if not config.doc.ignored(f)]

    try:
        per_file = await asyncio.gather(*(one(i) for i in range(len(configs))))
    finally:
        progress.close()
    return [f for found in per_file for f in found]


async def _counted(job: Awaitable[list[LiveHit]], count: int, progress: Progress) -> list[LiveHit]:
    try:
        return await job
    finally:
        for _ in range(count):
            progress.tick()


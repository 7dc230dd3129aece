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
from typing import TYPE_CHECKING, Awaitable

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


def run(args: argparse.Namespace) -> int:
    from smtpconf.cli import default_format

    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    results = [lint_path(path, file) for path, file in expand(args.files)]
    findings = [f for r in results for f in r.findings]
    if not any(f.level == "error" for f in findings) and not (args.no_dns and args.no_probe):
        findings += asyncio.run(live_findings(results, args))
    findings = sorted(dict.fromkeys(findings), key=Finding.sort_key)
    _emit(findings, args.format or default_format())
    return 1 if fails(findings, args.strict) else 0


async def live_findings(results: list[FileResult], args: argparse.Namespace) -> list[Finding]:
    # dnspython's resolver is imported here, not at start-up (STYLE: lint stays light).
    from smtpconf.probe.dns_checks import check_domains
    from smtpconf.probe.endpoints import Prober
    from smtpconf.probe.resolver import Resolver
    from smtpconf.rules import all_rules

    configs = [r.config for r in results if r.config is not None]
    limit = asyncio.Semaphore(args.concurrency)
    resolver = Resolver(args.nameserver, args.timeout, limit)
    keys = {(*u.endpoint.key, u.smtp) for c in configs for u in endpoint_uses(c) if u.endpoint.host}
    progress = Progress(len(keys) + (0 if args.no_dns else sum(len(c.domains) for c in configs)))
    prober = Prober(resolver, limit, args.timeout, smtp=not args.no_probe, on_done=progress.tick)

    async def one(config_index: int) -> list[Finding]:
        config = configs[config_index]
        jobs = [prober.check(config)]
        if not args.no_dns:
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


def _emit(findings: list[Finding], fmt: str) -> None:
    from smtpconf.report import reporter, summary
    from smtpconf.rules import all_rules

    sys.stdout.write(reporter(fmt)(findings, all_rules()))
    if fmt == "text" and findings:
        print(f"smtpconf: {summary(findings)}", file=sys.stderr)

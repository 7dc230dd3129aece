"""Benchmark of `smtpconf check` (issues 6 and 14). Prints a markdown table for docs/benchmarks.md.

    .venv/bin/python bench/bench_check.py        (as root: it serves DNS on 127.0.0.1:53)

1. Probes: 200 SMTP endpoints on loopback (one DelayedGreetingFarm, STARTTLS, each greeting after
   1 s) behind one name in a local nsd; `smtpconf check --concurrency 200` wall time, which should
   be one probe's latency (goal < 2.5 s), not 200 of them. Then 2,000 endpoints at
   `--concurrency 2000`. For both sizes, smtpconf's own CPU seconds per probe: the CPU time of the
   check (its process, user + system) less that of the same check with `--no-probe` (start-up,
   lint, address lookups), divided by the number of probes (goal: no higher at 2,000 than at 200).
   And a file-descriptor limit below what `--concurrency 2000` needs must be one clear message.
2. DNS: 100 and 1,000 domains (SPF with nested includes, DMARC, DKIM, TLS-RPT) served by nsd on
   127.0.0.1:53; `smtpconf check --no-probe` beside `checkdmarc -n 127.0.0.1` on the same zones.
   checkdmarc cannot be told another port, hence port 53. The zones publish no MTA-STS record:
   checkdmarc would then fetch the policy over HTTPS with the system resolver, i.e. leave loopback.

Everything listens on 127.0.0.1 only; nothing here contacts another address.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.nsd import NsdServer, port_is_free, zone_text  # noqa: E402
from tests.support.smtpserver import DelayedGreetingFarm, TestCA  # noqa: E402

BIN = Path(sys.executable).parent
WORK = ROOT / "bench" / "_work" / "check"
ZONE = "bench.test"
ENDPOINTS, MANY_ENDPOINTS, DELAY, DOMAINS, MANY_DOMAINS = 200, 2000, 1.0, 100, 1000
# The top of the RFC 9989 DMARC tree walk: a real top-level domain answers for it.
TLD = {"test": zone_text("test")}


def timed(argv: list[str], limit: int | None = None) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall seconds, CPU seconds of the command's own process (user + system), the result."""
    def lower_limit() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=1200, preexec_fn=lower_limit)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done


def median_of(argv: list[str], runs: int, ok: tuple[int, ...] = (0,)) -> float:
    return medians_of(argv, runs, ok)[0]


def medians_of(argv: list[str], runs: int, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    times, cpus = [], []
    for _ in range(runs):
        seconds, cpu, done = timed(argv)
        assert done.returncode in ok, f"{argv[:3]} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        times.append(seconds)
        cpus.append(cpu)
    return statistics.median(times), statistics.median(cpus)


class ProbeRow:
    def __init__(self, count: int, wall: float, cpu: float, cpu_without_probes: float) -> None:
        self.count, self.wall, self.cpu, self.base = count, wall, cpu, cpu_without_probes

    @property
    def per_probe_ms(self) -> float:
        return (self.cpu - self.base) / self.count * 1000


def bench_probes(ca: TestCA, count: int, runs: int) -> tuple[ProbeRow, float | None, str | None]:
    """The row for ``count`` endpoints at ``--concurrency count``; for 200 also the wall time at
    ``--concurrency 20``; for 2,000 the message under a descriptor limit below the need."""
    host = f"slow.{ZONE}"
    with DelayedGreetingFarm(count, DELAY, "starttls", ssl_context=ca.issue([host]), hostname=host) as farm, \
            NsdServer({ZONE: zone_text(ZONE, [("slow", "A", "127.0.0.1")]), **TLD}) as dns:
        lines = ["version: 1", "relays:"]
        for i, port in enumerate(farm.ports):
            lines += [f"  r{i:04d}:", f"    host: {host}", f"    port: {port}", "    security: starttls",
                      f"    ca_file: {ca.ca_pem_path}"]
        config = WORK / f"probes-{count}.yaml"
        config.write_text("\n".join(lines) + "\n")
        argv = [str(BIN / "smtpconf"), "check", str(config), "--concurrency", str(count),
                "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", "20", "--quiet"]
        _, _, done = timed(argv)
        assert done.returncode == 0 and not done.stdout.strip(), \
            f"every endpoint must pass (exit {done.returncode}):\n{done.stdout[:2000]}{done.stderr[-2000:]}"
        wall, cpu = medians_of(argv, runs)
        _, base = medians_of(argv + ["--no-probe"], runs)
        narrow = median_of(argv[:3] + ["--concurrency", "20"] + argv[5:], 1) if count == ENDPOINTS else None
        refused = None
        if count == MANY_ENDPOINTS:
            _, _, done = timed(argv, limit=1024)
            assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
            refused = done.stderr.strip()
        return ProbeRow(count, wall, cpu, base), narrow, refused


def dns_zones(domains: int) -> dict[str, str]:
    records: list[tuple[str, str, str]] = [
        ("relay", "A", "127.0.0.10"),
        # A provider-style include tree shared by every domain: 3 lookups deep.
        ("_spf", "TXT", f"v=spf1 include:_n1.{ZONE} include:_n2.{ZONE} ~all"),
        ("_n1", "TXT", "v=spf1 ip4:192.0.2.0/25 ip6:2001:db8::/48 ~all"),
        ("_n2", "TXT", f"v=spf1 ip4:198.51.100.0/24 a:relay.{ZONE} ~all"),
    ]
    for i in range(domains):
        d = f"d{i:04d}"
        records += [
            (d, "TXT", f"v=spf1 mx include:_spf.{ZONE} include:{d}-own.{ZONE} -all"),
            (f"{d}-own", "TXT", "v=spf1 ip4:127.0.0.10 ip4:203.0.113.0/24 -all"),
            (d, "MX", f"10 relay.{ZONE}."),
            (f"_dmarc.{d}", "TXT", f"v=DMARC1; p=reject; rua=mailto:dmarc@{d}.{ZONE}"),
            (f"s1._domainkey.{d}", "TXT", "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1"),
            (f"_smtp._tls.{d}", "TXT", f"v=TLSRPTv1; rua=mailto:tls@{d}.{ZONE}"),
        ]
    return {ZONE: zone_text(ZONE, records), **TLD}


def dns_config(domains: int) -> Path:
    lines = ["version: 1", "relays:", "  lab:", f"    host: relay.{ZONE}", "    port: 587", "domains:"]
    for i in range(domains):
        lines += [f"  d{i:04d}.{ZONE}:", "    relays: [lab]", "    dkim_selectors: [s1]",
                  "    dmarc_policy: quarantine"]
    config = WORK / f"domains-{domains}.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def bench_dns(domains: int, runs: int, their_runs: int) -> tuple[float, float | None, str]:
    config, zones = dns_config(domains), dns_zones(domains)
    on_53 = os.geteuid() == 0 and port_is_free(53) and shutil.which("checkdmarc", path=str(BIN)) is not None
    with NsdServer(zones, port=53 if on_53 else None) as dns:
        ours = median_of([str(BIN / "smtpconf"), "check", str(config), "--no-probe", "--quiet", "--nameserver",
                          f"127.0.0.1:{dns.port}", "--timeout", "5"], runs)
        if not on_53:
            return ours, None, "checkdmarc not run: needs root, a free port 53 and checkdmarc installed"
        names = [f"d{i:04d}.{ZONE}" for i in range(domains)]
        theirs = median_of([str(BIN / "checkdmarc"), "-n", "127.0.0.1", "-t", "5", "-f", "json", *names], their_runs)
    return ours, theirs, ""


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    with TestCA(WORK / "ca") as ca:
        few, probes_20, _ = bench_probes(ca, ENDPOINTS, 3)
        many, _, refused = bench_probes(ca, MANY_ENDPOINTS, 3)
    rows = [(DOMAINS, *bench_dns(DOMAINS, 5, 3)), (MANY_DOMAINS, *bench_dns(MANY_DOMAINS, 3, 1))]
    cpus = os.cpu_count()
    print(f"| what ({cpus} CPUs, {sys.implementation.name} {sys.version.split()[0]}) | tool | wall time |")
    print("|---|---|---|")
    for row in (few, many):
        print(f"| {row.count} STARTTLS endpoints, greeting after {DELAY:g} s, `--concurrency {row.count}` "
              f"| smtpconf check | {row.wall:.2f} s; CPU {row.cpu:.2f} s, {row.base:.2f} s of it without the "
              f"probes: **{row.per_probe_ms:.2f} ms per probe** |")
        if row.count == ENDPOINTS:
            assert probes_20 is not None
            print(f"| same, `--concurrency 20` | smtpconf check | {probes_20:.2f} s |")
    notes = []
    for domains, ours, theirs, note in rows:
        print(f"| DNS checks of {domains} domains (local nsd) | smtpconf check --no-probe | {ours:.2f} s |")
        if theirs is not None:
            print(f"| same zones, same nsd on 127.0.0.1:53 | checkdmarc {_version()} | {theirs:.2f} s "
                  f"(smtpconf: {ours / theirs:.3f}x its time) |")
        elif note not in notes:
            notes.append(note)
    print(f"\n`ulimit -n 1024`, `--concurrency {MANY_ENDPOINTS}`: {refused}")
    for note in notes:
        print(f"\n{note}")


def _version() -> str:
    done = subprocess.run([str(BIN / "checkdmarc"), "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).strip().split()[-1] if done.returncode == 0 else "?"


if __name__ == "__main__":
    main()

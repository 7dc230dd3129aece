"""Benchmark of `smtpconf check` (issue 6). Prints a markdown table for docs/benchmarks.md.

    .venv/bin/python bench/bench_check.py        (as root: it serves DNS on 127.0.0.1:53)

1. Probes: 200 SMTP endpoints on loopback (one DelayedGreetingFarm, STARTTLS, each greeting after
   1 s) behind one name in a local nsd; `smtpconf check --concurrency 200` wall time, which should
   be one probe's latency (goal < 2.5 s), not 200 of them.
2. DNS: 100 domains (SPF with nested includes, DMARC, DKIM, TLS-RPT) served by nsd on
   127.0.0.1:53; `smtpconf check --no-probe` beside `checkdmarc -n 127.0.0.1` on the same zones.
   checkdmarc cannot be told another port, hence port 53. The zones publish no MTA-STS record:
   checkdmarc would then fetch the policy over HTTPS with the system resolver, i.e. leave loopback.

Everything listens on 127.0.0.1 only; nothing here contacts another address.
"""

from __future__ import annotations

import os
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
ENDPOINTS, DELAY, DOMAINS = 200, 1.0, 100


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600)
    return time.perf_counter() - start, done


def median_of(argv: list[str], runs: int, ok: tuple[int, ...] = (0,)) -> float:
    times = []
    for _ in range(runs):
        seconds, done = timed(argv)
        assert done.returncode in ok, f"{argv[:3]} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        times.append(seconds)
    return statistics.median(times)


def bench_probes(ca: TestCA) -> tuple[float, float]:
    host = f"slow.{ZONE}"
    with DelayedGreetingFarm(ENDPOINTS, DELAY, "starttls", ssl_context=ca.issue([host]), hostname=host) as farm, \
            NsdServer({ZONE: zone_text(ZONE, [("slow", "A", "127.0.0.1")])}) as dns:
        lines = ["version: 1", "relays:"]
        for i, port in enumerate(farm.ports):
            lines += [f"  r{i:03d}:", f"    host: {host}", f"    port: {port}", "    security: starttls",
                      f"    ca_file: {ca.ca_pem_path}"]
        config = WORK / "probes.yaml"
        config.write_text("\n".join(lines) + "\n")
        argv = [str(BIN / "smtpconf"), "check", str(config), "--concurrency", str(ENDPOINTS),
                "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", "10"]
        seconds, done = timed(argv)
        assert done.returncode == 0 and not done.stdout.strip(), f"every endpoint must pass:\n{done.stdout[:2000]}"
        sequential = median_of(argv[:3] + ["--concurrency", "20"] + argv[5:], 1)
        return median_of(argv, 3), sequential


def dns_zones() -> dict[str, str]:
    records: list[tuple[str, str, str]] = [
        ("relay", "A", "127.0.0.10"),
        # A provider-style include tree shared by every domain: 3 lookups deep.
        ("_spf", "TXT", f"v=spf1 include:_n1.{ZONE} include:_n2.{ZONE} ~all"),
        ("_n1", "TXT", "v=spf1 ip4:192.0.2.0/25 ip6:2001:db8::/48 ~all"),
        ("_n2", "TXT", f"v=spf1 ip4:198.51.100.0/24 a:relay.{ZONE} ~all"),
    ]
    for i in range(DOMAINS):
        d = f"d{i:03d}"
        records += [
            (d, "TXT", f"v=spf1 mx include:_spf.{ZONE} include:{d}-own.{ZONE} -all"),
            (f"{d}-own", "TXT", "v=spf1 ip4:127.0.0.10 ip4:203.0.113.0/24 -all"),
            (d, "MX", f"10 relay.{ZONE}."),
            (f"_dmarc.{d}", "TXT", f"v=DMARC1; p=reject; rua=mailto:dmarc@{d}.{ZONE}"),
            (f"s1._domainkey.{d}", "TXT", "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1"),
            (f"_smtp._tls.{d}", "TXT", f"v=TLSRPTv1; rua=mailto:tls@{d}.{ZONE}"),
        ]
    return {ZONE: zone_text(ZONE, records)}


def dns_config() -> Path:
    lines = ["version: 1", "relays:", "  lab:", f"    host: relay.{ZONE}", "    port: 587", "domains:"]
    for i in range(DOMAINS):
        lines += [f"  d{i:03d}.{ZONE}:", "    relays: [lab]", "    dkim_selectors: [s1]",
                  "    dmarc_policy: quarantine"]
    config = WORK / "domains.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def bench_dns() -> tuple[float, float | None, str]:
    config, zones = dns_config(), dns_zones()
    on_53 = os.geteuid() == 0 and port_is_free(53) and shutil.which("checkdmarc", path=str(BIN)) is not None
    with NsdServer(zones, port=53 if on_53 else None) as dns:
        ours = median_of([str(BIN / "smtpconf"), "check", str(config), "--no-probe", "--nameserver",
                          f"127.0.0.1:{dns.port}", "--timeout", "5"], 5)
        if not on_53:
            return ours, None, "checkdmarc not run: needs root, a free port 53 and checkdmarc installed"
        domains = [f"d{i:03d}.{ZONE}" for i in range(DOMAINS)]
        theirs = median_of([str(BIN / "checkdmarc"), "-n", "127.0.0.1", "-t", "5", "-f", "json", *domains], 3)
    return ours, theirs, ""


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    with TestCA(WORK / "ca") as ca:
        probes, probes_20 = bench_probes(ca)
    ours, theirs, note = bench_dns()
    cpus = os.cpu_count()
    print(f"| what ({cpus} CPUs, {sys.implementation.name} {sys.version.split()[0]}) | tool | wall time |")
    print("|---|---|---|")
    print(f"| {ENDPOINTS} STARTTLS endpoints, greeting after {DELAY:g} s, `--concurrency {ENDPOINTS}` "
          f"| smtpconf check | {probes:.2f} s |")
    print(f"| same, `--concurrency 20` | smtpconf check | {probes_20:.2f} s |")
    print(f"| DNS checks of {DOMAINS} domains (local nsd) | smtpconf check --no-probe | {ours:.2f} s |")
    if theirs is not None:
        print(f"| same zones, same nsd on 127.0.0.1:53 | checkdmarc {_version()} | {theirs:.2f} s "
              f"(smtpconf: {theirs / ours:.1f}x faster) |")
    else:
        print(f"\n{note}")


def _version() -> str:
    done = subprocess.run([str(BIN / "checkdmarc"), "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).strip().split()[-1] if done.returncode == 0 else "?"


if __name__ == "__main__":
    main()

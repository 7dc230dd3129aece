"""Benchmark of `smtpconf lint` (issue 2). Prints a markdown table; copy it into docs/benchmarks.md.

    .venv/bin/python bench/bench_lint.py

Compares, in the same run on the same files:
- a 10,000-account, 20-relay, 50-group file (~1.2 MB): `smtpconf lint` against
  `check-jsonschema --schemafile schemas/smtpconf.schema.json` (wall time and peak RSS);
- a one-account file: start-up of `smtpconf lint` against `yamllint`;
- every bad file of tests/cases/: the slowest `smtpconf lint` (alias bomb included);
- 10,000 relays and 10,000 accounts whose every `relay:` is a near miss (`relay-numbr-00001x` for
  `relay-number-00001`), against the same file with every reference right (goal: <= 2x its time).
Needs the bench extra: pip install -e '.[bench]'. `bench_lint.py references` runs only the last.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate  # noqa: E402

BIN = Path(sys.executable).parent
WORK = ROOT / "bench" / "_work"


def measure(argv: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS in MiB and exit code of one run (rusage of that child only)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss // 1024, process.returncode


def best(argv: list[str], runs: int) -> tuple[float, float, int]:
    results = [measure(argv) for _ in range(runs)]
    return statistics.median(r[0] for r in results), min(r[0] for r in results), max(r[1] for r in results)


def many_references(count: int, reference: str) -> str:
    """``count`` relays ``relay-number-NNNNN`` and as many accounts, each with ``relay:`` set to
    ``reference`` formatted with its number."""
    relays = "".join(f"  relay-number-{i:05d}: {{host: smtp{i}.example.com, port: 587, security: starttls}}\n"
                     for i in range(count))
    accounts = "".join(f"  - {{email: u{i}@example.com, relay: {reference.format(i)}}}\n" for i in range(count))
    return f"version: 1\nrelays:\n{relays}accounts:\n{accounts}"


def references(count: int = 10_000) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    clean, near = WORK / "references-clean.yaml", WORK / "references-near-miss.yaml"
    clean.write_text(many_references(count, "relay-number-{:05d}"), encoding="utf-8")
    near.write_text(many_references(count, "relay-numbr-{:05d}x"), encoding="utf-8")
    smtpconf = str(BIN / "smtpconf")
    assert measure([smtpconf, "lint", str(clean)])[2] == 0, "the clean file must lint clean"
    assert measure([smtpconf, "lint", str(near)])[2] == 1, "every near miss is an error"
    clean_med, _, clean_rss = best([smtpconf, "lint", str(clean)], 5)
    near_med, _, near_rss = best([smtpconf, "lint", str(near)], 5)
    print("| case | wall time (median of 5) | peak RSS |")
    print("|---|---|---|")
    print(f"| {count:,} relays, {count:,} right references | {clean_med * 1000:.0f} ms | {clean_rss} MiB |")
    print(f"| {count:,} relays, {count:,} near-miss references | {near_med * 1000:.0f} ms | {near_rss} MiB |")
    print()
    print(f"near misses / clean: {near_med / clean_med:.2f} (goal <= 2)")


def main() -> None:
    if sys.argv[1:] == ["references"]:
        references()
        return
    WORK.mkdir(parents=True, exist_ok=True)
    big = WORK / "big.yaml"
    big.write_text(generate(10_000, 20, 50), encoding="utf-8")
    small = WORK / "one.yaml"
    small.write_text(generate(1, 1, 1), encoding="utf-8")
    smtpconf = str(BIN / "smtpconf")
    assert measure([smtpconf, "lint", str(big)])[2] == 0, "the generated file must lint clean"

    rows = []
    lint_med, lint_min, lint_rss = best([smtpconf, "lint", str(big)], 5)
    cj_med, cj_min, cj_rss = best([str(BIN / "check-jsonschema"), "--schemafile",
                                   str(ROOT / "schemas" / "smtpconf.schema.json"), str(big)], 3)
    size = big.stat().st_size / 1e6
    rows.append((f"lint, 10k accounts ({size:.2f} MB)", "smtpconf lint", lint_med, lint_rss))
    rows.append((f"lint, 10k accounts ({size:.2f} MB)", "check-jsonschema", cj_med, cj_rss))
    one_med, _, one_rss = best([smtpconf, "lint", str(small)], 15)
    yl_med, _, yl_rss = best([str(BIN / "yamllint"), str(small)], 15)
    rows.append(("start-up, 1 account", "smtpconf lint", one_med, one_rss))
    rows.append(("start-up, 1 account", "yamllint", yl_med, yl_rss))
    cases = sorted((ROOT / "tests" / "cases").glob("*.yaml"))
    slowest = max((measure([smtpconf, "lint", str(c)])[0], c.name) for c in cases)
    rows.append((f"slowest of {len(cases)} bad files ({slowest[1]})", "smtpconf lint", slowest[0], 0))

    print("| case | tool | wall time (median) | peak RSS |")
    print("|---|---|---|---|")
    for case, tool, seconds, rss in rows:
        print(f"| {case} | {tool} | {seconds * 1000:.0f} ms | {f'{rss} MiB' if rss else '—'} |")
    print()
    print(f"smtpconf lint / check-jsonschema time: {lint_med / cj_med:.3f} (goal <= 0.25); "
          f"peak memory {lint_rss} MiB vs {cj_rss} MiB (goal: no more)")
    print(f"start-up smtpconf / yamllint: {one_med / yl_med:.2f} (goal <= 1.0)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print()
    references()


if __name__ == "__main__":
    main()

"""Benchmark of `smtpconf render` of every client target (issue 3). Prints a markdown table.

    .venv/bin/python bench/bench_render.py

Goal: rendering all client targets (thunderbird, autodiscover, mobileconfig, msmtp, neomutt,
git-send-email, dns) of the 10,000-account file takes at most twice `smtpconf lint` of the same
file, measured in the same run. Render includes its own lint, and writing ~55,000 files.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate  # noqa: E402

SMTPCONF = str(Path(sys.executable).with_name("smtpconf"))
WORK = ROOT / "bench" / "_work"
CLIENT_TARGETS = "thunderbird,autodiscover,mobileconfig,msmtp,neomutt,git-send-email,dns"


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def main(runs: int = 3) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    big = WORK / "big.yaml"
    big.write_text(generate(10_000, 20, 50), encoding="utf-8")
    out = WORK / "render-out"
    lint, fresh, again = [], [], []
    for _ in range(runs):
        lint.append(timed([SMTPCONF, "lint", str(big)]))
        shutil.rmtree(out, ignore_errors=True)
        fresh.append(timed([SMTPCONF, "render", str(big), "-o", str(out), "--only", CLIENT_TARGETS]))
        again.append(timed([SMTPCONF, "render", str(big), "-o", str(out), "--only", CLIENT_TARGETS]))
    files = sum(1 for p in out.rglob("*") if p.is_file())
    shutil.rmtree(out, ignore_errors=True)
    lint_s, fresh_s, again_s = (statistics.median(x) for x in (lint, fresh, again))
    print("| 10,000 accounts, 20 relays, 50 groups | wall time (median of %d) | / lint |" % runs)
    print("|---|---|---|")
    print(f"| smtpconf lint | {lint_s * 1000:.0f} ms | 1.00 |")
    print(f"| render all client targets, new output ({files} files) | {fresh_s * 1000:.0f} ms | {fresh_s / lint_s:.2f} |")
    print(f"| render all client targets, replacing the previous output | {again_s * 1000:.0f} ms | "
          f"{again_s / lint_s:.2f} |")
    print()
    print(f"goal: render <= 2.00 x lint; measured {fresh_s / lint_s:.2f} (new) and {again_s / lint_s:.2f} (replace)")


if __name__ == "__main__":
    main()

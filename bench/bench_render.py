"""Benchmark of `smtpconf render` of every client target (issue 3). Prints a markdown table.

    .venv/bin/python bench/bench_render.py

Goal: rendering all client targets (thunderbird, autodiscover, mobileconfig, msmtp, neomutt,
git-send-email, dns) of the 10,000-account file takes at most twice `smtpconf lint` of the same
file, measured in the same run. Render includes its own lint, and writing ~55,000 files.
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
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate  # noqa: E402

SMTPCONF = str(Path(sys.executable).with_name("smtpconf"))
WORK = ROOT / "bench" / "_work"
CLIENT_TARGETS = "thunderbird,autodiscover,mobileconfig,msmtp,neomutt,git-send-email,dns"


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def main(runs: int = 5) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    big = WORK / "big.yaml"
    big.write_text(generate(10_000, 20, 50), encoding="utf-8")
    # The disk of a shared VM swings widely under other writers; tmpfs shows smtpconf's own cost.
    places = {"disk": WORK / "render-out"}
    if Path("/dev/shm").is_dir():
        places["tmpfs"] = Path("/dev/shm") / "smtpconf-bench-render-out"
    render = [SMTPCONF, "render", str(big), "--only", CLIENT_TARGETS]
    lint: list[float] = []
    times: dict[str, list[float]] = {}
    # Rounds interleave every case, so that a slow minute of a shared machine hits all of them.
    for _ in range(runs):
        lint.append(timed([SMTPCONF, "lint", str(big)]))
        for place, out in places.items():
            shutil.rmtree(out, ignore_errors=True)
            times.setdefault(f"to {place}, new output", []).append(timed(render + ["-o", str(out)]))
            times.setdefault(f"to {place}, replacing the previous output", []).append(
                timed(render + ["-o", str(out)]))
        out = places.get("tmpfs", places["disk"])
        shutil.rmtree(out, ignore_errors=True)
        times.setdefault(f"to {'tmpfs' if 'tmpfs' in places else 'disk'}, new output, `--jobs 1`", []).append(
            timed(render + ["-o", str(out), "--jobs", "1"]))
    files = sum(1 for p in places["disk"].rglob("*") if p.is_file())
    for out in places.values():
        shutil.rmtree(out, ignore_errors=True)
    lint_s = statistics.median(lint)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cpus} CPUs; render uses one process per CPU unless `--jobs` says otherwise")
    print()
    print(f"| 10,000 accounts ({files} client files) | wall time (median of {runs}) | / lint |")
    print("|---|---|---|")
    print(f"| smtpconf lint | {lint_s * 1000:.0f} ms | 1.00 |")
    for what, values in times.items():
        seconds = statistics.median(values)
        print(f"| render all client targets {what} | {seconds * 1000:.0f} ms | {seconds / lint_s:.2f} |")
    print()
    print("goal: render <= 2.00 x lint")


if __name__ == "__main__":
    main()

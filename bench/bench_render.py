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
    # The disk of a shared VM swings widely under other writers; tmpfs shows smtpconf's own cost.
    places = {"disk": WORK / "render-out"}
    if Path("/dev/shm").is_dir():
        places["tmpfs"] = Path("/dev/shm") / "smtpconf-bench-render-out"
    lint: list[float] = []
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(runs):
        lint.append(timed([SMTPCONF, "lint", str(big)]))
        for place, out in places.items():
            shutil.rmtree(out, ignore_errors=True)
            times.setdefault((place, "new"), []).append(
                timed([SMTPCONF, "render", str(big), "-o", str(out), "--only", CLIENT_TARGETS]))
            times.setdefault((place, "replace"), []).append(
                timed([SMTPCONF, "render", str(big), "-o", str(out), "--only", CLIENT_TARGETS]))
    files = sum(1 for p in places["disk"].rglob("*") if p.is_file())
    for out in places.values():
        shutil.rmtree(out, ignore_errors=True)
    lint_s = statistics.median(lint)
    print(f"| 10,000 accounts ({files} client files) | wall time (median of {runs}) | / lint |")
    print("|---|---|---|")
    print(f"| smtpconf lint | {lint_s * 1000:.0f} ms | 1.00 |")
    for (place, how), values in times.items():
        seconds = statistics.median(values)
        what = "new output" if how == "new" else "replacing the previous output"
        print(f"| render all client targets to {place}, {what} | {seconds * 1000:.0f} ms | {seconds / lint_s:.2f} |")
    print()
    print("goal: render <= 2.00 x lint")


if __name__ == "__main__":
    main()

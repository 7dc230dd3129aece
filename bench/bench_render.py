"""Benchmark of `smtpconf render` of every client target (issue 3). Prints a markdown table.

    .venv/bin/python bench/bench_render.py [ROUNDS]

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
    # The previous run's files go to the disk first: the kernel's writeback of 50 MB would
    # otherwise land in the middle of the next measurement.
    os.sync()
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def read_tree(root: Path) -> list[tuple[str, bytes, int]]:
    return [(str(p.relative_to(root)), p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(root.rglob("*")) if p.is_file()]


def write_tree(root: Path, files: list[tuple[str, bytes, int]]) -> None:
    for directory in sorted({os.path.dirname(path) for path, _, _ in files}):
        os.makedirs(os.path.join(root, directory), exist_ok=True)
    base = str(root) + os.sep
    for path, content, mode in files:
        fd = os.open(base + path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        os.write(fd, content)
        os.close(fd)


def main(rounds: int = 7) -> None:
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
    ratios: dict[str, list[float]] = {}
    files: list[tuple[str, bytes, int]] = []
    # Each round times lint and then every case, and each case is compared with the lint of its
    # own round: the speed of a shared VM drifts over minutes, and a case is never compared with a
    # lint run in another minute.
    for _ in range(rounds):
        lint.append(timed([SMTPCONF, "lint", str(big)]))
        measured: dict[str, float] = {}
        for place, out in places.items():
            shutil.rmtree(out, ignore_errors=True)
            measured[f"render all client targets to {place}, new output"] = timed(render + ["-o", str(out)])
            measured[f"render all client targets to {place}, replacing the previous output"] = timed(
                render + ["-o", str(out)])
        out = places.get("tmpfs", places["disk"])
        shutil.rmtree(out, ignore_errors=True)
        place = "tmpfs" if "tmpfs" in places else "disk"
        measured[f"render all client targets to {place}, new output, `--jobs 1`"] = timed(
            render + ["-o", str(out), "--jobs", "1"])
        # What the file system alone costs: the same files, written and then deleted by a bare loop
        # in this process (no interpreter start-up, no lint, no templates).
        files = files or read_tree(out)
        for place, out in places.items():
            floor = out.with_name(out.name + "-floor")
            shutil.rmtree(floor, ignore_errors=True)
            os.sync()
            start = time.perf_counter()
            write_tree(floor, files)
            measured[f"floor: a bare Python loop writes the same files to {place}"] = time.perf_counter() - start
            os.sync()
            start = time.perf_counter()
            shutil.rmtree(floor)
            measured[f"floor: a bare Python loop deletes them from {place}"] = time.perf_counter() - start
        for what, seconds in measured.items():
            times.setdefault(what, []).append(seconds)
            ratios.setdefault(what, []).append(seconds / lint[-1])
    for out in places.values():
        shutil.rmtree(out, ignore_errors=True)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cpus} CPUs; render uses one process per CPU unless `--jobs` says otherwise; {rounds} rounds")
    print()
    print(f"| 10,000 accounts ({len(files)} client files) | wall time (median) | / lint of the same round: median (range) |")
    print("|---|---|---|")
    print(f"| smtpconf lint | {statistics.median(lint) * 1000:.0f} ms | 1.00 |")
    for what, values in times.items():
        spread = ratios[what]
        print(f"| {what} | {statistics.median(values) * 1000:.0f} ms "
              f"| {statistics.median(spread):.2f} ({min(spread):.2f}-{max(spread):.2f}) |")
    print()
    print("goal: render <= 2.00 x lint")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)

"""Lint and render speed of several source trees, measured alternately in one run (issue 10).
Prints a markdown table.

    .venv/bin/python bench/bench_trees.py [--rounds N] [--every-target] TREE [TREE ...]

Each TREE is a directory with the ``smtpconf`` package at its top: a checkout, or a commit
unpacked with ``git archive COMMIT | tar -x -C TREE``. Each is run by this venv's ``smtpconf``
console script with ``PYTHONPATH=TREE``, which comes before the editable install on ``sys.path``;
the script checks that each tree's smtpconf really is imported from that tree (templates and
schema included), and refuses to measure otherwise.

The file is bench/generate.py's 10,000 accounts, as in bench_lint.py and bench_render.py. Every
round runs every case once for every tree, the trees in a rotating order (a shared VM's speed
drifts over minutes), and divides each tree's time by the first tree's time of the same case
and round: the ratio columns are the medians of those ratios. CPU time (user + system of the
command and the workers it forked) is steadier than wall time while other jobs share the CPUs. Renders go to tmpfs (the disk of a
shared VM measures its other writers), with ``os.sync()`` before every timed command.
"""

from __future__ import annotations

import argparse
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
OUT = Path("/dev/shm") if Path("/dev/shm").is_dir() else WORK


def environment(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def check_tree(tree: Path) -> None:
    """Refuse a tree whose smtpconf (or its templates) would not be the tree's own."""
    probe = "import smtpconf, smtpconf.resources as r; print(smtpconf.__file__); print(r.ROOT)"
    found = subprocess.run([sys.executable, "-c", probe], env=environment(tree), capture_output=True, text=True,
                           check=True, cwd="/").stdout.split("\n")
    if Path(found[0]).resolve() != (tree / "smtpconf" / "__init__.py").resolve() or \
            Path(found[1]).resolve() != tree.resolve():
        sys.exit(f"{tree}: smtpconf comes from {found[0]} (resources {found[1]}), not from this tree")


def timed(argv: list[str], tree: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the command's processes together) of one run."""
    os.sync()  # the previous run's files go to the disk first, not in the middle of this one
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment(tree),
                               cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)  # the child's usage includes the workers it waited for
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{tree}: {' '.join(argv)} failed (exit {process.returncode})")
    return elapsed, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--every-target", action="store_true",
                        help="also render every target of the tree (no --only): the trees must have the same ones")
    args = parser.parse_args()
    trees: list[Path] = [tree.absolute() for tree in args.trees]
    for tree in trees:
        check_tree(tree)
    WORK.mkdir(parents=True, exist_ok=True)
    big = WORK / "big.yaml"
    big.write_text(generate(10_000, 20, 50), encoding="utf-8")
    out = OUT / "smtpconf-bench-trees-out"
    client = [SMTPCONF, "render", str(big), "-o", str(out), "--only", CLIENT_TARGETS]
    cases: dict[str, tuple[list[str], bool]] = {  # what -> (command, whether the output is removed first)
        "smtpconf lint": ([SMTPCONF, "lint", str(big)], False),
        "render all client targets, new output": (client, True),
        "render all client targets, replacing the previous output": (client, False),
        "render all client targets, new output, `--jobs 1`": (client + ["--jobs", "1"], True),
    }
    if args.every_target:
        cases["render every target, new output"] = ([SMTPCONF, "render", str(big), "-o", str(out)], True)
    times: dict[tuple[str, int], list[tuple[float, float]]] = {}
    ratios: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for round_ in range(args.rounds):
        order = [(round_ + i) % len(trees) for i in range(len(trees))]
        measured: dict[tuple[str, int], tuple[float, float]] = {}
        for what, (argv, fresh) in cases.items():
            for index in order:
                if fresh:
                    shutil.rmtree(out, ignore_errors=True)
                elif not out.exists():  # "replacing": the same tree's output is there to replace
                    subprocess.run(client, check=True, capture_output=True, env=environment(trees[index]))
                measured[what, index] = timed(argv, trees[index])
            shutil.rmtree(out, ignore_errors=True)
        for (what, index), (wall, cpu) in measured.items():
            times.setdefault((what, index), []).append((wall, cpu))
            first_wall, first_cpu = measured[what, 0]
            ratios.setdefault((what, index), []).append((wall / first_wall, cpu / first_cpu))
    shutil.rmtree(out, ignore_errors=True)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cpus} CPUs, python {sys.version.split()[0]}, {args.rounds} rounds; renders to {OUT}")
    print()
    first = trees[0].name
    print(f"| 10,000 accounts | tree | wall time (median) | / {first}: median (range) "
          f"| CPU time (median) | / {first}: median (range) |")
    print("|---|---|---|---|---|---|")
    for what in cases:
        for index, tree in enumerate(trees):
            columns = []
            for column in (0, 1):
                spread = [ratio[column] for ratio in ratios[what, index]]
                columns.append(f"{statistics.median(t[column] for t in times[what, index]) * 1000:.0f} ms "
                               f"| {statistics.median(spread):.3f} ({min(spread):.2f}-{max(spread):.2f})")
            print(f"| {what} | {tree.name} | {' | '.join(columns)} |")


if __name__ == "__main__":
    main()

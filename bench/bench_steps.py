"""Where lint and render spend their time, step by step, for one or more source trees (issue 10).
Prints a markdown table.

    .venv/bin/python bench/bench_steps.py [--runs N] [--no-gc] TREE [TREE ...]

For bench/generate.py's 10,000-account file, in one process per tree (``PYTHONPATH=TREE``, as
bench_trees.py checks): the CPU time of each lint step (load, schema, references, model, the
offline rules), of ``lint_path`` as a whole, and of building each client target's files in memory
(``render_target``, nothing written). Each number is the best of N runs, CPU time of this process
(``time.process_time``), so other jobs on the machine matter less than for wall time.
``--no-gc`` runs every step with the garbage collector off: the difference is what the collector
costs while lint holds the document's million objects.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate  # noqa: E402

WORK = ROOT / "bench" / "_work"
CLIENT_TARGETS = ["thunderbird", "autodiscover", "mobileconfig", "msmtp", "neomutt", "git-send-email", "dns"]


def steps(big: Path, runs: int, collect: bool) -> dict[str, float]:
    """In this process: the best CPU seconds of every step."""
    from smtpconf.lint import lint_path
    from smtpconf.load import load
    from smtpconf.model import build
    from smtpconf.render import RenderContext, render_target
    from smtpconf.rules import all_rules
    from smtpconf.rules.references import check_references
    from smtpconf.schema import validate

    def best(step: Callable[[], Any]) -> tuple[float, Any]:
        times, result = [], None
        for _ in range(runs):
            result = None
            gc.collect()
            if not collect:
                gc.disable()
            start = time.process_time()
            result = step()
            times.append(time.process_time() - start)
            gc.enable()
        return min(times), result

    found: dict[str, float] = {}
    found["lint_path (all of lint)"], _ = best(lambda: lint_path(big))
    found["load (YAML, positions)"], (doc, _) = best(lambda: load(big, str(big)))
    found["schema"], _ = best(lambda: list(validate(doc.data)))
    found["references"], _ = best(lambda: check_references(doc))
    found["model (build)"], config = best(lambda: build(doc))
    rules = [rule for rule in all_rules().values() if rule.check is not None]
    found["offline rules"], _ = best(lambda: [list(rule.check(config)) for rule in rules])
    gc.freeze()  # as render_tree does
    for target in CLIENT_TARGETS:
        ctx = RenderContext(config)
        found[f"build the {target} files"], _ = best(lambda: render_target(ctx, target))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="*", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-gc", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # the tree this process measures
    args = parser.parse_args()
    big = WORK / "big.yaml"
    if args.child is not None:
        json.dump(steps(big, args.runs, not args.no_gc), sys.stdout)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    big.write_text(generate(10_000, 20, 50), encoding="utf-8")
    results = []
    for tree in (tree.absolute() for tree in args.trees):
        argv = [sys.executable, __file__, "--child", str(tree), "--runs", str(args.runs)]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        origin = subprocess.run([sys.executable, "-c", "import smtpconf; print(smtpconf.__file__)"], env=env,
                                capture_output=True, text=True, check=True, cwd="/").stdout.strip()
        if Path(origin).resolve() != (tree / "smtpconf" / "__init__.py").resolve():
            sys.exit(f"{tree}: smtpconf comes from {origin}, not from this tree")
        output = subprocess.run(argv + (["--no-gc"] if args.no_gc else []), env=env, capture_output=True,
                                text=True, check=True, cwd="/").stdout
        results.append(json.loads(output))
    print(f"best of {args.runs}, CPU time, garbage collector {'off' if args.no_gc else 'on'}")
    print()
    print("| step | " + " | ".join(tree.name for tree in args.trees) + " |")
    print("|---|" + "---|" * len(args.trees))
    for step in results[0]:
        print(f"| {step} | " + " | ".join(f"{result.get(step, 0) * 1000:.0f} ms" for result in results) + " |")


if __name__ == "__main__":
    main()

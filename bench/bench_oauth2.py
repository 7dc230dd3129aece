"""Benchmark of a cached `smtpconf oauth2 token` (msmtp runs it for every message). Prints a
markdown table; copy it into docs/benchmarks.md.

    .venv/bin/python bench/bench_oauth2.py [ROUNDS]

One one-account OAuth2 file whose token_url is the loopback identity provider of
tests/support/idp.py; one `oauth2 token` call seeds the cache (a real refresh grant), then the
identity provider is stopped: every timed call must be answered from the cache, and one that is
not fails loudly. Each round times, whole process (the console script), in turn so that all see
the same machine: `smtpconf oauth2 token` (the short path: the file is the one that passed), the
same after touching the file (the full path: YAML, schema, references, the login's rules, then
the cache and a new index entry) and `smtpconf lint` of the same file; medians.
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.idp import IdentityProvider  # noqa: E402

SMTPCONF = str(Path(sys.executable).parent / "smtpconf")
USER, CLIENT = "app@corp.example", "9e5f94bc-e8a4-4e73-b8be-63364c29d753"


def run(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    return time.perf_counter() - start, done


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    # As an installed package has (pip compiles it): without bytecode every changed module would be
    # compiled again on every run, which says nothing about the command.
    compileall.compile_dir(str(ROOT / "smtpconf"), quiet=1)
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
        config = work / "smtpconf.yaml"
        token_argv = [SMTPCONF, "oauth2", "token", str(config), "--account", USER]
        with IdentityProvider() as idp:
            refresh = work / "refresh"
            refresh.write_text(idp.issue_refresh_token(CLIENT, USER) + "\n")
            refresh.chmod(0o600)
            config.write_text(
                "version: 1\naccounts:\n"
                f"  - email: {USER}\n    provider: office365\n    auth: oauth2\n"
                f"    oauth2: {{client_id: {CLIENT}, refresh_token: {{file: refresh}},\n"
                f"             token_url: '{idp.token_url}'}}\n",
                encoding="utf-8")
            _, seeded = run(token_argv, env)
            assert seeded.returncode == 0 and idp.valid_access_token(seeded.stdout.strip()), seeded.stderr
            assert idp.token_grants() == ["refresh_token"]
        _, linted = run([SMTPCONF, "lint", str(config)], env)
        assert linted.returncode == 0, linted.stdout + linted.stderr

        token_times, edited_times, lint_times = [], [], []
        for _ in range(rounds):
            seconds, done = run(token_argv, env)
            assert done.returncode == 0 and done.stdout == seeded.stdout, done.stderr  # the IdP is gone
            token_times.append(seconds)
            os.utime(config)  # "edited": the short path's index no longer matches the file
            seconds, done = run(token_argv, env)
            assert done.returncode == 0 and done.stdout == seeded.stdout, done.stderr
            edited_times.append(seconds)
            seconds, done = run([SMTPCONF, "lint", str(config)], env)
            lint_times.append(seconds)

    print(f"| one-account OAuth2 file, {rounds} rounds | wall time (median) | min | max | / lint of the same round "
          "(median) |")
    print("|---|---|---|---|---|")
    for name, times in (("`smtpconf oauth2 token`, cached (short path: the file is unchanged)", token_times),
                        ("`smtpconf oauth2 token`, cached, just after the file changed (full path)", edited_times),
                        ("`smtpconf lint`", lint_times)):
        ratio = statistics.median(t / lt for t, lt in zip(times, lint_times))
        print(f"| {name} | {statistics.median(times) * 1e3:.0f} ms | {min(times) * 1e3:.0f} ms | "
              f"{max(times) * 1e3:.0f} ms | {ratio:.2f} |")


if __name__ == "__main__":
    main()

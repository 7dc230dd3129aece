"""Helpers for the live-check integration tests: run the real ``smtpconf check`` command in a
subprocess and sort its findings by the relay, account or domain they belong to."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[2]


class CheckRun(NamedTuple):
    returncode: int
    findings: list[dict[str, Any]]
    stderr: str
    seconds: float


def smtpconf(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smtpconf", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})


def run_check(config: Path, *args: str) -> CheckRun:
    started = time.monotonic()
    done = smtpconf("check", str(config), "--format", "json", *args)
    seconds = time.monotonic() - started
    assert done.returncode in (0, 1), done.stderr
    return CheckRun(done.returncode, json.loads(done.stdout)["findings"], done.stderr, seconds)


def key_lines(text: str, indent: int = 2) -> dict[str, int]:
    """The line of each mapping key at ``indent`` spaces (relay and domain names), 1-based."""
    pattern = re.compile(rf"^ {{{indent}}}([^\s:#-][^:]*):\s*$")
    return {m.group(1).strip('"'): number for number, line in enumerate(text.splitlines(), 1)
            if (m := pattern.match(line))}


def rules_by_key(text: str, findings: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Live rule ids per relay/domain name, from the findings' lines (offline lint findings, such
    as the info ``provider-credential-hint``, are not what these tests are about)."""
    from smtpconf.rules import all_rules

    live = {rule.id for rule in all_rules().values() if rule.live}
    findings = [f for f in findings if f["rule"] in live]
    lines = {line: name for name, line in key_lines(text).items()}
    by_key: dict[str, list[str]] = {name: [] for name in lines.values()}
    for finding in findings:
        name = lines.get(finding["line"])
        assert name is not None, f"finding not at a relay or domain line: {finding}"
        by_key[name].append(finding["rule"])
    return by_key


class ScriptedServer:
    """A tiny line-by-line SMTP server on loopback for the replies aiosmtpd will not give: a 554
    greeting, a refused EHLO, a hang-up at MAIL FROM. ``replies`` maps a command verb (upper
    case) to the reply text, or to None to close the connection instead of answering; other
    verbs get ``250 OK``. Every command line received is kept in :attr:`received`."""

    def __init__(self, greeting: str = "220 scripted.test ESMTP", replies: dict[str, str | None] | None = None,
                 *, host: str = "127.0.0.1") -> None:
        import socket
        import threading

        self.greeting, self.replies = greeting, {"QUIT": "221 bye", **(replies or {})}
        self.received: list[str] = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.bind((host, 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: Any) -> None:
        try:
            with conn, conn.makefile("rb") as lines:
                conn.sendall(self.greeting.encode() + b"\r\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    self.received.append(line)
                    verb = line.split(" ", 1)[0].upper()
                    reply = self.replies.get(verb, "250 OK")
                    if reply is None:
                        return
                    conn.sendall(reply.encode() + b"\r\n")
                    if verb == "QUIT":
                        return
        except OSError:
            pass

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import socket

        # shutdown() wakes the threads blocked in accept() and recv(); close() alone would not.
        for sock in (self._listener, *self._conns):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._thread.join(5)

"""What ``smtpconf send-test`` prints: one line per step, ``ok`` or ``FAIL``, and the few
helpers that turn what smtplib and servers say into that line's words."""

from __future__ import annotations

import contextlib
import signal
import smtplib
import threading
import time
from collections.abc import Iterator
from types import FrameType

from smtpconf.findings import printable


class StepFailed(Exception):
    """A step failed; its FAIL line is printed already."""


def step(name: str, ok: bool, detail: str) -> None:
    # Server text and values from the file are in ``detail``: nothing they hold may start another
    # line or send escape sequences to the terminal (SPEC §11, as findings are shown).
    print(f"{'ok' if ok else 'FAIL':<4}  {name:<9}  {shown(detail)}", flush=True)


def shown(line: str) -> str:
    return line if line.isprintable() else printable(line, len(line) * 6)


def fail(name: str, detail: str) -> StepFailed:
    step(name, False, detail)
    return StepFailed(detail)


def lost(exc: BaseException) -> str:
    # smtplib reports a read timeout as SMTPServerDisconnected("... timed out").
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return "the server stopped answering (timed out)"
    if isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionError)):
        return f"the server closed the connection ({exc or 'no reply'})"
    return str(exc) or type(exc).__name__


def text(reply: bytes | str) -> str:
    decoded = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(decoded.split())


class SessionTimeout(Exception):
    """``--timeout`` ran out for the session as a whole."""


class Clock:
    """send-test's ``--timeout`` bounds the whole session, not each read (SPEC §11): each step
    gets what is left, and :func:`time_limit` stops a server that answers byte by byte."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.end = seconds, time.monotonic() + seconds

    def left(self) -> float:
        return max(0.001, self.end - time.monotonic())


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`SessionTimeout` in the code inside after ``seconds``, even in the middle of a
    blocking read (SIGALRM: send-test is a command, in the main thread; elsewhere this only
    yields, and the per-read timeouts are the limit)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def ring(signum: int, frame: FrameType | None) -> None:
        raise SessionTimeout()

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

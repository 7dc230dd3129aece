"""What ``smtpconf send-test`` prints: one line per step, ``ok`` or ``FAIL``, and the few
helpers that turn what smtplib and servers say into that line's words."""

from __future__ import annotations

import smtplib


class StepFailed(Exception):
    """A step failed; its FAIL line is printed already."""


def step(name: str, ok: bool, detail: str) -> None:
    print(f"{'ok' if ok else 'FAIL':<4}  {name:<9}  {detail}", flush=True)


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

"""Signals as a user's terminal delivers them, for the tests that send Ctrl-C, SIGTERM or SIGHUP.

A process may start with SIGINT ignored or blocked, and its children inherit both: POSIX shells
ignore SIGINT in commands they start in the background without job control (`cmd &` in a script,
as a CI runner may start the suite). A render that ignores Ctrl-C proves nothing about what it
does on Ctrl-C, so these tests make the stop signals deliverable again, and say when they were not.
"""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _kernel_mask(field: str) -> int:
    """SigIgn or SigBlk of this thread, as the kernel sees it (Python's getsignal cannot tell)."""
    for line in Path("/proc/thread-self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    return 0


def _names(mask: int) -> list[str]:
    return [signal.Signals(s).name for s in STOP_SIGNALS if mask & (1 << (s - 1))]


@pytest.fixture(autouse=True)
def deliverable_stop_signals() -> Iterator[None]:
    ignored, blocked = _names(_kernel_mask("SigIgn")), _names(_kernel_mask("SigBlk"))
    if ignored or blocked:
        warnings.warn(f"the test process started with {', '.join(ignored) or 'nothing'} ignored and "
                      f"{', '.join(blocked) or 'nothing'} blocked: made deliverable for this test")
    handler = signal.getsignal(signal.SIGINT)
    previous = signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    # Installed again through sigaction: a disposition changed below Python is reset too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler if handler is not None else signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)

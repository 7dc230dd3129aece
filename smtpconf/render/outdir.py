"""What a render may do to its output directory, and to the directories it keeps beside it.

A render writes into a staging directory beside ``-o`` (``.OUT.smtpconf-XXXXXXXX``), then moves the
previous output aside (``.OUT.old-XXXXXXXX``) and the new one into place. Both hold live
credentials (``sasl_passwd``), so neither may outlive the render:

- each is locked (``flock``) by the process that created it, from the moment it exists; a killed
  run's locks die with it, so the next render of the same ``-o`` knows which leftovers are stale
  and removes them (a previous output a killed swap left aside is put back first);
- creating, swapping and removing them happens with the stop signals (Ctrl-C, SIGTERM, SIGHUP)
  held back: a signal then lands after the step, never half-way through a clean-up;
- SIGTERM and SIGHUP raise ``Stopped`` during a render, as Ctrl-C raises KeyboardInterrupt, so
  the same clean-up runs.

And what it may delete: ``-o`` is followed through symbolic links to the real directory (the link
stays as it is), which may be replaced only when it holds nothing but what smtpconf writes there
(a directory per target and the manifest); it must not hold the input file or a file the input
references.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from smtpconf.errors import RenderError

if TYPE_CHECKING:
    from smtpconf.model import Config

# What stops a render from outside: Ctrl-C, `kill`/`timeout`/a CI cancel, a closed terminal.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP during a render; handled like Ctrl-C (clean up, then exit 128 + signal)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold the stop signals back for the duration: they are delivered (and raise) once it ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``Stopped`` for the duration (in the main thread only, where Python
    runs signal handlers; elsewhere they keep their meaning)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def make_locked_dir(parent: Path, prefix: str) -> tuple[Path, int]:
    """A new directory ``parent/prefixXXXXXXXX``, locked by this process: (path, lock fd). Call it
    with the stop signals held, so that the directory never exists unlocked and unknown."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new and ours: never blocks
    return path, fd


def _claim(path: Path) -> int | None:
    """The lock of a leftover directory, or None while the run that made it is alive."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def leftover_pattern(out_dir: Path) -> re.Pattern[str]:
    # tempfile.mkdtemp's names: the prefix, then 8 of [a-z0-9_].
    return re.compile(re.escape(f".{out_dir.name}.") + r"(smtpconf|old)-[a-z0-9_]{8}")


def remove_leftovers(out_dir: Path) -> None:
    """Remove what killed renders of ``out_dir`` left beside it; a previous output that a killed
    swap had moved aside, with none in its place, is put back first."""
    pattern = leftover_pattern(out_dir)
    try:
        names = sorted(os.listdir(out_dir.parent))
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        path = out_dir.parent / name
        fd = _claim(path)
        if fd is None:
            continue
        with signals_held():
            try:
                previous = path / "tree"
                if match[1] == "old" and previous.is_dir() and not os.path.lexists(out_dir):
                    os.rename(previous, out_dir)
                shutil.rmtree(path, ignore_errors=True)
            finally:
                os.close(fd)


def real_output(out_dir: Path) -> Path:
    """``-o`` followed through symbolic links: the directory a render really replaces."""
    return Path(os.path.realpath(out_dir))


def check_only_ours(out_dir: Path, ours: Iterable[str]) -> None:
    """Refuse to replace an existing output that holds anything smtpconf does not write there."""
    allowed = set(ours)
    foreign = sorted(name for name in os.listdir(out_dir) if name not in allowed)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise RenderError(f"{out_dir} holds files smtpconf did not write ({shown}); a render replaces the "
                          "whole directory: move them out, or choose another -o directory")


def check_outside(out_dir: Path, inputs: Iterable[tuple[str, str]]) -> None:
    """Refuse an output directory that holds one of ``inputs`` (what, path): replacing it would
    delete the file the render reads."""
    for what, path in inputs:
        real = Path(os.path.realpath(path))
        if real == out_dir or out_dir in real.parents:
            raise RenderError(f"{out_dir} holds {what} {path}, which a render would delete; choose an "
                              "output directory outside it")


def inputs_of(config: Config) -> list[tuple[str, str]]:
    """What a render of ``config`` reads from disk: the file itself, CA files and file secrets."""
    from smtpconf.model import endpoint_uses

    found = [("the input file", str(config.doc.path.absolute()))]
    for use in endpoint_uses(config):
        if use.endpoint.ca_file:
            found.append(("the ca_file", use.endpoint.ca_file))
        login = use.login
        oauth2 = login.oauth2
        for secret in (login.password, oauth2.refresh_token if oauth2 else None,
                       oauth2.client_secret if oauth2 else None):
            if secret is not None and secret.kind == "file":
                found.append(("the secret file", os.path.expanduser(secret.ref)))
    return list(dict.fromkeys(found))

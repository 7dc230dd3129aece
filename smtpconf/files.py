"""Bounded reads of the files a smtpconf file names: the file itself, ``ca_file``, ``{file:}`` secrets.

Each must be a regular file, and is read up to a limit by reading, never by trusting ``st_size``
(0 for ``/dev/zero``, a FIFO or ``/proc`` files). The file is opened non-blocking, so that a FIFO
without a writer is an error at once rather than a hang, and judged by ``fstat`` of what was
opened, not by a look at the path beforehand.
"""

from __future__ import annotations

import os
import stat

MIB = 2**20


class NotReadable(Exception):
    """Why a file cannot be read: ``str()`` is a message part such as "is a FIFO, not a regular file"."""


class TooLarge(NotReadable):
    """The file has more than the limit's bytes."""


class Missing(NotReadable):
    """Nothing at the path: "no such file"."""


class IsDirectory(NotReadable):
    """A directory at the path: "is a directory, not a regular file"."""


def kind(mode: int) -> str:
    """What a non-regular file is, for a message."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them, or ``NotReadable`` saying
    why not; a caller that words a missing file or a directory for what it expected catches
    ``Missing`` or ``IsDirectory``."""
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise Missing("no such file") from None
    except OSError as exc:
        raise NotReadable(f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(before.st_mode):
        raise IsDirectory(f"is {kind(before.st_mode)}, not a regular file")
    if not stat.S_ISREG(before.st_mode):  # not even opened: opening a device can have effects
        raise NotReadable(f"is {kind(before.st_mode)}, not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:  # removed since the stat above
        raise Missing("no such file") from None
    except IsADirectoryError:
        raise IsDirectory("is a directory, not a regular file") from None
    except OSError as exc:
        raise NotReadable(f"cannot read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # swapped for something else since the stat above
            raise NotReadable(f"is {kind(mode)}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, 1 * MIB))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        raise TooLarge(f"is larger than {_size(limit)}")
    except OSError as exc:  # EIO, EISDIR on odd file systems
        raise NotReadable(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit >= MIB and limit % MIB == 0 else f"{limit:,} bytes"


MAX_CA_BYTES = 16 * MIB  # the system bundle is ~200 KB; a CA file beyond this is the wrong file
PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"


def read_ca_file(path: str | os.PathLike[str]) -> str:
    """The text of a ``ca_file``: a regular file holding at least one PEM certificate, or
    ``NotReadable`` saying what it is instead (missing, a directory, a device, not PEM)."""
    try:
        raw = read_regular(path, MAX_CA_BYTES)
    except Missing:
        raise NotReadable("does not exist") from None
    except IsDirectory:
        raise NotReadable("is a directory, not a PEM file") from None
    text = raw.decode("utf-8", "replace")
    if PEM_CERTIFICATE not in text:
        raise NotReadable(f"holds no PEM certificate (no '{PEM_CERTIFICATE}' line)")
    return text

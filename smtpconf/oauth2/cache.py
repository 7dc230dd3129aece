"""The access-token cache, and the private files smtpconf writes (cache entries, refresh tokens).

One JSON file per (token_url, client_id, username, scopes, refresh-token source) under
``$XDG_CACHE_HOME/smtpconf/oauth2/`` (default ``~/.cache/smtpconf/oauth2/``): directory 0700,
files 0600. An entry holds the access token, when it was obtained and when it expires, and — for
a refresh token the file can only read (``{env:}``, ``{command:}``) — the token the provider
rotated to, with the SHA-256 of the configured value it replaced (never the configured value).

Reading an entry is the path every cached ``smtpconf oauth2 token`` takes: it imports json and
hashlib and nothing else. Writes are atomic (a temporary file in the same directory, fsync,
``os.replace``): a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

from smtpconf.oauth2 import OAuth2Error

_MAX_ENTRY = 64 * 1024
# Reuse a token until this much before it expires: msmtp and Postfix may take a while between
# asking and sending AUTH, and clocks drift.
MARGIN_SECONDS = 300.0
MARGIN_FRACTION = 0.1


def cache_dir() -> Path:
    # XDG Base Directory: a relative XDG_CACHE_HOME is invalid and must be ignored.
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "smtpconf" / "oauth2"


def digest(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entry:
    access_token: str | None
    obtained_at: float  # time.time()
    expires_at: float | None  # None: the provider gave no expires_in; never reused
    rotated_refresh_token: str | None = None  # for read-only refresh-token sources only
    configured_sha256: str | None = None  # SHA-256 of the configured value the rotated token replaced

    def fresh(self, now: float) -> bool:
        if not self.access_token or self.expires_at is None or now < self.obtained_at - 60:
            return False  # no token, unknown lifetime, or the clock went back
        margin = min(MARGIN_SECONDS, MARGIN_FRACTION * (self.expires_at - self.obtained_at))
        return now < self.expires_at - margin

    def rotated_for(self, configured: str) -> str | None:
        """The rotated refresh token, while the configured value is still the one it replaced."""
        if self.rotated_refresh_token and self.configured_sha256 == hashlib.sha256(configured.encode()).hexdigest():
            return self.rotated_refresh_token
        return None


def read(key: str) -> Entry | None:
    """The entry for ``key``, or None when there is none or it cannot be trusted (not ours, not
    private, not a regular file, not what we write)."""
    try:
        fd = os.open(cache_dir() / f"{key}.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not _private_regular(st):
            return None
        raw = os.read(fd, _MAX_ENTRY + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        data = json.loads(raw)
        return Entry(
            access_token=_str_or_none(data.get("access_token")),
            obtained_at=float(data["obtained_at"]),
            expires_at=None if data.get("expires_at") is None else float(data["expires_at"]),
            rotated_refresh_token=_str_or_none(data.get("rotated_refresh_token")),
            configured_sha256=_str_or_none(data.get("configured_sha256")),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def write(key: str, entry: Entry) -> None:
    directory = private_dir(cache_dir())
    data: dict[str, Any] = {"access_token": entry.access_token, "obtained_at": entry.obtained_at,
                            "expires_at": entry.expires_at}
    if entry.rotated_refresh_token:
        data.update(rotated_refresh_token=entry.rotated_refresh_token, configured_sha256=entry.configured_sha256)
    write_private(directory / f"{key}.json", json.dumps(data) + "\n")


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _private_regular(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (0700), created with its parents."""
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.lstat()
        import stat

        if not stat.S_ISDIR(st.st_mode):
            raise OAuth2Error(f"{path} is not a directory")
        if st.st_uid != os.getuid():
            raise OAuth2Error(f"{path} belongs to another user: smtpconf keeps tokens only in a directory of yours")
        if st.st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError as exc:
        raise OAuth2Error(f"cache directory {path}: {exc.strerror or exc}") from None
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600: a temporary file in the same directory,
    fsync, ``os.replace``, then fsync of the directory. On any failure ``path`` is unchanged and
    the temporary file is gone. Raises OSError."""
    import tempfile

    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class Lock:
    """An exclusive lock per refresh-token source, so that two msmtp processes do not both spend
    one refresh token (a strict provider kills it at the first use). Waiting is bounded."""

    def __init__(self, name: str, wait: float) -> None:
        self.path = private_dir(cache_dir()) / f"{name}.lock"
        self.wait = wait
        self._handle: IO[bytes] | None = None

    def __enter__(self) -> Lock:
        import fcntl

        try:
            self._handle = open(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600), "r+b")
        except OSError as exc:
            raise OAuth2Error(f"lock file {self.path}: {exc.strerror or exc}") from None
        give_up = time.monotonic() + self.wait
        for pause in _pauses():
            try:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() + pause > give_up:
                    self._handle.close()
                    raise OAuth2Error(f"another smtpconf is refreshing this token and did not finish within "
                                      f"{self.wait:g}s (--timeout); lock {self.path}") from None
                time.sleep(pause)
        raise AssertionError("unreachable")

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the flock


def _pauses() -> Iterator[float]:
    while True:
        yield 0.05

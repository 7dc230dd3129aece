"""The access-token cache, and the private files smtpconf writes (cache entries, refresh tokens).

One JSON file per (token_url, client_id, username, scopes, refresh-token source) under
``$XDG_CACHE_HOME/smtpconf/oauth2/`` (default ``~/.cache/smtpconf/oauth2/``): directory 0700,
files 0600. An entry holds the access token, when it was obtained and when it expires, and — for
a refresh token the file can only read (``{env:}``, ``{command:}``) — the token the provider
rotated to, with the SHA-256 of the configured value it replaced (never the configured value).

Reading an entry is the path every cached ``smtpconf oauth2 token`` takes: it imports json and
zlib (both loaded already at start-up) and nothing else. Writes are atomic (a temporary file in
the same directory, fsync, ``os.replace``): a crash leaves the old file or the new one, never
half of one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO, Any, Iterator

from smtpconf.oauth2 import OAuth2Error

_MAX_ENTRY = 64 * 1024
# Reuse a token until this much before it expires: msmtp and Postfix may take a while between
# asking and sending AUTH, and clocks drift.
MARGIN_SECONDS = 300.0
MARGIN_FRACTION = 0.1


def shown(path: Path | str) -> str:
    """A path inside a one-line message: control characters escaped (a file name from the file
    under review must not forge output lines)."""
    from smtpconf.findings import printable

    return printable(str(path), 200)


def cache_dir() -> Path:
    # XDG Base Directory: a relative XDG_CACHE_HOME is invalid and must be ignored.
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "smtpconf" / "oauth2"


class Key:
    """Which cache entry: ``name`` is the file name (64 bits of zlib checksums: hashlib would cost
    the cached path more than the rest of its work), ``text`` what it stands for, kept in the
    entry and compared on reading, so two keys sharing a name only miss, never mix. (Plain
    classes here: a NamedTuple costs the short path of ``oauth2 token`` half a millisecond.)"""

    __slots__ = ("name", "text")

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and (self.name, self.text) == (other.name, other.text)

    def __hash__(self) -> int:
        return hash((self.name, self.text))


def key(*parts: str, stamps: tuple[str, ...] = ()) -> Key:
    """The key of ``parts``. ``stamps`` are compared on reading but not part of the file name, so
    a newer stamp replaces the entry instead of adding one (the index: one file per smtpconf file
    and login, however often it is edited)."""
    import zlib  # already loaded by the interpreter's zipimport on most start-ups

    raw = json.dumps(parts, ensure_ascii=False).encode("utf-8")
    return Key(f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}", json.dumps(parts + stamps, ensure_ascii=False))


def sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Entry:
    __slots__ = ("access_token", "obtained_at", "expires_at", "rotated_refresh_token", "configured_sha256")

    def __init__(self, access_token: str | None, obtained_at: float, expires_at: float | None,
                 rotated_refresh_token: str | None = None, configured_sha256: str | None = None) -> None:
        self.access_token = access_token
        self.obtained_at = obtained_at  # time.time()
        self.expires_at = expires_at  # None: the provider gave no expires_in; never reused
        self.rotated_refresh_token = rotated_refresh_token  # for read-only refresh-token sources only
        self.configured_sha256 = configured_sha256  # SHA-256 of the configured value the rotated token replaced

    def fresh(self, now: float) -> bool:
        if not self.access_token or self.expires_at is None or now < self.obtained_at - 60:
            return False  # no token, unknown lifetime, or the clock went back
        margin = min(MARGIN_SECONDS, MARGIN_FRACTION * (self.expires_at - self.obtained_at))
        return now < self.expires_at - margin

    def rotated_for(self, configured: str) -> str | None:
        """The rotated refresh token, while the configured value is still the one it replaced."""
        if self.rotated_refresh_token and self.configured_sha256 == sha256(configured):
            return self.rotated_refresh_token
        return None


def read(key: Key) -> Entry | None:
    """The entry for ``key``, or None when there is none or it cannot be trusted (not ours, not
    private, not a regular file, not what we write)."""
    data = _read_json(key)
    if data is None:
        return None
    try:
        return Entry(
            access_token=_str_or_none(data.get("access_token")),
            obtained_at=float(data["obtained_at"]),
            expires_at=None if data.get("expires_at") is None else float(data["expires_at"]),
            rotated_refresh_token=_str_or_none(data.get("rotated_refresh_token")),
            configured_sha256=_str_or_none(data.get("configured_sha256")),
        )
    except (ValueError, TypeError, KeyError):
        return None


def _read_json(key: Key) -> dict[str, Any] | None:
    try:
        fd = os.open(cache_dir() / f"{key.name}.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not _private_regular(os.fstat(fd)):
            return None
        raw = os.read(fd, _MAX_ENTRY + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("key") == key.text else None


def read_index(index: Key) -> Key | None:
    """The access-token key an index entry points to (see ``smtpconf.oauth2.command``)."""
    data = _read_json(index)
    target = data.get("entry") if data is not None else None
    if isinstance(target, list) and len(target) == 2 and all(isinstance(part, str) for part in target):
        return Key(target[0], target[1])
    return None


def write_index(index: Key, target: Key) -> None:
    # Not fsynced: a lost index entry only costs one full path.
    write_private(private_dir(cache_dir()) / f"{index.name}.json",
                  json.dumps({"key": index.text, "entry": [target.name, target.text]}) + "\n", durable=False)


def write(key: Key, entry: Entry) -> None:
    directory = private_dir(cache_dir())
    data: dict[str, Any] = {"key": key.text, "access_token": entry.access_token, "obtained_at": entry.obtained_at,
                            "expires_at": entry.expires_at}
    if entry.rotated_refresh_token:
        data.update(rotated_refresh_token=entry.rotated_refresh_token, configured_sha256=entry.configured_sha256)
    write_private(directory / f"{key.name}.json", json.dumps(data) + "\n")


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
            raise OAuth2Error(f"{shown(path)} is not a directory")
        if st.st_uid != os.getuid():
            raise OAuth2Error(f"{shown(path)} belongs to another user: smtpconf keeps tokens only in a "
                              "directory of yours")
        if st.st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError as exc:
        raise OAuth2Error(f"cache directory {shown(path)}: {exc.strerror or exc}") from None
    return path


def write_private(path: Path, text: str, *, durable: bool = True) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600: a temporary file in the same directory,
    fsync, ``os.replace``, then fsync of the directory. On any failure ``path`` is unchanged and
    the temporary file is gone. Raises OSError."""
    # Not tempfile.mkstemp: it imports random, and that hashlib, on the path of a token call.
    while True:
        temporary = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    if not durable:
        return
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
    one refresh token (a strict provider kills it at the first use). Waiting is bounded. Where
    the cache directory cannot be made (a read-only home), the refresh goes ahead unlocked and
    ``skipped`` says why: one process at a time still works."""

    def __init__(self, name: str, wait: float) -> None:
        self.name = name
        self.wait = wait
        self.skipped: str | None = None
        self._handle: IO[bytes] | None = None

    def __enter__(self) -> Lock:
        import fcntl

        try:
            path = private_dir(cache_dir()) / f"{self.name}.lock"
            self._handle = open(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600), "r+b")
        except (OSError, OAuth2Error) as exc:
            self.skipped = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return self
        give_up = time.monotonic() + self.wait
        for pause in _pauses():
            try:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() + pause > give_up:
                    self._handle.close()
                    raise OAuth2Error(f"another smtpconf is refreshing this token and did not finish within "
                                      f"{self.wait:g}s (--timeout); lock {shown(path)}") from None
                time.sleep(pause)
        raise AssertionError("unreachable")

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the flock


def _pauses() -> Iterator[float]:
    while True:
        yield 0.05

"""Access tokens for a login: from the cache, or refreshed (RFC 6749 §6) and cached.

Refresh-token rotation (RFC 6749 §10.4; Microsoft rotates, a strict provider kills the old token
at once): a new refresh token in the answer is written back to its ``{file:}`` secret before the
access token is cached, so a failure between the two leaves a file that still logs in. A
refresh token the file can only read (``{env:}``, ``{command:}``) is kept rotated in the cache
entry, and preferred while the configured value is the one it replaced.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from smtpconf.model import Login, OAuth2, SecretRef
from smtpconf.oauth2 import InvalidGrant, OAuth2Error
from smtpconf.oauth2 import cache
from smtpconf.oauth2.cache import shown

# What RFC 6749 §5.2 error codes mean for someone holding a refresh token, and what to do.
_ADVICE = {
    "invalid_client": "the identity provider refused the client: check client_id, and client_secret where "
                      "the application has one",
    "unauthorized_client": "the application may not use this grant: check its registration (public client, "
                           "allowed flows)",
    "invalid_scope": "the identity provider refused the scopes: check oauth2.scopes and the application's "
                     "API permissions",
    "invalid_request": "the identity provider refused the request as malformed",
    "unsupported_grant_type": "the identity provider does not take this grant type: is token_url right?",
}


def describe(login: Login) -> str:
    """``relay 'o365'`` / ``account a@example.com``, from where the login is written."""
    kind, name = (login.path + ("", ""))[:2]
    return f"relay '{name}'" if kind == "relays" else f"account {login.username or ''}".rstrip()


def default_login_command(login: Login) -> str:
    kind, name = (login.path + ("", ""))[:2]
    who = f"--relay {name}" if kind == "relays" else f"--account {login.username or 'EMAIL'}"
    return f"smtpconf oauth2 login FILE {who}"


def require(login: Login) -> OAuth2:
    """The login's OAuth2 block, complete enough to refresh, or an error naming what is missing."""
    who = describe(login)
    oauth2 = login.oauth2
    if login.auth != "oauth2" or oauth2 is None:
        raise OAuth2Error(f"{who} does not log in with OAuth2 (auth: {login.auth})")
    missing = [name for name, value in (("client_id", oauth2.client_id), ("refresh_token", oauth2.refresh_token),
                                        ("token_url", oauth2.token_url)) if not value]
    if missing:
        raise OAuth2Error(f"{who}: auth oauth2 needs {' and '.join(missing)} in its oauth2 block "
                          "(smtpconf lint names the line)")
    return oauth2


def cache_key(login: Login, oauth2: OAuth2) -> cache.Key:
    assert oauth2.refresh_token is not None and oauth2.token_url and oauth2.client_id
    source = oauth2.refresh_token
    return cache.key(oauth2.token_url, oauth2.client_id, login.username or "", " ".join(oauth2.scopes),
                     source.kind, source.ref)


def lock_name(source: SecretRef, base_dir: Path) -> str:
    ref = str(secret_path(source, base_dir)) if source.kind == "file" else source.ref
    return "refresh-" + cache.sha256(f"{source.kind}\0{ref}")[:40]


def secret_path(source: SecretRef, base_dir: Path) -> Path:
    """Where a ``{file:}`` secret is, symlinks followed (a write-back replaces the real file)."""
    path = Path(source.ref).expanduser()
    return Path(os.path.realpath(path if path.is_absolute() else base_dir / path))


def access_token(login: Login, base_dir: Path, *, timeout: float, login_command: str | None = None) -> str:
    oauth2 = require(login)
    source = oauth2.refresh_token
    assert source is not None
    if source.kind == "vault":
        raise OAuth2Error(f"{describe(login)}: the refresh token is the Ansible variable {source.ref}, resolved "
                          "on the host at deploy time; here use a {file:}, {env:} or {command:} refresh token")
    key = cache_key(login, oauth2)
    entry = cache.read(key)
    if entry is not None and entry.fresh(time.time()):
        return entry.access_token or ""
    from smtpconf.oauth2.http import Deadline

    deadline = Deadline(timeout)
    with cache.Lock(lock_name(source, base_dir), deadline.remaining()) as lock:
        if lock.skipped:
            print(f"smtpconf: warning: refreshing without a lock ({lock.skipped})", file=sys.stderr)
        entry = cache.read(key)  # another process may have refreshed while we waited
        if entry is not None and entry.fresh(time.time()):
            return entry.access_token or ""
        return _refresh(login, oauth2, base_dir, key, entry, deadline,
                        login_command or default_login_command(login))


def _refresh(login: Login, oauth2: OAuth2, base_dir: Path, key: cache.Key, entry: cache.Entry | None,
             deadline: Any, login_command: str) -> str:
    from smtpconf.oauth2.http import ProviderError, endpoint_name, post_form
    from smtpconf.secrets import resolve

    source = oauth2.refresh_token
    assert source is not None and oauth2.client_id and oauth2.token_url
    configured = resolve(source, base_dir, timeout=max(deadline.left("reading the refresh token"), 0.001)).strip()
    if not configured:
        raise OAuth2Error(f"{describe(login)}: the refresh token ({source.describe()}) is empty; run: {login_command}")
    rotated = entry.rotated_for(configured) if entry is not None and source.kind != "file" else None
    refresh_token = rotated or configured
    client_secret = (resolve(oauth2.client_secret, base_dir, timeout=max(deadline.left("reading the client secret"),
                                                                         0.001))
                     if oauth2.client_secret is not None else None)
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": oauth2.client_id}
    if oauth2.scopes:
        form["scope"] = " ".join(oauth2.scopes)  # Microsoft v2 wants it on refresh too
    if client_secret is not None:
        form["client_secret"] = client_secret
    try:
        answer = post_form(oauth2.token_url, form, deadline=deadline, scrub=(refresh_token, configured, client_secret),
                           name="token_url")
    except ProviderError as exc:
        raise refused(exc, login_command) from None
    now = time.time()
    access, expires_at = parse_token_answer(answer, endpoint_name(oauth2.token_url), now,
                                            scrub=(refresh_token, configured, client_secret))
    new_refresh = answer.get("refresh_token")
    keep: str | None = rotated  # a read-only source's rotated token stays until it rotates again
    if isinstance(new_refresh, str) and new_refresh and new_refresh != refresh_token:
        if source.kind == "file":
            write_refresh_token(secret_path(source, base_dir), new_refresh, login_command)
        else:
            keep = new_refresh
    record = cache.Entry(access, now, expires_at, rotated_refresh_token=keep,
                         configured_sha256=cache.sha256(configured) if keep else None)
    try:
        cache.write(key, record)
    except (OSError, OAuth2Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if keep:  # the only copy of a live refresh token: losing it means a new login
            raise OAuth2Error(f"the identity provider rotated the refresh token of {describe(login)}, and the "
                              f"cache that keeps it cannot be written ({reason}); fix that, then run: "
                              f"{login_command}") from None
        print(f"smtpconf: warning: access token not cached ({reason}): every call will refresh", file=sys.stderr)
    return access


def refused(exc: Any, login_command: str) -> OAuth2Error:
    """The error for a token endpoint's RFC 6749 §5.2 answer to a refresh."""
    detail = f"{exc.error}: {exc.description}" if exc.description else exc.error
    if exc.error == "invalid_grant":
        return InvalidGrant(f"the identity provider refused the refresh token ({detail}); run: {login_command}")
    advice = _ADVICE.get(exc.error, f"{exc.where} refused the refresh")
    return OAuth2Error(f"{advice} ({detail})")


def parse_token_answer(answer: dict[str, Any], where: str, now: float,
                       scrub: tuple[str | None, ...] = ()) -> tuple[str, float | None]:
    """The access token and when it expires (None when the answer has no usable expires_in)."""
    access = answer.get("access_token")
    if not isinstance(access, str) or not access or not access.isascii() or not access.isprintable():
        raise OAuth2Error(f"{where} answered without a usable access_token")
    token_type = answer.get("token_type")
    if isinstance(token_type, str) and token_type.lower() != "bearer":
        from smtpconf.findings import printable

        raise OAuth2Error(f"{where} answered a token of type {printable(token_type)}; SMTP needs a Bearer token")
    expires_in = answer.get("expires_in")
    try:  # RFC 6749 §5.1 says a number; some providers send a string of digits
        seconds = float(expires_in) if isinstance(expires_in, (int, float, str)) else None
    except ValueError:
        seconds = None
    if seconds is None or not 0 < seconds < 10 * 365 * 86400:
        return access, None
    return access, now + seconds


def write_refresh_token(path: Path, token: str, login_command: str | None) -> None:
    """Replace a refresh-token file atomically (0600), creating its directory (0700) if needed.
    On failure the old file is as it was."""
    import stat

    try:
        st = path.lstat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OAuth2Error(f"refresh token file {shown(path)}: {exc.strerror or exc}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OAuth2Error(f"refresh token file {shown(path)} is not a regular file; nothing was written")
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(mode=0o700, parents=True)
        cache.write_private(path, token + "\n")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if login_command is None:  # a login: nothing was spent yet
            raise OAuth2Error(f"the refresh token could not be written to {shown(path)} ({reason})") from None
        raise OAuth2Error(f"the new refresh token could not be written to {shown(path)} ({reason}); the file is "
                          f"unchanged, but a provider that rotates tokens no longer accepts it: fix that, then "
                          f"run: {login_command}") from None

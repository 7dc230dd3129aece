"""``smtpconf oauth2 login``: get a refresh token once, with a person at a browser.

Two flows:

* the authorization code flow with PKCE S256 (RFC 7636) and a loopback redirect (RFC 8252 §7.3):
  a listener on 127.0.0.1 on a port the kernel picks, ``redirect_uri http://127.0.0.1:PORT/``,
  ``state`` checked, the browser answered with a small page. The URL to open is printed on
  stderr; a browser is started only on a desktop (and not with ``--no-browser``).
* the device authorization grant (RFC 8628, ``--device``) where the provider has a device
  endpoint (Microsoft; Google allows none for mail scopes): a code to type on another device,
  polled at the provider's interval, ``slow_down`` honoured.

The refresh token goes to the login's ``{file:}`` (or ``--out``), 0600, atomically — never to the
terminal — and the access token of the same answer seeds the cache.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

from smtpconf.errors import UsageError
from smtpconf.findings import printable
from smtpconf.model import Login, OAuth2
from smtpconf.oauth2 import OAuth2Error, cache
from smtpconf.oauth2.cache import shown
from smtpconf.oauth2.http import Deadline, ProviderError, TimedOut, endpoint_name, post_form
from smtpconf.oauth2.token import (cache_key, parse_token_answer, require, secret_path, write_refresh_token)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_MAX_REQUEST = 16 * 1024
_DONE_PAGE = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>smtpconf</title></head>"
              "<body style=\"font-family:sans-serif;margin:3em\"><h1>{title}</h1><p>{text}</p></body></html>\n")

Say = Callable[[str], None]


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def login(login: Login, base_dir: Path, *, what: str, device: bool, out: Path | None, timeout: float,
          browser: bool, say: Say = _say) -> Path:
    """Run a flow for ``login`` and write its refresh token; returns where it was written."""
    from smtpconf.secrets import resolve

    oauth2 = login.oauth2
    if login.auth != "oauth2" or oauth2 is None:
        raise UsageError(f"{what} does not log in with OAuth2")
    if not oauth2.client_id or not oauth2.token_url:
        missing = " and ".join(name for name, value in (("client_id", oauth2.client_id),
                                                        ("token_url", oauth2.token_url)) if not value)
        raise UsageError(f"{what}: a login needs {missing} in its oauth2 block")
    target = _target(oauth2, base_dir, out, what)
    deadline = Deadline(timeout)
    client_secret = (resolve(oauth2.client_secret, base_dir, timeout=deadline.left("reading the client secret"))
                     if oauth2.client_secret is not None else None)
    username = login.username or ""
    if device:
        answer = device_flow(oauth2, username, client_secret, deadline=deadline, say=say, what=what)
    else:
        answer = code_flow(oauth2, username, client_secret, deadline=deadline, say=say, browser=browser)
    where = endpoint_name(oauth2.token_url)
    access, expires_at = parse_token_answer(answer, where, time.time(), scrub=(client_secret,))
    refresh = answer.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        hint = (" (Microsoft gives one only with the offline_access scope)" if "offline_access" not in oauth2.scopes
                else "")
        raise OAuth2Error(f"{where} signed you in but gave no refresh token{hint}; nothing was written")
    write_refresh_token(target, refresh, None)
    say(f"smtpconf: wrote the refresh token of {what} to {shown(target)} (mode 0600)")
    _seed_cache(login, oauth2, base_dir, target, access, expires_at, say)
    return target


def _target(oauth2: OAuth2, base_dir: Path, out: Path | None, what: str) -> Path:
    """Where the refresh token goes: ``--out``, else the login's ``{file:}`` refresh token."""
    import stat

    if out is not None:
        path = Path(os.path.realpath(out.expanduser()))
    elif oauth2.refresh_token is not None and oauth2.refresh_token.kind == "file":
        path = secret_path(oauth2.refresh_token, base_dir)
    else:
        if oauth2.refresh_token is None:
            raise UsageError(f"{what} has no refresh_token yet: give --out PATH, or write refresh_token: "
                             "{file: PATH} in its oauth2 block")
        raise UsageError(f"{what}: its refresh_token is {{{oauth2.refresh_token.kind}:}}, not a {{file:}} smtpconf "
                         "can write: give --out PATH (then store the token where the file says), or make it "
                         "refresh_token: {file: PATH}")
    try:
        st = path.stat()
    except OSError:
        return path
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{shown(path)} is not a regular file: the refresh token is written only to a file "
                         "(mode 0600)")
    return path


def _seed_cache(login: Login, oauth2: OAuth2, base_dir: Path, written: Path, access: str,
                expires_at: float | None, say: Say) -> None:
    """Cache the login's access token under the key ``smtpconf oauth2 token`` will look for —
    when the configured refresh token is the file just written (an ``--out`` elsewhere may be
    copied into a vault or a password manager: its value there is not known here)."""
    source = oauth2.refresh_token
    if source is None or source.kind != "file" or secret_path(source, base_dir) != written:
        return
    try:
        cache.write(cache_key(login, require(login)), cache.Entry(access, time.time(), expires_at))
    except (OSError, OAuth2Error) as exc:
        say(f"smtpconf: warning: access token not cached ({exc}); the next token call refreshes")


# -- authorization code flow, PKCE, loopback redirect ------------------------------------------------

def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), RFC 7636 §4.1-4.2: 64 unreserved characters."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


def code_flow(oauth2: OAuth2, username: str, client_secret: str | None, *, deadline: Deadline, say: Say,
              browser: bool) -> dict[str, Any]:
    if not oauth2.authorize_url:
        raise UsageError("the oauth2 block needs authorize_url for a browser login (or use --device with device_url)")
    assert oauth2.client_id and oauth2.token_url
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))  # RFC 8252 §7.3: loopback IP literal, any port
        listener.listen(8)
        redirect_uri = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        query = {"response_type": "code", "client_id": oauth2.client_id, "redirect_uri": redirect_uri,
                 "scope": " ".join(oauth2.scopes), "state": state, "code_challenge": challenge,
                 "code_challenge_method": "S256"}
        if username:
            query["login_hint"] = username
        if (urlsplit(oauth2.authorize_url).hostname or "").endswith("google.com"):
            # Google returns a refresh token only for offline access, and only at consent.
            query.update(access_type="offline", prompt="consent")
        separator = "&" if urlsplit(oauth2.authorize_url).query else "?"
        url = oauth2.authorize_url + separator + urlencode(query)
        say(f"Open this URL in a browser and sign in{f' as {username}' if username else ''}:\n\n  {url}\n")
        say(f"Waiting for the sign-in at {redirect_uri} (up to {deadline.seconds:g}s, --timeout)...")
        if browser and _desktop():
            import webbrowser

            webbrowser.open(url)
        code = _wait_for_redirect(listener, state, deadline)
    finally:
        listener.close()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": oauth2.client_id, "code_verifier": verifier}
    if client_secret is not None:
        form["client_secret"] = client_secret
    try:
        return post_form(oauth2.token_url, form, deadline=deadline, scrub=(code, verifier, client_secret),
                         name="token_url")
    except ProviderError as exc:
        raise OAuth2Error(f"the identity provider refused the sign-in code ({_detail(exc)})") from None


def _desktop() -> bool:
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _wait_for_redirect(listener: socket.socket, state: str, deadline: Deadline) -> str:
    """Answer requests to the loopback listener until one carries our ``state`` with a code (or
    an error); a request with another state (an old tab, a forged link) is refused and ignored."""
    while True:
        try:
            listener.settimeout(deadline.left("the sign-in"))
            conn, _ = listener.accept()
        except (TimeoutError, TimedOut):
            raise TimedOut(f"no sign-in came back within {deadline.seconds:g}s (--timeout); run the login again")
        with conn:
            params = _read_request(conn, deadline)
            if params is None:
                _answer(conn, 404, "Not found", "This is smtpconf's sign-in listener.")
                continue
            if params.get("state") != state:
                _answer(conn, 400, "Sign-in not accepted", "This answer does not belong to the sign-in smtpconf "
                                                           "is waiting for. Use the URL smtpconf printed.")
                continue
            if "error" in params:
                _answer(conn, 200, "Sign-in failed", "You can close this window; smtpconf says why.")
                detail = printable(params["error"], 60)
                if params.get("error_description"):
                    detail += ": " + printable(params["error_description"], 300)
                raise OAuth2Error(f"the identity provider did not sign you in ({detail})")
            _answer(conn, 200, "Signed in", "You can close this window and return to smtpconf.")
            return params["code"]


def _read_request(conn: socket.socket, deadline: Deadline) -> dict[str, str] | None:
    """The query of a ``GET /?...`` carrying ``code`` or ``error``; None for anything else."""
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < _MAX_REQUEST:
            conn.settimeout(min(5.0, deadline.left("the sign-in")))
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    method, _, rest = data.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
    target = rest.rsplit(" ", 1)[0]
    parts = urlsplit(target)
    if method != "GET" or parts.path != "/":
        return None
    params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return params if ("code" in params and params["code"]) or "error" in params else None


def _answer(conn: socket.socket, status: int, title: str, text: str) -> None:
    body = _DONE_PAGE.format(title=title, text=text).encode()
    head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n").encode()
    try:
        conn.sendall(head + body)
    except OSError:
        pass


# -- device authorization grant --------------------------------------------------------------------

def device_flow(oauth2: OAuth2, username: str, client_secret: str | None, *, deadline: Deadline, say: Say,
                what: str) -> dict[str, Any]:
    if not oauth2.device_url:
        raise UsageError(f"{what}: its identity provider has no device flow (Google allows none for mail scopes; "
                         "others need device_url in the oauth2 block): log in without --device")
    assert oauth2.client_id and oauth2.token_url
    form = {"client_id": oauth2.client_id, "scope": " ".join(oauth2.scopes)}
    if username:
        form["login_hint"] = username
    if client_secret is not None:
        form["client_secret"] = client_secret
    try:
        grant = post_form(oauth2.device_url, form, deadline=deadline, scrub=(client_secret,), name="device_url")
    except ProviderError as exc:
        raise OAuth2Error(f"the identity provider refused the device login ({_detail(exc)})") from None
    device_code, user_code = grant.get("device_code"), grant.get("user_code")
    # RFC 8628 §3.2 says verification_uri; Google's older endpoint says verification_url.
    uri = grant.get("verification_uri") or grant.get("verification_url")
    if not all(isinstance(v, str) and v for v in (device_code, user_code, uri)):
        raise OAuth2Error(f"{endpoint_name(oauth2.device_url)} answered without device_code, user_code and "
                          "verification_uri: is device_url right?")
    assert isinstance(device_code, str) and isinstance(user_code, str) and isinstance(uri, str)
    interval = _number(grant.get("interval"), 5.0)
    expires = Deadline(min(_number(grant.get("expires_in"), 900.0), deadline.remaining()))
    sign_in = f" as {username}" if username else ""
    say(f"To sign in{sign_in}, open {printable(uri, 200)} on any device and enter the code "
        f"{printable(user_code, 40)}")
    complete = grant.get("verification_uri_complete")
    if isinstance(complete, str) and complete:
        say(f"(or open {printable(complete, 300)})")
    say(f"Waiting for the sign-in (up to {expires.seconds:.0f}s)...")
    poll = {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": oauth2.client_id}
    if client_secret is not None:
        poll["client_secret"] = client_secret
    while True:
        pause = min(interval, expires.remaining())
        if pause <= 0:
            raise TimedOut(f"no sign-in within {expires.seconds:g}s; run the login again")
        time.sleep(pause)
        try:
            return post_form(oauth2.token_url, poll, deadline=expires, scrub=(device_code, client_secret),
                             name="token_url")
        except ProviderError as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":  # RFC 8628 §3.5: add 5 seconds to the interval, for good
                interval += 5
                continue
            if exc.error == "expired_token":
                raise OAuth2Error("the device code expired before the sign-in finished; run the login again") from None
            if exc.error == "access_denied":
                raise OAuth2Error("the sign-in was declined (access_denied); nothing was written") from None
            raise OAuth2Error(f"the identity provider refused the device login ({_detail(exc)})") from None


def _number(value: Any, default: float) -> float:
    try:
        number = float(value) if isinstance(value, (int, float, str)) else default
    except ValueError:
        return default
    return number if 0 < number < 86400 else default


def _detail(exc: ProviderError) -> str:
    return f"{exc.error}: {exc.description}" if exc.description else exc.error

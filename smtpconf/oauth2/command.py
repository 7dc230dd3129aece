"""``smtpconf oauth2 token`` and ``smtpconf oauth2 login`` (SPEC §7).

``token`` runs for every message msmtp sends, so it takes the shortest path that still refuses a
broken file. The full path: YAML, schema and references for the whole file (the model is only
sound on a document that passes them), then only the rules that concern the chosen login's
credential (``inline-secret``, ``oauth2-incomplete``, ``oauth2-plaintext``), then the cache. A
lint error elsewhere in the file (another relay's TLS settings) does not stop mail that does not
use it.

The short path: once the full path has given a token, an index entry in the cache remembers
which access-token entry this (file, ``--account``/``--relay``) led to, keyed by the file's
identity and change stamps (device, inode, size, mtime and ctime in nanoseconds; ctime cannot be
set back by the user) and smtpconf's version. While all of those are the same, the file is the
one that passed, byte for byte, and the cached token is answered without reading YAML at all.
Any change to the file — or a token that needs refreshing — takes the full path again.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from smtpconf.errors import FatalError, UsageError

if TYPE_CHECKING:  # the short path of `token` must not import the model (and yaml)
    from smtpconf.findings import Finding
    from smtpconf.model import Config, Login
    from smtpconf.oauth2.cache import Key

EXIT_OK, EXIT_REFUSED = 0, 1

# The rules whose errors make a login's token unobtainable or unsafe to use.
_LOGIN_RULES = ("inline-secret", "oauth2-incomplete", "oauth2-plaintext")
# A login is how a missing refresh token gets one (with --out): it checks client_id and
# token_url itself.
_LOGIN_COMMAND_RULES = ("inline-secret", "oauth2-plaintext")


class Chosen:
    """The login a command acts on. (A plain class: a NamedTuple costs the short path 1 ms.)"""

    __slots__ = ("config", "login", "what", "login_command")

    def __init__(self, config: Config, login: Login, what: str, login_command: str) -> None:
        self.config = config
        self.login = login
        self.what = what  # "account a@example.com" / "relay 'o365'"
        self.login_command = login_command  # what to run when the refresh token is refused


class TokenOptions:
    """``smtpconf oauth2 token FILE (--account EMAIL | --relay NAME) [--timeout SECONDS]``: one of
    ``account`` and ``relay``. (Frozen by hand: a dataclass costs the short path its imports.)"""

    __slots__ = ("file", "account", "relay", "timeout")
    file: str
    account: str | None
    relay: str | None
    timeout: float

    def __init__(self, file: str, *, account: str | None = None, relay: str | None = None,
                 timeout: float = 20.0) -> None:
        _init(self, file=file, account=account, relay=relay, timeout=timeout)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")


class LoginOptions:
    """``smtpconf oauth2 login FILE (--account EMAIL | --relay NAME) [--device] [--out PATH] ...``."""

    __slots__ = ("file", "account", "relay", "timeout", "device", "out", "browser")
    file: str
    account: str | None
    relay: str | None
    timeout: float
    device: bool
    out: str | None
    browser: bool

    def __init__(self, file: str, *, account: str | None = None, relay: str | None = None,
                 timeout: float = 300.0, device: bool = False, out: str | None = None,
                 browser: bool = True) -> None:
        _init(self, file=file, account=account, relay=relay, timeout=timeout, device=device, out=out,
              browser=browser)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")


def _init(options: object, **values: object) -> None:
    for name, value in values.items():
        object.__setattr__(options, name, value)


Options = TokenOptions | LoginOptions


def execute_token(args: TokenOptions) -> int:
    from smtpconf.oauth2 import InvalidGrant, access_token, cache

    index = _index(args)
    pointed = cache.read_index(index) if index is not None else None
    if pointed is not None:
        import time

        entry = cache.read(pointed)
        if entry is not None and entry.fresh(time.time()) and entry.access_token:
            sys.stdout.write(entry.access_token + "\n")
            return EXIT_OK
    chosen = choose(args)
    try:
        token = access_token(chosen.login, chosen.config.doc.path.parent, timeout=args.timeout,
                             login_command=chosen.login_command)
    except InvalidGrant as exc:
        print(f"smtpconf: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if index is not None:
        from smtpconf.oauth2.token import cache_key, require

        target = cache_key(chosen.login, require(chosen.login))
        if target != pointed:  # new, or the file changed: the entry of this file and login is replaced
            try:
                cache.write_index(index, target)
            except (OSError, FatalError):
                pass  # only the short path is lost; access_token already warned about the cache
    sys.stdout.write(token + "\n")
    return EXIT_OK


def _index(args: TokenOptions) -> Key | None:
    """The index key of this file as it is now, and this ``--account``/``--relay``."""
    import os

    from smtpconf import __version__
    from smtpconf.oauth2 import cache

    try:
        path = os.path.realpath(args.file)
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    who = ("relay", args.relay) if args.relay is not None else ("account", (args.account or "").lower())
    return cache.key("index", path, *who, stamps=(__version__, str(st.st_dev), str(st.st_ino), str(st.st_size),
                                                  str(st.st_mtime_ns), str(st.st_ctime_ns)))


def execute_login(args: LoginOptions) -> int:
    from smtpconf.oauth2.flows import login

    chosen = choose(args, _LOGIN_COMMAND_RULES)
    login(chosen.login, chosen.config.doc.path.parent, what=chosen.what, device=args.device,
          out=Path(args.out) if args.out else None, timeout=args.timeout, browser=args.browser)
    return EXIT_OK


def choose(args: Options, rules: tuple[str, ...] = _LOGIN_RULES) -> Chosen:
    config = load_for_login(Path(args.file), args.file)
    if args.relay is not None:
        relay = config.relays.get(args.relay)
        if relay is None:
            raise UsageError(f"no relay '{args.relay}' in {args.file} (relays: {', '.join(config.relays) or 'none'})")
        login, what, who, paths = relay.login, f"relay '{relay.name}'", f"--relay {args.relay}", [relay.path]
    else:
        assert args.account is not None
        wanted = args.account.lower()
        account = next((a for a in config.accounts if a.email.lower() == wanted), None)
        if account is None:
            known = ", ".join(a.email for a in config.accounts) or "none"
            raise UsageError(f"no account '{args.account}' in {args.file} (accounts: {known})")
        login, what, who = account.login, f"account {account.email}", f"--account {args.account}"
        paths = [account.path, login.path]
    if login.auth != "oauth2":
        raise UsageError(f"{what} logs in with {'a password' if login.auth == 'password' else 'no AUTH'}, not "
                         "OAuth2 (auth: oauth2 in its entry)")
    _refuse_login_errors(config, args.file, paths, rules)
    return Chosen(config, login, what, f"smtpconf oauth2 login {_shell(args.file)} {who}")


def _shell(word: str) -> str:
    import re

    if re.fullmatch(r"[\w@%+=:,./-]+", word, re.ASCII):
        return word
    import shlex

    return shlex.quote(word)


def load_for_login(path: Path, file: str) -> Config:
    """The model of a file whose YAML, schema and references are sound; else its errors on
    stderr and a clear refusal."""
    from smtpconf.load import load
    from smtpconf.model import build
    from smtpconf.rules.references import check_references
    from smtpconf.schema import validate

    doc, findings = load(path, file)
    if doc is not None and not _errors(findings):
        findings += [doc.found(e.path, "schema", e.message, key=e.at_key) for e in validate(doc.data)]
        if not _errors(findings):
            findings += check_references(doc)
        findings = [f for f in findings if not doc.ignored(f)]
    if doc is None or _errors(findings):
        _print_errors(findings)
        raise FatalError(f"{file} has errors (above; smtpconf lint {_shell(file)} shows all); no token")
    return build(doc)


def _refuse_login_errors(config: Config, file: str, paths: list[tuple[str | int, ...]],
                         rules: tuple[str, ...]) -> None:
    import smtpconf.rules.oauth2  # noqa: F401  (importing a family registers its rules)
    import smtpconf.rules.secrets  # noqa: F401
    from smtpconf.rules import REGISTRY

    doc = config.doc
    findings = []
    for rule_id in rules:
        rule = REGISTRY[rule_id]
        assert rule.check is not None
        for hit in rule.check(config):
            if (hit.level or rule.level) == "error" and any(hit.path[:len(p)] == p for p in paths):
                finding = doc.finding(hit.path, "error", rule.id, hit.message, key=hit.at_key)
                if not doc.ignored(finding):
                    findings.append(finding)
    if findings:
        _print_errors(findings)
        raise FatalError(f"{file}: this login has errors (above); no token")


def _errors(findings: list[Finding]) -> bool:
    return any(f.level == "error" for f in findings)


def _print_errors(findings: list[Finding]) -> None:
    for f in findings:
        if f.level == "error":
            print(f"{f.file}:{f.line}:{f.col}: {f.level} [{f.rule}] {f.message}", file=sys.stderr)

"""Command line: parse flags, call the stages, map errors to exit codes.

Exit codes (SPEC §3): 0 nothing at error level; 1 findings at error level (or warnings under
--strict); 2 usage errors and unreadable files. Heavy modules (jinja2, dnspython, ansible) are
imported inside the commands that need them, never at start-up: ``lint`` runs on every commit.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Sequence

from smtpconf import __version__
from smtpconf.errors import FatalError, UsageError

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
FORMATS = ("text", "json", "sarif", "github")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one clear line and exit 2 (not a usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="output format (default: text; github when GITHUB_ACTIONS=true)")
    parser.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="smtpconf", description=(
        "Lint, check and render mail relays, accounts and fleets described in one YAML file."))
    parser.add_argument("--version", action="version", version=f"smtpconf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    lint = commands.add_parser("lint", help="offline: YAML, schema, references and rules (for pre-commit)",
                               description="Check files offline: YAML, schema, references and mail rules.")
    lint.add_argument("files", nargs="*", metavar="FILE", help="smtpconf files or directories of them")
    _add_report_options(lint)
    lint.add_argument("--explain", metavar="RULE", help="print the documentation of RULE and exit")
    lint.add_argument("--list-rules", action="store_true", help="list every rule id with its level")
    lint.set_defaults(func=_lint)

    check = commands.add_parser("check", help="lint, then live DNS and SMTP probes of every endpoint",
                                description="Everything lint does, then DNS checks and SMTP probes.")
    check.add_argument("files", nargs="+", metavar="FILE")
    _add_report_options(check)
    check.add_argument("--nameserver", metavar="HOST[:PORT]", help="DNS server for every query")
    check.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS",
                       help="limit for each query and probe (default 10)")
    check.add_argument("--concurrency", type=_positive_int, default=50, metavar="N",
                       help="probes and queries in flight at once (default 50)")
    check.add_argument("--no-dns", action="store_true", help="skip the DNS checks of `domains`")
    check.add_argument("--no-probe", action="store_true", help="skip the SMTP probes (and the discovery sites)")
    check.add_argument("--ca-file", metavar="PEM", help="also trust this CA when fetching the discovery sites")
    check.add_argument("--https-port", type=_positive_int, default=443, metavar="PORT",
                       help="port of the discovery sites' HTTPS servers (default 443; for a test server)")
    check.add_argument("-q", "--quiet", action="store_true", help="text: print the findings only, not what was verified")
    check.set_defaults(func=_check)

    render = commands.add_parser("render", help="write client, Postfix and Ansible files",
                                 description="Render the file into client, Postfix and Ansible files "
                                             "(docs/commands.md lists the targets).")
    render.add_argument("file", metavar="FILE")
    render.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    render.add_argument("--only", metavar="TARGET,...", help="comma-separated targets (default: all)")
    render.add_argument("--format", choices=("text", "json"), default="text",
                        help="what to print: the written files (text) or a JSON manifest")
    render.add_argument("--postfix-map-dir", metavar="DIR",
                        help="where the postfix target's main.cf expects its maps "
                             "(default /etc/postfix/smtpconf)")
    render.add_argument("-j", "--jobs", type=_positive_int, metavar="N",
                        help="processes that render targets side by side (default: one per CPU when "
                             "the file has a few hundred accounts or more, else 1)")
    render.set_defaults(func=_render)

    send = commands.add_parser("send-test", help="send a real test message, step by step",
                               description="Send a test message through an account or relay and explain "
                                           "which step failed. A file with lint errors is refused first "
                                           "(exit 1, the errors on stderr), as render refuses it. With "
                                           "auth: oauth2 it gets an access token and logs in with "
                                           "XOAUTH2 or OAUTHBEARER; the token is never printed.")
    send.add_argument("file", metavar="FILE")
    who = send.add_mutually_exclusive_group(required=True)
    who.add_argument("--account", metavar="EMAIL")
    who.add_argument("--relay", metavar="NAME")
    send.add_argument("--to", required=True, metavar="ADDR", help="recipient of the test message")
    send.add_argument("--from", dest="sender", metavar="ADDR", help="envelope sender (default: the account "
                                                                      "address or the relay username)")
    send.add_argument("--timeout", type=_seconds, default=20.0, metavar="SECONDS",
                      help="limit for the whole session, secret or token included, not for each read "
                           "(default 20)")
    send.add_argument("--nameserver", metavar="HOST[:PORT]", help="DNS server to resolve the host")
    send.add_argument("--allow-plaintext", action="store_true",
                      help="allow sending credentials without TLS (security: none)")
    send.set_defaults(func=_send_test)

    schema = commands.add_parser("schema", help="print the JSON Schema of the file format")
    schema.set_defaults(func=_schema)

    _add_oauth2(commands)

    providers = commands.add_parser("providers", help="list the built-in provider presets")
    providers.add_argument("--format", choices=("text", "json"), default="text")
    providers.set_defaults(func=_providers)

    init = commands.add_parser("init", help="write a commented starter file")
    init.add_argument("path", nargs="?", default="smtpconf.yaml", help="where to write it ('-' for stdout)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=_init)
    return parser


def _lint(args: argparse.Namespace) -> int:
    from smtpconf.findings import fails
    from smtpconf.lint import expand, lint_path
    from smtpconf.report import emit
    from smtpconf.rules import all_rules

    rules = all_rules()
    if args.explain:
        return _explain(args.explain, rules)
    if args.list_rules:
        for rule in rules.values():
            kind = "live" if rule.live else "offline"
            print(f"{rule.id:<26} {rule.level:<8} {kind:<8} {rule.summary}")
        return EXIT_OK
    if not args.files:
        raise UsageError("lint needs at least one FILE (see 'smtpconf lint --help')")
    findings = []
    for path, file in expand(args.files):
        findings += lint_path(path, file).findings
    emit(findings, rules, args.format)
    return EXIT_FINDINGS if fails(findings, args.strict) else EXIT_OK


def _explain(rule_id: str, rules: dict[str, Any]) -> int:
    rule = rules.get(rule_id)
    if rule is None:
        import difflib

        close = difflib.get_close_matches(rule_id, list(rules), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; 'smtpconf lint --list-rules' lists them"
        raise UsageError(f"unknown rule '{rule_id}'{hint}")
    kind = "live (smtpconf check)" if rule.live else "offline (smtpconf lint)"
    print(f"{rule.id} ({rule.level}, {kind})\n\n{rule.doc}")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from smtpconf.probe.check import CheckOptions, LiveOptions, execute

    live = LiveOptions(nameserver=args.nameserver, timeout=args.timeout, concurrency=args.concurrency,
                       dns=not args.no_dns, probe=not args.no_probe, ca_file=args.ca_file, https_port=args.https_port)
    return execute(CheckOptions(files=tuple(args.files), live=live, format=args.format, strict=args.strict,
                                quiet=args.quiet))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def _seconds(text: str) -> float:
    """Seconds (every --timeout): positive and finite (0 would probe nothing, nan and inf never end)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):  # false for nan too
        raise argparse.ArgumentTypeError(f"{text} is not a positive, finite number of seconds")
    return value


def _render(args: argparse.Namespace) -> int:
    from smtpconf.render.command import RenderOptions, execute

    return execute(RenderOptions(file=args.file, output=args.output, only=args.only, format=args.format,
                                 postfix_map_dir=args.postfix_map_dir, jobs=args.jobs))


def _add_oauth2(commands: Any) -> None:
    oauth2 = commands.add_parser("oauth2", help="OAuth2 logins: get a refresh token, print an access token",
                                 description="OAuth2 for SMTP (XOAUTH2, OAUTHBEARER): log in once, then print "
                                             "access tokens for msmtp, neomutt, git send-email and Postfix.")
    actions = oauth2.add_subparsers(dest="oauth2_command", metavar="ACTION", parser_class=_Parser, required=True)
    token = actions.add_parser("token", help="print a valid access token (cached until shortly before it expires)",
                               description="Print a valid access token on stdout and nothing else: the cached "
                                           "one, or a new one from the refresh token.")
    login = actions.add_parser("login", help="sign in with a browser (or --device) and store the refresh token",
                               description="Get a refresh token: authorization code flow with PKCE and a loopback "
                                           "redirect, or the device flow; written 0600, never printed.")
    for parser in (token, login):
        parser.add_argument("file", metavar="FILE")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--account", metavar="EMAIL", help="the account's login (its own, or its relay's)")
        who.add_argument("--relay", metavar="NAME", help="the relay's login")
    token.add_argument("--timeout", type=_seconds, default=20.0, metavar="SECONDS",
                       help="limit for the whole refresh, when one is needed (default 20)")
    token.set_defaults(func=_oauth2_token)
    login.add_argument("--device", action="store_true", help="device flow (RFC 8628): a code to type elsewhere")
    login.add_argument("--out", metavar="PATH", help="write the refresh token here (default: the {file:} of "
                                                      "oauth2.refresh_token)")
    login.add_argument("--timeout", type=_seconds, default=300.0, metavar="SECONDS",
                       help="limit for the whole login, sign-in included (default 300)")
    login.add_argument("--no-browser", action="store_true", help="only print the URL; do not start a browser")
    login.set_defaults(func=_oauth2_login)


def _oauth2_token(args: argparse.Namespace) -> int:
    from smtpconf.oauth2.command import TokenOptions, execute_token

    return execute_token(TokenOptions(args.file, account=args.account, relay=args.relay, timeout=args.timeout))


def _oauth2_login(args: argparse.Namespace) -> int:
    from smtpconf.oauth2.command import LoginOptions, execute_login

    return execute_login(LoginOptions(args.file, account=args.account, relay=args.relay, timeout=args.timeout,
                                      device=args.device, out=args.out, browser=not args.no_browser))


def _send_test(args: argparse.Namespace) -> int:
    from smtpconf.probe.sendtest import SendTestOptions, execute

    return execute(SendTestOptions(file=args.file, to=args.to, account=args.account, relay=args.relay,
                                   sender=args.sender, timeout=args.timeout, nameserver=args.nameserver,
                                   allow_plaintext=args.allow_plaintext))


def _schema(args: argparse.Namespace) -> int:
    from smtpconf.schema import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK


def _providers(args: argparse.Namespace) -> int:
    from smtpconf.model import presets

    if args.format == "json":
        import json

        print(json.dumps({
            name: {"title": p.title, "smtp": [s._asdict() for s in p.smtp],
                   "incoming": {k: s._asdict() for k, s in p.incoming.items()},
                   "username": p.username, "note": p.note, "docs": p.docs,
                   "oauth2": _oauth2_preset_data(p.oauth2)}
            for name, p in presets().items()
        }, indent=2, ensure_ascii=False))
        return EXIT_OK
    for name, p in presets().items():
        smtp = ", ".join(f"{s.host}:{s.port} {s.security}" for s in p.smtp)
        incoming = ", ".join(f"{proto} {s.host}:{s.port} {s.security}" for proto, s in p.incoming.items())
        print(f"{name} — {p.title}\n  smtp:     {smtp}")
        if incoming:
            print(f"  incoming: {incoming}")
        if p.username:
            print(f"  username: {p.username}")
        if p.oauth2 is not None:
            o = p.oauth2
            tenant = f" (default tenant {o.tenant})" if o.tenant else ""
            extra = "".join(f" (+ {proto}: {scope})" for proto, scope in o.incoming_scopes.items())
            print(f"  oauth2:   {o.mechanism} via {o.issuer}; device flow: {'yes' if o.device_url else 'no'}\n"
                  f"            authorize {o.authorize_url}{tenant}\n            token     {o.token_url}")
            if o.device_url:
                print(f"            device    {o.device_url}")
            print(f"            scopes    {' '.join(o.scopes)}{extra}\n            register  {o.console}")
        print(f"  note:     {p.note}\n  docs:     {p.docs}\n")
    return EXIT_OK


def _oauth2_preset_data(o: Any) -> dict[str, Any] | None:
    if o is None:
        return None
    return {"mechanism": o.mechanism, "issuer": o.issuer, "authorize_url": o.authorize_url, "token_url": o.token_url,
            "device_url": o.device_url, "device_flow": o.device_url is not None, "scopes": list(o.scopes),
            "incoming_scopes": dict(o.incoming_scopes), "tenant": o.tenant, "console": o.console}


def _init(args: argparse.Namespace) -> int:
    from smtpconf.resources import resource_path

    text = resource_path("templates", "init", "smtpconf.yaml").read_text(encoding="utf-8")
    if args.path == "-":
        sys.stdout.write(text)
        return EXIT_OK
    try:
        with open(args.path, "x" if not args.force else "w", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise FatalError(f"{args.path} exists; use --force to overwrite it") from None
    except OSError as exc:
        raise FatalError(f"{args.path}: cannot write: {exc.strerror or exc}") from None
    print(f"wrote {args.path}; next: smtpconf lint {args.path}")
    return EXIT_OK


def _shown(message: str) -> str:
    """A message for stderr: file names and values in it may hold escape sequences or newlines.
    Control characters are shown escaped, and the lines after the first (some messages list
    things on lines of their own) are always indented, so no value can forge a line of its own."""
    from smtpconf.findings import printable

    first, *rest = message.split("\n")
    shown = [printable(first, len(first) * 6)]
    shown += ["  " * (not line.startswith((" ", "\t"))) + printable(line, len(line) * 6) for line in rest]
    return "\n".join(shown)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
        if func is None:
            build_parser().print_help()
            return EXIT_USAGE
        return func(args)
    except FatalError as exc:
        print(f"smtpconf: error: {_shown(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `smtpconf ... | head`
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:  # a bug of ours, not the user's mistake: one line, and a way to see more
        if os.environ.get("SMTPCONF_DEBUG"):
            raise
        print(f"smtpconf: internal error: {type(exc).__name__}: {_shown(str(exc))} (please report it; "
              "SMTPCONF_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_USAGE

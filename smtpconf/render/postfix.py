"""The ``postfix`` target: per fleet group, the Postfix settings and maps that relay its mail.

The text comes from the Ansible role's templates (``roles/smtp_relay/templates/``), rendered here
with the role's variables (docs/role-variables.md), so that the ``postfix`` and ``ansible``
targets cannot drift apart (SPEC §5). This module only computes those variables and resolves the
secrets ``sasl_passwd`` needs; the templates decide every byte.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from smtpconf.errors import RenderError
from smtpconf.model import Config, FleetGroup, Relay, to_ascii_host
from smtpconf.render import PUBLIC_MODE, SECRET_MODE, RenderContext, RenderedFile, safe_name
from smtpconf.render.escape import postfix as postfix_word
from smtpconf.resources import resource_path
from smtpconf.rules.fleet import group_relays

if TYPE_CHECKING:
    import jinja2

TEMPLATE_DIR = ("roles", "smtp_relay", "templates")
DEFAULT_CONFIG_DIR = "/etc/postfix"
DEFAULT_MAP_DIR = "/etc/postfix/smtpconf"
DEFAULT_MAP_TYPE = "hash"
MAP_TYPES = ("hash", "lmdb", "btree")  # the role knows their postmap file suffixes
# Names on this host that count as "local" for rewrite_sender, besides the group's hosts.
LOCAL_NAMES = ("localhost", "localhost.localdomain")

# Output file -> template; sasl_passwd holds credentials and is written 0600.
FILES = {
    "main.cf": "main.cf.j2",
    "master.cf": "master.cf.j2",
    "sasl_passwd": "sasl_passwd.j2",
    "sender_relay": "sender_relay.j2",
    "sender_transport": "sender_transport.j2",
    "tls_policy": "tls_policy.j2",
    "generic": "generic.j2",
    "ca_bundle.pem": "ca_bundle.pem.j2",
}
MAPS = ("sasl_passwd", "sender_relay", "sender_transport", "tls_policy", "generic")


def role_defaults(config_dir: str = DEFAULT_CONFIG_DIR, map_dir: str | None = None,
                  map_type: str = DEFAULT_MAP_TYPE) -> dict[str, Any]:
    """The role variables that do not depend on the group (the role's defaults/main.yml)."""
    return {
        "smtp_relay_postfix_config_dir": config_dir,
        "smtp_relay_map_dir": map_dir or f"{config_dir.rstrip('/')}/smtpconf",
        "smtp_relay_map_type": map_type,
        "smtp_relay_install_packages": True,
    }


def role_vars(config: Config, group: FleetGroup, secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The role variables of one fleet group (docs/role-variables.md).

    ``secrets`` maps a relay name to the text placed in its ``password``: resolved passwords for
    the postfix target, Jinja expressions such as ``"{{ vault_lab_smtp_password }}"`` for the
    ansible target. A relay that authenticates but is missing from ``secrets`` (or ``secrets`` is
    None) gets no ``password`` key, and the templates then write no credential for it.
    """
    relays: dict[str, dict[str, Any]] = {}
    for relay in sorted(group_relays(config, group), key=lambda r: r.name):
        entry: dict[str, Any] = {
            "host": relay.endpoint.host_ascii,
            "port": relay.endpoint.port,
            "security": relay.endpoint.security,
        }
        if relay.username is not None:
            entry["username"] = relay.username
        if relay.authenticates and secrets is not None and relay.name in secrets:
            entry["password"] = secrets[relay.name]
        if relay.endpoint.ca_file is not None:
            entry["ca_pem"] = _read_ca(relay)
        relays[relay.name] = entry
    local = sorted(dict.fromkeys([*LOCAL_NAMES, *(to_ascii_host(h).rstrip(".").lower() for h in group.hosts)]))
    return {
        "smtp_relay_group": group.name,
        "smtp_relay_relay": group.relay,
        "smtp_relay_relays": relays,
        "smtp_relay_sender_relays": {s.sender: s.relay for s in group.sender_relays},
        "smtp_relay_rewrite_sender": group.rewrite_sender or "",
        "smtp_relay_local_domains": local,
        "smtp_relay_tls_level": group.tls_level,
    }


def render_group(variables: Mapping[str, Any]) -> dict[str, str]:
    """Every output file of one group (name -> text), from the complete role variables."""
    env = _environment()
    return {name: env.get_template(template).render(**variables) for name, template in FILES.items()}


def render(ctx: RenderContext) -> Iterator[RenderedFile]:
    config = ctx.config
    defaults = role_defaults(map_dir=_map_dir(ctx), map_type=_map_type(ctx))
    groups = [config.fleet[name] for name in sorted(config.fleet)]
    # Resolve every secret first, each relay's once (a command secret may prompt for a GPG
    # passphrase): a render that cannot write some sasl_passwd writes nothing. As part of a render
    # of all targets, a group whose secrets are not here (a vault variable, a secret file that
    # exists only on the servers) is left to the ansible target instead.
    resolved, problems = _resolve_secrets(config, groups)
    if ctx.options.get("all_targets"):
        complete = []
        for group in groups:
            missing = [problems[r.name] for r in sorted(group_relays(config, group), key=lambda r: r.name)
                       if r.name in problems]
            if missing:
                ctx.notes.append(f"postfix files for fleet group '{group.name}' were not written, because "
                                 f"its secrets are not available here (the ansible target covers it): "
                                 + "; ".join(missing))
            else:
                complete.append(group)
        groups = complete
    elif problems:
        raise RenderError("postfix: cannot write sasl_passwd, so nothing was written:\n  "
                          + "\n  ".join(problems[name] for name in sorted(problems)))
    for group in groups:
        variables = {**defaults, **role_vars(config, group, resolved)}
        _check_values(group, variables)
        texts = render_group(variables)
        for name, text in texts.items():
            if name == "ca_bundle.pem" and not text:
                continue  # no private CA: main.cf leaves smtp_tls_CAfile empty
            yield RenderedFile(f"postfix/{safe_name(group.name)}/{name}", text.encode("utf-8"), "postfix",
                               "group", group.name, SECRET_MODE if name == "sasl_passwd" else PUBLIC_MODE)


def _map_dir(ctx: RenderContext) -> str:
    value = str(ctx.options.get("postfix_map_dir") or DEFAULT_MAP_DIR)
    # The directory lands in main.cf values ("hash:DIR/sasl_passwd"): Postfix would split it at
    # whitespace or commas, and expand "$name".
    if not value.startswith("/") or any(ch.isspace() or ch in ",$" or ord(ch) < 32 for ch in value):
        raise RenderError(f"postfix map directory must be an absolute path without spaces, commas or '$': "
                          f"{value!r}")
    return value.rstrip("/") or "/"


def _map_type(ctx: RenderContext) -> str:
    value = str(ctx.options.get("postfix_map_type") or DEFAULT_MAP_TYPE)
    if value not in MAP_TYPES:
        raise RenderError(f"postfix map type must be one of {', '.join(MAP_TYPES)}, not {value!r}")
    return value


def _resolve_secrets(config: Config, groups: list[FleetGroup]) -> tuple[dict[str, str], dict[str, str]]:
    """The password of every authenticating relay the groups use, each resolved once, and why
    each one that cannot be resolved here cannot (by relay and reference, never a value); both
    keyed by relay name."""
    from smtpconf.secrets import SecretError, resolve

    relays = {r.name: r for group in groups for r in group_relays(config, group)}
    resolved: dict[str, str] = {}
    problems: dict[str, str] = {}
    for name in sorted(relays):
        relay = relays[name]
        if relay.password is None:
            continue
        where = f"relay '{name}' password ({relay.password.describe()})"
        if relay.username is None:
            problems[name] = f"relay '{name}' has a password but no username (sasl-credential-incomplete)"
            continue
        if relay.password.kind == "vault":
            problems[name] = (f"{where}: an Ansible vault variable is resolved only at deploy time; the "
                              "ansible target covers it (render --only ansible)")
            continue
        try:
            value = resolve(relay.password, config.doc.path.parent)
        except SecretError as exc:
            problems[name] = f"{where}: {exc}"
            continue
        trouble = _unusable(value)
        if trouble:
            problems[name] = f"{where}: {trouble}"
            continue
        resolved[name] = value
    return resolved, problems


def _check_values(group: FleetGroup, variables: Mapping[str, Any]) -> None:
    """The second line behind the schema: every value that reaches main.cf or a map key/value is
    one Postfix word (no whitespace, comma or control character), and a SASL username holds no
    colon (sasl_passwd splits "user:password" at the first one)."""
    words: list[object] = [variables["smtp_relay_rewrite_sender"] or "-", *variables["smtp_relay_local_domains"],
                           *variables["smtp_relay_sender_relays"]]
    for relay in variables["smtp_relay_relays"].values():
        words += [relay["host"], relay["port"], relay.get("username", "-")]
        if ":" in relay.get("username", ""):
            raise RenderError(f"fleet group '{group.name}': a relay username contains ':' (sasl-username-colon)")
    for word in words:
        try:
            postfix_word(word)
        except ValueError as exc:
            raise RenderError(f"fleet group '{group.name}': {exc}") from None


def _unusable(password: str) -> str | None:
    """Why a password cannot be a sasl_passwd value, or None. Says nothing about the value."""
    if not password:
        return "it is empty"
    # A line break would start a new table entry; postmap trims trailing whitespace.
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in password):
        return "it contains a line break or control character, which sasl_passwd cannot hold"
    if password != password.rstrip():
        return "it ends with whitespace, which postmap would drop"
    return None


def _read_ca(relay: Relay) -> str:
    path = Path(relay.endpoint.ca_file or "")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RenderError(f"relay '{relay.name}': cannot read ca_file {path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise RenderError(f"relay '{relay.name}': ca_file {path} holds no PEM certificate")
    return text


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    # The settings of Ansible's template module (trim_blocks on, lstrip_blocks off, trailing
    # newline kept), so both renderers produce the same bytes from the same templates.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_path(*TEMPLATE_DIR))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=False,
        keep_trailing_newline=True,
        autoescape=False,
    )

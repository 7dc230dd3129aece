"""The ``postfix`` target: per fleet group, the Postfix settings and maps that relay its mail.

The text comes from the Ansible role's templates (``roles/smtp_relay/templates/``), rendered here
with the role's variables (docs/role-variables.md), so that the ``postfix`` and ``ansible``
targets cannot drift apart (SPEC §5). This module only computes those variables and resolves the
secrets ``sasl_passwd`` needs; the templates decide every byte.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from smtpconf.errors import RenderError, UnwritableValue
from smtpconf.model import Config, FleetGroup, Relay, canonical_host
from smtpconf.render import PUBLIC_MODE, SECRET_MODE, Note, RenderContext, RenderedFile, safe_name
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
    "transport": "transport.j2",
    "tls_policy": "tls_policy.j2",
    "generic": "generic.j2",
    "ca_bundle.pem": "ca_bundle.pem.j2",
}
MAPS = ("sasl_passwd", "sender_relay", "sender_transport", "transport", "tls_policy", "generic")

# OAuth2 relays (SPEC §7): Postfix hands their mail to msmtp through a pipe(8) transport, and a
# refresher on the host keeps each relay's access token fresh (docs/postfix.md says why).
DEFAULT_OAUTH2_DIR = "/var/lib/smtpconf/oauth2"
DEFAULT_OAUTH2_SCRIPT = "/usr/local/lib/smtpconf/smtpconf-oauth2"
DEFAULT_OAUTH2_USER = "smtpconf-oauth2"
OAUTH2_SCRIPT = ("roles", "smtp_relay", "files", "smtpconf-oauth2")
# Output file -> template, written once per OAuth2 relay ("{relay}" is its name).
OAUTH2_RELAY_FILES = {
    "msmtp-{relay}.conf": "msmtp_oauth2.conf.j2",
    "oauth2-{relay}.json": "oauth2_relay.json.j2",
}
# Written once per group that has an OAuth2 relay: the refresher's timer, or cron without systemd.
OAUTH2_GROUP_FILES = {
    "smtpconf-oauth2.service": "smtpconf-oauth2.service.j2",
    "smtpconf-oauth2.timer": "smtpconf-oauth2.timer.j2",
    "smtpconf-oauth2.cron": "smtpconf-oauth2.cron.j2",
}


def role_defaults(config_dir: str = DEFAULT_CONFIG_DIR, map_dir: str | None = None,
                  map_type: str = DEFAULT_MAP_TYPE, oauth2_dir: str = DEFAULT_OAUTH2_DIR,
                  oauth2_script: str = DEFAULT_OAUTH2_SCRIPT, oauth2_user: str = DEFAULT_OAUTH2_USER) -> dict[str, Any]:
    """The role variables that do not depend on the group (the role's defaults/main.yml)."""
    return {
        "smtp_relay_postfix_config_dir": config_dir,
        "smtp_relay_map_dir": map_dir or f"{config_dir.rstrip('/')}/smtpconf",
        "smtp_relay_map_type": map_type,
        "smtp_relay_install_packages": True,
        "smtp_relay_oauth2_dir": oauth2_dir,
        "smtp_relay_oauth2_script": oauth2_script,
        "smtp_relay_oauth2_user": oauth2_user,
        "smtp_relay_oauth2_renew_before": 600,
        "smtp_relay_oauth2_interval": 5,
    }


def role_vars(config: Config, group: FleetGroup, secrets: Mapping[str, str] | None = None,
              oauth2_secrets: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """The role variables of one fleet group (docs/role-variables.md).

    ``secrets`` maps a relay name to the text placed in its ``password``: resolved passwords for
    the postfix target, Jinja expressions such as ``"{{ vault_lab_smtp_password }}"`` for the
    ansible target. A relay that authenticates but is missing from ``secrets`` (or ``secrets`` is
    None) gets no ``password`` key, and the templates then write no credential for it.
    ``oauth2_secrets`` does the same for an OAuth2 relay's ``refresh_token`` and
    ``client_secret`` (relay name -> key -> text).
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
        if relay.login.auth == "password" and secrets is not None and relay.name in secrets:
            entry["password"] = secrets[relay.name]
        if relay.login.auth == "oauth2" and relay.login.oauth2 is not None:
            entry["auth"] = "oauth2"
            entry["oauth2"] = _oauth2_entry(relay, (oauth2_secrets or {}).get(relay.name, {}))
        if relay.endpoint.ca_file is not None:
            entry["ca_pem"] = _read_ca(relay)
        relays[relay.name] = entry
    local = sorted(dict.fromkeys([*LOCAL_NAMES, *(canonical_host(h) for h in group.hosts)]))
    return {
        "smtp_relay_group": group.name,
        # A relay list is a list, one relay a name (what a person writes for the role).
        "smtp_relay_relay": _relay_value(group.relay),
        "smtp_relay_relays": relays,
        "smtp_relay_sender_relays": {s.sender: _relay_value(s.relay) for s in group.sender_relays},
        "smtp_relay_recipient_relays": {r.key: _relay_value(r.relay) for r in group.recipient_relays},
        "smtp_relay_rewrite_sender": group.rewrite_sender or "",
        "smtp_relay_local_domains": local,
        "smtp_relay_tls_level": group.tls_level,
    }


def _relay_value(names: tuple[str, ...]) -> str | list[str]:
    return names[0] if len(names) == 1 else list(names)


def relay_names(value: str | list[str]) -> list[str]:
    """A role variable's relay value (a name or a list of names) as a list."""
    return [value] if isinstance(value, str) else list(value)


def _oauth2_entry(relay: Relay, secrets: Mapping[str, str]) -> dict[str, Any]:
    oauth2 = relay.login.oauth2
    assert oauth2 is not None
    entry: dict[str, Any] = {
        "mechanism": oauth2.mechanism,
        "token_url": oauth2.token_url or "",
        "client_id": oauth2.client_id or "",
        "scope": " ".join(oauth2.scopes),
    }
    for key in ("refresh_token", "client_secret"):
        if key in secrets:
            entry[key] = secrets[key]
    return entry


def oauth2_relays(variables: Mapping[str, Any]) -> list[str]:
    """The OAuth2 relays the group uses (default, sender and recipient relays), sorted."""
    values = [variables["smtp_relay_relay"], *variables["smtp_relay_sender_relays"].values(),
              *variables["smtp_relay_recipient_relays"].values()]
    used = {name for value in values for name in relay_names(value)}
    relays = variables["smtp_relay_relays"]
    return sorted(name for name in used if relays[name].get("auth") == "oauth2")


def render_group(variables: Mapping[str, Any]) -> dict[str, str]:
    """Every output file of one group (name -> text), from the complete role variables."""
    env = _environment()
    texts = {name: env.get_template(template).render(**variables) for name, template in FILES.items()}
    relays = oauth2_relays(variables)
    for relay in relays:
        for name, template in OAUTH2_RELAY_FILES.items():
            texts[name.format(relay=relay)] = env.get_template(template).render(**variables, smtp_relay__name=relay)
    if relays:
        texts.update({name: env.get_template(template).render(**variables)
                      for name, template in OAUTH2_GROUP_FILES.items()})
    return texts


def render(ctx: RenderContext) -> Iterator[RenderedFile | Note]:
    config = ctx.config
    defaults = role_defaults(map_dir=_map_dir(ctx), map_type=_map_type(ctx),
                             oauth2_dir=_host_path(ctx, "postfix_oauth2_dir", DEFAULT_OAUTH2_DIR),
                             oauth2_script=_host_path(ctx, "postfix_oauth2_script", DEFAULT_OAUTH2_SCRIPT),
                             oauth2_user=str(ctx.options.get("postfix_oauth2_user") or DEFAULT_OAUTH2_USER))
    groups = [config.fleet[name] for name in sorted(config.fleet)]
    # Resolve every secret first, each relay's once (a command secret may prompt for a GPG
    # passphrase): a render that cannot write some sasl_passwd writes nothing. As part of a render
    # of all targets, a group whose secrets are not here (a vault variable, a secret file that
    # exists only on the servers) is left to the ansible target instead.
    resolved, problems = _resolve_secrets(config, groups)
    oauth2_resolved = _resolve_oauth2_secrets(config, groups, problems)
    if ctx.options.get("all_targets"):
        complete = []
        for group in groups:
            missing = [problems[r.name] for r in sorted(group_relays(config, group), key=lambda r: r.name)
                       if r.name in problems]
            if missing:
                yield Note(f"postfix files for fleet group '{group.name}' were not written, because "
                           f"its secrets are not available here (the ansible target covers it): "
                           + "; ".join(missing))
            else:
                complete.append(group)
        groups = complete
    elif problems:
        raise RenderError("postfix: cannot write sasl_passwd, so nothing was written:\n  "
                          + "\n  ".join(problems[name] for name in sorted(problems)))
    for group in groups:
        variables = {**defaults, **role_vars(config, group, resolved, oauth2_resolved)}
        _check_values(group, variables)
        texts = render_group(variables)
        where = f"postfix/{safe_name(group.name)}"
        for name, text in texts.items():
            if name == "ca_bundle.pem" and not text:
                continue  # no private CA: main.cf leaves smtp_tls_CAfile empty
            yield RenderedFile(f"{where}/{name}", text.encode("utf-8"), "postfix",
                               "group", group.name, SECRET_MODE if name == "sasl_passwd" else PUBLIC_MODE)
        relays = oauth2_relays(variables)
        if relays:
            # The refresher and the pipe transport's wrapper, the role's own file, byte for byte.
            yield RenderedFile(f"{where}/smtpconf-oauth2", resource_path(*OAUTH2_SCRIPT).read_bytes(), "postfix",
                               "group", group.name, 0o755)
        for relay in relays:
            # The first refresh token (and client secret): installed once on the host, which
            # then keeps the rotated one (docs/postfix.md).
            for key, suffix in (("refresh_token", "refresh"), ("client_secret", "client_secret")):
                value = variables["smtp_relay_relays"][relay]["oauth2"].get(key)
                if value is not None:
                    yield RenderedFile(f"{where}/oauth2/{relay}.{suffix}", (value + "\n").encode("utf-8"), "postfix",
                                       "group", group.name, SECRET_MODE)


def _map_dir(ctx: RenderContext) -> str:
    value = str(ctx.options.get("postfix_map_dir") or DEFAULT_MAP_DIR)
    # The directory lands in main.cf values ("hash:DIR/sasl_passwd"): Postfix would split it at
    # whitespace or commas, and expand "$name".
    if not value.startswith("/") or any(ch.isspace() or ch in ",$" or ord(ch) < 32 for ch in value):
        raise RenderError(f"postfix map directory must be an absolute path without spaces, commas or '$': "
                          f"{value!r}")
    return value.rstrip("/") or "/"


def _host_path(ctx: RenderContext, option: str, default: str) -> str:
    value = str(ctx.options.get(option) or default)
    # It lands in master.cf's argv, msmtp's passwordeval and unit files, which split at whitespace.
    if not value.startswith("/") or any(ch.isspace() or ch in ",$\"'\\" or ord(ch) < 32 for ch in value):
        raise RenderError(f"{option.replace('_', '-')} must be an absolute path without spaces, commas, "
                          f"quotes or '$': {value!r}")
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
        if relay.password is None or relay.login.auth != "password":
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


def _resolve_oauth2_secrets(config: Config, groups: list[FleetGroup],
                            problems: dict[str, str]) -> dict[str, dict[str, str]]:
    """The refresh token and client secret of every OAuth2 relay the groups use, like
    :func:`_resolve_secrets` (what cannot be resolved here goes into ``problems``)."""
    from smtpconf.secrets import SecretError, resolve

    relays = {r.name: r for group in groups for r in group_relays(config, group)}
    resolved: dict[str, dict[str, str]] = {}
    for name in sorted(relays):
        oauth2 = relays[name].login.oauth2
        if relays[name].login.auth != "oauth2" or oauth2 is None:
            continue
        if not oauth2.complete:
            problems[name] = f"relay '{name}': its oauth2 block is incomplete (oauth2-incomplete)"
            continue
        values: dict[str, str] = {}
        for key, secret in (("refresh_token", oauth2.refresh_token), ("client_secret", oauth2.client_secret)):
            if secret is None:
                continue
            where = f"relay '{name}' oauth2 {key} ({secret.describe()})"
            if secret.kind == "vault":
                problems[name] = (f"{where}: an Ansible vault variable is resolved only at deploy time; the "
                                  "ansible target covers it (render --only ansible)")
                break
            try:
                value = resolve(secret, config.doc.path.parent).strip()
            except SecretError as exc:
                problems[name] = f"{where}: {exc}"
                break
            if not value or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
                problems[name] = f"{where}: it is empty or holds a line break or control character"
                break
            values[key] = value
        else:
            resolved[name] = values
    return resolved


def _check_values(group: FleetGroup, variables: Mapping[str, Any]) -> None:
    """The second line behind the schema: every value that reaches main.cf or a map key/value is
    one Postfix word (no whitespace, comma or control character), and a SASL username holds no
    colon (sasl_passwd splits "user:password" at the first one)."""
    words: list[object] = [variables["smtp_relay_rewrite_sender"] or "-", *variables["smtp_relay_local_domains"],
                           *variables["smtp_relay_sender_relays"], *variables["smtp_relay_recipient_relays"]]
    for relay in variables["smtp_relay_relays"].values():
        words += [relay["host"], relay["port"], relay.get("username", "-")]
        if ":" in relay.get("username", ""):
            raise RenderError(f"fleet group '{group.name}': a relay username contains ':' (sasl-username-colon)")
    for word in words:
        try:
            postfix_word(word)
        except UnwritableValue as exc:
            raise RenderError(f"fleet group '{group.name}': {exc}") from None
    transports: dict[str, str] = {}
    for relay in oauth2_relays(variables):
        transport = relay.replace("-", "_").replace(".", "_")
        if transport in transports:
            raise RenderError(f"fleet group '{group.name}': OAuth2 relays '{transports[transport]}' and '{relay}' "
                              "would share one Postfix transport name; rename one (no '-' or '.' difference only)")
        transports[transport] = relay


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
    from smtpconf.files import NotReadable, read_ca_file

    try:  # a regular file, bounded, with a PEM certificate (the lint rule ca-file-missing says the same)
        return read_ca_file(relay.endpoint.ca_file or "")
    except NotReadable as exc:
        raise RenderError(f"relay '{relay.name}': ca_file {relay.endpoint.ca_file} {exc}") from None


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

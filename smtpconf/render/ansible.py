"""The ``ansible`` target: a self-contained directory that applies the ``smtp_relay`` role to every
fleet group (SPEC §5).

``ansible/`` holds a copy of ``roles/smtp_relay``, ``group_vars/GROUP.yml`` with the role variables
of each group (from the same ``role_vars`` the ``postfix`` target renders its templates with),
``inventory.ini`` from ``fleet.GROUP.hosts`` and ``playbook.yml``. Passwords never reach these
files: each becomes a reference to an Ansible variable (``{vault: NAME}``, else ``vault_<relay>``)
that the user keeps in Ansible Vault and that Ansible resolves at deploy time. An OAuth2 relay's
refresh token and client secret do the same (``vault_<relay>_refresh_token``,
``vault_<relay>_client_secret`` unless the file names a vault variable).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from smtpconf.errors import RenderError
from smtpconf.model import Config, FleetGroup, Relay, SecretRef, to_ascii_host
from smtpconf.render import RenderContext, RenderedFile, safe_name
from smtpconf.resources import resource_path
from smtpconf.rules.fleet import group_relays

TARGET = "ansible"
ROLE = "smtp_relay"
# An Ansible variable name: anything else inside "{{ }}" would be Jinja code, not a reference.
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_JINJA = ("{{", "{%", "{#")


class VaultReference(str):
    """``{{ NAME }}``: the one string in group_vars that Ansible is meant to evaluate."""


def vault_variable(relay: Relay) -> str:
    """The Ansible variable holding ``relay``'s password: the one the file names with ``{vault: X}``,
    otherwise ``vault_<relay>`` (env, file and command secrets live on the operator's machine, not
    on the Ansible controller, so the deploy reads the password from the vault instead)."""
    if relay.password is not None and relay.password.kind == "vault":
        name = relay.password.ref
    else:
        name = "vault_" + re.sub(r"[^A-Za-z0-9_]", "_", relay.name)
    if not _VARIABLE.match(name):
        raise RenderError(f"relay '{relay.name}': {name!r} is not an Ansible variable name")
    return name


def vault_variables(config: Config) -> dict[str, str]:
    """Relay name -> vault variable, for every relay a fleet group authenticates to.

    Two relays may share a variable the file names (one password, two relays), but two generated
    names must not collide ("a-b" and "a_b" both give vault_a_b): that would silently give one
    relay the other's password."""
    names: dict[str, str] = {}
    generated: list[str] = []
    for group in config.fleet.values():
        for relay in group_relays(config, group):
            if relay.password is not None and relay.login.auth == "password" and relay.name not in names:
                names[relay.name] = vault_variable(relay)
                if relay.password.kind != "vault":
                    generated.append(relay.name)
    taken = dict(zip(names.values(), names.keys()))
    for name in generated:
        others = sorted(r for r, v in names.items() if v == names[name] and r != name)
        if others:
            raise RenderError(f"relays '{name}' and '{others[0]}' would both read their password from "
                              f"{names[name]}; name distinct ones with password: {{vault: NAME}}")
    for relay_name, secrets in oauth2_vault_variables(config).items():
        for variable in secrets.values():
            if variable in taken and taken[variable] != relay_name:
                raise RenderError(f"relay '{relay_name}' would read an OAuth2 secret from {variable}, the password "
                                  f"of relay '{taken[variable]}'; name distinct ones with {{vault: NAME}}")
    return names


OAUTH2_SECRETS = ("refresh_token", "client_secret")


def oauth2_vault_variables(config: Config) -> dict[str, dict[str, str]]:
    """Relay name -> {"refresh_token": variable, "client_secret": variable} for every OAuth2
    relay a fleet group uses (client_secret only where the file has one)."""
    found: dict[str, dict[str, str]] = {}
    for group in config.fleet.values():
        for relay in group_relays(config, group):
            oauth2 = relay.login.oauth2
            if relay.login.auth != "oauth2" or oauth2 is None or relay.name in found:
                continue
            secrets: dict[str, str] = {}
            for key in OAUTH2_SECRETS:
                secret: SecretRef | None = getattr(oauth2, key)
                if secret is None:
                    continue
                name = secret.ref if secret.kind == "vault" else (
                    f"vault_{re.sub(r'[^A-Za-z0-9_]', '_', relay.name)}_{key}")
                if not _VARIABLE.match(name):
                    raise RenderError(f"relay '{relay.name}': {name!r} is not an Ansible variable name")
                secrets[key] = name
            found[relay.name] = secrets
    generated: dict[str, str] = {}
    for relay_name, secrets in found.items():
        for variable in secrets.values():
            if variable in generated and generated[variable] != relay_name:
                raise RenderError(f"relays '{relay_name}' and '{generated[variable]}' would both read an OAuth2 "
                                  f"secret from {variable}; name distinct ones with {{vault: NAME}}")
            generated[variable] = relay_name
    return found


def group_vars(config: Config, group: FleetGroup, vaults: dict[str, str] | None = None) -> dict[str, Any]:
    """The role variables of ``group``, every password replaced by a vault reference."""
    from smtpconf.render.postfix import role_vars

    vaults = vault_variables(config) if vaults is None else vaults
    references = {name: VaultReference("{{ " + variable + " }}") for name, variable in vaults.items()}
    oauth2_references = {relay: {key: VaultReference("{{ " + variable + " }}") for key, variable in secrets.items()}
                         for relay, secrets in oauth2_vault_variables(config).items()}
    variables = dict(role_vars(config, group, references, oauth2_references))
    relays = {name: dict(settings) for name, settings in variables["smtp_relay_relays"].items()}
    for name, settings in relays.items():
        # Belt and braces: whatever role_vars put here, only a reference is written.
        if name in references:
            settings["password"] = references[name]
        else:
            settings.pop("password", None)
        if "oauth2" in settings:
            oauth2 = settings["oauth2"] = dict(settings["oauth2"])
            for key in OAUTH2_SECRETS:
                if key in oauth2_references.get(name, {}):
                    oauth2[key] = oauth2_references[name][key]
                else:
                    oauth2.pop(key, None)
    variables["smtp_relay_relays"] = relays
    return variables


def render(ctx: RenderContext) -> Iterable[RenderedFile]:
    config = ctx.config
    vaults = vault_variables(config)
    yield from _role_files()
    for group in config.fleet.values():
        yield RenderedFile(f"ansible/group_vars/{group.name}.yml", _group_vars_yaml(config, group, vaults),
                           TARGET, "group", group.name)
    relays_by_variable: dict[str, list[str]] = {}
    for relay, variable in vaults.items():
        relays_by_variable.setdefault(variable, []).append(relay)
    oauth2_by_variable: dict[str, list[str]] = {}
    for relay, secrets in oauth2_vault_variables(config).items():
        for key, variable in secrets.items():
            oauth2_by_variable.setdefault(variable, []).append(f"{relay} ({key.replace('_', ' ')})")
    data = {
        "source": _source_name(config),
        "groups": [{"name": g.name, "hosts": [to_ascii_host(h) for h in g.hosts], "relay": ", then ".join(g.relay)}
                   for g in config.fleet.values()],
        "vaults": relays_by_variable,
        "oauth2_vaults": oauth2_by_variable,
        "role": ROLE,
    }
    for name in ("inventory.ini", "playbook.yml", "ansible.cfg", "README.md"):
        yield RenderedFile(f"ansible/{name}", ctx.template(f"ansible/{name}.j2", **data), TARGET)


def _source_name(config: Config) -> str:
    """The smtpconf file's name for comments: a file name may hold a newline, a comment may not."""
    return safe_name(Path(config.file).name)


def _role_files() -> Iterable[RenderedFile]:
    """A copy of the role as it is in the repository, so the directory needs nothing else."""
    root = resource_path("roles", ROLE)
    if not (root / "tasks" / "main.yml").is_file():
        raise RenderError(f"the {ROLE} role is missing from {root.parent}; reinstall smtpconf")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        yield RenderedFile(f"ansible/roles/{ROLE}/{relative.as_posix()}", path.read_bytes(), TARGET)


class _Dumper(yaml.SafeDumper):
    """Block style with indented sequences (as yamllint and ansible-lint expect), multi-line
    strings (a CA's PEM text) as literal ``|`` blocks, and ``!unsafe`` on any other string that
    holds Jinja delimiters: Ansible evaluates every string in group_vars, and a username or sender
    address like ``{{ lookup('pipe', ...) }}`` must stay text, not run on the controller."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    tag = "!unsafe" if any(d in value for d in _JINJA) else "tag:yaml.org,2002:str"
    return dumper.represent_scalar(tag, value, style=style)


def _represent_reference(dumper: yaml.SafeDumper, value: VaultReference) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value))


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(VaultReference, _represent_reference)


def _group_vars_yaml(config: Config, group: FleetGroup, vaults: dict[str, str]) -> bytes:
    header = (f"---\n# Generated by smtpconf from {_source_name(config)}, fleet group '{group.name}'.\n"
              "# Edit the smtpconf file and render again rather than this file.\n"
              "# Passwords are references to Ansible variables: keep their values in Ansible Vault\n"
              "# (see README.md), never here.\n")
    body: str = yaml.dump(group_vars(config, group, vaults), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                          default_flow_style=False, width=1000)
    return (header + body).encode("utf-8")

"""The ansible target: a self-contained directory (role copy, group_vars, inventory, playbook)
whose passwords are vault references, never values."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from smtpconf.cli import main
from smtpconf.lint import lint_path
from smtpconf.render.postfix import role_vars
from smtpconf.resources import resource_path

EXAMPLE = resource_path("examples", "smtpconf.yaml")
CANARIES = {"env": "env-canary-Qw7", "file": "file-canary-Rt5", "command": "command-canary-Yu3"}

SECRETS_YAML = """\
version: 1
relays:
  from-env:
    host: smtp.env.example
    port: 587
    security: starttls
    username: env-user
    password: {env: SMTPCONF_TEST_ANSIBLE_ENV}
  from-file:
    host: smtp.file.example
    port: 465
    security: tls
    username: file-user
    password: {file: secret.txt}
  from-command:
    host: smtp.command.example
    port: 587
    security: starttls
    username: command-user
    password: {command: "echo command-canary-Yu3"}
  from-vault:
    host: smtp.vault.example
    port: 587
    security: starttls
    username: vault-user
    password: {vault: my_vaulted_password}
  open:
    host: smarthost.example
    port: 25
    security: none
fleet:
  app-servers:
    hosts: [app1.example, app2.example]
    relay: from-env
    sender_relays:
      billing@example.com: from-file
      "@command.example": from-command
      "@vault.example": from-vault
    tls_level: encrypt
  lan:
    hosts: []
    relay: open
    tls_level: may
"""


def render(source: Path, out: Path) -> dict[str, object]:
    assert main(["render", str(source), "-o", str(out), "--only", "ansible", "--format", "json"]) == 0
    manifest: dict[str, object] = json.loads((out / ".smtpconf-manifest.json").read_text())
    return manifest


@pytest.fixture
def secrets_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The secrets are resolvable here on purpose: the target must still not write them.
    monkeypatch.setenv("SMTPCONF_TEST_ANSIBLE_ENV", CANARIES["env"])
    (tmp_path / "secret.txt").write_text(CANARIES["file"] + "\n")
    (tmp_path / "smtpconf.yaml").write_text(SECRETS_YAML)
    render(tmp_path / "smtpconf.yaml", tmp_path / "out")
    return tmp_path / "out" / "ansible"


@pytest.fixture
def example_out(tmp_path: Path) -> Path:
    render(EXAMPLE, tmp_path / "out")
    return tmp_path / "out" / "ansible"


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_directory_holds_the_role_group_vars_inventory_and_playbook(example_out: Path) -> None:
    role = resource_path("roles", "smtp_relay")
    expected_role = {f"roles/smtp_relay/{k}": v for k, v in files(role).items()}
    written = files(example_out)
    assert {k: v for k, v in written.items() if k.startswith("roles/")} == expected_role
    assert sorted(k for k in written if not k.startswith("roles/")) == [
        "README.md", "ansible.cfg", "group_vars/batch.yml", "group_vars/web.yml", "inventory.ini", "playbook.yml"]
    # The module's shared SMTP dialogue travels with the role, as a file (Ansible ships it to hosts).
    shared = example_out / "roles" / "smtp_relay" / "module_utils" / "smtp_dialogue.py"
    assert not shared.is_symlink() and b"class Session" in shared.read_bytes()


def test_no_directory_is_writable_by_others(example_out: Path) -> None:
    # Root runs this role: a world-writable directory would let anyone change what it runs, and
    # Ansible ignores the ansible.cfg of a world-writable directory.
    for path in [example_out, *example_out.rglob("*")]:
        assert path.stat().st_mode & 0o022 == 0, f"{path} is writable by group or others"


def test_manifest_names_the_group_of_each_group_vars_file(tmp_path: Path) -> None:
    manifest = render(EXAMPLE, tmp_path / "out")
    entries = {e["path"]: e for e in manifest["files"]}  # type: ignore[attr-defined]
    assert entries["ansible/group_vars/web.yml"] == {"path": "ansible/group_vars/web.yml", "target": "ansible",
                                                     "group": "web"}
    assert all(e["target"] == "ansible" for e in entries.values())


def test_group_vars_are_the_postfix_targets_variables_with_vault_references(example_out: Path) -> None:
    config = lint_path(EXAMPLE).config
    assert config is not None
    references = {"gmail-ops": "{{ vault_gmail_ops }}", "ses": "{{ vault_ses }}",
                  "ses-backup": "{{ vault_ses_backup }}", "partner-smarthost": "{{ vault_partner_smtp_password }}",
                  "lab": "{{ vault_lab_smtp_password }}"}
    for name in ("web", "batch"):
        written = yaml.safe_load((example_out / "group_vars" / f"{name}.yml").read_text())
        oauth2 = {"o365": {"refresh_token": "{{ vault_o365_refresh }}"}}  # the example's OAuth2 sender relay
        assert written == role_vars(config, config.fleet[name], references, oauth2)
    web = yaml.safe_load((example_out / "group_vars" / "web.yml").read_text())
    # The example's failover list and recipient route (SPEC §8).
    assert web["smtp_relay_relay"] == ["gmail-ops", "ses-backup"]
    assert web["smtp_relay_recipient_relays"] == {"partner.example": "partner-smarthost"}
    assert web["smtp_relay_relays"]["lab"]["ca_pem"].startswith("-----BEGIN CERTIFICATE-----\n")
    assert "ca_pem: |" in (example_out / "group_vars" / "web.yml").read_text()  # readable PEM


def test_no_secret_value_is_written_and_every_password_is_a_vault_reference(secrets_out: Path) -> None:
    for path, content in files(secrets_out).items():
        for canary in CANARIES.values():
            assert canary.encode() not in content, f"{canary} in {path}"
    relays = yaml.safe_load((secrets_out / "group_vars" / "app-servers.yml").read_text())["smtp_relay_relays"]
    assert {name: relay.get("password") for name, relay in relays.items()} == {
        "from-env": "{{ vault_from_env }}",
        "from-file": "{{ vault_from_file }}",
        "from-command": "{{ vault_from_command }}",
        "from-vault": "{{ my_vaulted_password }}",
    }
    lan = yaml.safe_load((secrets_out / "group_vars" / "lan.yml").read_text())["smtp_relay_relays"]
    assert "password" not in lan["open"]  # a relay that does not authenticate gets no reference
    readme = (secrets_out / "README.md").read_text()
    for variable in ("vault_from_env", "vault_from_file", "vault_from_command", "my_vaulted_password"):
        assert f"`{variable}`" in readme


def test_inventory_lists_every_group_even_empty_ones(secrets_out: Path) -> None:
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    inventory = InventoryManager(loader=DataLoader(), sources=[str(secrets_out / "inventory.ini")])
    assert sorted(h.name for h in inventory.groups["app-servers"].get_hosts()) == ["app1.example", "app2.example"]
    assert "lan" in inventory.groups and inventory.groups["lan"].get_hosts() == []


def test_playbook_applies_the_role_once_per_group(secrets_out: Path) -> None:
    plays = yaml.safe_load((secrets_out / "playbook.yml").read_text())
    assert [p["hosts"] for p in plays] == ["app-servers", "lan"]
    for play in plays:
        assert play["roles"] == [{"role": "smtp_relay"}]
        # Every play names all the fleet groups, in file order: the role refuses a host that an
        # inventory puts in two of them.
        assert play["vars"] == {"smtp_relay_fleet_groups": ["app-servers", "lan"]}
        [verify] = play["tasks"]
        assert verify["tags"] == ["never", "verify"]  # runs only with --tags verify
        assert verify["ansible.builtin.import_role"] == {"name": "smtp_relay", "tasks_from": "verify"}
    cfg = (secrets_out / "ansible.cfg").read_text()
    assert "inventory = inventory.ini" in cfg and "roles_path = roles" in cfg


def test_render_is_deterministic(tmp_path: Path) -> None:
    render(EXAMPLE, tmp_path / "a")
    render(EXAMPLE, tmp_path / "b")
    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_idn_hosts_are_written_as_a_labels(tmp_path: Path) -> None:
    (tmp_path / "smtpconf.yaml").write_text(textwrap.dedent("""\
        version: 1
        relays:
          r:
            host: smtp.münchen.example
            port: 587
            security: starttls
        fleet:
          g:
            hosts: [web.münchen.example]
            relay: r
            tls_level: may
        """))
    render(tmp_path / "smtpconf.yaml", tmp_path / "out")
    out = tmp_path / "out" / "ansible"
    assert "web.xn--mnchen-3ya.example" in (out / "inventory.ini").read_text()
    relays = yaml.safe_load((out / "group_vars" / "g.yml").read_text())["smtp_relay_relays"]
    assert relays["r"]["host"] == "smtp.xn--mnchen-3ya.example"


def test_jinja_in_values_stays_text_for_ansible(tmp_path: Path) -> None:
    # Ansible evaluates every string in group_vars: a username or sender address holding Jinja
    # must be written !unsafe (text), or a pull request could run code on the controller.
    (tmp_path / "smtpconf.yaml").write_text(textwrap.dedent("""\
        version: 1
        relays:
          r:
            host: smtp.example.test
            port: 587
            security: starttls
            username: "{{7*7}}x"
            password: {vault: vault_r}
        fleet:
          g:
            hosts: []
            relay: r
            sender_relays:
              "{{8*8}}@example.test": r
            rewrite_sender: "{#c#}@example.test"
        """))
    render(tmp_path / "smtpconf.yaml", tmp_path / "out")
    text = (tmp_path / "out" / "ansible" / "group_vars" / "g.yml").read_text()
    assert "username: !unsafe '{{7*7}}x'" in text
    assert "!unsafe '{{8*8}}@example.test': r" in text
    assert "smtp_relay_rewrite_sender: !unsafe '{#c#}@example.test'" in text
    assert "password: '{{ vault_r }}'" in text  # the one string Ansible is meant to evaluate

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    relays = yaml.load(text, Loader=Loader)["smtp_relay_relays"]  # noqa: S506 (a SafeLoader)
    assert relays["r"]["username"] == "{{7*7}}x"


def test_generated_vault_names_must_not_collide(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    relay = "    host: smtp.example.test\n    port: 587\n    security: starttls\n    username: u\n"
    (tmp_path / "smtpconf.yaml").write_text(
        "version: 1\nrelays:\n  a-b:\n" + relay + "    password: {env: A}\n  a_b:\n" + relay
        + "    password: {env: B}\nfleet:\n  g:\n    hosts: []\n    relay: a-b\n"
          "    sender_relays:\n      x@example.test: a_b\n")
    assert main(["render", str(tmp_path / "smtpconf.yaml"), "-o", str(tmp_path / "out"), "--only", "ansible"]) == 2
    assert not (tmp_path / "out").exists()
    assert "vault_a_b" in capsys.readouterr().err


def test_oauth2_secrets_become_vault_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Resolvable here on purpose: the target must still not write them.
    monkeypatch.setenv("SMTPCONF_TEST_CLIENT_SECRET", "client-canary-Zx1")
    (tmp_path / "o365.refresh").write_text("refresh-canary-Pl0\n")
    (tmp_path / "smtpconf.yaml").write_text(textwrap.dedent("""\
        version: 1
        relays:
          o365:
            provider: office365
            username: app@corp.example
            auth: oauth2
            oauth2:
              client_id: 9e5f94bc-e8a4-4e73-b8be-63364c29d753
              refresh_token: {file: o365.refresh}
              client_secret: {env: SMTPCONF_TEST_CLIENT_SECRET}
          gmail:
            provider: gmail
            username: ops@example.com
            auth: oauth2
            oauth2: {client_id: g, refresh_token: {vault: vault_gmail_refresh}}
        fleet:
          web:
            hosts: [web1.example.com]
            relay: o365
            sender_relays: {ops@example.com: gmail}
        """))
    render(tmp_path / "smtpconf.yaml", tmp_path / "out")
    out = tmp_path / "out" / "ansible"
    relays = yaml.safe_load((out / "group_vars" / "web.yml").read_text())["smtp_relay_relays"]
    assert relays["o365"]["auth"] == "oauth2" and "password" not in relays["o365"]
    assert relays["o365"]["oauth2"]["refresh_token"] == "{{ vault_o365_refresh_token }}"
    assert relays["o365"]["oauth2"]["client_secret"] == "{{ vault_o365_client_secret }}"
    assert relays["o365"]["oauth2"]["token_url"] == "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
    assert relays["gmail"]["oauth2"] == {"mechanism": "xoauth2", "token_url": "https://oauth2.googleapis.com/token",
                                         "client_id": "g", "scope": "https://mail.google.com/",
                                         "refresh_token": "{{ vault_gmail_refresh }}"}
    readme = (out / "README.md").read_text()
    for variable in ("vault_o365_refresh_token", "vault_o365_client_secret", "vault_gmail_refresh"):
        assert f"`{variable}`" in readme
    for path, data in files(out).items():
        assert b"refresh-canary-Pl0" not in data and b"client-canary-Zx1" not in data, path

"""The role applies relay lists and recipient routes for real (SPEC §8): ansible-playbook, connection
local, against a private Postfix instance, relaying to aiosmtpd providers on loopback.

The group's default relays are ``[dead, backup]`` (nothing listens on dead's port) and mail to
``partner.example`` goes through ``partner``. The role's files are the postfix target's bytes, a
second run changes nothing, and mail fails over and is routed with each relay's own credential.
"""

from __future__ import annotations

import secrets
import textwrap
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest
import yaml

from smtpconf.cli import main as smtpconf_main
from smtpconf.lint import lint_path
from smtpconf.render.postfix import MAPS, render_group, role_defaults, role_vars
from tests.support import ansible_run
from tests.support.gate import need_root
from tests.support.postfix import PostfixInstance
from tests.support.smtp_fixtures import test_ca  # noqa: F401  (session fixture)
from tests.support.smtpserver import Provider, TestCA, closed_port

pytestmark = pytest.mark.integration

NAMES = ("dead", "backup", "partner")


class Applied(NamedTuple):
    postfix: PostfixInstance
    providers: dict[str, Provider]
    source: Path
    canaries: dict[str, str]
    first: ansible_run.Run
    second: ansible_run.Run
    verify: ansible_run.Run  # --tags verify after the two runs


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[Applied]:  # noqa: F811
    need_root("the role writes root-owned files and starts a private Postfix instance")
    work = tmp_path_factory.mktemp("ansible-routing")
    canaries = {name: f"CANARY-{name}-{secrets.token_hex(6)}" for name in NAMES}
    backup = Provider("starttls", users={"backup-user": canaries["backup"]}, ca=test_ca)
    partner = Provider("starttls", users={"partner-user": canaries["partner"]}, ca=test_ca)
    with backup, partner, PostfixInstance() as postfix:
        ports = {"dead": closed_port(), "backup": backup.port, "partner": partner.port}
        relays = "".join(textwrap.indent(textwrap.dedent(f"""\
            {name}:
              host: localhost
              port: {ports[name]}
              security: starttls
              ca_file: {test_ca.ca_pem_path}
              username: {name}-user
              password: {{vault: vault_{name}}}
            """), "  ") for name in NAMES)
        source = work / "smtpconf.yaml"
        source.write_text("version: 1\nrelays:\n" + relays + textwrap.dedent("""\
            fleet:
              web:
                hosts: [localhost]
                relay: [dead, backup]
                recipient_relays: {partner.example: partner}
            """))
        assert smtpconf_main(["render", str(source), "-o", str(work / "out"), "--only", "ansible"]) == 0
        vars_file = work / "vars.yml"
        vars_file.touch(mode=0o600)
        vars_file.write_text(yaml.safe_dump({
            "smtp_relay_postfix_config_dir": str(postfix.config_dir), "smtp_relay_install_packages": False,
            **{f"vault_{name}": canary for name, canary in canaries.items()}}))

        def playbook(*extra: str) -> ansible_run.Run:
            mark = postfix.log_size()
            run = ansible_run.run([ansible_run.program("ansible-playbook"), "-i", "inventory.ini", "playbook.yml",
                                   "-e", "ansible_connection=local", "-e", "ansible_become=false",
                                   "-e", f"@{vars_file}", "--diff", *extra], cwd=work / "out" / "ansible",
                                  home=work / "home")
            if extra:
                return run
            assert run.returncode == 0, run.output
            if run.recap()["changed"]:
                postfix.wait_log(r"postfix/master\[\d+\]: reload -- ", since=mark)
            return run

        first = playbook()
        second = playbook()
        verify = playbook("--tags", "verify")
        yield Applied(postfix, {"backup": backup, "partner": partner}, source, canaries, first, second, verify)


def test_role_files_are_the_postfix_targets_bytes_and_a_second_run_changes_nothing(applied: Applied) -> None:
    config = lint_path(applied.source).config
    assert config is not None
    variables = {**role_defaults(config_dir=str(applied.postfix.config_dir)),
                 **role_vars(config, config.fleet["web"], applied.canaries)}
    expected = render_group(variables)
    map_dir = applied.postfix.config_dir / "smtpconf"
    for name in MAPS:
        assert (map_dir / name).read_text() == expected[name], name
    assert (map_dir / "main.cf.smtpconf").read_text() == expected["main.cf"]
    assert expected["master.cf"].strip() in applied.postfix.master_cf.read_text()
    assert "smtpconf_route unix" in applied.postfix.master_cf.read_text()
    assert applied.first.recap()["changed"] > 0
    # Postfix 3.5+ reads the lists (Debian 12 has 3.7): the role checked before writing them.
    task = applied.first.output.index("TASK [smtp_relay : Check that Postfix tries relay lists in order (3.5 or later)]")
    assert applied.first.output[task:].split("\n", 2)[1].startswith("ok: [localhost]"), applied.first.output
    assert applied.second.recap()["changed"] == 0, applied.second.output
    for canary in applied.canaries.values():
        assert canary not in applied.first.output + applied.second.output


def test_mail_fails_over_and_follows_its_recipient_route(applied: Applied) -> None:
    pf = applied.postfix
    pf.inject("app@example.test", "ops@example.org")
    pf.inject("app@example.test", "ap@partner.example")
    [main] = applied.providers["backup"].wait_for_messages(1, timeout=40)
    [routed] = applied.providers["partner"].wait_for_messages(1, timeout=40)
    assert (main.rcpt_tos, main.auth_user) == (["ops@example.org"], "backup-user")
    assert (routed.rcpt_tos, routed.auth_user) == (["ap@partner.example"], "partner-user")


def test_verify_checks_the_relayhost_list_and_names_the_dead_relay(applied: Applied) -> None:
    out = applied.verify.output
    task = out.index("TASK [smtp_relay : Check that Postfix relays through the default relay]")
    assert out[task:].split("\n", 2)[1].startswith("ok: [localhost]"), out  # "[localhost]:P1, [localhost]:P2"
    assert applied.verify.returncode != 0 and "failed: [localhost] (item=dead)" in out, out
    assert "(item=backup)" in out and "failed: [localhost] (item=backup)" not in out
    assert applied.verify.recap()["changed"] == 0
    for canary in applied.canaries.values():
        assert canary not in out

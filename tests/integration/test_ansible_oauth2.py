"""The ``smtp_relay`` role with an OAuth2 relay, applied for real (SPEC §7): ansible-playbook,
connection local, against a private Postfix instance, relaying to a loopback provider that takes
only XOAUTH2 with a token from the loopback identity provider, beside a password relay.

The refresh token is a vault variable. The IdP rotates refresh tokens and kills the old one at
once, so after the first run the vault's token is dead and only the host's rotated one works: the
second run must keep it (changed=0), and a new vault value must replace it. No token may appear
in any ansible-playbook output, --check --diff and -v included.
"""

from __future__ import annotations

import hashlib
import secrets
import stat
import textwrap
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest
import yaml

from smtpconf.cli import main as smtpconf_main
from smtpconf.lint import lint_path
from smtpconf.render.postfix import render_group, role_defaults, role_vars
from tests.support import ansible_run
from tests.support.gate import need_program, need_root
from tests.support.idp import IdentityProvider
from tests.support.oauth_fixtures import CLIENT_ID, OAUTH_USER
from tests.support.postfix import PostfixInstance
from tests.support.smtp_fixtures import PROVIDER_CERT_NAMES, PROVIDER_HOSTNAME, test_ca  # noqa: F401
from tests.support.smtpserver import Provider, TestCA

pytestmark = pytest.mark.integration

GROUP = "web"
BILLING = "billing@example.test"
BILLING_USER = "billinguser"


def smtpconf_yaml(ca: Path, o365_port: int, billing_port: int, token_url: str) -> str:
    return textwrap.dedent(f"""\
        version: 1
        relays:
          o365:
            host: localhost
            port: {o365_port}
            security: starttls
            ca_file: {ca}
            username: {OAUTH_USER}
            auth: oauth2
            oauth2:
              client_id: {CLIENT_ID}
              refresh_token: {{vault: vault_o365_refresh}}
              token_url: {token_url}
              scopes: [https://outlook.office.com/SMTP.Send, offline_access]
          billing:
            host: localhost
            port: {billing_port}
            security: starttls
            ca_file: {ca}
            username: {BILLING_USER}
            password: {{vault: vault_billing_password}}
        fleet:
          {GROUP}:
            hosts: [localhost]
            relay: o365
            sender_relays:
              {BILLING}: billing
            tls_level: verify
        """)


class Deployment(NamedTuple):
    work: Path
    source: Path
    ansible_dir: Path
    vars_file: Path
    postfix: PostfixInstance
    idp: IdentityProvider
    o365: Provider
    billing: Provider
    vault_token: str  # the refresh token in the vault
    password: str  # the billing relay's password (a canary too)
    host_vars: dict[str, str]

    def playbook(self, *extra: str) -> ansible_run.Run:
        args = [ansible_run.program("ansible-playbook"), "-i", "inventory.ini", "playbook.yml",
                "-e", "ansible_connection=local", "-e", "ansible_become=false", "-e", f"@{self.vars_file}", *extra]
        return ansible_run.run(args, cwd=self.ansible_dir, home=self.work / "home")

    def apply(self, *extra: str) -> ansible_run.Run:
        mark = self.postfix.log_size()
        result = self.playbook(*extra)
        assert result.returncode == 0, result.output
        if "RUNNING HANDLER [smtp_relay : Reload Postfix]" in result.output:
            self.postfix.wait_log(r"postfix/master\[\d+\]: reload -- ", since=mark)
        return result

    @property
    def oauth2_dir(self) -> Path:
        return Path(self.host_vars["smtp_relay_oauth2_dir"])

    def host_token(self, kind: str) -> str:
        return (self.oauth2_dir / f"o365.{kind}").read_text().strip()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[Deployment]:  # noqa: F811
    need_root("the role writes root-owned files, creates the transport's user and starts a private Postfix")
    need_program("swaks", "swaks")
    need_program("msmtp", "msmtp")
    work = tmp_path_factory.mktemp("ansible-oauth2")
    password = f"CANARY-billing-{secrets.token_hex(8)}"
    with IdentityProvider() as idp, \
            Provider("starttls", oauth=idp, oauth_mechanisms=("XOAUTH2",), ssl_context=test_ca.issue(PROVIDER_CERT_NAMES),
                     hostname=PROVIDER_HOSTNAME) as o365, \
            Provider("starttls", users={BILLING_USER: password}, ssl_context=test_ca.issue(PROVIDER_CERT_NAMES),
                     hostname=PROVIDER_HOSTNAME) as billing, \
            PostfixInstance() as postfix:
        source = work / "smtpconf.yaml"
        source.write_text(smtpconf_yaml(test_ca.ca_pem_path, o365.port, billing.port, idp.token_url))
        assert smtpconf_main(["render", str(source), "-o", str(work / "out"), "--only", "ansible"]) == 0
        # Under the instance's directory (0755): the pipe transport's user must reach the script
        # and the access token. No systemd here: the role picks cron and writes this file.
        (postfix.base_dir / "cron.d").mkdir()
        host_vars = {
            "smtp_relay_postfix_config_dir": str(postfix.config_dir),
            "smtp_relay_install_packages": False,
            "smtp_relay_oauth2_dir": str(postfix.base_dir / "oauth2"),
            "smtp_relay_oauth2_script": str(postfix.base_dir / "bin" / "smtpconf-oauth2"),
            "smtp_relay_oauth2_cron_file": str(postfix.base_dir / "cron.d" / "smtpconf-oauth2"),
            "smtp_relay_oauth2_systemd_dir": str(postfix.base_dir / "systemd"),
        }
        vault_token = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
        vars_file = work / "vars.yml"
        vars_file.touch(mode=0o600)
        vars_file.write_text(yaml.safe_dump({**host_vars, "vault_o365_refresh": vault_token,
                                             "vault_billing_password": password}))
        yield Deployment(work, source, work / "out" / "ansible", vars_file, postfix, idp, o365, billing, vault_token,
                         password, host_vars)


class Applied(NamedTuple):
    check_diff: ansible_run.Run
    first: ansible_run.Run
    second: ansible_run.Run
    rotated: str  # the host's refresh token after the first run


@pytest.fixture(scope="module")
def applied(deployment: Deployment) -> Applied:
    check_diff = deployment.playbook("--check", "--diff")
    assert check_diff.returncode == 0, check_diff.output
    assert not deployment.oauth2_dir.exists()  # --check wrote nothing
    first = deployment.apply("--diff", "-v")
    rotated = deployment.host_token("refresh")
    second = deployment.apply("--diff", "-v")
    return Applied(check_diff, first, second, rotated)


def _tokens(deployment: Deployment, applied: Applied) -> list[str]:
    return [deployment.vault_token, applied.rotated, deployment.host_token("refresh"),
            deployment.host_token("access"), deployment.password]


def test_first_run_installs_the_token_and_the_second_changes_nothing(deployment: Deployment,
                                                                       applied: Applied) -> None:
    assert applied.first.recap()["changed"] > 0
    assert applied.second.recap()["changed"] == 0, applied.second.output
    assert applied.second.recap()["failed"] == 0


def test_rotated_refresh_token_survives_the_second_run(deployment: Deployment, applied: Applied) -> None:
    idp = deployment.idp
    # The first run renewed the access token at once, and the IdP rotated the refresh token: the
    # vault's copy is dead, the host's is the only live one, and the second run kept it.
    assert applied.rotated != deployment.vault_token
    assert not idp.refresh_token_valid(deployment.vault_token)
    assert deployment.host_token("refresh") == applied.rotated
    assert idp.refresh_token_valid(applied.rotated)
    assert idp.valid_access_token(deployment.host_token("access")) == OAUTH_USER
    refresh = deployment.oauth2_dir / "o365.refresh"
    assert (stat.S_IMODE(refresh.stat().st_mode), refresh.stat().st_uid) == (0o600, 0)
    # The role remembers the deployed value by its hash only.
    deployed = (deployment.oauth2_dir / "o365.refresh.deployed").read_text().strip()
    assert deployed == hashlib.sha256(deployment.vault_token.encode()).hexdigest()


def test_no_token_in_any_output(deployment: Deployment, applied: Applied) -> None:
    for token in _tokens(deployment, applied):
        for name, run in [("--check --diff", applied.check_diff), ("first -v", applied.first),
                          ("second -v", applied.second)]:
            assert token not in run.output, f"a secret is shown in the {name} run"
    for rendered in deployment.ansible_dir.rglob("*"):
        if rendered.is_file():
            assert not any(t in rendered.read_text() for t in _tokens(deployment, applied)), rendered


def test_mail_goes_out_through_xoauth2_and_the_password_relay(deployment: Deployment, applied: Applied) -> None:
    pf = deployment.postfix
    before_o365, before_billing = len(deployment.o365.messages), len(deployment.billing.messages)
    pf.inject("app@example.test", "ops@example.org")
    pf.inject(BILLING, "customer@example.org")
    o365 = deployment.o365.wait_for_messages(before_o365 + 1, timeout=30)[before_o365]
    billing = deployment.billing.wait_for_messages(before_billing + 1, timeout=30)[before_billing]
    assert (o365.mail_from, o365.auth_user, o365.tls) == ("app@example.test", OAUTH_USER, True)
    assert (billing.mail_from, billing.auth_user, billing.tls) == (BILLING, BILLING_USER, True)


def test_refresher_runs_from_cron_without_systemd(deployment: Deployment, applied: Applied) -> None:
    cron = Path(deployment.host_vars["smtp_relay_oauth2_cron_file"]).read_text()
    command = f"root {deployment.host_vars['smtp_relay_oauth2_script']} refresh {deployment.postfix.config_dir}/smtpconf"
    assert f"@reboot {command}\n" in cron and f"*/5 * * * * {command}\n" in cron
    assert not Path(deployment.host_vars["smtp_relay_oauth2_systemd_dir"]).exists()


def test_host_files_are_the_postfix_targets_bytes(deployment: Deployment, applied: Applied) -> None:
    lint = lint_path(deployment.source)
    assert lint.config is not None
    variables = {**role_defaults(config_dir=str(deployment.postfix.config_dir)),
                 **{k: v for k, v in deployment.host_vars.items() if k.startswith("smtp_relay_oauth2_")},
                 **role_vars(lint.config, lint.config.fleet[GROUP], {"billing": deployment.password},
                             {"o365": {"refresh_token": deployment.vault_token}})}
    expected = render_group(variables)
    map_dir = deployment.postfix.config_dir / "smtpconf"
    for name in ("msmtp-o365.conf", "oauth2-o365.json", "sender_transport", "sasl_passwd"):
        assert (map_dir / name).read_text() == expected[name], name
    assert (map_dir / "main.cf.smtpconf").read_text() == expected["main.cf"]
    assert expected["master.cf"].strip() in deployment.postfix.master_cf.read_text()
    assert Path(deployment.host_vars["smtp_relay_oauth2_cron_file"]).read_text() == expected["smtpconf-oauth2.cron"]


def test_a_new_vault_value_replaces_the_hosts_token(deployment: Deployment, applied: Applied) -> None:
    """After a new login (smtpconf oauth2 login) the vault holds a new token: deployed once, then
    rotated on the host and kept."""
    idp = deployment.idp
    new = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    extra = deployment.work / "new-token.yml"
    extra.touch(mode=0o600)
    extra.write_text(yaml.safe_dump({"vault_o365_refresh": new}))
    third = deployment.apply("-v", "-e", f"@{extra}")
    assert third.recap()["changed"] > 0
    rotated = deployment.host_token("refresh")
    assert rotated not in (new, applied.rotated)  # installed, then spent by the refresher at once
    assert idp.refresh_token_valid(rotated) and not idp.refresh_token_valid(new)
    fourth = deployment.apply("-v", "-e", f"@{extra}")
    assert fourth.recap()["changed"] == 0, fourth.output
    assert deployment.host_token("refresh") == rotated
    for token in (new, rotated, deployment.host_token("access"), deployment.vault_token):
        assert token not in third.output + fourth.output


def test_undefined_refresh_token_fails_before_touching_the_host(deployment: Deployment, tmp_path: Path) -> None:
    pf = PostfixInstance()  # never started: its directories must stay exactly as they are
    try:
        before = sorted(str(p) for p in pf.base_dir.rglob("*"))
        vars_file = tmp_path / "vars.yml"
        vars_file.write_text(yaml.safe_dump({
            **deployment.host_vars, "smtp_relay_postfix_config_dir": str(pf.config_dir),
            "smtp_relay_oauth2_dir": str(pf.base_dir / "oauth2"), "vault_billing_password": deployment.password}))
        args = [ansible_run.program("ansible-playbook"), "-i", "inventory.ini", "playbook.yml",
                "-e", "ansible_connection=local", "-e", "ansible_become=false", "-e", f"@{vars_file}"]
        result = ansible_run.run(args, cwd=deployment.ansible_dir, home=deployment.work / "home")
        assert result.returncode != 0
        assert "vault_o365_refresh" in result.output and "undefined" in result.output, result.output
        assert deployment.password not in result.output
        assert sorted(str(p) for p in pf.base_dir.rglob("*")) == before
    finally:
        pf.close()


def test_oauth2_relay_leaving_the_group_leaves_nothing_behind(deployment: Deployment, applied: Applied) -> None:
    """Last: the group goes back to its password relay alone. The OAuth2 relay's transport,
    msmtp settings, refresher entry, tokens (a refresh token is a credential) and schedule go."""
    pf = deployment.postfix
    text = deployment.source.read_text()
    text = text.replace("    relay: o365\n", "    relay: billing\n").replace(f"      {BILLING}: billing\n", "")
    deployment.source.write_text(text.replace("    sender_relays:\n", "    sender_relays: {}\n"))
    assert smtpconf_main(["render", str(deployment.source), "-o", str(deployment.work / "out"), "--only",
                          "ansible"]) == 0
    result = deployment.apply("-v")
    assert result.recap()["changed"] > 0
    map_dir = pf.config_dir / "smtpconf"
    assert not list(map_dir.glob("oauth2-*")) and not list(map_dir.glob("msmtp-*"))
    assert sorted(p.name for p in deployment.oauth2_dir.iterdir()) == []
    assert not Path(deployment.host_vars["smtp_relay_oauth2_cron_file"]).exists()
    assert "smtpconf_oauth2" not in pf.master_cf.read_text()
    assert pf.get("default_transport") == "smtp"
    assert "smtpconf_oauth2_o365_destination_recipient_limit" not in pf.postconf_n()
    before = len(deployment.billing.messages)
    pf.inject("app@example.test", "ops@example.org")
    received = deployment.billing.wait_for_messages(before + 1, timeout=30)[before]
    assert (received.mail_from, received.auth_user) == ("app@example.test", BILLING_USER)
    again = deployment.apply()
    assert again.recap()["changed"] == 0, again.output

"""Apply the rendered Ansible directory for real: ansible-playbook, connection local, against a
private Postfix instance (``smtp_relay_postfix_config_dir``), relaying to aiosmtpd providers on
loopback that require AUTH: the default relay over STARTTLS, a sender relay over implicit TLS.

The relay password is a random canary: it must reach sasl_passwd on the host (or no mail would
be accepted) and must appear in no ansible-playbook output, --check --diff included.
"""

from __future__ import annotations

import os
import secrets
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
from tests.support.postfix import PostfixInstance
from tests.support.smtp_fixtures import PROVIDER_CERT_NAMES, PROVIDER_HOSTNAME, test_ca  # noqa: F401
from tests.support.smtpserver import Provider, TestCA, closed_port

pytestmark = pytest.mark.integration

MAIN_USER = "relayuser"
BILLING_USER = "billinguser"
BILLING = "billing@example.test"
GROUP = "web"


def smtpconf_yaml(ca: Path, main_port: int, billing_port: int, *, sender_relay: bool) -> str:
    # "localhost": the providers' certificates name it, and Postfix's verify level checks the
    # next-hop name (an IP literal would not match). The test instance resolves it from /etc/hosts.
    sender_relays = f"    sender_relays:\n      {BILLING}: billing\n" if sender_relay else ""
    return textwrap.dedent(f"""\
        version: 1
        relays:
          main:
            host: localhost
            port: {main_port}
            security: starttls
            ca_file: {ca}
            username: {MAIN_USER}
            password: {{vault: vault_main_password}}
          billing:
            host: localhost
            port: {billing_port}
            security: tls
            ca_file: {ca}
            username: {BILLING_USER}
            password: {{env: BILLING_PASSWORD}}
        fleet:
          {GROUP}:
            hosts: [localhost]
            relay: main
        """) + sender_relays + "    tls_level: verify\n"


class Deployment(NamedTuple):
    work: Path
    source: Path
    ansible_dir: Path
    vars_file: Path
    postfix: PostfixInstance
    main: Provider
    billing: Provider
    canaries: tuple[str, str]
    ca: Path

    def render(self) -> None:
        assert smtpconf_main(["render", str(self.source), "-o", str(self.work / "out"), "--only", "ansible"]) == 0

    def playbook(self, *extra: str, vars_file: Path | None = None) -> ansible_run.Run:
        args = [ansible_run.program("ansible-playbook"), "-i", "inventory.ini", "playbook.yml",
                # The inventory lists "localhost" as the group's host; run it here, as root.
                "-e", "ansible_connection=local", "-e", "ansible_become=false",
                "-e", f"@{vars_file or self.vars_file}", *extra]
        return ansible_run.run(args, cwd=self.ansible_dir, home=self.work / "home")

    def apply(self, *extra: str) -> ansible_run.Run:
        """A normal run; waits until master has reloaded, so mail sent next sees the new settings."""
        mark = self.postfix.log_size()
        result = self.playbook(*extra)
        assert result.returncode == 0, result.output
        if result.recap()["changed"]:
            self.postfix.wait_log(r"postfix/master\[\d+\]: reload -- ", since=mark)
        return result

    @property
    def map_dir(self) -> Path:
        return self.postfix.config_dir / "smtpconf"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[Deployment]:  # noqa: F811
    need_root("the role writes root-owned files and starts a private Postfix instance")
    need_program("swaks", "swaks")
    work = tmp_path_factory.mktemp("ansible-apply")
    canaries = (f"CANARY-main-{secrets.token_hex(8)}", f"CANARY-billing-{secrets.token_hex(8)}")
    main = Provider("starttls", users={MAIN_USER: canaries[0]}, ssl_context=test_ca.issue(PROVIDER_CERT_NAMES),
                    hostname=PROVIDER_HOSTNAME)
    # Implicit TLS beside the STARTTLS default relay: Postfix needs the role's master.cf transports.
    billing = Provider("tls", users={BILLING_USER: canaries[1]},
                       ssl_context=test_ca.issue(PROVIDER_CERT_NAMES), hostname=PROVIDER_HOSTNAME)
    with main, billing, PostfixInstance() as postfix:
        source = work / "smtpconf.yaml"
        source.write_text(smtpconf_yaml(test_ca.ca_pem_path, main.port, billing.port, sender_relay=True))
        vars_file = work / "vars.yml"
        vars_file.touch(mode=0o600)
        vars_file.write_text(yaml.safe_dump({
            "smtp_relay_postfix_config_dir": str(postfix.config_dir),
            "smtp_relay_install_packages": False,
            "vault_main_password": canaries[0],
            "vault_billing": canaries[1],  # {env: ...} in the file becomes vault_<relay>
        }))
        deployment = Deployment(work, source, work / "out" / "ansible", vars_file, postfix, main, billing,
                                canaries, test_ca.ca_pem_path)
        deployment.render()
        yield deployment


class Applied(NamedTuple):
    check_diff: ansible_run.Run  # --check --diff before anything was applied
    check_changed_files: list[str]  # what that run changed in the config directory (nothing, we hope)
    first: ansible_run.Run  # normal run, with --diff
    second: ansible_run.Run  # the same again


@pytest.fixture(scope="module")
def applied(deployment: Deployment) -> Applied:
    before = _snapshot(deployment.postfix.config_dir)
    check_diff = deployment.playbook("--check", "--diff")
    assert check_diff.returncode == 0, check_diff.output
    after = _snapshot(deployment.postfix.config_dir)
    check_changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    first = deployment.apply("--diff", "-v")  # -v prints every task's result: still no password
    second = deployment.apply("--diff")
    return Applied(check_diff, check_changed, first, second)


def test_check_mode_changes_nothing_but_shows_the_settings(deployment: Deployment, applied: Applied) -> None:
    out = applied.check_diff.output
    assert applied.check_diff.recap()["changed"] > 0
    assert applied.check_changed_files == []
    # Non-secret changes are visible in --diff: main.cf parameters and the sender relay map.
    assert f"+relayhost = [localhost]:{deployment.main.port}" in out
    assert f"+{BILLING} [localhost]:{deployment.billing.port}" in out


def test_first_run_changes_and_second_run_changes_nothing(applied: Applied) -> None:
    # The rendered ansible.cfg was read (Ansible ignores it in a world-writable directory).
    assert "world writable" not in applied.first.output
    assert applied.first.recap()["changed"] > 0
    assert applied.second.recap() | {"ok": 0} == {"ok": 0, "changed": 0, "unreachable": 0, "failed": 0,
                                                   "skipped": applied.second.recap()["skipped"],
                                                   "rescued": 0, "ignored": 0}, applied.second.output


def test_secrets_reach_only_sasl_passwd_never_the_output(deployment: Deployment, applied: Applied) -> None:
    sasl = deployment.map_dir / "sasl_passwd"
    text = sasl.read_text()
    for canary in deployment.canaries:
        assert canary in text  # the canary really was the password (the test below is not vacuous)
        for name, run in [("--check --diff", applied.check_diff), ("first", applied.first),
                          ("second", applied.second)]:
            assert canary not in run.output, f"password shown in the {name} run"
    for credentials in (sasl, deployment.map_dir / "sasl_passwd.db"):
        assert (credentials.stat().st_mode & 0o777, credentials.stat().st_uid) == (0o600, 0), credentials
    for other in deployment.map_dir.iterdir():
        if not other.name.startswith("sasl_passwd"):
            assert not any(c in other.read_bytes().decode("utf-8", "replace") for c in deployment.canaries)
    for rendered in deployment.ansible_dir.rglob("*"):
        if rendered.is_file():
            assert not any(c in rendered.read_text() for c in deployment.canaries), rendered


def test_mail_is_relayed_through_starttls_and_auth(deployment: Deployment, applied: Applied) -> None:
    pf = deployment.postfix
    assert "smtpconf_smtps unix" in pf.master_cf.read_text()  # the transport for implicit TLS
    pf.inject("app@example.test", "ops@example.org")
    pf.inject(BILLING, "customer@example.org")
    [main] = deployment.main.wait_for_messages(1, timeout=30)
    [billing] = deployment.billing.wait_for_messages(1, timeout=30)
    assert (main.mail_from, main.rcpt_tos, main.auth_user, main.tls) == (
        "app@example.test", ["ops@example.org"], MAIN_USER, True)
    assert (billing.mail_from, billing.auth_user, billing.tls) == (BILLING, BILLING_USER, True)


def test_host_files_are_the_postfix_targets_bytes(deployment: Deployment, applied: Applied) -> None:
    """SPEC §5: the role and the postfix target render the same templates into the same bytes."""
    lint = lint_path(deployment.source)
    assert lint.config is not None
    config = lint.config
    variables = {**role_defaults(config_dir=str(deployment.postfix.config_dir)),
                 **role_vars(config, config.fleet[GROUP], dict(zip(("main", "billing"), deployment.canaries)))}
    expected = render_group(variables)
    for name in ("sasl_passwd", "sender_relay", "sender_transport", "tls_policy", "generic", "ca_bundle.pem"):
        assert (deployment.map_dir / name).read_text() == expected[name], name
    assert (deployment.map_dir / "main.cf.smtpconf").read_text() == expected["main.cf"]
    assert expected["master.cf"].strip() in deployment.postfix.master_cf.read_text()


def test_verify_tag_checks_the_applied_settings(deployment: Deployment, applied: Applied) -> None:
    result = deployment.playbook("--tags", "verify")
    assert result.returncode == 0, result.output
    assert result.recap()["changed"] == 0
    assert "Check that Postfix relays through the default relay" in result.output
    # The live probe ran from the host against both providers (STARTTLS and implicit TLS) and passed.
    assert "Probe each relay from this host" in result.output
    for relay in ("main", "billing"):
        assert f"(item={relay})" in result.output
    for canary in deployment.canaries:
        assert canary not in result.output


def test_failing_probe_shows_no_password(deployment: Deployment, applied: Applied, tmp_path: Path) -> None:
    """A failed probe prints its loop item (and -v prints every item): only relay names, never a relay's dict."""
    relays = yaml.safe_load((deployment.ansible_dir / "group_vars" / f"{GROUP}.yml").read_text())["smtp_relay_relays"]
    relays["billing"]["port"] = closed_port()  # nothing listens there: the probe must fail
    variables = {**yaml.safe_load(deployment.vars_file.read_text()), "smtp_relay_relays": relays}
    vars_file = tmp_path / "vars.yml"
    vars_file.touch(mode=0o600)
    vars_file.write_text(yaml.safe_dump(variables))
    result = deployment.playbook("--tags", "verify", "-v", vars_file=vars_file)
    assert result.returncode != 0, result.output
    assert result.recap()["failed"] == 1, result.output
    assert "(item=billing)" in result.output and "probe-unreachable" in result.output, result.output
    for canary in deployment.canaries:
        assert canary not in result.output


def test_postfix_is_checked_and_reloaded_once_after_main_cf_and_master_cf(applied: Applied) -> None:
    """Maps compile in a task before main.cf refers to them; the handlers run once, at the end: a
    reload (or start) never happens with the package's main.cf, and a map change reloads once."""
    out = applied.first.output
    assert out.count("RUNNING HANDLER [smtp_relay : Check the Postfix configuration]") == 1, out
    assert out.count("RUNNING HANDLER [smtp_relay : Check whether Postfix runs before reloading]") == 1, out
    assert (out.index("TASK [smtp_relay : Compile the maps]")
            < out.index("TASK [smtp_relay : Set the main.cf parameters]")
            < out.index("TASK [smtp_relay : Manage the smtpconf block in master.cf]")
            < out.index("RUNNING HANDLER [smtp_relay : Check the Postfix configuration]")), out
    assert "changed: [localhost] => (item=sasl_passwd)" in out  # compiled by the task


def test_compiled_map_older_than_its_source_is_compiled_again(deployment: Deployment, applied: Applied) -> None:
    """A run that failed after writing a map but before compiling it leaves the source newer than
    the compiled file: the next run compiles it, although the source itself does not change."""
    source, compiled = deployment.map_dir / "tls_policy", deployment.map_dir / "tls_policy.db"
    stale = source.stat().st_mtime - 60
    os.utime(compiled, (stale, stale))
    result = deployment.apply()
    assert "changed: [localhost] => (item=tls_policy)" in result.output, result.output
    assert "changed: [localhost] => (item=sasl_passwd)" not in result.output, result.output
    assert compiled.stat().st_mtime >= source.stat().st_mtime


def test_map_type_change_compiles_anew_and_leaves_no_other_compiled_copy(deployment: Deployment,
                                                                         applied: Applied) -> None:
    pf, map_dir = deployment.postfix, deployment.map_dir
    key = f"[localhost]:{deployment.main.port}"
    # A copy of the credentials compiled for another table type (an earlier smtp_relay_map_type).
    stray = map_dir / "sasl_passwd.lmdb"
    stray.write_bytes(b"an old compiled copy of the credentials")
    stray.chmod(0o600)
    try:
        # hash and btree both write sasl_passwd.db: nothing but the type change says to recompile.
        deployment.apply("-e", "smtp_relay_map_type=btree")
        assert not stray.exists()
        assert pf.get("smtp_tls_policy_maps") == f"btree:{map_dir}/tls_policy"
        assert pf.postmap_query(key, f"btree:{map_dir}/tls_policy") == "verify"
        assert pf.postmap_query(key, f"btree:{map_dir}/sasl_passwd") == f"{MAIN_USER}:{deployment.canaries[0]}"
    finally:
        deployment.apply()
    assert pf.get("smtp_tls_policy_maps") == f"hash:{map_dir}/tls_policy"
    assert pf.postmap_query(key, f"hash:{map_dir}/tls_policy") == "verify"


def test_map_dir_change_removes_the_maps_from_the_old_directory(deployment: Deployment, applied: Applied) -> None:
    pf, old = deployment.postfix, deployment.map_dir
    new = pf.config_dir / "smtpconf-moved"
    # A parameter the last run set (in the old directory's state file) and no longer renders:
    # the move must not make the role forget it set it.
    pf.postconf("smtp_helo_name = moved.example")
    with open(old / "main.cf.smtpconf", "a") as state:
        state.write("smtp_helo_name = moved.example\n")
    try:
        deployment.apply("-e", f"smtp_relay_map_dir={new}")
        assert pf.get("smtp_sasl_password_maps") == f"hash:{new}/sasl_passwd"
        assert "smtp_helo_name" not in pf.postconf_n()
        assert sorted(p.name for p in old.iterdir()) == [], "a copy of the maps stayed in the old directory"
        assert (new / "sasl_passwd.db").stat().st_mode & 0o777 == 0o600
    finally:
        deployment.apply()
    assert pf.get("smtp_sasl_password_maps") == f"hash:{old}/sasl_passwd"
    assert not any(p.name.startswith("sasl_passwd") for p in new.iterdir())
    before = len(deployment.main.messages)
    pf.inject("app@example.test", "ops@example.org")
    assert deployment.main.wait_for_messages(before + 1, timeout=30)[-1].auth_user == MAIN_USER


def test_verify_expects_an_ipv6_relayhost_as_the_templates_write_it(deployment: Deployment, applied: Applied,
                                                                    tmp_path: Path) -> None:
    pf = deployment.postfix
    relays = yaml.safe_load((deployment.ansible_dir / "group_vars" / f"{GROUP}.yml").read_text())["smtp_relay_relays"]
    relays["main"]["host"] = "::1"
    variables = {**yaml.safe_load(deployment.vars_file.read_text()), "smtp_relay_relays": relays}
    vars_file = tmp_path / "vars.yml"
    vars_file.touch(mode=0o600)
    vars_file.write_text(yaml.safe_dump(variables))
    relayhost = pf.get("relayhost")
    pf.postconf(f"relayhost = [ipv6:::1]:{deployment.main.port}")  # what main.cf.j2 writes for ::1
    try:
        result = deployment.playbook("--tags", "verify", vars_file=vars_file)
    finally:
        pf.postconf(f"relayhost = {relayhost}")
    task = result.output.index("TASK [smtp_relay : Check that Postfix relays through the default relay]")
    assert result.output[task:].split("\n", 2)[1].startswith("ok: [localhost]"), result.output
    assert "relayhost is" not in result.output
    for canary in deployment.canaries:
        assert canary not in result.output  # the probe of [::1] may fail: nothing listens there


def test_removed_sender_relay_is_removed_from_the_host(deployment: Deployment, applied: Applied) -> None:
    pf = deployment.postfix
    sender_map = f"hash:{deployment.map_dir}/sender_relay"
    assert pf.postmap_query(BILLING, sender_map) == f"[localhost]:{deployment.billing.port}"
    assert pf.get("sender_dependent_relayhost_maps") == sender_map

    deployment.source.write_text(smtpconf_yaml(deployment.ca, deployment.main.port, deployment.billing.port,
                                               sender_relay=False))
    # A parameter an earlier run set (it is in the state file) but that is no longer rendered must
    # go; a parameter somebody else set must stay.
    pf.postconf("smtp_helo_name = old.example", "smtp_helo_timeout = 123s")
    with open(deployment.map_dir / "main.cf.smtpconf", "a") as state:
        state.write("smtp_helo_name = old.example\n")
    deployment.render()
    result = deployment.apply("--diff")
    assert result.recap()["changed"] > 0
    assert "-smtp_helo_name = old.example" in result.output  # the removal shows in --diff
    settings = pf.postconf_n()
    assert "smtp_helo_name" not in settings and "smtp_helo_timeout = 123s" in settings
    assert pf.postmap_query(BILLING, sender_map) is None
    assert pf.get("sender_dependent_relayhost_maps") == ""
    assert BILLING not in (deployment.map_dir / "sasl_passwd").read_text()
    assert "smtpconf_smtps" not in pf.master_cf.read_text()  # no implicit-TLS relay left in the group
    assert pf.get("sender_dependent_default_transport_maps") == ""
    # ... and mail from that sender now goes through the default relay.
    before = len(deployment.main.messages)
    pf.inject(BILLING, "customer@example.org")
    received = deployment.main.wait_for_messages(before + 1, timeout=30)[-1]
    assert (received.mail_from, received.auth_user) == (BILLING, MAIN_USER)


def test_undefined_secret_fails_before_touching_the_host(deployment: Deployment, tmp_path: Path) -> None:
    # A fresh, never-started instance: its config directory must stay exactly as it was.
    pf = PostfixInstance()
    try:
        before = _snapshot(pf.config_dir)
        vars_file = tmp_path / "vars.yml"
        vars_file.write_text(yaml.safe_dump({
            "smtp_relay_postfix_config_dir": str(pf.config_dir),
            "smtp_relay_install_packages": False,
            "vault_billing": "not-the-missing-one",
        }))
        result = deployment.playbook(vars_file=vars_file)
        assert result.returncode != 0
        assert "vault_main_password" in result.output and "undefined" in result.output, result.output
        assert _snapshot(pf.config_dir) == before
    finally:
        pf.close()


def _snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(directory)): (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
            for p in sorted(directory.rglob("*"))}


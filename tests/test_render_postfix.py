"""The ``postfix`` target, offline: what lands in main.cf, master.cf and the maps, and what never
does. The proof that Postfix relays mail with it is tests/integration/test_postfix_relay.py."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from smtpconf.errors import RenderError
from smtpconf.lint import lint_path
from smtpconf.model import Config
from smtpconf.render import render, write_atomic

ROOT = Path(__file__).resolve().parents[1]
GMAIL_PASSWORD = "abcd efgh ijkl mnop"  # Gmail app passwords come with spaces
SES_PASSWORD = "BAse64+/ses=="

MIXED = """\
version: 1
relays:
  gmail-ops:
    provider: gmail
    username: ops@example.com
    password: {env: T_GMAIL}
  ses:
    host: email-smtp.eu-west-1.amazonaws.com
    port: 465
    security: tls
    username: AKIAEXAMPLE
    password: {file: ses.secret}
  lab:
    host: smtp.lab.example.test
    port: 2587
    security: starttls
    ca_file: lab-ca.pem
    username: relayuser
    password: {command: "printf lab-pass"}
fleet:
  web:
    hosts: [web1.example.com]
    relay: gmail-ops
    sender_relays:
      billing@example.com: ses
      "@lab.example.test": lab
    rewrite_sender: ops@example.com
"""

IMPLICIT_ONLY = """\
version: 1
relays:
  mail163:
    provider: "163"
    username: alerts@163.com
    password: {env: T_163}
fleet:
  batch:
    relay: mail163
"""


def load(tmp_path: Path, text: str, name: str = "smtpconf.yaml") -> Config:
    (tmp_path / "ses.secret").write_text(SES_PASSWORD + "\n")
    (tmp_path / "lab-ca.pem").write_text((ROOT / "examples/certs/lab-ca.pem").read_text())
    path = tmp_path / name
    path.write_text(text)
    result = lint_path(path)
    assert result.config is not None, result.findings
    assert not [f for f in result.findings if f.level == "error"], result.findings
    return result.config


def files(config: Config, **options: str) -> dict[str, str]:
    out = render(config, ["postfix"], dict(options))
    return {f.path: f.content.decode() for f in out}


def settings(text: str) -> dict[str, str]:
    pairs = [line.split(" =", 1) for line in text.splitlines()]
    return {name: value.strip() for name, value in pairs}


def table(text: str) -> dict[str, str]:
    rows = [line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return dict(rows)


@pytest.fixture
def mixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("T_GMAIL", GMAIL_PASSWORD)
    return files(load(tmp_path, MIXED))


def test_main_cf_is_sorted_name_value_lines(mixed: dict[str, str]) -> None:
    lines = mixed["postfix/web/main.cf"].splitlines()
    assert lines == sorted(lines)
    assert all(" =" in line and not line.startswith("#") for line in lines)
    main = settings(mixed["postfix/web/main.cf"])
    assert main["relayhost"] == "[smtp.gmail.com]:587"
    assert main["smtp_sasl_auth_enable"] == "yes"
    assert main["smtp_sasl_password_maps"] == "hash:/etc/postfix/smtpconf/sasl_passwd"
    # Outside TLS no PLAIN/LOGIN: a stripped STARTTLS never gets the password (only TLS relays here).
    assert main["smtp_sasl_security_options"] == "noplaintext, noanonymous"
    assert main["smtp_sasl_tls_security_options"] == "noanonymous"
    assert main["smtp_tls_security_level"] == "verify"
    assert main["smtp_tls_policy_maps"] == "hash:/etc/postfix/smtpconf/tls_policy"
    assert main["sender_dependent_relayhost_maps"] == "hash:/etc/postfix/smtpconf/sender_relay"
    assert main["smtp_sender_dependent_authentication"] == "yes"
    assert main["smtp_generic_maps"] == "hash:/etc/postfix/smtpconf/generic"
    # The lab relay's private CA, plus the system CAs for Gmail and SES, named explicitly rather
    # than relying on the distribution's main.cf or OpenSSL's compiled-in defaults.
    assert main["smtp_tls_CAfile"] == "/etc/postfix/smtpconf/ca_bundle.pem"
    assert main["smtp_tls_CApath"] == "/etc/ssl/certs"
    assert main["tls_append_default_CA"] == "no"
    assert "BEGIN CERTIFICATE" in mixed["postfix/web/ca_bundle.pem"]


def test_password_keys_match_relayhost_and_sender_relays(mixed: dict[str, str]) -> None:
    main = settings(mixed["postfix/web/main.cf"])
    sasl = table(mixed["postfix/web/sasl_passwd"])
    relays = table(mixed["postfix/web/sender_relay"])
    policy = table(mixed["postfix/web/tls_policy"])
    assert sasl[main["relayhost"]] == f"ops@example.com:{GMAIL_PASSWORD}"
    assert relays == {"billing@example.com": "[email-smtp.eu-west-1.amazonaws.com]:465",
                      "@lab.example.test": "[smtp.lab.example.test]:2587"}
    assert sasl[relays["billing@example.com"]] == f"AKIAEXAMPLE:{SES_PASSWORD}"
    assert sasl[relays["@lab.example.test"]] == "relayuser:lab-pass"
    # Sender keys too: smtp_sender_dependent_authentication looks them up first.
    assert sasl["billing@example.com"] == f"AKIAEXAMPLE:{SES_PASSWORD}"
    assert set(policy) == {main["relayhost"], *relays.values()}
    assert set(policy.values()) == {"verify"}


def test_mixed_implicit_tls_and_starttls_get_transports(mixed: dict[str, str]) -> None:
    main = settings(mixed["postfix/web/main.cf"])
    assert main["smtp_tls_wrappermode"] == "no"  # the default relay is STARTTLS
    assert main["sender_dependent_default_transport_maps"] == "hash:/etc/postfix/smtpconf/sender_transport"
    services = [line.split() for line in mixed["postfix/web/master.cf"].splitlines()
                if line and not line.startswith("#")]
    by_name = {s[0]: s for s in services}
    assert by_name["smtpconf_smtps"][:8] == ["smtpconf_smtps", "unix", "-", "-", "n", "-", "-", "smtp"]
    assert "smtp_tls_wrappermode=yes" in by_name["smtpconf_smtps"]
    assert "smtp_tls_security_level=verify" in by_name["smtpconf_smtps"]
    assert "smtp_tls_wrappermode=no" in by_name["smtpconf_smtp"]
    # Every sender has an entry, so "user@domain" never falls back to an "@domain" of the other kind.
    assert table(mixed["postfix/web/sender_transport"]) == {
        "billing@example.com": "smtpconf_smtps", "@lab.example.test": "smtpconf_smtp"}


def test_implicit_tls_default_relay_sets_wrappermode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_163", "auth-code")
    out = files(load(tmp_path, IMPLICIT_ONLY))
    main = settings(out["postfix/batch/main.cf"])
    assert main["relayhost"] == "[smtp.163.com]:465"
    assert main["smtp_tls_wrappermode"] == "yes"
    assert main["smtp_tls_security_level"] == "verify"
    # Nothing to mix: no transports, and the unused settings are set empty (clears older renders).
    assert main["sender_dependent_default_transport_maps"] == ""
    assert main["sender_dependent_relayhost_maps"] == ""
    assert main["smtp_sender_dependent_authentication"] == "no"
    assert main["smtp_generic_maps"] == ""
    # No private CA: the public 163.com relay is verified against the system CAs in CApath.
    assert main["smtp_tls_CAfile"] == "" and main["tls_append_default_CA"] == "no"
    assert main["smtp_tls_CApath"] == "/etc/ssl/certs"
    assert not [line for line in out["postfix/batch/master.cf"].splitlines() if not line.startswith("#")]
    assert "postfix/batch/ca_bundle.pem" not in out
    assert table(out["postfix/batch/sasl_passwd"]) == {"[smtp.163.com]:465": "alerts@163.com:auth-code"}


def test_private_ca_only_group_trusts_only_its_ca(tmp_path: Path) -> None:
    config = load(tmp_path, "version: 1\nrelays:\n  lab:\n    host: smtp.lab.example.test\n    port: 2587\n"
                            "    security: starttls\n    ca_file: lab-ca.pem\nfleet:\n  lab:\n    relay: lab\n")
    main = settings(files(config)["postfix/lab/main.cf"])
    assert main["smtp_tls_CAfile"] == "/etc/postfix/smtpconf/ca_bundle.pem"
    assert main["smtp_tls_CApath"] == "" and main["tls_append_default_CA"] == "no"


PLAIN_RELAY = """\
version: 1
relays:
  hub: {host: smtp.example.com, port: 587, security: starttls, username: app, password: {env: T_HUB}}
  lan: {host: mx.lab.example.test, port: 25, security: none, username: lanuser, password: {env: T_LAN}}
fleet:
  web:
    relay: hub
    tls_level: may
"""


def test_sasl_outside_tls_is_refused_unless_a_relay_is_plaintext_by_design(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_HUB", "hub-pass")
    monkeypatch.setenv("T_LAN", "lan-pass")
    path = tmp_path / "smtpconf.yaml"
    # tls_level may with a STARTTLS relay: a stripped STARTTLS must not get the password.
    path.write_text(PLAIN_RELAY)
    main = settings(files(lint_path(path).config)["postfix/web/main.cf"])  # type: ignore[arg-type]
    assert main["smtp_sasl_security_options"] == "noplaintext, noanonymous"
    # A relay declared `security: none` that authenticates can only work with plaintext AUTH.
    path.write_text(PLAIN_RELAY + "    sender_relays: {billing@example.com: lan}\n")
    main = settings(files(lint_path(path).config)["postfix/web/main.cf"])  # type: ignore[arg-type]
    assert main["smtp_sasl_security_options"] == "noanonymous"
    assert main["smtp_sasl_tls_security_options"] == "noanonymous"
    # Unused, or without a credential, the plaintext relay changes nothing.
    path.write_text(PLAIN_RELAY.replace(", username: lanuser, password: {env: T_LAN}", "")
                    + "    sender_relays: {billing@example.com: lan}\n")
    main = settings(files(lint_path(path).config)["postfix/web/main.cf"])  # type: ignore[arg-type]
    assert main["smtp_sasl_security_options"] == "noplaintext, noanonymous"


def test_rewrite_sender_maps_the_hosts_own_names(mixed: dict[str, str]) -> None:
    assert table(mixed["postfix/web/generic"]) == {
        "@localhost": "ops@example.com", "@localhost.localdomain": "ops@example.com",
        "@web1.example.com": "ops@example.com"}


def test_map_dir_and_type_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_163", "auth-code")
    config = load(tmp_path, IMPLICIT_ONLY)
    main = settings(files(config, postfix_map_dir="/srv/pf/maps/", postfix_map_type="lmdb")["postfix/batch/main.cf"])
    assert main["smtp_sasl_password_maps"] == "lmdb:/srv/pf/maps/sasl_passwd"
    assert main["smtp_tls_policy_maps"] == "lmdb:/srv/pf/maps/tls_policy"
    for bad in ("relative/dir", "/etc/postfix/my maps", "/etc/$mail", "/a,b"):
        with pytest.raises(RenderError, match="absolute path"):
            files(config, postfix_map_dir=bad)


def test_ipv6_relay_uses_postfix_ipv6_literal(tmp_path: Path) -> None:
    config = load(tmp_path, "version: 1\nrelays:\n  v6:\n    host: '2001:db8::25'\n    port: 587\n"
                            "    security: starttls\nfleet:\n  lab:\n    relay: v6\n")
    out = files(config)
    assert settings(out["postfix/lab/main.cf"])["relayhost"] == "[ipv6:2001:db8::25]:587"
    assert settings(out["postfix/lab/main.cf"])["smtp_sasl_auth_enable"] == "no"
    assert table(out["postfix/lab/sasl_passwd"]) == {}


def test_render_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_GMAIL", GMAIL_PASSWORD)
    config = load(tmp_path, MIXED)
    assert files(config) == files(config)


def test_sasl_passwd_is_written_0600_and_listed_in_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_GMAIL", GMAIL_PASSWORD)
    out = tmp_path / "out"
    write_atomic(render(load(tmp_path, MIXED), ["postfix"]), out)
    assert stat.S_IMODE((out / "postfix/web/sasl_passwd").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "postfix/web/main.cf").stat().st_mode) == 0o644
    manifest = json.loads((out / ".smtpconf-manifest.json").read_text())
    assert {"path": "postfix/web/sasl_passwd", "target": "postfix", "group": "web"} in manifest["files"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "smtpconf", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60, stdin=subprocess.DEVNULL)


def test_missing_secret_names_it_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_GMAIL", GMAIL_PASSWORD)
    load(tmp_path, MIXED)
    out = tmp_path / "out"
    first = run_cli("render", str(tmp_path / "smtpconf.yaml"), "-o", str(out), "--only", "postfix")
    assert first.returncode == 0, first.stderr
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (tmp_path / "ses.secret").unlink()
    monkeypatch.delenv("T_GMAIL")
    again = run_cli("render", str(tmp_path / "smtpconf.yaml"), "-o", str(out), "--only", "postfix")
    assert again.returncode == 2
    assert "relay 'gmail-ops' password (env T_GMAIL)" in again.stderr
    assert "relay 'ses' password (file " in again.stderr
    assert "nothing was written" in again.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    for output in (first, again):
        assert GMAIL_PASSWORD not in output.stdout + output.stderr
        assert SES_PASSWORD not in output.stdout + output.stderr


def test_vault_secret_points_at_the_ansible_target(tmp_path: Path) -> None:
    config = load(tmp_path, IMPLICIT_ONLY.replace("{env: T_163}", "{vault: vault_mail163}"))
    with pytest.raises(RenderError) as caught:
        files(config)
    assert "relay 'mail163' password (vault vault_mail163)" in str(caught.value)
    assert "ansible target" in str(caught.value)


def test_failing_secret_command_and_unusable_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(tmp_path, IMPLICIT_ONLY.replace("{env: T_163}", '{command: "exit 3"}'))
    with pytest.raises(RenderError, match=r"relay 'mail163' password \(command exit 3\): secret command exited 3"):
        files(config)
    # A password with a line break would add a map entry; one with trailing space loses it.
    for value in ("first\n[evil]:25 x:y", "trailing ", ""):
        monkeypatch.setenv("T_163", value)
        config = load(tmp_path, IMPLICIT_ONLY)
        with pytest.raises(RenderError, match="relay 'mail163' password") as caught:
            files(config)
        assert not value or value not in str(caught.value)


@pytest.mark.parametrize(("yaml_value", "line"), [
    ('    host: "smtp.example.com\\nrelayhost = [evil.example]:25"', 4),
    ('    username: "ops user"', 6),
    ('    username: "ops,user"', 6),
    ('    username: "ops\\n[evil]:25 x"', 6),
])
def test_schema_keeps_injection_out_of_relay_values(tmp_path: Path, yaml_value: str, line: int) -> None:
    text = ("version: 1\nrelays:\n  lab:\n    host: smtp.example.com\n    port: 587\n    username: ops\n"
            "fleet:\n  web:\n    relay: lab\n")
    field = yaml_value.split(":", 1)[0]
    lines = text.splitlines()
    lines[line - 1] = yaml_value
    assert lines[line - 1].startswith(field)
    _assert_schema_error(tmp_path, "\n".join(lines) + "\n", line)


@pytest.mark.parametrize(("snippet", "line"), [
    ('    sender_relays:\n      "bill ing@example.com": lab\n', 11),
    ('    sender_relays:\n      "billing@example.com,@x.example": lab\n', 11),
    ('    sender_relays:\n      "billing@example.com\\n@evil.example": lab\n', 11),
    ('    rewrite_sender: "ops@example.com, root@example.com"\n', 10),
    ('    rewrite_sender: "ops@example.com\\n@evil.example x"\n', 10),
    ('    hosts: ["web1.example.com web2.example.com"]\n', 10),
])
def test_schema_keeps_injection_out_of_fleet_values(tmp_path: Path, snippet: str, line: int) -> None:
    text = ("version: 1\nrelays:\n  lab:\n    host: smtp.example.com\n    port: 587\n    username: ops\n"
            "fleet:\n  web:\n    relay: lab\n" + snippet)
    _assert_schema_error(tmp_path, text, line)


def _assert_schema_error(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    done = run_cli("lint", "--format", "json", str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    findings = json.loads(done.stdout)
    findings = findings.get("findings", findings) if isinstance(findings, dict) else findings
    assert [(f["rule"], f["line"]) for f in findings] == [("schema", line)], findings


def test_sender_relay_to_unknown_relay_is_unknown_reference(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nrelays:\n  lab:\n    host: smtp.example.com\nfleet:\n  web:\n    relay: lab\n"
                    "    sender_relays:\n      billing@example.com: nosuch\n")
    result = lint_path(path)
    assert [(f.rule, f.line) for f in result.findings if f.level == "error"] == [("unknown-reference", 9)]


def test_all_targets_leave_a_group_without_its_secrets_to_ansible(tmp_path: Path) -> None:
    import subprocess
    import sys

    source = tmp_path / "smtpconf.yaml"
    source.write_text(
        "version: 1\n"
        "relays:\n"
        "  here: {host: smtp.example.com, username: u, password: {env: SMTPCONF_TEST_HERE}}\n"
        "  vaulted: {host: smtp.example.org, username: v, password: {vault: vault_relay_password}}\n"
        "fleet:\n"
        "  web: {relay: here}\n"
        "  db: {relay: vaulted}\n", encoding="utf-8")
    smtpconf = str(Path(sys.executable).with_name("smtpconf"))
    env = {"PATH": "/usr/bin:/bin", "SMTPCONF_TEST_HERE": "canary-Xq7"}
    done = subprocess.run([smtpconf, "render", str(source), "-o", str(tmp_path / "all")], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "all" / "postfix" / "web" / "sasl_passwd").is_file()
    assert not (tmp_path / "all" / "postfix" / "db").exists()
    assert (tmp_path / "all" / "ansible" / "group_vars" / "db.yml").is_file()
    assert "fleet group 'db'" in done.stderr and "vault_relay_password" in done.stderr
    assert "canary-Xq7" not in done.stdout + done.stderr
    # Asked for by name, the incomplete target is an error and nothing is written.
    done = subprocess.run([smtpconf, "render", str(source), "-o", str(tmp_path / "only"), "--only", "postfix"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "vault_relay_password" in done.stderr
    assert not (tmp_path / "only").exists()


@pytest.mark.parametrize("all_targets", [True, False])
def test_each_command_secret_runs_once_per_render(tmp_path: Path, all_targets: bool) -> None:
    # A command secret may be `pass show` or `gpg -d`: running it twice means two passphrase prompts.
    counter = tmp_path / "runs"
    command = f"echo x >> {counter}; printf shared-pass"
    path = tmp_path / "smtpconf.yaml"
    path.write_text(
        "version: 1\n"
        "relays:\n"
        f"  shared: {{host: smtp.example.com, username: u, password: {{command: {json.dumps(command)}}}}}\n"
        "fleet:\n"
        "  web: {relay: shared}\n"
        "  db: {relay: shared}\n", encoding="utf-8")
    config = lint_path(path).config
    assert config is not None
    out = render(config, ["postfix"], {"all_targets": all_targets})
    assert {f.path for f in out if f.path.endswith("sasl_passwd")} == {"postfix/web/sasl_passwd",
                                                                       "postfix/db/sasl_passwd"}
    assert counter.read_text().splitlines() == ["x"]


# -- OAuth2 relays (SPEC §7): a pipe(8) transport per relay running msmtp, and a refresher ----------

REFRESH_TOKEN = "1//refresh-CANARY-0a9f"
CLIENT_SECRET = "client-secret-CANARY-77"

OAUTH2 = """\
version: 1
relays:
  o365:
    provider: office365
    username: app@corp.example
    auth: oauth2
    oauth2:
      client_id: 9e5f94bc-e8a4-4e73-b8be-63364c29d753
      tenant: corp.example
      refresh_token: {file: o365.refresh}
      client_secret: {env: T_O365_SECRET}
  ses:
    host: email-smtp.eu-west-1.amazonaws.com
    port: 587
    security: starttls
    username: AKIAEXAMPLE
    password: {file: ses.secret}
fleet:
  web:
    hosts: [web1.example.com]
    relay: o365
    sender_relays:
      billing@example.com: ses
"""


@pytest.fixture
def oauth2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("T_O365_SECRET", CLIENT_SECRET)
    (tmp_path / "o365.refresh").write_text(REFRESH_TOKEN + "\n")
    return files(load(tmp_path, OAUTH2))


def test_oauth2_default_relay_goes_through_its_pipe_transport(oauth2: dict[str, str]) -> None:
    main = settings(oauth2["postfix/web/main.cf"])
    assert main["default_transport"] == "smtpconf_oauth2_o365"
    assert main["smtpconf_oauth2_o365_destination_recipient_limit"] == "1"
    # The password sender relay keeps Postfix's smtp client (and its own credential).
    assert main["sender_dependent_default_transport_maps"] == "hash:/etc/postfix/smtpconf/sender_transport"
    assert table(oauth2["postfix/web/sender_transport"]) == {"billing@example.com": "smtp"}
    assert table(oauth2["postfix/web/sasl_passwd"]) == {
        "[email-smtp.eu-west-1.amazonaws.com]:587": f"AKIAEXAMPLE:{SES_PASSWORD}",
        "billing@example.com": f"AKIAEXAMPLE:{SES_PASSWORD}"}
    assert main["smtp_tls_wrappermode"] == "no"
    [pipe] = [line for line in oauth2["postfix/web/master.cf"].splitlines() if line.startswith("smtpconf_oauth2_")]
    assert pipe == ("smtpconf_oauth2_o365 unix - n n - - pipe flags=q null_sender= user=smtpconf-oauth2 "
                    "argv=/usr/local/lib/smtpconf/smtpconf-oauth2 deliver /etc/postfix/smtpconf/msmtp-o365.conf "
                    "${sender} ${recipient}")


def test_oauth2_msmtp_settings_and_refresher_data(oauth2: dict[str, str]) -> None:
    msmtp = oauth2["postfix/web/msmtp-o365.conf"]
    for line in ("host smtp.office365.com", "port 587", "tls on", "tls_starttls on", "tls_certcheck on",
                 "tls_trust_file system", "auth xoauth2", "user app@corp.example",
                 "passwordeval /bin/cat /var/lib/smtpconf/oauth2/o365.access"):
        assert line + "\n" in msmtp, line
    relay = json.loads(oauth2["postfix/web/oauth2-o365.json"])
    assert relay == {
        "relay": "o365", "group": "web",
        "token_url": "https://login.microsoftonline.com/corp.example/oauth2/v2.0/token",
        "client_id": "9e5f94bc-e8a4-4e73-b8be-63364c29d753",
        "scope": relay["scope"],
        "refresh_token_file": "/var/lib/smtpconf/oauth2/o365.refresh",
        "client_secret_file": "/var/lib/smtpconf/oauth2/o365.client_secret",
        "access_token_file": "/var/lib/smtpconf/oauth2/o365.access",
        "access_group": "smtpconf-oauth2", "renew_before": 600}
    assert "https://outlook.office.com/SMTP.Send" in relay["scope"].split()
    assert "refresh /etc/postfix/smtpconf" in oauth2["postfix/web/smtpconf-oauth2.service"]
    assert "OnUnitActiveSec=5min" in oauth2["postfix/web/smtpconf-oauth2.timer"]
    assert "*/5 * * * * root /usr/local/lib/smtpconf/smtpconf-oauth2 refresh /etc/postfix/smtpconf\n" in \
        oauth2["postfix/web/smtpconf-oauth2.cron"]


def test_oauth2_secrets_reach_only_their_0600_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_O365_SECRET", CLIENT_SECRET)
    (tmp_path / "o365.refresh").write_text(REFRESH_TOKEN + "\n")
    out = {f.path: f for f in render(load(tmp_path, OAUTH2), ["postfix"], {})}
    secret_files = {"postfix/web/oauth2/o365.refresh": REFRESH_TOKEN, "postfix/web/oauth2/o365.client_secret": CLIENT_SECRET}
    for path, value in secret_files.items():
        assert (out[path].content.decode(), out[path].mode) == (value + "\n", 0o600)
    for path, rendered in out.items():
        if path not in secret_files:
            assert REFRESH_TOKEN.encode() not in rendered.content and CLIENT_SECRET.encode() not in rendered.content
    script = out["postfix/web/smtpconf-oauth2"]
    assert script.mode == 0o755
    assert script.content == (ROOT / "roles/smtp_relay/files/smtpconf-oauth2").read_bytes()


def test_oauth2_sender_relay_beside_a_password_default_relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_O365_SECRET", CLIENT_SECRET)
    (tmp_path / "o365.refresh").write_text(REFRESH_TOKEN + "\n")
    text = OAUTH2.replace("relay: o365", "relay: ses").replace("billing@example.com: ses", "'@corp.example': o365")
    out = files(load(tmp_path, text))
    main = settings(out["postfix/web/main.cf"])
    assert main["default_transport"] == "smtp"
    assert table(out["postfix/web/sender_transport"]) == {"@corp.example": "smtpconf_oauth2_o365"}
    assert "postfix/web/msmtp-o365.conf" in out


def test_password_only_group_keeps_smtp_and_writes_no_oauth2_file(mixed: dict[str, str]) -> None:
    assert settings(mixed["postfix/web/main.cf"])["default_transport"] == "smtp"
    assert not [p for p in mixed if "oauth2" in p or "msmtp-" in p]
    assert "pipe" not in mixed["postfix/web/master.cf"]


def test_oauth2_vault_refresh_token_points_at_the_ansible_target(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_O365_SECRET", CLIENT_SECRET)
    config = load(tmp_path, OAUTH2.replace("{file: o365.refresh}", "{vault: vault_o365_refresh}"))
    with pytest.raises(RenderError) as caught:
        files(config)
    assert "relay 'o365' oauth2 refresh_token (vault vault_o365_refresh)" in str(caught.value)
    assert "ansible target" in str(caught.value)
    notes: list[str] = []
    assert render(config, ["postfix"], {"all_targets": True}, notes) == []
    assert "fleet group 'web'" in notes[0] and "vault_o365_refresh" in notes[0]


def test_oauth2_relays_that_would_share_a_transport_are_refused(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_O365_SECRET", CLIENT_SECRET)
    (tmp_path / "o365.refresh").write_text(REFRESH_TOKEN + "\n")
    relay = ("    provider: office365\n    username: app@corp.example\n    auth: oauth2\n"
             "    oauth2: {client_id: c, refresh_token: {file: o365.refresh}}\n")
    text = ("version: 1\nrelays:\n  o-365:\n" + relay + "  o.365:\n" + relay
            + "fleet:\n  web:\n    relay: o-365\n    sender_relays: {a@example.com: o.365}\n")
    with pytest.raises(RenderError, match="'o-365' and 'o.365' would share one Postfix transport"):
        files(load(tmp_path, text))


def test_oauth2_script_is_stdlib_only() -> None:
    # -I -S: no site-packages, no user site; the host has no smtpconf and no third-party modules.
    done = subprocess.run([sys.executable, "-I", "-S", str(ROOT / "roles/smtp_relay/files/smtpconf-oauth2")],
                          capture_output=True, text=True)
    assert done.returncode == 64 and "refresh" in done.stderr and "deliver" in done.stderr


ROUTES = """\
version: 1
relays:
  a: {host: a.example.com, port: 587, security: starttls, username: ua, password: {env: T_A}}
  b: {host: b.example.com, port: 587, security: starttls, username: ub, password: {env: T_A}}
  c: {host: c.example.com, port: 465, security: tls, username: uc, password: {env: T_A}}
  d: {host: d.example.com, port: 465, security: tls, username: ud, password: {env: T_A}}
  p: {host: p.example.com, port: 587, security: starttls, username: up, password: {env: T_A}}
fleet:
  web:
    hosts: [web1.example.com]
    relay: [a, b]
    sender_relays: {billing@example.com: [c, d], "@example.com": p}
    recipient_relays: {partner.example: [p, a], "@Other.Example": c}
"""


@pytest.fixture
def routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("T_A", "pw")
    return files(load(tmp_path, ROUTES))


def test_relay_lists_become_postfix_destination_lists_in_order(routes: dict[str, str]) -> None:
    main = settings(routes["postfix/web/main.cf"])
    assert main["relayhost"] == "[a.example.com]:587, [b.example.com]:587"
    assert table(routes["postfix/web/sender_relay"]) == {
        "@example.com": "[p.example.com]:587", "billing@example.com": "[c.example.com]:465, [d.example.com]:465"}
    assert main["transport_maps"] == "hash:/etc/postfix/smtpconf/transport"
    # Recipient routes: the domain without '@', lower case, with its list's transport.
    assert table(routes["postfix/web/transport"]) == {
        "other.example": "smtpconf_route_smtps:[c.example.com]:465",
        "partner.example": "smtpconf_route:[p.example.com]:587, [a.example.com]:587"}


def test_every_relay_of_every_list_has_its_next_hop_credential(routes: dict[str, str]) -> None:
    sasl = table(routes["postfix/web/sasl_passwd"])
    assert sasl == {"[a.example.com]:587": "ua:pw", "[b.example.com]:587": "ub:pw", "[c.example.com]:465": "uc:pw",
                    "[d.example.com]:465": "ud:pw", "[p.example.com]:587": "up:pw",
                    "@example.com": "up:pw"}  # a sender key only for a sender with one relay
    policy = table(routes["postfix/web/tls_policy"])
    assert sorted(policy) == sorted(k for k in sasl if k.startswith("["))


def test_sender_lists_and_recipient_routes_get_transports_without_sender_keys(routes: dict[str, str]) -> None:
    main = settings(routes["postfix/web/main.cf"])
    assert main["smtp_sender_dependent_authentication"] == "yes"  # for @example.com's single relay
    assert main["sender_dependent_default_transport_maps"] == "hash:/etc/postfix/smtpconf/sender_transport"
    assert table(routes["postfix/web/sender_transport"]) == {"@example.com": "smtp",
                                                             "billing@example.com": "smtpconf_route_smtps"}
    master = [line for line in routes["postfix/web/master.cf"].splitlines() if not line.startswith("#")]
    assert master == [
        "smtpconf_route unix - - n - - smtp -o syslog_name=postfix/smtpconf_route -o smtp_tls_wrappermode=no "
        "-o smtp_sender_dependent_authentication=no",
        "smtpconf_route_smtps unix - - n - - smtp -o syslog_name=postfix/smtpconf_route_smtps "
        "-o smtp_tls_wrappermode=yes -o smtp_tls_security_level=verify -o smtp_sender_dependent_authentication=no"]


def test_a_group_without_routes_keeps_its_settings(mixed: dict[str, str]) -> None:
    main = settings(mixed["postfix/web/main.cf"])
    assert main["transport_maps"] == "" and mixed["postfix/web/transport"].splitlines()[1:] == []
    assert "smtpconf_route" not in mixed["postfix/web/master.cf"]


def test_oauth2_recipient_route_goes_through_its_pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_O365_SECRET", CLIENT_SECRET)
    (tmp_path / "o365.refresh").write_text(REFRESH_TOKEN + "\n")
    text = OAUTH2.replace("    relay: o365\n", "    relay: ses\n").replace(
        "      billing@example.com: ses\n", "      billing@example.com: ses\n    recipient_relays: {partner.example: o365}\n")
    out = files(load(tmp_path, text))
    assert table(out["postfix/web/transport"]) == {"partner.example": "smtpconf_oauth2_o365:[smtp.office365.com]:587"}
    assert settings(out["postfix/web/main.cf"])["smtpconf_oauth2_o365_destination_recipient_limit"] == "1"
    assert "smtpconf_oauth2_o365 unix - n n - - pipe" in out["postfix/web/master.cf"]
    assert "postfix/web/msmtp-o365.conf" in out


def test_a_list_with_an_unresolvable_secret_is_left_to_the_ansible_target(tmp_path: Path) -> None:
    source = tmp_path / "smtpconf.yaml"
    source.write_text(
        "version: 1\n"
        "relays:\n"
        "  here: {host: smtp.example.com, username: u, password: {env: SMTPCONF_TEST_HERE}}\n"
        "  vaulted: {host: smtp.example.org, username: v, password: {vault: vault_relay_password}}\n"
        "fleet:\n"
        "  web: {relay: [here, vaulted]}\n", encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "SMTPCONF_TEST_HERE": "canary-Xq7"}
    done = run_cli("render", str(source), "-o", str(tmp_path / "all"), env=env)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "all" / "postfix" / "web").exists()
    assert "fleet group 'web'" in done.stderr and "vault_relay_password" in done.stderr
    done = run_cli("render", str(source), "-o", str(tmp_path / "only"), "--only", "postfix", env=env)
    assert done.returncode == 2 and "vault_relay_password" in done.stderr
    assert "canary-Xq7" not in done.stdout + done.stderr

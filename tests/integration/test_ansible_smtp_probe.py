"""The role's ``smtp_probe`` module (pure standard library) against real aiosmtpd servers on
loopback, run by ansible (ad hoc, with the role's module_utils: the shared dialogue)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.gate import unavailable
from tests.support.live import ScriptedServer
from tests.support.smtpserver import LOOPBACK, Provider, Tarpit, TestCA, closed_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "roles" / "smtp_relay" / "library"
MODULE_UTILS = ROOT / "roles" / "smtp_relay" / "module_utils"
USERS = {"relayuser": "relaypass"}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


def _ansible() -> str:
    ansible = str(Path(sys.executable).parent / "ansible")  # ansible-core from this venv (test extra)
    if not os.access(ansible, os.X_OK):
        unavailable(f"ansible not found beside {sys.executable}: pip install -e '.[test]'")
    return ansible


def run_module(tmp_path: Path, **args: Any) -> dict[str, Any]:
    """The module as Ansible runs it on a host: shipped with the role's module_utils (the shared
    dialogue), which only Ansible puts beside it."""
    done = subprocess.run([_ansible(), "localhost", "-i", "localhost,", "-c", "local", "-M", str(LIBRARY),
                           "-e", f"ansible_python_interpreter={sys.executable}", "-m", "smtp_probe",
                           "-a", json.dumps({"timeout": 2, **args})],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_MODULE_UTILS": str(MODULE_UTILS)},
                          cwd=tmp_path)
    # Ad-hoc output: "localhost | SUCCESS => {...}" or "localhost | FAILED! => {...}"
    assert "=>" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.split("=>", 1)[1])
    result.setdefault("failed", "FAILED!" in done.stdout.split("=>", 1)[0])  # ad hoc shows it in the head
    return result


def test_ansible_runs_the_module_on_the_host(ca: TestCA, tmp_path: Path) -> None:
    """The role's own runs (test_ansible_preflight.py) get module_utils from the role directory."""
    with Provider("starttls", users=USERS, ssl_context=ca.issue([LOOPBACK])) as server:
        result = run_module(tmp_path, host=LOOPBACK, port=server.port, security="starttls",
                            ca_pem=ca.ca_pem.decode())
    assert not result.get("failed"), result
    assert result["changed"] is False and result["auth"] == ["LOGIN", "PLAIN"] and result["tls_version"]
    assert result["greeting"].startswith("220 ")


@pytest.mark.parametrize("case, rule", [
    ("good-tls", None), ("no-starttls", "starttls-not-offered"), ("wrong-name", "cert-hostname-mismatch"),
    ("expired", "cert-expired"), ("plain-on-tls", "tls-handshake-failed"), ("no-auth", "auth-not-offered"),
    ("tarpit", "probe-timeout"), ("closed", "probe-unreachable"),
])
def test_each_failure_names_its_rule(case: str, rule: str | None, ca: TestCA, tmp_path: Path) -> None:
    security = "tls" if case in ("good-tls", "expired", "plain-on-tls") else "starttls"
    if case == "closed":
        result = run_module(tmp_path, host=LOOPBACK, port=closed_port(), security=security)
    elif case == "tarpit":
        with Tarpit() as tarpit:
            result = run_module(tmp_path, host=LOOPBACK, port=tarpit.port, security=security)
    else:
        kwargs: dict[str, Any] = {
            "good-tls": {"mode": "tls", "users": USERS},
            "no-starttls": {"mode": "starttls", "users": USERS, "offer_starttls": False},
            "wrong-name": {"mode": "starttls", "users": USERS, "ssl_context": ca.issue(["other.test"])},
            "expired": {"mode": "tls", "users": USERS, "ssl_context": ca.issue([LOOPBACK], expired=True)},
            "plain-on-tls": {"mode": "plain", "users": USERS},
            "no-auth": {"mode": "starttls"},
        }[case]
        if kwargs["mode"] != "plain" and "ssl_context" not in kwargs and kwargs.get("offer_starttls", True):
            kwargs["ssl_context"] = ca.issue([LOOPBACK])
        with Provider(kwargs.pop("mode"), **kwargs) as server:
            result = run_module(tmp_path, host=LOOPBACK, port=server.port, security=security,
                                ca_pem=ca.ca_pem.decode())
    assert result.get("rule") == rule, result
    assert bool(result.get("failed")) == (rule is not None)


@pytest.mark.parametrize("greeting, replies, said", [
    ("554 5.7.1 go away", {}, "refuses service: 554 5.7.1 go away"),
    ("220 scripted.test ESMTP", {"EHLO": "502 5.5.2 no EHLO here"}, "refused EHLO: 502 5.5.2 no EHLO here"),
])
def test_a_refusal_is_probe_unreachable(greeting: str, replies: dict[str, str | None], said: str,
                                        tmp_path: Path) -> None:
    with ScriptedServer(greeting, replies) as server:
        result = run_module(tmp_path, host=LOOPBACK, port=server.port, security="starttls")
    assert result.get("rule") == "probe-unreachable" and said in result["msg"], result


def test_ehlo_on_ipv6_uses_the_ipv6_address_literal(tmp_path: Path) -> None:
    try:
        server = ScriptedServer(host="::1")
    except OSError:
        unavailable("no IPv6 loopback (::1) here")
    with server:
        result = run_module(tmp_path, host="::1", port=server.port, security="none", expect_auth=False)
    assert not result.get("failed"), result
    assert server.received[0] == "EHLO [IPv6:::1]", server.received


def test_a_bad_ca_pem_is_cert_untrusted_and_unused_without_tls(ca: TestCA, tmp_path: Path) -> None:
    with Provider("starttls", users=USERS, ssl_context=ca.issue([LOOPBACK])) as server:
        result = run_module(tmp_path, host=LOOPBACK, port=server.port, security="starttls", ca_pem="not a certificate")
    assert result.get("rule") == "cert-untrusted" and "ca_pem" in result["msg"], result
    with Provider("plain", users=USERS) as server:
        result = run_module(tmp_path, host=LOOPBACK, port=server.port, security="none", ca_pem="not a certificate")
    assert not result.get("failed"), result


def test_a_tls_server_on_a_starttls_port_is_named(ca: TestCA, tmp_path: Path) -> None:
    with Provider("tls", users=USERS, ssl_context=ca.issue([LOOPBACK])) as server:
        result = run_module(tmp_path, host=LOOPBACK, port=server.port, security="starttls",
                            ca_pem=ca.ca_pem.decode())
    assert result.get("rule") == "tls-handshake-failed" and "speaks implicit TLS" in result["msg"], result

"""``smtpconf check`` says what it verified (SPEC §10), against real aiosmtpd servers and a real nsd:
per endpoint the address, TLS version, certificate subject, issuer and days to expiry, the AUTH
mechanisms after TLS and the probe's time; per domain the SPF lookup count, the DMARC policy in
force and where it was found, the MTA-STS record. ``--quiet`` prints the findings only; json
carries the same observations (docs/check.md); the order is stable."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.live import smtpconf
from tests.support.nsd import NsdServer, zone_text
from tests.support.smtpserver import Provider, TestCA

pytestmark = pytest.mark.integration

ZONE = "rep.test"
USERS = {"relayuser": "relaypass"}
# A certificate subject is the server's text: it must not reach the terminal as control codes.
HOSTILE_CN = "evil\x1b[2J\nforged line"
POLICY = b"version: STSv1\nmode: enforce\nmx: zeta.rep.test\nmax_age: 86400\n"


class PolicySite:
    """https://mta-sts.rep.test/.well-known/mta-sts.txt on a loopback port (RFC 8461 §3.2)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                found = self.path == "/.well-known/mta-sts.txt"
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(POLICY) if found else 0))
                self.end_headers()
                if found:
                    self.wfile.write(POLICY)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Stand:
    def __init__(self, directory: Path, stack: contextlib.ExitStack) -> None:
        self.ca = TestCA(directory / "ca")
        hostile = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.ca.issue_cert(f"odd.{ZONE}", common_name=HOSTILE_CN).configure_cert(hostile)
        self.ports = {
            "zeta": stack.enter_context(Provider("starttls", hostname=f"zeta.{ZONE}", users=USERS,
                                                 ssl_context=self.ca.issue([f"zeta.{ZONE}"]))).port,
            "alpha": stack.enter_context(Provider("tls", hostname=f"alpha.{ZONE}", users=USERS,
                                                  ssl_context=self.ca.issue([f"alpha.{ZONE}"]))).port,
            "odd": stack.enter_context(Provider("tls", hostname=f"odd.{ZONE}", users=USERS,
                                                ssl_context=hostile)).port,
        }
        self.site = PolicySite(self.ca.issue([f"mta-sts.{ZONE}"]))
        stack.callback(self.site.close)
        records = [(name, "A", "127.0.0.1") for name in [*self.ports, "mta-sts"]]
        # 1 (include) + 2 (its includes) + 1 (mx) = 4 lookups.
        records += [("@", "TXT", f"v=spf1 mx include:_spf.{ZONE} -all"), ("@", "MX", f"10 zeta.{ZONE}."),
                    ("_spf", "TXT", f"v=spf1 ip4:127.0.0.1 a:zeta.{ZONE} a:alpha.{ZONE} -all"),
                    ("_dmarc", "TXT", "v=DMARC1; p=reject; rua=mailto:d@rep.test"),
                    ("_mta-sts", "TXT", "v=STSv1; id=20261201"),
                    ("_smtp._tls", "TXT", "v=TLSRPTv1; rua=mailto:tls@rep.test")]
        self.dns = stack.enter_context(NsdServer({ZONE: zone_text(ZONE, records), "test": zone_text("test")}))

    def config(self, path: Path, order: tuple[str, ...] = ("zeta", "alpha", "odd")) -> Path:
        security = {"zeta": "starttls", "alpha": "tls", "odd": "tls"}
        lines = ["version: 1", "relays:"]
        for name in order:
            lines += [f"  {name}:", f"    host: {name}.{ZONE}", f"    port: {self.ports[name]}",
                      f"    security: {security[name]}", f"    ca_file: {self.ca.ca_pem_path}",
                      "    username: relayuser", "    password: {env: RELAY_PASSWORD}"]
        lines += ["accounts:", f"  - email: me@{ZONE}", "    relay: zeta",
                  f"    host: zeta.{ZONE}", f"    port: {self.ports['zeta']}", "    security: starttls",
                  f"    ca_file: {self.ca.ca_pem_path}",
                  "domains:", f"  {ZONE}:", "    relays: [zeta]", "    dmarc_policy: quarantine"]
        path.write_text("\n".join(lines) + "\n")
        return path

    def check(self, config: Path, *args: str) -> Any:
        return smtpconf("check", str(config), "--nameserver", f"127.0.0.1:{self.dns.port}", "--timeout", "5",
                        "--https-port", str(self.site.port), "--ca-file", str(self.ca.ca_pem_path),
                        *args, env={"RELAY_PASSWORD": "relaypass"})


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stand]:
    with contextlib.ExitStack() as stack:
        yield Stand(tmp_path_factory.mktemp("report"), stack)


def test_text_lists_what_was_verified(stand: Stand, tmp_path: Path) -> None:
    done = stand.check(stand.config(tmp_path / "smtpconf.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    [zeta] = [line for line in lines if f"endpoint zeta.{ZONE}:" in line]
    assert re.search(rf"endpoint zeta\.{ZONE}:\d+ starttls \(relay 'zeta', account me@{ZONE}\): "
                     r"127\.0\.0\.1 \(DNS\), TLSv1\.[23], certificate OU=Testing cert #\S+,O=trustme [^,]+ issued by "
                     r"OU=Testing CA #\S+,O=trustme [^,]+, \d+ days to expiry \(\d{4}-\d\d-\d\d\), "
                     r"AUTH after TLS: (PLAIN LOGIN|LOGIN PLAIN), probe \d+\.\d\d s$", zeta), zeta
    [alpha] = [line for line in lines if f"endpoint alpha.{ZONE}:" in line]
    assert " tls (relay 'alpha'): 127.0.0.1 (DNS), TLSv1." in alpha and "AUTH after TLS: " in alpha, alpha
    [domain] = [line for line in lines if f"domain {ZONE}:" in line]
    assert domain.endswith(f"domain {ZONE}: SPF 4 of 10 DNS lookups, DMARC p=reject at _dmarc.{ZONE} "
                           f"(2 queries, organizational domain {ZONE}), MTA-STS id=20261201 (mode enforce)"), domain


def test_server_text_cannot_forge_lines(stand: Stand, tmp_path: Path) -> None:
    done = stand.check(stand.config(tmp_path / "smtpconf.yaml"))
    assert "\x1b" not in done.stdout and "\nforged line" not in done.stdout, done.stdout
    [odd] = [line for line in done.stdout.splitlines() if f"endpoint odd.{ZONE}:" in line]
    assert "CN=evil\\x1b[2J\\nforged line" in odd, odd


def test_quiet_prints_findings_only(stand: Stand, tmp_path: Path) -> None:
    config = stand.config(tmp_path / "smtpconf.yaml")
    assert stand.check(config, "--quiet").stdout == ""
    # A finding is still printed: a domain without DKIM selector key.
    config.write_text(config.read_text() + "    dkim_selectors: [nokey]\n")
    done = stand.check(config, "-q")
    assert done.returncode == 1
    assert [line.split(" [", 1)[1].split("]")[0] for line in done.stdout.splitlines()] == ["dkim-missing"], done.stdout


def test_order_is_stable(stand: Stand, tmp_path: Path) -> None:
    """Endpoints by host, port and security, domains by name, whatever the file's order or the order
    the probes finish in: two runs differ only in the measured times."""
    first = stand.check(stand.config(tmp_path / "a.yaml")).stdout
    second = stand.check(stand.config(tmp_path / "a.yaml", order=("odd", "alpha", "zeta"))).stdout

    def shape(text: str) -> list[str]:
        return [re.sub(r"probe \d+\.\d\d s", "probe T s", line.split(": ", 1)[1]) for line in text.splitlines()]

    assert shape(first) == shape(second)
    hosts = [line.split("endpoint ", 1)[1].split(":", 1)[0] for line in first.splitlines() if "endpoint " in line]
    assert hosts == sorted(hosts) == [f"alpha.{ZONE}", f"odd.{ZONE}", f"zeta.{ZONE}"]


def test_json_carries_the_observations(stand: Stand, tmp_path: Path) -> None:
    config = stand.config(tmp_path / "smtpconf.yaml")
    report = json.loads(stand.check(config, "--format", "json").stdout)
    [seen] = report["observations"]
    assert seen["file"] == str(config)
    zeta = next(e for e in seen["endpoints"] if e["host"] == f"zeta.{ZONE}")
    assert zeta["port"] == stand.ports["zeta"] and zeta["security"] == "starttls"
    assert zeta["uses"] == ["relay 'zeta'", f"account me@{ZONE}"]
    assert zeta["addresses"] == ["127.0.0.1"] and zeta["address"] == "127.0.0.1" and zeta["resolved_by"] == "dns"
    assert zeta["probed"] is True and zeta["tls_version"] in ("TLSv1.2", "TLSv1.3")
    cert = zeta["certificate"]
    assert cert["subject"].startswith("OU=Testing cert") and cert["issuer"].startswith("OU=Testing CA")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", cert["not_after"]) and cert["days_left"] > 30
    assert sorted(zeta["auth_mechanisms"]) == ["LOGIN", "PLAIN"] and 0 < zeta["seconds"] < 5
    [domain] = seen["domains"]
    assert domain == {
        "domain": ZONE,
        "spf": {"lookups": 4, "limit": 10, "over_limit_by": None},
        "dmarc": {"policy": "reject", "tag": "p", "published": "reject", "testing": False,
                  "found_at": f"_dmarc.{ZONE}", "organizational_domain": ZONE, "queries": 2},
        "mta_sts": {"mode": "enforce", "id": "20261201", "unread": None},
    }


def test_json_names_the_include_that_takes_spf_over_10(tmp_path: Path) -> None:
    records = [("@", "TXT", f"v=spf1 ip4:127.0.0.1 a:x.{ZONE} include:big.{ZONE} a:y.{ZONE} -all"),
               ("_dmarc", "TXT", "v=DMARC1; p=reject"), ("x", "A", "127.0.0.1"), ("y", "A", "127.0.0.1")]
    records += [("big", "TXT", "v=spf1 " + " ".join(f"a:x.{ZONE}" for _ in range(9)) + " -all")]
    config = tmp_path / "smtpconf.yaml"
    config.write_text(f"version: 1\ndomains:\n  {ZONE}: {{}}\n")
    with NsdServer({ZONE: zone_text(ZONE, records), "test": zone_text("test")}) as dns:
        done = smtpconf("check", str(config), "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", "3",
                        "--no-probe", "--format", "json")
    report = json.loads(done.stdout)
    assert report["observations"][0]["domains"][0]["spf"] == {"lookups": 12, "limit": 10,
                                                               "over_limit_by": f"include:big.{ZONE}"}
    [message] = [f["message"] for f in report["findings"] if f["rule"] == "spf-too-many-lookups"]
    assert f"(limit 10; include:big.{ZONE} takes it over)" in message


def test_the_mta_sts_mode_is_read_from_the_served_policy_only(stand: Stand, tmp_path: Path) -> None:
    config = stand.config(tmp_path / "smtpconf.yaml")
    done = stand.check(config, "--format", "json", "--no-probe")
    [domain] = json.loads(done.stdout)["observations"][0]["domains"]
    assert domain["mta_sts"] == {"mode": None, "id": "20261201", "unread": "not fetched (--no-probe)"}
    # A policy that is not served is said so, in the report (what is wrong with it is the site check's).
    done = smtpconf("check", str(config), "--nameserver", f"127.0.0.1:{stand.dns.port}", "--timeout", "5",
                    "--https-port", "9", "--ca-file", str(stand.ca.ca_pem_path), env={"RELAY_PASSWORD": "x"})
    [line] = [line for line in done.stdout.splitlines() if f"domain {ZONE}:" in line]
    assert (f"MTA-STS id=20261201 (policy not read: https://mta-sts.{ZONE}/.well-known/mta-sts.txt: cannot "
            "connect to 127.0.0.1 port 9") in line, line

"""``smtpconf check`` closes the loop on the ``site`` target (SPEC §9): real nsd serves the test
zone (so ``autoconfig.example.com`` and friends are 127.0.0.1), real nginx serves the rendered
site, and check fetches it over HTTPS trusting ``--ca-file``. What was published is clean; a file
changed after publishing (a new port) is ``discovery-drift`` naming the field; a stopped nginx is
``discovery-unreachable``; a policy that does not cover the MX records is ``mta-sts-invalid``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from smtpconf.cli import main
from smtpconf.render.mta_sts import policy_id
from tests.support.live import run_check, smtpconf
from tests.support.nginx import NginxServer
from tests.support.nsd import NsdServer, zone_text
from tests.support.smtpserver import TestCA

pytestmark = pytest.mark.integration

DOMAIN = "example.com"
NAMES = [f"autoconfig.{DOMAIN}", f"autodiscover.{DOMAIN}", f"mta-sts.{DOMAIN}", DOMAIN]
DISCOVERY = ("discovery-drift", "discovery-unreachable", "mta-sts-invalid")


def config_text(root: Path, cert: Path, key: Path, port: int = 587, mx: str = "mx1.example.com") -> str:
    # Every host is in the test zone (nsd answers nothing else): no probe leaves the loopback.
    return f"""\
version: 1
accounts:
  - {{email: xiaoming@example.com, name: 小明, host: smtp.example.com, port: {port}, security: starttls,
     password: {{env: PW}}, incoming: {{host: imap.example.com, protocol: imap}}}}
  - {{email: ops@example.com, host: smtp.example.com, port: {port}, security: starttls, password: {{env: PW}},
     incoming: {{host: imap.example.com, protocol: imap}}}}
domains:
  {DOMAIN}:
    site: {{root: "{root}", certificate: "{cert}", key: "{key}"}}
    mta_sts: {{mode: enforce, mx: [{mx}], max_age: 86400}}
"""


class Stand:
    """The published site: a smtpconf file, its rendered site under nginx, and the zone."""

    def __init__(self, tmp_path: Path, ca: TestCA) -> None:
        self.tmp_path, self.ca = tmp_path, ca
        self.cert, self.key = ca.cert_pem_paths(NAMES)
        self.published = tmp_path / "published"  # what the web server holds (a copy, as deployed)
        self.config = tmp_path / "smtpconf.yaml"

    def write(self, **changes: Any) -> None:
        self.config.write_text(config_text(self.published, self.cert, self.key, **changes), encoding="utf-8")

    def publish(self) -> Path:
        out = self.tmp_path / "out"
        shutil.rmtree(out, ignore_errors=True)
        assert main(["render", str(self.config), "-o", str(out), "--only", "site"]) == 0
        shutil.rmtree(self.published, ignore_errors=True)
        shutil.copytree(out / "site" / "www" / DOMAIN, self.published)
        return out / "site" / "nginx" / f"{DOMAIN}.conf"


def zone(policy: bytes) -> str:
    records = [(name.removesuffix(f".{DOMAIN}") if name != DOMAIN else "@", "A", "127.0.0.1") for name in NAMES]
    records += [("smtp", "A", "127.0.0.1"), ("imap", "A", "127.0.0.1"), ("mx1", "A", "127.0.0.1"),
                ("@", "MX", "10 mx1.example.com."), ("@", "MX", "20 mx2.example.com."), ("mx2", "A", "127.0.0.1"),
                ("_mta-sts", "TXT", f"v=STSv1; id={policy_id(policy.decode())}")]
    return zone_text(DOMAIN, records)


@pytest.fixture
def stand(tmp_path: Path) -> Iterator[Stand]:
    with TestCA(tmp_path / "ca") as ca:
        yield Stand(tmp_path, ca)


def discovery_findings(stand: Stand, dns: NsdServer, web: NginxServer) -> list[dict[str, Any]]:
    run = run_check(stand.config, "--nameserver", f"127.0.0.1:{dns.port}", "--ca-file", str(stand.ca.ca_pem_path),
                    "--https-port", str(web.https_port), "--timeout", "5")
    return [f for f in run.findings if f["rule"] in DISCOVERY]


def site_seen(stand: Stand, dns: NsdServer, web: NginxServer) -> tuple[list[dict[str, Any]], str]:
    """What check reports it verified of the site: the JSON ``sites`` and the text line."""
    args = [str(stand.config), "--nameserver", f"127.0.0.1:{dns.port}", "--ca-file", str(stand.ca.ca_pem_path),
            "--https-port", str(web.https_port), "--timeout", "5"]
    sites = json.loads(smtpconf("check", *args, "--format", "json").stdout)["observations"][0]["sites"]
    lines = [line for line in smtpconf("check", *args).stdout.splitlines() if ": site " in line]
    assert len(lines) == 1, lines
    return sites, lines[0]


def test_the_urls_fetched_are_reported_as_verified(stand: Stand) -> None:
    """A check that passes says which URLs it fetched; one that drifted says how many differ."""
    stand.write(mx="'*.example.com'")
    conf = stand.publish()
    with NsdServer({DOMAIN: zone((stand.published / "mta-sts.txt").read_bytes())}) as dns:
        with NginxServer(conf, stand.ca.ca_pem_path) as web:
            sites, line = site_seen(stand, dns, web)
            assert [s["domain"] for s in sites] == [DOMAIN]
            urls = sites[0]["urls"]
            assert {"method": "GET", "url": "https://autoconfig.example.com/mail/config-v1.1.xml",
                    "outcome": "same"} in urls
            assert {"method": "POST", "url": "https://autodiscover.example.com/autodiscover/autodiscover.xml",
                    "outcome": "same"} in urls
            assert {u["outcome"] for u in urls} == {"same"}
            assert line.endswith(f"site {DOMAIN}: {len(urls)} URLs fetched over HTTPS, all serve what the file "
                                 "renders"), line

            stand.write(mx="'*.example.com'", port=2587)  # the client files change, the policy does not
            sites, line = site_seen(stand, dns, web)
            outcomes = {u["url"]: u["outcome"] for u in sites[0]["urls"]}
            assert outcomes["https://autoconfig.example.com/mail/config-v1.1.xml"] == "drift"
            assert outcomes["https://mta-sts.example.com/.well-known/mta-sts.txt"] == "same"
            drift = sum(o == "drift" for o in outcomes.values())
            assert f"{len(outcomes) - drift} serve what the file renders, {drift} differ (discovery-drift)" in line


def test_published_site_checks_clean_then_drift_then_unreachable(stand: Stand) -> None:
    stand.write(mx="'*.example.com'")
    conf = stand.publish()
    with NsdServer({DOMAIN: zone((stand.published / "mta-sts.txt").read_bytes())}) as dns:
        with NginxServer(conf, stand.ca.ca_pem_path) as web:
            assert discovery_findings(stand, dns, web) == []

            # The file moves to port 2587 after publishing: what is served is now out of date.
            stand.write(mx="'*.example.com'", port=2587)
            found = discovery_findings(stand, dns, web)
            rules = {f["rule"] for f in found}
            assert rules == {"discovery-drift"}, found
            messages = "\n".join(f["message"] for f in found)
            assert "https://autoconfig.example.com/mail/config-v1.1.xml: outgoingServer smtp port is '587', " \
                   "the file renders '2587'" in messages
            assert "https://example.com/.well-known/autoconfig/mail/config-v1.1.xml" in messages
            assert "https://autodiscover.example.com/autodiscover/autodiscover.xml: SMTP Port is '587', " \
                   "the file renders '2587'" in messages
            assert "OutgoingMailServerPortNumber is '587', the file renders '2587'" in messages
            assert all(f["line"] == 9 for f in found)  # at the domain's site: line

        # nginx stopped: every URL is unreachable, with the URL and why.
        found = discovery_findings(stand, dns, web)
        assert found and {f["rule"] for f in found} == {"discovery-unreachable"}
        assert any(f["message"].startswith("https://autoconfig.example.com/mail/config-v1.1.xml: cannot connect "
                                           "to 127.0.0.1") for f in found)


def test_policy_not_covering_the_mx_records_is_invalid(stand: Stand) -> None:
    stand.write(mx="mx1.example.com")  # the zone's MX records are mx1 and mx2
    conf = stand.publish()
    with NsdServer({DOMAIN: zone((stand.published / "mta-sts.txt").read_bytes())}) as dns, \
            NginxServer(conf, stand.ca.ca_pem_path) as web:
        found = discovery_findings(stand, dns, web)
        assert [f["rule"] for f in found] == ["mta-sts-invalid"], found
        assert "do not cover the MX host(s) mx2.example.com" in found[0]["message"]

        # A served policy that does not parse.
        (stand.published / "mta-sts.txt").write_text("version: STSv1\nmode: sometimes\n")
        found = discovery_findings(stand, dns, web)
        assert "mta-sts-invalid" in {f["rule"] for f in found}
        assert any("does not parse as an MTA-STS policy: mode must be one of" in f["message"] for f in found)


def test_untrusted_certificate_is_unreachable(stand: Stand) -> None:
    stand.write(mx="'*.example.com'")
    conf = stand.publish()
    with NsdServer({DOMAIN: zone((stand.published / "mta-sts.txt").read_bytes())}) as dns, \
            NginxServer(conf, stand.ca.ca_pem_path) as web:
        run = run_check(stand.config, "--nameserver", f"127.0.0.1:{dns.port}", "--https-port", str(web.https_port),
                        "--timeout", "5")  # no --ca-file: the test CA is not trusted
        found = [f for f in run.findings if f["rule"] in DISCOVERY]
        assert found and {f["rule"] for f in found} == {"discovery-unreachable"}
        assert all("certificate" in f["message"] for f in found), found

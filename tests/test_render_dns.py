"""The dns target: zone-file lines, loaded into a real zone with dnspython and checked record by
record."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from tests.support.cli_clients import IDN_DOMAIN, IDN_IMAP, IDN_SMTP, assert_no_secret_values  # noqa: F401
from tests.support.cli_clients import clients_out  # noqa: F401  (fixture)
from tests.support.render import render_ok, tree, write_config


def load_zone(path: Path, origin: str) -> dns.zone.Zone:
    """The rendered lines inside a minimal zone (SOA and NS prepended), parsed by dnspython."""
    head = (f"$ORIGIN {origin}.\n$TTL 300\n"
            f"@ IN SOA ns1.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n@ IN NS ns1.{origin}.\n")
    return dns.zone.from_text(head + path.read_text(encoding="utf-8"), origin=origin, relativize=False,
                              check_origin=True)


def srv(zone: dns.zone.Zone, owner: str) -> list[tuple[int, int, int, str]]:
    rdataset = zone.get_rdataset(dns.name.from_text(owner), dns.rdatatype.SRV)
    if rdataset is None:
        return []
    return sorted((r.priority, r.weight, r.port, r.target.to_text()) for r in rdataset)


def txt(zone: dns.zone.Zone, owner: str) -> list[str]:
    rdataset = zone.get_rdataset(dns.name.from_text(owner), dns.rdatatype.TXT)
    return [b"".join(r.strings).decode() for r in rdataset] if rdataset is not None else []


def test_one_zone_per_domain_but_not_for_providers_own_domains(clients_out: Path) -> None:
    assert sorted(tree(clients_out / "dns")) == sorted([
        "example.com.zone", "lab.example.test.zone", "office.example.zone", f"{IDN_DOMAIN}.zone"])
    # alerts@163.com is a mailbox at the provider: 163.com's DNS is not ours to suggest.


def test_srv_records_follow_starttls_and_implicit_tls(clients_out: Path) -> None:
    zone = load_zone(clients_out / "dns" / "example.com.zone", "example.com")
    # Two accounts with different STARTTLS servers: the second is a fallback (next priority).
    assert srv(zone, "_submission._tcp.example.com.") == [(10, 1, 587, "smtp.gmail.com."),
                                                          (11, 1, 587, "smtp.example.com.")]
    assert srv(zone, "_submissions._tcp.example.com.") == []
    assert srv(zone, "_imaps._tcp.example.com.") == [(0, 1, 993, "imap.gmail.com.")]
    lab = load_zone(clients_out / "dns" / "lab.example.test.zone", "lab.example.test")
    assert srv(lab, "_submission._tcp.lab.example.test.") == [(10, 1, 2587, "smtp.lab.example.test.")]
    assert srv(lab, "_pop3s._tcp.lab.example.test.") == [(0, 1, 995, "pop.lab.example.test.")]


def test_idn_domain_is_punycode(clients_out: Path) -> None:
    zone = load_zone(clients_out / "dns" / f"{IDN_DOMAIN}.zone", IDN_DOMAIN)
    assert srv(zone, f"_submissions._tcp.{IDN_DOMAIN}.") == [(0, 1, 465, f"{IDN_SMTP}.")]
    assert srv(zone, f"_imaps._tcp.{IDN_DOMAIN}.") == [(0, 1, 993, f"{IDN_IMAP}.")]
    assert txt(zone, f"{IDN_DOMAIN}.") == [f"v=spf1 a:{IDN_SMTP} ~all"]


def test_spf_and_dmarc(clients_out: Path) -> None:
    zone = load_zone(clients_out / "dns" / "example.com.zone", "example.com")
    assert txt(zone, "example.com.") == ["v=spf1 include:_spf.google.com a:smtp.example.com ~all"]
    assert txt(zone, "_dmarc.example.com.") == ["v=DMARC1; p=quarantine"]  # dmarc_policy from the file
    office = load_zone(clients_out / "dns" / "office.example.zone", "office.example")
    assert txt(office, "_dmarc.office.example.") == ["v=DMARC1; p=none"]  # the default


def test_known_provider_includes_and_fallbacks(tmp_path: Path) -> None:
    relays = {"gmail": "gmail", "o365": "office365", "outlook": "outlook", "ses": "ses", "sendgrid": "sendgrid",
              "mailgun": "mailgun", "zoho": "zoho", "n163": "163", "qq": "qq", "fastmail": "fastmail"}
    lines = ["version: 1", "relays:"]
    for name, provider in relays.items():
        # Microsoft takes no passwords for SMTP (basic-auth-retired): those log in with OAuth2.
        credential = ("    oauth2: {client_id: c, refresh_token: {env: R}}" if provider in ("outlook", "office365")
                      else "    password: {env: P}")
        lines += [f"  {name}:", f"    provider: \"{provider}\"", "    username: u", credential]
    lines += ["  byhost: {host: email-smtp.ap-south-1.amazonaws.com, port: 587, username: u, password: {env: P}}",
              "  lab: {host: smtp.lab.example.test, port: 587, username: u, password: {env: P}}",
              "  ip: {host: 192.0.2.7, port: 587, username: u, password: {env: P}}",
              "domains:", "  corp.example:",
              f"    relays: [{', '.join([*relays, 'byhost', 'lab', 'ip'])}]", "    dmarc_policy: reject"]
    config = write_config(tmp_path, "\n".join(lines) + "\n")
    render_ok(config, tmp_path / "out", "dns")
    zone = load_zone(tmp_path / "out" / "dns" / "corp.example.zone", "corp.example")
    assert txt(zone, "corp.example.") == [
        "v=spf1 include:_spf.google.com include:spf.protection.outlook.com include:amazonses.com "
        "include:sendgrid.net include:mailgun.org include:zoho.com include:spf.163.com include:spf.mail.qq.com "
        "include:spf.messagingengine.com a:smtp.lab.example.test ip4:192.0.2.7 ~all"]
    assert txt(zone, "_dmarc.corp.example.") == ["v=DMARC1; p=reject"]
    assert zone.get_rdataset(dns.name.from_text("_submission._tcp.corp.example."), "SRV") is None  # no accounts


def test_an_ip_address_gets_no_srv_record(tmp_path: Path) -> None:
    config = write_config(tmp_path, """\
        version: 1
        accounts:
          - {email: a@ip.example, host: 127.0.0.1, port: 465, security: tls, password: {env: P}}
        """)
    render_ok(config, tmp_path / "out", "dns")
    path = tmp_path / "out" / "dns" / "ip.example.zone"
    zone = load_zone(path, "ip.example")
    assert srv(zone, "_submissions._tcp.ip.example.") == []
    assert "127.0.0.1:465" in path.read_text(encoding="utf-8")
    assert txt(zone, "ip.example.") == ["v=spf1 ip4:127.0.0.1 ~all"]


def test_zone_files_are_public_and_hold_no_secret_value(clients_out: Path) -> None:
    assert {mode for _, mode in tree(clients_out / "dns").values()} == {0o644}
    assert_no_secret_values(clients_out / "dns")


def test_srv_records_are_what_the_live_check_expects(clients_out: Path) -> None:
    # `smtpconf check` (srv-mismatch) and this target must agree on what a domain publishes.
    from smtpconf.lint import lint_path
    from smtpconf.probe.dns_checks import expected_srv

    config = lint_path(clients_out.parent / "smtpconf.yaml").config
    assert config is not None
    for zone_file in (clients_out / "dns").iterdir():
        domain = zone_file.name.removesuffix(".zone")
        zone = load_zone(zone_file, domain)
        expected = expected_srv(a for a in config.accounts if a.domain_ascii.lower() == domain)
        published = {service: {(target.rstrip("."), port) for _, _, port, target in srv(zone, f"{service}.{domain}.")}
                     for service in expected}
        assert published == expected, domain


def test_expected_srv_services_is_exactly_what_the_zone_publishes(tmp_path: Path) -> None:
    # One rule for the zone and for `smtpconf check` (srv-mismatch): an IP-literal server has no
    # SRV record in the zone, so the live check must not expect one either.
    from smtpconf.lint import lint_path
    from smtpconf.render.dns import expected_srv_services

    config = write_config(tmp_path, """\
        version: 1
        accounts:
          - {email: a@mixed.example, host: 192.0.2.25, port: 465, security: tls, password: {env: P},
             incoming: {host: imap.mixed.example, port: 993, security: tls, protocol: imap}}
          - {email: b@mixed.example, host: Smtp.Mixed.Example., port: 587, security: starttls, password: {env: P},
             incoming: {host: '2001:db8::110', port: 110, security: starttls, protocol: pop3}}
          - {email: c@mixed.example, host: smtp.mixed.example, port: 2525, security: none}
        """)
    render_ok(config, tmp_path / "out", "dns")
    zone = load_zone(tmp_path / "out" / "dns" / "mixed.example.zone", "mixed.example")
    lint = lint_path(config)
    assert lint.config is not None
    expected = expected_srv_services(lint.config.accounts)
    assert expected == {
        "_imaps._tcp": {("imap.mixed.example", 993)},
        "_submission._tcp": {("smtp.mixed.example", 587), ("smtp.mixed.example", 2525)},
    }
    services = ("_submission._tcp", "_submissions._tcp", "_imap._tcp", "_imaps._tcp", "_pop3._tcp", "_pop3s._tcp")
    published = {service: {(target.rstrip("."), port) for _, _, port, target in srv(zone, f"{service}.mixed.example.")}
                 for service in services}
    assert {service: hosts for service, hosts in published.items() if hosts} == expected

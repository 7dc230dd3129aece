"""Prove the test SMTP servers in tests/support/smtpserver.py against real loopback sockets.

Clients are only Python's smtplib/ssl/socket, so these tests check the servers, not our code.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.smtp_fixtures import *  # noqa: F403  (fixtures: test_ca, *_provider, ...)
from tests.support.smtp_fixtures import PASSWORD, PROVIDER_CERT_NAMES, PROVIDER_HOSTNAME, USER
from tests.support.smtpserver import (
    AuthAttempt,
    DelayedGreetingFarm,
    Provider,
    Received,
    Tarpit,
    TestCA,
    closed_port,
    wait_for_port_closed,
)

pytestmark = pytest.mark.integration

TIMEOUT = 5.0  # client socket timeout: a hung server fails the test instead of hanging it
MESSAGE = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nhello relay\r\n"


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every server started in a test must be stopped (and its thread joined) by its end."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"threads left running: {leaked}"


def ehlo_keywords(smtp: smtplib.SMTP) -> set[str]:
    code, _ = smtp.ehlo("client.test")
    assert code == 250
    return set(smtp.esmtp_features)


def auth_with(smtp: smtplib.SMTP, mechanism: str, user: str, password: str) -> None:
    """One AUTH attempt with exactly one mechanism (smtplib.login would try PLAIN then LOGIN)."""
    smtp.user, smtp.password = user, password
    method = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
    smtp.auth(mechanism, method)


def recv_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    return data


# --------------------------------------------------------------------------------------------
# STARTTLS provider
# --------------------------------------------------------------------------------------------


def test_starttls_provider_accepts_mail_after_starttls_and_auth(
    starttls_provider: Provider, client_tls_context: ssl.SSLContext
) -> None:
    p = starttls_provider
    with smtplib.SMTP(p.host, p.port, timeout=TIMEOUT) as smtp:
        before_tls = ehlo_keywords(smtp)
        assert "starttls" in before_tls
        assert "auth" not in before_tls  # aiosmtpd auth_require_tls: AUTH only after TLS
        # smtplib verifies the certificate against the CA and the name it connected to.
        code, _ = smtp.starttls(context=client_tls_context)
        assert code == 220
        after_tls = ehlo_keywords(smtp)
        assert "starttls" not in after_tls
        assert set(smtp.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        auth_with(smtp, "LOGIN", USER, PASSWORD)
        smtp.sendmail("a@example.test", ["b@example.test", "c@example.test"], MESSAGE)

    [msg] = p.wait_for_messages(1, timeout=TIMEOUT)
    assert msg == Received(
        mail_from="a@example.test",
        rcpt_tos=["b@example.test", "c@example.test"],
        data=MESSAGE,
        auth_user=USER,
        tls=True,
    )
    assert p.auth_attempts == [AuthAttempt(USER, True)]


def test_starttls_provider_presents_its_hostname_and_a_verifiable_cert(
    starttls_provider: Provider, client_tls_context: ssl.SSLContext
) -> None:
    p = starttls_provider
    with smtplib.SMTP(timeout=TIMEOUT) as smtp:
        code, banner = smtp.connect(p.host, p.port)
        assert code == 220 and banner.startswith(PROVIDER_HOSTNAME.encode())
        smtp.ehlo("client.test")
        # Verify against the provider's *name* (not the address) as a real client would.
        smtp._host = PROVIDER_HOSTNAME  # smtplib passes _host as server_hostname to wrap_socket
        smtp.starttls(context=client_tls_context)
        assert isinstance(smtp.sock, ssl.SSLSocket)
        assert smtp.sock.getpeercert() is not None


def test_starttls_provider_refuses_wrong_password(
    starttls_provider: Provider, client_tls_context: ssl.SSLContext
) -> None:
    p = starttls_provider
    with smtplib.SMTP(p.host, p.port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=client_tls_context)
        smtp.ehlo("client.test")
        for mechanism in ("PLAIN", "LOGIN"):
            with pytest.raises(smtplib.SMTPAuthenticationError) as err:
                auth_with(smtp, mechanism, USER, "wrong")
            assert err.value.smtp_code == 535
            assert err.value.smtp_error == b"5.7.8 Authentication credentials invalid"
        # Not authenticated, so MAIL is refused: AUTH is required when users are configured.
        code, _ = smtp.mail("a@example.test")
        assert code == 530
    assert p.auth_attempts == [(USER, False), (USER, False)]
    assert len(p.messages) == 0


def test_starttls_is_enforced(starttls_provider: Provider) -> None:
    p = starttls_provider
    with smtplib.SMTP(p.host, p.port, timeout=TIMEOUT) as smtp:
        smtp.ehlo("client.test")
        code, text = smtp.mail("a@example.test")
        assert (code, text) == (530, b"Must issue a STARTTLS command first")
        code, _ = smtp.docmd("AUTH", "PLAIN")
        assert code == 530
    assert len(p.auth_attempts) == 0


# --------------------------------------------------------------------------------------------
# Implicit TLS provider
# --------------------------------------------------------------------------------------------


def test_tls_provider_accepts_mail_over_implicit_tls(
    tls_provider: Provider, client_tls_context: ssl.SSLContext
) -> None:
    p = tls_provider
    with smtplib.SMTP_SSL(p.host, p.port, timeout=TIMEOUT, context=client_tls_context) as smtp:
        keywords = ehlo_keywords(smtp)
        assert "starttls" not in keywords  # already TLS
        assert set(smtp.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        smtp.login(USER, PASSWORD)
        smtp.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    [msg] = p.wait_for_messages(1, timeout=TIMEOUT)
    assert msg.auth_user == USER and msg.tls is True and msg.data == MESSAGE
    assert p.auth_attempts == [(USER, True)]


def test_tls_provider_refuses_wrong_password(
    tls_provider: Provider, client_tls_context: ssl.SSLContext
) -> None:
    p = tls_provider
    with smtplib.SMTP_SSL(p.host, p.port, timeout=TIMEOUT, context=client_tls_context) as smtp:
        smtp.ehlo("client.test")
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            auth_with(smtp, "PLAIN", "nobody", PASSWORD)
        assert err.value.smtp_code == 535
        code, _ = smtp.mail("a@example.test")
        assert code == 530
    assert p.auth_attempts == [("nobody", False)]


# --------------------------------------------------------------------------------------------
# Plaintext and misbehaving providers
# --------------------------------------------------------------------------------------------


def test_plain_provider_speaks_no_tls_and_takes_auth_in_the_clear(plain_provider: Provider) -> None:
    p = plain_provider
    with smtplib.SMTP(p.host, p.port, timeout=TIMEOUT) as smtp:
        keywords = ehlo_keywords(smtp)
        assert "starttls" not in keywords and "auth" in keywords
        smtp.login(USER, PASSWORD)
        smtp.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    [msg] = p.wait_for_messages(1, timeout=TIMEOUT)
    assert msg.tls is False and msg.auth_user == USER


def test_plain_provider_where_tls_is_expected_fails_the_handshake(
    plain_provider: Provider, client_tls_context: ssl.SSLContext
) -> None:
    p = plain_provider
    with pytest.raises(ssl.SSLError) as err:
        smtplib.SMTP_SSL(p.host, p.port, timeout=TIMEOUT, context=client_tls_context)
    # A protocol failure, not a certificate problem ("tls-handshake-failed", not "cert-*").
    assert not isinstance(err.value, ssl.SSLCertVerificationError)


def test_server_that_never_offers_starttls(test_ca: TestCA) -> None:
    with Provider("starttls", offer_starttls=False, users={USER: PASSWORD}) as p:
        with smtplib.SMTP(p.host, p.port, timeout=TIMEOUT) as smtp:
            keywords = ehlo_keywords(smtp)
            assert "starttls" not in keywords
            assert "auth" in keywords  # and it asks for credentials in the clear
            with pytest.raises(smtplib.SMTPNotSupportedError):
                smtp.starttls(context=test_ca.client_context())


def test_server_that_offers_auth_before_tls(test_ca: TestCA) -> None:
    with Provider(
        "starttls", auth_before_tls=True, users={USER: PASSWORD}, ca=test_ca, hostname=PROVIDER_HOSTNAME
    ) as p:
        with smtplib.SMTP(p.host, p.port, timeout=TIMEOUT) as smtp:
            keywords = ehlo_keywords(smtp)
            assert {"starttls", "auth"} <= keywords
            smtp.login(USER, PASSWORD)  # accepted before TLS: exactly what the rule warns about
            smtp.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        [msg] = p.wait_for_messages(1, timeout=TIMEOUT)
        assert msg.tls is False and msg.auth_user == USER


def test_server_without_users_does_not_offer_auth(test_ca: TestCA) -> None:
    with Provider("tls", ca=test_ca) as p:
        with smtplib.SMTP_SSL(p.host, p.port, timeout=TIMEOUT, context=test_ca.client_context()) as smtp:
            assert "auth" not in ehlo_keywords(smtp)
            code, _ = smtp.docmd("AUTH", "PLAIN")
            assert code == 504
            smtp.sendmail("a@example.test", ["b@example.test"], MESSAGE)  # open relay, no AUTH
        [msg] = p.wait_for_messages(1, timeout=TIMEOUT)
        assert msg.auth_user is None and msg.tls is True


def test_greeting_delay(test_ca: TestCA) -> None:
    with Provider("plain", greeting_delay=0.5) as p:
        with socket.create_connection((p.host, p.port), timeout=TIMEOUT) as sock:
            sock.settimeout(0.2)
            with pytest.raises(socket.timeout):
                sock.recv(100)  # connected, but silent for now
        start = time.monotonic()
        with smtplib.SMTP(p.host, p.port, timeout=TIMEOUT) as smtp:
            assert time.monotonic() - start >= 0.45
            assert smtp.noop()[0] == 250


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------


def tls_connect(port: int, context: ssl.SSLContext, server_hostname: str) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        return context.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise


def test_wrong_name_certificate_fails_verification(test_ca: TestCA) -> None:
    with Provider("tls", ssl_context=test_ca.issue(["other.example.test"])) as p:
        with pytest.raises(ssl.SSLCertVerificationError) as err:
            tls_connect(p.port, test_ca.client_context(), PROVIDER_HOSTNAME)
        assert err.value.verify_code == 62  # X509_V_ERR_HOSTNAME_MISMATCH
        # The chain itself is fine: without the name check the handshake succeeds.
        relaxed = test_ca.client_context()
        relaxed.check_hostname = False
        tls_connect(p.port, relaxed, PROVIDER_HOSTNAME).close()


def test_wrong_name_certificate_fails_starttls(test_ca: TestCA) -> None:
    with Provider("starttls", ssl_context=test_ca.issue(["other.example.test"])) as p:
        with smtplib.SMTP(p.host, p.port, timeout=TIMEOUT) as smtp:
            with pytest.raises(ssl.SSLCertVerificationError):
                smtp.starttls(context=test_ca.client_context())


def test_expired_certificate_fails_verification(test_ca: TestCA) -> None:
    with Provider("tls", ssl_context=test_ca.issue(PROVIDER_CERT_NAMES, expired=True)) as p:
        with pytest.raises(ssl.SSLCertVerificationError) as err:
            tls_connect(p.port, test_ca.client_context(), PROVIDER_HOSTNAME)
        assert err.value.verify_code == 10  # X509_V_ERR_CERT_HAS_EXPIRED


def test_untrusted_certificate_fails_verification(test_ca: TestCA) -> None:
    with TestCA() as other_ca, Provider("tls", ca=other_ca, hostname=PROVIDER_HOSTNAME) as p:
        with pytest.raises(ssl.SSLCertVerificationError) as err:
            tls_connect(p.port, test_ca.client_context(), PROVIDER_HOSTNAME)
        assert err.value.verify_code == 20  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY


def test_expiring_soon_certificate_is_valid_but_short_lived(test_ca: TestCA) -> None:
    with Provider("tls", ssl_context=test_ca.issue(PROVIDER_CERT_NAMES, expiring_soon=True)) as p:
        with tls_connect(p.port, test_ca.client_context(), PROVIDER_HOSTNAME) as tls:
            cert = tls.getpeercert()
    assert cert is not None
    not_after = ssl.cert_time_to_seconds(str(cert["notAfter"]))
    days_left = (not_after - time.time()) / 86400
    assert TestCA.EXPIRING_SOON_DAYS - 1 < days_left <= TestCA.EXPIRING_SOON_DAYS


def test_cert_pem_paths_serve_a_verifiable_certificate(test_ca: TestCA) -> None:
    chain, key = test_ca.cert_pem_paths(PROVIDER_CERT_NAMES)
    assert key.stat().st_mode & 0o077 == 0  # private key not readable by others
    assert test_ca.ca_pem_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(chain, key)
    with Provider("tls", ssl_context=server_ctx) as p:
        with tls_connect(p.port, test_ca.client_context(), PROVIDER_HOSTNAME) as tls:
            assert tls.recv(100).startswith(b"220 ")

    expired_chain, _ = test_ca.cert_pem_paths(["x.test"], expired=True)
    assert expired_chain != chain


# --------------------------------------------------------------------------------------------
# Tarpit, closed port, shutdown behaviour
# --------------------------------------------------------------------------------------------


def test_tarpit_accepts_and_never_greets() -> None:
    with Tarpit() as tarpit:
        sock = socket.create_connection((tarpit.host, tarpit.port), timeout=TIMEOUT)
        with sock:
            sock.settimeout(1.0)
            start = time.monotonic()
            with pytest.raises(socket.timeout):
                sock.recv(100)
            assert time.monotonic() - start >= 0.9
            # It keeps the connection open even when spoken to.
            sock.sendall(b"EHLO client.test\r\n")
            sock.settimeout(0.2)
            with pytest.raises(socket.timeout):
                sock.recv(100)
            tarpit.stop()
            sock.settimeout(TIMEOUT)
            try:
                assert sock.recv(100) == b""  # stop() drops held connections
            except ConnectionResetError:
                pass
    assert wait_for_port_closed(tarpit.port)


def test_tarpit_times_out_smtplib() -> None:
    with Tarpit(count=2) as tarpit:
        assert len(set(tarpit.ports)) == 2
        # smtplib reports a greeting that never comes as a disconnect, not as socket.timeout.
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
            smtplib.SMTP(tarpit.host, tarpit.ports[1], timeout=0.3)


def test_closed_port_refuses_connections() -> None:
    port = closed_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def test_stop_drops_connected_clients_promptly(
    test_ca: TestCA, client_tls_context: ssl.SSLContext
) -> None:
    p = Provider("starttls", users={USER: PASSWORD}, ca=test_ca).start()
    try:
        smtp = smtplib.SMTP(p.host, p.port, timeout=TIMEOUT)
        smtp.starttls(context=client_tls_context)  # leave a TLS session open mid-conversation
    finally:
        start = time.monotonic()
        p.stop()
        assert time.monotonic() - start < 2.0
    with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
        smtp.noop()
    smtp.close()
    assert wait_for_port_closed(p.port)


def test_provider_is_stopped_when_the_with_block_fails() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with Provider("plain") as p:
            port = p.port
            raise RuntimeError("boom")
    assert not p.running
    assert wait_for_port_closed(port)


def test_modes_needing_tls_demand_a_certificate() -> None:
    with pytest.raises(ValueError):
        Provider("tls")
    with pytest.raises(ValueError):
        DelayedGreetingFarm(1, 0.1, mode="starttls")


# --------------------------------------------------------------------------------------------
# Delayed greeting farm
# --------------------------------------------------------------------------------------------

FARM_NAMES = ["slow.provider.test", "127.0.0.1"]


def test_farm_greets_all_ports_in_about_one_delay(test_ca: TestCA) -> None:
    delay, count = 1.0, 50
    with DelayedGreetingFarm(count, delay, ssl_context=test_ca.issue(FARM_NAMES)) as farm:
        assert len(set(farm.ports)) == count

        def greeting_after(port: int) -> tuple[bytes, float]:
            with socket.create_connection((farm.host, port), timeout=TIMEOUT) as sock:
                connected = time.monotonic()
                line = recv_line(sock)
                return line, time.monotonic() - connected

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=count) as pool:
            results = list(pool.map(greeting_after, farm.ports))
        elapsed = time.monotonic() - start

    assert all(line.startswith(b"220 slow.provider.test ") for line, _ in results)
    assert min(waited for _, waited in results) >= delay * 0.9  # nobody greeted early
    assert elapsed < delay + 1.0, f"{count} concurrent greetings took {elapsed:.2f}s"


def test_farm_speaks_enough_smtp_for_a_probe(test_ca: TestCA) -> None:
    with DelayedGreetingFarm(2, 0.1, ssl_context=test_ca.issue(FARM_NAMES)) as farm:
        with smtplib.SMTP(farm.host, farm.ports[1], timeout=TIMEOUT) as smtp:
            before = ehlo_keywords(smtp)
            assert "starttls" in before and "auth" not in before
            smtp.starttls(context=test_ca.client_context())  # verifies the cert for 127.0.0.1
            after = ehlo_keywords(smtp)
            assert "starttls" not in after
            assert set(smtp.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
            assert smtp.noop()[0] == 250
        # A client that hangs up mid-session and one left connected at stop() are both fine.
        lingering = socket.create_connection((farm.host, farm.ports[0]), timeout=TIMEOUT)
    with lingering:
        lingering.settimeout(TIMEOUT)
        try:
            lingering.recv(100)
        except ConnectionResetError:
            pass


def test_farm_implicit_tls_and_plain_modes(test_ca: TestCA) -> None:
    with DelayedGreetingFarm(1, 0.1, mode="tls", ssl_context=test_ca.issue(FARM_NAMES)) as farm:
        with smtplib.SMTP_SSL(farm.host, farm.port, timeout=TIMEOUT, context=test_ca.client_context()) as smtp:
            keywords = ehlo_keywords(smtp)
            assert "auth" in keywords and "starttls" not in keywords
    with DelayedGreetingFarm(1, 0.1, mode="plain") as farm:
        with smtplib.SMTP(farm.host, farm.port, timeout=TIMEOUT) as smtp:
            keywords = ehlo_keywords(smtp)
            assert "auth" not in keywords and "starttls" not in keywords

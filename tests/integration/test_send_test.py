"""``smtpconf send-test`` delivers real messages to aiosmtpd servers on loopback, resolving the host
through a real nsd, and explains the step that failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live import ScriptedServer, smtpconf
from tests.support.nsd import NsdServer, zone_text
from tests.support.smtpserver import Provider, TestCA

pytestmark = pytest.mark.integration

USER, PASSWORD = "relayuser", "correct horse battery"
ZONE = "send.test"
HOST = f"smtp.{ZONE}"


@pytest.fixture(scope="module")
def nsd() -> Iterator[NsdServer]:
    with NsdServer({ZONE: zone_text(ZONE, [("smtp", "A", "127.0.0.1")])}) as server:
        yield server


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


# A password over security: none is the lint error plaintext-auth, and send-test refuses a file
# with lint errors; the plaintext tests silence it where lint reports it, as a user would.
PLAINTEXT_OK = "  # smtpconf: ignore[plaintext-auth]"


def _file(tmp_path: Path, port: int, security: str, ca: TestCA | None, provider: str | None = None) -> Path:
    silence = PLAINTEXT_OK if security == "none" else ""
    lines = ["version: 1", "relays:", "  lab:"]
    lines += [f"    provider: {provider}"] if provider else []
    lines += [f"    host: {HOST}", f"    port: {port}", f"    security: {security}{silence}",
              f"    username: {USER}", "    password: {env: LAB_PASSWORD}"]
    lines += [f"    ca_file: {ca.ca_pem_path}"] if ca else []
    lines += ["accounts:", f"  - email: dev@{ZONE}{silence}", "    relay: lab"]
    path = tmp_path / "smtpconf.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def send(config: Path, nsd: NsdServer, *extra: str, password: str = PASSWORD, who: tuple[str, str] = ("--relay", "lab")):
    return smtpconf("send-test", str(config), *who, "--to", "ops@example.test", "--from", f"dev@{ZONE}",
                    "--nameserver", f"127.0.0.1:{nsd.port}", "--timeout", "5", *extra,
                    env={"LAB_PASSWORD": password})


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_delivers_through_the_good_servers(mode: str, nsd: NsdServer, ca: TestCA, tmp_path: Path) -> None:
    with Provider(mode, users={USER: PASSWORD}, ssl_context=ca.issue([HOST])) as server:  # type: ignore[arg-type]
        done = send(_file(tmp_path, server.port, mode, ca), nsd, who=("--account", f"dev@{ZONE}"))
        assert done.returncode == 0, done.stdout + done.stderr
        (message,) = server.wait_for_messages(1)
    assert message.tls and message.auth_user == USER and message.rcpt_tos == ["ops@example.test"]
    assert b"Subject: smtpconf test message" in message.data
    steps = [line.split()[1] for line in done.stdout.splitlines()[1:]]
    assert [s for s in steps if s in ("resolve", "connect", "TLS", "AUTH", "MAIL", "RCPT", "DATA")] == [
        "resolve", "connect", "TLS", "AUTH", "MAIL", "RCPT", "DATA"]
    assert "127.0.0.1" in done.stdout and PASSWORD not in done.stdout + done.stderr


def test_wrong_password_fails_at_auth_with_the_provider_explanation(nsd: NsdServer, ca: TestCA, tmp_path: Path) -> None:
    with Provider("starttls", users={USER: PASSWORD}, ssl_context=ca.issue([HOST])) as server:
        done = send(_file(tmp_path, server.port, "starttls", ca, provider="gmail"), nsd, password="wrong-pass")
        assert done.returncode == 1, done.stdout + done.stderr
        assert list(server.messages) == []
    auth = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert len(auth) == 1 and " AUTH " in auth[0], done.stdout
    assert "535" in auth[0] and "app password" in auth[0] and "env LAB_PASSWORD" in auth[0]
    assert "wrong-pass" not in done.stdout + done.stderr


def test_refuses_credentials_without_tls_unless_allowed(nsd: NsdServer, tmp_path: Path) -> None:
    with Provider("plain", users={USER: PASSWORD}) as server:
        config = _file(tmp_path, server.port, "none", None)
        refused = send(config, nsd)
        assert refused.returncode == 1 and "plaintext" in refused.stdout, refused.stdout
        assert list(server.auth_attempts) == []  # refused before connecting
        allowed = send(config, nsd, "--allow-plaintext")
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        (message,) = server.wait_for_messages(1)
    assert not message.tls and message.auth_user == USER


def test_a_tls_server_on_a_starttls_port_fails_at_the_greeting(nsd: NsdServer, ca: TestCA, tmp_path: Path) -> None:
    with Provider("tls", users={USER: PASSWORD}, ssl_context=ca.issue([HOST])) as server:
        done = smtpconf("send-test", str(_file(tmp_path, server.port, "starttls", ca)), "--relay", "lab",
                        "--to", "ops@example.test", "--from", f"dev@{ZONE}", "--nameserver", f"127.0.0.1:{nsd.port}",
                        "--timeout", "1", env={"LAB_PASSWORD": PASSWORD})
    # The probe's diagnosis (the shared dialogue's half-time TLS sniff), not only "no greeting".
    fails = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert done.returncode == 1 and len(fails) == 1 and fails[0].split()[1] == "greeting", done.stdout
    assert "speaks implicit TLS" in fails[0] and "use security: tls" in fails[0], done.stdout


def _plain_file(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "smtpconf.yaml"
    path.write_text(f"version: 1\nrelays:\n  lab:\n    host: {HOST}\n    port: {port}\n    security: none\n")
    return path


@pytest.mark.parametrize("replies, failed, said", [
    ({"DATA": "554 5.7.1 message refused"}, "DATA", "554 5.7.1 message refused"),
    ({"MAIL": None}, "MAIL FROM", "closed the connection"),
    ({"EHLO": None}, "EHLO", "closed the connection"),
    # 200 KB of capability lines: more lines than any reply has (smtplib caps a line's length, not their number)
    ({"EHLO": "250-scripted.test\r\n" + "250-X-FILLER-x\r\n" * 12_000 + "250 OK"}, "EHLO", "longer than 100 lines"),
    # 80 KB in 20 lines, before and after smtplib takes over: each reply has a 64 KiB budget
    ({"EHLO": "250-scripted.test\r\n" + ("250-X-" + "x" * 4000 + "\r\n") * 20 + "250 OK"}, "EHLO",
     "longer than 64 KiB"),
    ({"MAIL": ("250-" + "x" * 4000 + "\r\n") * 20 + "250 OK"}, "MAIL FROM", "longer than 64 KiB"),
])
def test_a_refusal_or_hang_up_after_connect_is_a_failed_step(replies: dict[str, str | None], failed: str, said: str,
                                                             nsd: NsdServer, tmp_path: Path) -> None:
    with ScriptedServer(replies=replies) as server:
        done = send(_plain_file(tmp_path, server.port), nsd)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    fails = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and fails[0].split(None, 1)[1].startswith(failed) and said in fails[0], done.stdout


def test_plaintext_is_refused_before_the_secret_is_resolved(nsd: NsdServer, tmp_path: Path) -> None:
    marker = tmp_path / "secret-command-ran"
    config = tmp_path / "smtpconf.yaml"
    config.write_text(f"version: 1\nrelays:\n  lab:\n    host: {HOST}\n    port: 2525\n    security: none{PLAINTEXT_OK}\n"
                      f"    username: {USER}\n    password: {{command: \"touch {marker} && echo pw\"}}\n")
    done = send(config, nsd)
    assert done.returncode == 1 and "plaintext" in done.stdout, done.stdout + done.stderr
    assert not marker.exists()


def test_usage_errors_exit_2(nsd: NsdServer, tmp_path: Path) -> None:
    config = _file(tmp_path, 2587, "starttls", None)
    done = send(config, nsd, who=("--relay", "nope"))
    assert done.returncode == 2 and "no relay 'nope'" in done.stderr


def test_a_file_with_lint_errors_is_refused_before_anything_is_sent(nsd: NsdServer, tmp_path: Path) -> None:
    """One gate for lint errors: send-test refuses what render refuses, naming the errors on stderr."""
    marker = tmp_path / "secret-command-ran"
    config = tmp_path / "smtpconf.yaml"
    with ScriptedServer() as server:
        config.write_text(f"version: 1\nrelays:\n  lab:\n    host: {HOST}\n    port: {server.port}\n"
                          f"    security: none\n    username: {USER}\n"
                          f"    password: {{command: \"touch {marker} && echo pw\"}}\n")
        done = send(config, nsd, "--allow-plaintext")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[plaintext-auth]" in done.stderr and "send-test refused" in done.stderr, done.stderr
    assert f"{config}:6:" in done.stderr, done.stderr
    assert server.received == [] and not marker.exists() and "Traceback" not in done.stderr


class Dribbler:
    """Greets one byte every 0.2 s, never ending the line: each read gets a byte well within any
    per-read timeout, so only a limit on the whole session stops the client."""

    def __init__(self) -> None:
        import socket
        import threading

        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn:
            while not self._stop.wait(0.2):
                try:
                    conn.sendall(b"2")
                except OSError:
                    return

    def __enter__(self) -> Dribbler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)


def test_timeout_bounds_the_whole_session_not_each_read(nsd: NsdServer, tmp_path: Path) -> None:
    import time

    with Dribbler() as server:
        started = time.monotonic()
        done = send(_plain_file(tmp_path, server.port), nsd, "--timeout", "1")
        seconds = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    fails = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and "--timeout 1s in all" in fails[0], done.stdout
    assert seconds < 30, seconds  # the dribble alone would go on for ever; generous for a loaded box


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_timeout_must_be_positive_and_finite(value: str, nsd: NsdServer, tmp_path: Path) -> None:
    done = send(_plain_file(tmp_path, 2525), nsd, "--timeout", value)
    assert done.returncode == 2 and "--timeout" in done.stderr and "positive" in done.stderr, done.stderr


def test_server_text_cannot_forge_lines_or_send_escape_sequences(nsd: NsdServer, tmp_path: Path) -> None:
    with ScriptedServer("220 evil.test \x1b]0;owned\x07\x1b[2J ESMTP\rFAIL  forged", replies={
            "RCPT": "550 5.1.1 no\x1b[31m such user\x0bok    DATA  delivered"}) as server:
        done = send(_plain_file(tmp_path, server.port), nsd)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout and "\x0b" not in done.stdout
    assert "\\x1b[2J" in done.stdout  # shown, escaped
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["ok"] * (len(lines) - 2) + ["FAIL"], done.stdout


@pytest.mark.parametrize("password", ["pässwörd 密码", "plain-ascii"])
def test_a_non_ascii_password_logs_in_as_utf8(password: str, nsd: NsdServer, ca: TestCA, tmp_path: Path) -> None:
    """RFC 4616: PLAIN carries UTF-8 (smtplib's login would fail encoding it as ASCII)."""
    with Provider("starttls", users={USER: password}, ssl_context=ca.issue([HOST])) as server:
        done = send(_file(tmp_path, server.port, "starttls", ca), nsd, password=password)
        assert done.returncode == 0, done.stdout + done.stderr
        (message,) = server.wait_for_messages(1)
    assert message.auth_user == USER and password not in done.stdout + done.stderr


@pytest.mark.parametrize("sender, smtputf8, mail_from, failed", [
    ("dev@例子.测试", False, "FROM:<dev@xn--fsqu00a.xn--0zwm56d>", "DATA"),  # an IDN domain: A-labels
    ("小明@例子.测试", True, "FROM:<小明@xn--fsqu00a.xn--0zwm56d> SMTPUTF8", "DATA"),
    ("小明@例子.测试", False, None, "MAIL FROM"),  # a UTF-8 local part needs SMTPUTF8: said, not sent
])
def test_idn_senders(sender: str, smtputf8: bool, mail_from: str | None, failed: str, nsd: NsdServer,
                     tmp_path: Path) -> None:
    ehlo = "250-scripted.test\r\n250 SMTPUTF8" if smtputf8 else "250 scripted.test"
    with ScriptedServer(replies={"EHLO": ehlo, "DATA": "554 5.6.0 not today"}) as server:
        done = smtpconf("send-test", str(_plain_file(tmp_path, server.port)), "--relay", "lab", "--to",
                        "ops@example.test", "--from", sender, "--nameserver", f"127.0.0.1:{nsd.port}",
                        "--timeout", "5")
    fails = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert done.returncode == 1 and len(fails) == 1 and fails[0].split(None, 1)[1].startswith(failed), done.stdout
    mails = [line.split(" ", 1)[1] for line in server.received if line.upper().startswith("MAIL ")]
    assert mails == ([mail_from] if mail_from else []), server.received
    if mail_from is None:
        assert "SMTPUTF8" in fails[0], fails[0]


@pytest.mark.parametrize("to", ["ops@example.test\r\nRCPT TO:<evil@example.test>", "no-at-sign", "a b@example.test",
                                "ops@exa mple.test", "<ops@example.test>", "ops@"])
def test_a_bad_to_is_a_usage_error_before_anything_is_sent(to: str, nsd: NsdServer, tmp_path: Path) -> None:
    with ScriptedServer() as server:
        done = smtpconf("send-test", str(_plain_file(tmp_path, server.port)), "--relay", "lab", "--to", to,
                        "--from", f"dev@{ZONE}", "--nameserver", f"127.0.0.1:{nsd.port}", "--timeout", "5")
    assert done.returncode == 2 and "--to" in done.stderr and "not a mail address" in done.stderr, done.stderr
    assert server.received == [] and "Traceback" not in done.stderr

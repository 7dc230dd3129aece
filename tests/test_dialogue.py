"""The shared SMTP dialogue's rules without a network (roles/smtp_relay/module_utils/smtp_dialogue.py,
imported by smtpconf as smtpconf.probe.dialogue): reading a reply, the EHLO argument, the
capabilities, the certificate table, the CA contexts. The servers are in tests/integration/."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from smtpconf.probe import dialogue
from smtpconf.probe.dialogue import (Failed, NotAReply, Reply, UnusableCA, capabilities, cert_problem,
                                     ehlo_capabilities, ehlo_command, greeted, mechanisms, plaintext_greeting,
                                     starttls_accepted, starttls_offered, verifying_context)

ROOT = Path(__file__).resolve().parents[1]


def test_smtpconf_imports_the_roles_file() -> None:
    """One file: smtpconf's module is a link to the role's module_utils, not a copy."""
    link = ROOT / "smtpconf" / "probe" / "dialogue.py"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "roles" / "smtp_relay" / "module_utils" / "smtp_dialogue.py").resolve()
    assert Path(dialogue.__file__).resolve() == link.resolve()


def test_it_needs_nothing_but_the_standard_library() -> None:
    """Ansible ships it to hosts that have no smtpconf: it imports nothing else."""
    import ast

    tree = ast.parse((ROOT / "roles" / "smtp_relay" / "module_utils" / "smtp_dialogue.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "os", "socket", "ssl", "time", "functools", "typing"}, imported


def read(*lines: bytes) -> tuple[int, list[str]]:
    reply = Reply()
    for line in lines:
        if reply.add(line):
            return reply.code, reply.lines
    raise AssertionError("the reply did not end")


def test_a_multi_line_reply() -> None:
    assert read(b"250-smtp.example.test\r\n", b"250-STARTTLS\r\n", b"250 AUTH PLAIN\r\n") == (
        250, ["smtp.example.test", "STARTTLS", "AUTH PLAIN"])
    assert read(b"220 ok") == (220, ["ok"])  # the last line before the end of the stream


@pytest.mark.parametrize("lines, said", [
    ([b"HTTP/1.1 400 Bad Request\r\n"], "not an SMTP reply: 'HTTP/1.1 400 Bad Request'"),
    ([b"25\r\n"], "not an SMTP reply"),
    ([b"\xc2\xb2\xc2\xb2\xc2\xb2 superscript digits\r\n"], "not an SMTP reply"),  # isdigit() alone takes them
    ([b"250-x\r\n"] * 100, "longer than 100 lines"),
    ([b"250-" + b"x" * 8000 + b"\r\n"] * 9, "longer than 64 KiB"),
])
def test_what_is_not_a_reply(lines: list[bytes], said: str) -> None:
    with pytest.raises(NotAReply, match=said):
        read(*lines)


def test_a_closed_connection_is_a_connection_error() -> None:
    with pytest.raises(ConnectionResetError, match="closed the connection"):
        read(b"250-x\r\n", b"")


@pytest.mark.parametrize("local, command", [("192.0.2.1", "EHLO [192.0.2.1]"),
                                            ("2001:db8::1", "EHLO [IPv6:2001:db8::1]")])
def test_the_ehlo_argument_is_an_address_literal(local: str, command: str) -> None:
    assert ehlo_command(local) == command


def test_capabilities_merge_the_old_auth_spelling() -> None:
    caps = capabilities(["smtp.example.test", "size 1000", "AUTH LOGIN PLAIN", "AUTH=LOGIN XOAUTH2", "starttls"])
    assert caps == {"SIZE": "1000", "AUTH": "LOGIN PLAIN XOAUTH2", "STARTTLS": ""}
    assert mechanisms(caps) == ("LOGIN", "PLAIN", "XOAUTH2")
    assert mechanisms(capabilities(["x", "AUTH=PLAIN LOGIN"])) == ("PLAIN", "LOGIN")
    assert mechanisms(capabilities(["x", "AUTH"])) == ()  # AUTH with no mechanism offers nothing


def test_each_step_names_its_rule() -> None:
    cases = [
        (lambda: greeted("w", 554, ["5.7.1 go away"]), "probe-unreachable", "w: the server refuses service: 554 5.7.1 go away"),
        (lambda: ehlo_capabilities("w", 502, ["no"]), "probe-unreachable", "w: the server refused EHLO: 502 no"),
        (lambda: starttls_offered("w", {"SIZE": "1"}), "starttls-not-offered",
         "w does not offer STARTTLS after EHLO (it offers: SIZE)"),
        (lambda: starttls_accepted("w", 454, ["4.7.0 later"]), "tls-handshake-failed",
         "w refused STARTTLS: 454 4.7.0 later"),
    ]
    for call, rule, message in cases:
        with pytest.raises(Failed) as failed:
            call()
        assert (failed.value.rule, failed.value.message, failed.value.in_step) == (rule, message, True)
    assert greeted("w", 220, ["ok"]) == "220 ok"


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, message)
    error.verify_code, error.verify_message = code, message
    return error


@pytest.mark.parametrize("code, rule, said", [
    (10, "cert-expired", "has expired"), (9, "cert-expired", "not valid yet"),
    (62, "cert-hostname-mismatch", "not valid for this name"),
    (64, "cert-hostname-mismatch", "not valid for this IP address"),
    (20, "cert-untrusted", "not trusted"), (19, "cert-untrusted", "not trusted"),
])
def test_the_certificate_table(code: int, rule: str, said: str) -> None:
    assert cert_problem(_verify_error(code, "x"))[0] == rule
    assert said in cert_problem(_verify_error(code, "x"))[1]


def test_an_unusable_ca_says_which(tmp_path: Path) -> None:
    with pytest.raises(UnusableCA, match="ca_pem is not a usable PEM CA certificate"):
        verifying_context(ca_pem="not a certificate")
    with pytest.raises(UnusableCA, match=f"cannot use ca_file {tmp_path / 'none.pem'}"):
        verifying_context(ca_file=str(tmp_path / "none.pem"))
    assert verifying_context().verify_mode == ssl.CERT_REQUIRED


def test_a_plaintext_greeting_is_recognised() -> None:
    assert plaintext_greeting(b"220 smtp.example.test ESMTP\r\n") == "220 smtp.example.test ESMTP"
    assert plaintext_greeting(b"\x16\x03\x01\x00") is None
    assert plaintext_greeting(b"") is None

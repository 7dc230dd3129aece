"""What the discovery check reads back from a web server, without a network (the closed loop with
real nginx and nsd is tests/integration/test_check_discovery.py)."""

from __future__ import annotations

import pytest

from smtpconf.probe.discovery import MAX_REPLY, FetchError, difference, parse_reply


def test_reply_with_length_and_charset() -> None:
    reply = parse_reply(b"HTTP/1.1 200 OK\r\nContent-Type: text/XML; charset=utf-8\r\nContent-Length: 3\r\n\r\nabcdef")
    assert reply == (200, "text/xml", b"abc")


def test_chunked_reply() -> None:
    reply = parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
    assert reply.body == b"abcde"


@pytest.mark.parametrize("data", [b"SSH-2.0-OpenSSH\r\n", b"", b"HTTP/1.1 abc\r\n\r\n",
                                  b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (MAX_REPLY + 70000)])
def test_not_http_or_too_large_is_a_fetch_error(data: bytes) -> None:
    with pytest.raises(FetchError):
        parse_reply(data)


def test_difference_names_the_policy_field() -> None:
    served = b"version: STSv1\nmode: testing\nmx: mx1.example.com\nmax_age: 86400\n"
    expected = b"version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 86400\n"
    assert difference("mta-sts.txt", served, expected).startswith("mode is 'testing', the file renders 'enforce'")


def test_difference_of_garbage_says_it_does_not_parse() -> None:
    assert "does not parse" in difference("mail/config-v1.1.xml", b"<html>oops", b"<clientConfig/>")


def test_difference_shows_control_characters_escaped() -> None:
    message = difference("index.html", b"<p>\x1b[31mred</p>\n", b"<p>ok</p>\n")
    assert "\x1b" not in message and "\\x1b" in message

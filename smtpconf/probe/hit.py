"""What a live check yields: where in the file, which rule, what is wrong."""

from __future__ import annotations

from typing import NamedTuple

from smtpconf.load import JsonPath


class LiveHit(NamedTuple):
    path: JsonPath  # the relay, account or domain the finding belongs to
    rule: str
    message: str

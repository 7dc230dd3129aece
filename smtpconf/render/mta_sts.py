"""The MTA-STS policy file (RFC 8461 §3.2): written by the ``site`` target, its ``id`` published by
the ``dns`` target, and read back by ``check``. One module, so that the text, its id and the
parser that judges a served policy cannot disagree.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from smtpconf.model import MTA_STS_MAX_AGE_LIMIT as MAX_AGE_LIMIT, MtaSts, canonical_host

MODES = ("testing", "enforce", "none")
_MAX_AGE = re.compile(r"[0-9]{1,10}")


def mx_pattern(name: str) -> str:
    """An ``mx`` line as RFC 8461 §3.2 compares it: lower-case A-labels without a trailing dot,
    a leading ``*.`` kept."""
    if name.startswith("*."):
        return "*." + canonical_host(name[2:])
    return canonical_host(name)


def policy_text(policy: MtaSts) -> str:
    """The policy's bytes as served at ``https://mta-sts.DOMAIN/.well-known/mta-sts.txt``. Lines
    end with LF, which RFC 8461's ``sts-policy-term`` allows; ``version`` comes first."""
    lines = ["version: STSv1", f"mode: {policy.mode}"]
    lines += [f"mx: {mx_pattern(name)}" for name in policy.mx]
    lines.append(f"max_age: {policy.max_age}")
    return "\n".join(lines) + "\n"


def policy_id(text: str) -> str:
    """The ``id=`` of the ``_mta-sts`` TXT record: a hash of the policy text, so it changes exactly
    when the policy does (senders refetch the policy when the id changes, §3.1). 32 hex digits
    are within the 1-32 letters and digits §3.1 allows."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class ParsedPolicy(NamedTuple):
    mode: str
    mx: tuple[str, ...]
    max_age: int


class PolicyError(ValueError):
    """A served policy that does not parse (the message says why)."""


def parse_policy(text: str) -> ParsedPolicy:
    """Read a served policy as a sending MTA does (RFC 8461 §3.2): ``key: value`` lines ending in LF
    or CRLF, ``version: STSv1``, a known ``mode``, a ``max_age`` of at most a year, and ``mx`` lines
    unless the mode is ``none``. Unknown keys are ignored, as the RFC asks."""
    fields: dict[str, list[str]] = {}
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicyError(f"line {number} is not 'key: value'")
        fields.setdefault(key.strip(), []).append(value.strip())
    version = fields.get("version", [""])
    if version != ["STSv1"]:
        raise PolicyError(f"version must be STSv1 once, got {', '.join(version) or 'none'}")
    mode = fields.get("mode", [""])
    if len(mode) != 1 or mode[0] not in MODES:
        raise PolicyError(f"mode must be one of {', '.join(MODES)}, got {', '.join(mode) or 'none'}")
    age = fields.get("max_age", [""])
    if len(age) != 1 or not _MAX_AGE.fullmatch(age[0]) or int(age[0]) > MAX_AGE_LIMIT:
        raise PolicyError(f"max_age must be a number of seconds up to {MAX_AGE_LIMIT}, got {', '.join(age) or 'none'}")
    mx = tuple(mx_pattern(name) for name in fields.get("mx", []))
    if not mx and mode[0] != "none":
        raise PolicyError(f"mode {mode[0]} needs at least one mx line")
    return ParsedPolicy(mode[0], mx, int(age[0]))


def mx_matches(pattern: str, host: str) -> bool:
    """Whether an ``mx`` line covers an MX host (RFC 8461 §4.1): exactly, or ``*.`` standing for
    one whole left-most label."""
    host = canonical_host(host)
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label and dot) and rest == pattern[2:]
    return host == pattern

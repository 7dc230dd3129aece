"""TLS for smtpconf's probes: the verifying client context of each CA file (cached), and what a
verified certificate tells (its expiry, subject and issuer for the report).

The context itself, and what a failed verification means (the rule id and message for each
OpenSSL verify code), belong to the SMTP dialogue (:mod:`smtpconf.probe.dialogue`), which the
role's probe shares. Verification is always on: the system store, or only the endpoint's
``ca_file`` for a private relay; turning it off would hide exactly what ``check`` is for.
"""

from __future__ import annotations

import ssl
import time
from functools import lru_cache
from typing import Any

from smtpconf.probe.dialogue import verifying_context
from smtpconf.probe.observations import CertificateSeen

EXPIRING_DAYS = 14


@lru_cache(maxsize=None)
def client_context(ca_file: str | None) -> ssl.SSLContext:
    """One context per CA file, shared by every probe: loading the system store is the slow part.
    Raises :class:`smtpconf.probe.dialogue.UnusableCA`."""
    return verifying_context(ca_file=ca_file)


def _expiry(cert: dict[str, Any] | None, now: float | None) -> tuple[float, float] | None:
    """When a peer certificate (getpeercert()) expires and how many seconds are left; None without one."""
    if not cert or "notAfter" not in cert:
        return None
    not_after = ssl.cert_time_to_seconds(cert["notAfter"])
    return not_after, not_after - (time.time() if now is None else now)


def expiring_problem(cert: dict[str, Any] | None, now: float | None = None) -> str | None:
    """A message when a verified certificate expires within EXPIRING_DAYS days."""
    expiry = _expiry(cert, now)
    if expiry is None or expiry[1] > EXPIRING_DAYS * 86400:
        return None
    not_after, left = expiry
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(not_after))
    return f"the server certificate expires in {max(0, int(left // 86400))} days ({when})"


# RFC 4514 §3 attribute types, for the names getpeercert() spells out.
_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
          "stateOrProvinceName": "ST", "localityName": "L", "domainComponent": "DC", "streetAddress": "STREET",
          "userId": "UID"}


def _dn(name: Any) -> str:
    # getpeercert() lists the RDNs in certificate order (country first); RFC 4514 writes the
    # most specific first.
    parts = [f"{_SHORT.get(key, key)}={value}" for rdn in reversed(name or ()) for key, value in rdn]
    return ",".join(parts)


def certificate_seen(cert: dict[str, Any] | None, now: float | None = None) -> CertificateSeen | None:
    """Subject, issuer and expiry of a verified peer certificate (None without one)."""
    expiry = _expiry(cert, now)
    if cert is None or expiry is None:
        return None
    not_after, left = expiry
    return CertificateSeen(_dn(cert.get("subject")), _dn(cert.get("issuer")),
                           time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(not_after)), int(left // 86400))

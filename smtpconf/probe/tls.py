"""TLS for the probes: verifying client contexts, and what a failed verification means.

Verification is always on: the system store, or only the endpoint's ``ca_file`` for a private
relay (what Postfix's ``smtp_tls_CAfile`` and the rendered clients use). Turning verification off
would hide exactly what ``check`` is for.
"""

from __future__ import annotations

import ssl
import time
from functools import lru_cache
from typing import Any

from smtpconf.probe.observations import CertificateSeen

EXPIRING_DAYS = 14

# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h).
_NOT_YET_VALID, _EXPIRED = 9, 10
_HOSTNAME_MISMATCH, _IP_MISMATCH = 62, 64


class CertProblem(Exception):
    """The CA file of an endpoint cannot be used."""


@lru_cache(maxsize=None)
def client_context(ca_file: str | None) -> ssl.SSLContext:
    """One context per CA file, shared by every probe: loading the system store is the slow part."""
    try:
        context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise CertProblem(f"cannot use ca_file {ca_file}: {getattr(exc, 'strerror', None) or exc}") from None
    return context


@lru_cache(maxsize=1)
def insecure_context() -> ssl.SSLContext:
    """Only to learn *whether* a server speaks TLS at all (a mode mismatch), never to trust it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def cert_problem(exc: ssl.SSLCertVerificationError) -> tuple[str, str]:
    """The rule id and message for a failed certificate verification."""
    code, message = exc.verify_code, exc.verify_message or str(exc)
    if code == _EXPIRED:
        return "cert-expired", "the server certificate has expired"
    if code == _NOT_YET_VALID:
        return "cert-expired", "the server certificate is not valid yet (check the clocks)"
    if code in (_HOSTNAME_MISMATCH, _IP_MISMATCH):
        return "cert-hostname-mismatch", f"the server certificate is not valid for this name ({message})"
    return "cert-untrusted", f"the server certificate is not trusted: {message}"


def expiring_problem(cert: dict[str, Any] | None, now: float | None = None) -> str | None:
    """A message when a verified certificate expires within EXPIRING_DAYS days."""
    if not cert or "notAfter" not in cert:
        return None
    not_after = ssl.cert_time_to_seconds(cert["notAfter"])
    left = not_after - (time.time() if now is None else now)
    if left > EXPIRING_DAYS * 86400:
        return None
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
    if not cert or "notAfter" not in cert:
        return None
    not_after = ssl.cert_time_to_seconds(cert["notAfter"])
    left = not_after - (time.time() if now is None else now)
    return CertificateSeen(_dn(cert.get("subject")), _dn(cert.get("issuer")),
                           time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(not_after)), int(left // 86400))

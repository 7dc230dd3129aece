"""Ids reported by `smtpconf check` (DNS and SMTP probes). Declared here so that every id has one
documentation paragraph; the probes in ``smtpconf/probe`` emit them."""

from __future__ import annotations

from smtpconf.rules import Level, declare

_LIVE: dict[str, tuple[Level, str]] = {
    "dns-no-address": ("error", """
The host has no address record (A or AAAA): the name does not exist, or has no address.

Clients and Postfix cannot connect to a name that does not resolve. Check the spelling of `host`,
and that the record exists in the zone (a resolver answering NXDOMAIN or an empty answer). A
resolver that does not answer is `dns-timeout`, not this.
"""),
    "dns-hosts-only": ("warning", """
A relay used by a fleet group resolves only through the system's resolver (`/etc/hosts`), not in DNS.

Postfix looks relay hosts up in DNS (`smtp_host_lookup = dns`, the default) and will not find it,
although msmtp, Thunderbird and `smtpconf check` on this machine do. Publish the name in DNS, use
the relay's address, or set `smtp_host_lookup = dns, native` on the fleet's Postfix. Only checked
without `--nameserver` (with it, every lookup is DNS).
"""),
    "dns-timeout": ("warning", """
The DNS query got no answer in time, or the resolver refused it (SERVFAIL, REFUSED).

The result is unknown, not "missing": smtpconf never reports a record as absent when it could not
ask. Check `--nameserver`, network reachability of the resolver, or raise `--timeout`.
"""),
    "srv-mismatch": ("warning", """
The RFC 6186 / RFC 8314 SRV records of a domain do not match its accounts.

With `srv: true`, a domain should publish `_submission._tcp` (STARTTLS) and/or `_submissions._tcp`
(implicit TLS) and `_imaps._tcp` / `_pop3s._tcp` records pointing at the hosts and ports its
accounts use, so that mail clients configure themselves. A missing record, or one with another
target or port, is reported with what the accounts expect (`smtpconf render --only dns` writes the
records).
"""),
    "spf-missing": ("error", """
The domain has no SPF record (a TXT record starting with `v=spf1`), or has more than one.

Receivers use SPF to decide whether a server may send for the domain; without it, mail relayed
through the relays listed in `domains.DOMAIN.relays` is more likely to be rejected or marked spam.
"""),
    "spf-relay-not-included": ("error", """
A relay that sends for the domain is not covered by its SPF record.

For each relay in `domains.DOMAIN.relays`, the SPF record (following `include:` and `redirect=`)
should authorize the relay's sending servers — e.g. `include:_spf.google.com` for Gmail,
`include:amazonses.com` for SES. smtpconf checks the relay's addresses and the provider's usual
include against the flattened record.
"""),
    "spf-too-many-lookups": ("error", """
The SPF record needs more than 10 DNS lookups, or more than 2 void lookups.

RFC 7208 §4.6.4 limits `include`, `a`, `mx`, `ptr`, `exists` and `redirect` to 10 DNS-querying
terms in total (counted through nested includes), and lookups that return nothing to 2. Receivers
return `permerror` beyond that, which most treat as a fail. Flatten or remove includes.
"""),
    "dmarc-missing": ("error", """
The domain has no DMARC record at `_dmarc.DOMAIN`, nor does any name the DNS tree walk asks, or
it publishes several (receivers discard them all), or the record in force has no valid `p=`.

Without DMARC, receivers apply their own policy and you get no reports. Publish at least
`v=DMARC1; p=none; rua=mailto:...`, then tighten the policy. As receivers do (RFC 9989 §4.10), a
domain without its own record falls under the first record of the DNS tree walk: its parents, up
to the top-level domain, at most 8 queries (a domain of 8 labels or more jumps to its last 7).
`check` reports the policy in force and the name it was found at.
"""),
    "dmarc-weak-policy": ("warning", """
The DMARC policy in force is weaker than `domains.DOMAIN.dmarc_policy` asks (none < quarantine < reject).

The policy in force is `p=` of the domain's own record; for a record found above it (RFC 9989 tree
walk), `sp=` when present, and `np=` when the domain does not exist (no A, AAAA or MX record).
`t=y` (testing) asks receivers to apply the policy one level lower: `p=reject; t=y` is applied as
quarantine, `p=quarantine; t=y` as none.
"""),
    "dmarc-obsolete-tag": ("warning", """
The DMARC record in force has `pct=`, `rf=` or `ri=`, which RFC 9989 made historic: receivers
ignore them.

`pct=` is replaced by `t=` (`t=y` while testing a policy, which receivers apply one level lower);
`rf=` and `ri=` are replaced by nothing. Remove them from the record.
"""),
    "dkim-missing": ("error", """
A DKIM selector listed in `domains.DOMAIN.dkim_selectors` has no key at `SELECTOR._domainkey.DOMAIN`
(no TXT record with `p=`), or its key is revoked (empty `p=`).

Mail signed with that selector fails DKIM, and with SPF alone it fails DMARC whenever it is
forwarded. Publish the public key your provider shows (Google Workspace: Admin console > Gmail >
Authenticate email), or remove the selector from the file.
"""),
    "mta-sts-invalid": ("warning", """
The MTA-STS (`_mta-sts.DOMAIN`, RFC 8461) or TLS-RPT (`_smtp._tls.DOMAIN`, RFC 8460) TXT record is
present but malformed: wrong version tag, a missing `id=`, or a missing `rua=`; or the policy
served at `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` does not parse, or its `mx` lines do
not cover every MX record of the domain.

Senders that find a broken policy ignore it; in `enforce` mode, an MX host the `mx` lines do not
match gets no mail from them at all. Publish what `smtpconf render --only site,dns` writes, with
`mta_sts.mx` listing every MX host (or a `*.` pattern for them).
"""),
    "discovery-drift": ("error", """
What the discovery site of a domain with `site:` serves differs from what the file renders: the
Thunderbird file, the Autodiscover answer, an Apple profile, the MTA-STS policy or a setup page.

The message names the URL and the first setting that differs (a server's host, port or security,
the user name), or says the bytes differ. After a migration this is the common failure: clients
keep finding the old servers. Render the `site` target again and publish it
(README: "Publishing the discovery site").
"""),
    "discovery-unreachable": ("error", """
A URL of the discovery site of a domain with `site:` could not be fetched over HTTPS: the name
does not resolve, the connection is refused or times out, the certificate is not trusted or not
valid for the name, or the server answers with an error status.

The message gives the URL and why. Mail clients try these URLs when someone adds an account, and
then fall back to guessing. Check the DNS names (`autoconfig.`, `autodiscover.`, `mta-sts.` of the
domain), the certificate (one for all these names), and that nginx loaded `nginx/DOMAIN.conf`.
`--ca-file` trusts a private CA for this check.
"""),
    "probe-unreachable": ("error", """
The endpoint refused the connection or could not be reached (connection refused, no route).

Check the host and port, and that a firewall allows outgoing connections to that port from where
smtpconf runs: port 25 is often blocked, 587 and 465 less often. Reachability depends on where you
stand, which is why the Ansible role can probe from each fleet host (`--tags verify`).
"""),
    "probe-timeout": ("warning", """
The endpoint did not answer in time: no connection, or no SMTP greeting within `--timeout`.

A silent firewall (packets dropped), a tarpit, or a security-mode mismatch: a client speaking
plaintext to an implicit-TLS port waits for a greeting that never comes. The result is unknown,
not "down".
"""),
    "starttls-not-offered": ("error", """
The server on a `starttls` endpoint does not offer STARTTLS in its EHLO reply.

Credentials and mail would cross the network in the clear, and clients configured for STARTTLS
refuse to continue. Check that this is the submission port (587), not 25 of a server without TLS.
"""),
    "tls-handshake-failed": ("error", """
The TLS handshake failed: also reported when a plaintext SMTP server answers on a port configured
for implicit TLS, or a TLS server on a port configured for STARTTLS.

The message says which: the security mode in the file does not match what the server speaks
(`security: tls` for 465, `starttls` for 587), or the server's TLS setup is broken.
"""),
    "cert-untrusted": ("error", """
The server certificate does not chain to a trusted CA (the system store, or `ca_file`).

For a private relay, set `ca_file` to the CA that signed its certificate; never turn verification
off. For a public provider, this points to interception on the path.
"""),
    "cert-hostname-mismatch": ("error", """
The server certificate is not valid for the host name in the file.

Clients and Postfix with `tls_level: verify` refuse it. Use the name the certificate is issued for
(often the provider's documented host), or fix the certificate.
"""),
    "cert-expired": ("error", """
The server certificate has expired (or is not yet valid). Every verifying client refuses it.
"""),
    "cert-expiring": ("warning", """
The server certificate expires within 14 days. Renew it before clients start refusing it.
"""),
    "auth-not-offered": ("error", """
The server does not offer AUTH (after TLS), but the file has credentials for it.

Either this is not the submission service (port 25 of an MX), or authentication is disabled for
this client (Office 365: SMTP AUTH is off for the mailbox).
"""),
    "auth-mechanism-missing": ("error", """
The server offers AUTH (after TLS), but not the mechanism the file's login uses: `XOAUTH2` or
`OAUTHBEARER` for `auth: oauth2` (the `oauth2.mechanism`, from the preset), `PLAIN` or `LOGIN` for
a password. The message names what it does offer.

A server that offers only XOAUTH2 or OAUTHBEARER refuses passwords (Outlook.com since September
2024, Microsoft 365 once Basic authentication is off): log in with `auth: oauth2`. A server that
offers only PLAIN and LOGIN takes no OAuth2 token: check `host` and `port`, or the `mechanism`. The
probe only reads the EHLO reply; it never sends credentials. A server without AUTH at all is
`auth-not-offered`, not this.
"""),
    "auth-before-tls": ("warning", """
The server offers AUTH before STARTTLS, in plaintext.

A client that authenticates before upgrading sends its password in the clear. Servers should only
advertise AUTH after TLS (Postfix: `smtpd_tls_auth_only = yes`).
"""),
}

for _rule_id, (_level, _doc) in _LIVE.items():
    declare(_rule_id, _level, _doc, family=__name__, live=True)

"""What a domain publishes for clients and senders: the discovery site, MTA-STS and TLS-RPT (SPEC §9)."""

from __future__ import annotations

import re
from typing import Iterator

from smtpconf.model import MTA_STS_MAX_AGE_LIMIT as MAX_AGE_LIMIT, Config, address_literal, canonical_host
from smtpconf.rules import Hit, rule

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _host_name(name: str) -> bool:
    """An MX host as RFC 8461 §3.2 allows it: a host name (IDN allowed), optionally ``*.`` and a
    host name; never an IP address."""
    base = name[2:] if name.startswith("*.") else name
    if address_literal(base):
        return False
    host = canonical_host(base)
    labels = host.split(".")
    return len(host) <= 253 and len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels)


@rule("mta-sts-max-age", "error")
def mta_sts_max_age(config: Config) -> Iterator[Hit]:
    """The MTA-STS `max_age` is over a year (31557600 seconds).

    RFC 8461 §3.2 caps `max_age` at 31557600; senders reject a policy with a larger value, so the
    domain would have no policy at all. Weeks are usual (`604800` is a week, the default); a short
    value while you test (`mode: testing`), a long one once the policy is stable.
    """
    for policy in config.domains.values():
        sts = policy.mta_sts
        if sts is not None and sts.max_age > MAX_AGE_LIMIT:
            yield Hit(sts.path + ("max_age",), f"domain {policy.name}: max_age {sts.max_age} is over a year "
                                               f"({MAX_AGE_LIMIT} seconds, RFC 8461 section 3.2)")


@rule("mta-sts-mx-invalid", "error")
def mta_sts_mx_invalid(config: Config) -> Iterator[Hit]:
    """An MTA-STS `mx` entry is not a host name, or a policy that is not `mode: none` has none.

    Each `mx` line of the policy (RFC 8461 §3.2) is a host name the domain's MX records point to,
    or `*.` and a host name (matching exactly one more label). IP addresses, URLs and names with
    spaces or other characters never match an MX host, so senders in `enforce` mode would refuse
    to deliver. A `testing` or `enforce` policy without any `mx` matches nothing either.
    """
    for policy in config.domains.values():
        sts = policy.mta_sts
        if sts is None:
            continue
        for index, name in enumerate(sts.mx):
            if not _host_name(name):
                yield Hit(sts.path + ("mx", index), f"domain {policy.name}: MTA-STS mx '{name}' is not a host name "
                                                    f"(or '*.' and a host name)")
        if not sts.mx and sts.mode != "none":
            yield Hit(sts.path + ("mode",), f"domain {policy.name}: an MTA-STS policy in mode {sts.mode} needs "
                                            f"mx: [the domain's MX hosts]")


@rule("tls-rpt-invalid", "error")
def tls_rpt_invalid(config: Config) -> Iterator[Hit]:
    """A `tls_rpt` reporting address is an `http://` URL.

    RFC 8460 §3 takes `mailto:` addresses and `https:` URLs only: reporters do not send TLS
    reports over plain HTTP. Write an email address or an `https://` URL.
    """
    for policy in config.domains.values():
        for uri in policy.tls_rpt:
            if uri.startswith("http://"):
                yield Hit(policy.path + ("tls_rpt",), f"domain {policy.name}: TLS-RPT reports go to mailto: or "
                                                      f"https: URIs, not {uri}")


@rule("site-path-unsafe", "error")
def site_path_unsafe(config: Config) -> Iterator[Hit]:
    """A `site` path holds `$`, which nginx reads as the start of a variable.

    The `root`, `certificate` and `key` of `site:` are written into `nginx/DOMAIN.conf`. nginx
    expands variables in these directives, and its configuration has no escape for `$`, so the
    server would look for another path. Rename the directory or file.
    """
    for policy in config.domains.values():
        site = policy.site
        if site is None:
            continue
        for key, value in (("root", site.root), ("certificate", site.certificate), ("key", site.key)):
            if value is not None and "$" in value:
                yield Hit(site.path + (key,), f"domain {policy.name}: site {key} holds '$', which nginx would "
                                              f"expand as a variable")


@rule("site-no-accounts", "warning")
def site_no_accounts(config: Config) -> Iterator[Hit]:
    """A domain has a `site` block but no account with an address in it.

    The discovery site holds the settings of the domain's accounts, so there is nothing to publish
    and the `site` target writes nothing for it (and `check` fetches nothing). Add the accounts, or
    remove the block.
    """
    for policy in config.domains.values():
        if policy.site is not None and not config.accounts_of(policy):
            yield Hit(policy.site.path, f"domain {policy.name}: site, but no account has an address at "
                                        f"{policy.host}: nothing is published", at_key=True)

"""Values that a generated file's real reader would read as something else.

The schema keeps out what no file can hold (newlines, control characters, spaces in names); these
rules catch values that are valid text but change meaning in one reader: a Postfix lookup table,
an Ansible inventory, msmtp's `from`. Each is reported where it is written, instead of becoming a
silent change or a failure at render or deploy time.
"""

from __future__ import annotations

import re
from typing import Iterator

from smtpconf.findings import printable
from smtpconf.model import Config
from smtpconf.rules import Hit, rule

# Ansible's implicit groups: every inventory has them, whatever it lists.
_ANSIBLE_RESERVED_GROUPS = frozenset({"all", "ungrouped"})
# msmtp replaces these in `from` (%U user, %H host name, %C canonical host name, %M mail domain;
# %F, the full name, from 1.8.29), with no escape; and `*`, `?` make `from` a pattern.
_MSMTP_EXPANDED = re.compile(r"%[UHCMF]")
_MSMTP_WILDCARD = re.compile(r"[*?\[]")


@rule("postfix-map-comment", "error")
def postfix_map_comment(config: Config) -> Iterator[Hit]:
    """A `sender_relays` key starts with `#`: Postfix reads that table line as a comment.

    The postfix target writes `sender_relays` as a lookup table (`sender_dependent_relayhost_maps`)
    with one `SENDER RELAY` line each. A line whose first character is `#` is a comment to
    `postmap`, so the entry is silently dropped and mail from that sender leaves through the group's
    default relay (`postmap -q '#billing@example.com'` finds nothing). No quoting helps: write the
    real address, without the `#`.
    """
    for group in config.fleet.values():
        for entry in group.sender_relays:
            if entry.sender.startswith("#"):
                yield Hit(entry.path, f"fleet group '{group.name}': sender '{printable(entry.sender)}' starts "
                                      "with '#', which makes its sender_relays table line a Postfix comment: "
                                      "the entry would be ignored", at_key=True)


@rule("fleet-group-reserved", "error")
def fleet_group_reserved(config: Config) -> Iterator[Hit]:
    """A fleet group is named `all` or `ungrouped`, Ansible's own group names.

    The ansible target writes one inventory group per fleet group and runs the role on it. `all`
    is every host of the inventory the playbook runs with, and `ungrouped` every host in no other
    group: a group of that name would configure Postfix on hosts the file never listed (with
    `hosts: []`, on all of them). Rename the group.
    """
    for group in config.fleet.values():
        if group.name in _ANSIBLE_RESERVED_GROUPS:
            yield Hit(group.path, f"fleet group '{group.name}' has the name of Ansible's implicit group "
                                  f"'{group.name}' (hosts the file does not list); rename it", at_key=True)


@rule("msmtp-from-pattern", "error")
def msmtp_from_pattern(config: Config) -> Iterator[Hit]:
    """An account address holds `%U`, `%H`, `%C`, `%M`, `%F`, or `*`, `?`, `[`, which msmtp
    does not read as text in `from`.

    The msmtp target writes the address as the account's `from`. msmtp replaces `%U` with the
    local user name, `%H` with the host name, `%C` with the canonical host name, `%M` with the mail
    domain (and, from 1.8.29, `%F` with the user's full name), with no way to escape them:
    `b%U@example.com` sends as `broot@example.com` (`msmtp --pretend` shows it). `*`, `?` and `[`
    make `from` a wildcard pattern that matches envelope senders. Such an address cannot be written
    safely; use another address.
    """
    for account in config.accounts:
        found = _MSMTP_EXPANDED.search(account.email) or _MSMTP_WILDCARD.search(account.email)
        if found:
            yield Hit(account.path + ("email",),
                      f"account {printable(account.email)}: msmtp "
                      f"{'expands' if found.group().startswith('%') else 'reads a wildcard in'} "
                      f"'{found.group()}' in `from`, so its msmtp account would send as another address")

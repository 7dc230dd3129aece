"""``docs/rules.md`` from the registry: ``python -m smtpconf.rules.docs > docs/rules.md``."""

from __future__ import annotations

from smtpconf.rules import all_rules


def markdown() -> str:
    rules = all_rules()
    lines = [
        "# Rules",
        "",
        "Generated from the rule registry by `python -m smtpconf.rules.docs > docs/rules.md`;",
        "`smtpconf lint --explain RULE` prints the same text. Silence a finding on its line with",
        "`# smtpconf: ignore[RULE]` (a comment alone on a line also covers the next line).",
        "",
        "| rule | level | kind | summary |",
        "|---|---|---|---|",
    ]
    for rule in rules.values():
        kind = "live" if rule.live else "offline"
        lines.append(f"| [`{rule.id}`](#{rule.id}) | {rule.level} | {kind} | {rule.summary} |")
    for rule in rules.values():
        kind = "live (`smtpconf check`)" if rule.live else "offline (`smtpconf lint`)"
        lines += ["", f"## {rule.id}", "", f"Level: {rule.level}; {kind}.", "", rule.doc]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")

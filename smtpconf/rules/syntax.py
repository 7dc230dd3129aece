"""Ids emitted while reading the file: YAML, duplicate keys, aliases, schema."""

from __future__ import annotations

from smtpconf.rules import declare

declare("yaml-syntax", "error", family=__name__, doc="""
The file is not valid YAML, or cannot be read as text.

Reported at the position where the parser stopped: a tab used for indentation (YAML allows only
spaces), an unclosed quote or bracket, a binary or non-UTF-8 file, an unsupported tag, or a file
larger than 16 MiB. Fix the text at that position; nothing else is checked until the file parses.
""")

declare("duplicate-key", "error", family=__name__, doc="""
A mapping has the same key twice.

YAML loaders silently keep the last value, so the first definition is lost without a word. This is
reported at the second key; remove or rename one of them.
""")

declare("yaml-alias-limit", "error", family=__name__, doc="""
Aliases expand too far: the file looks like an alias bomb ("billion laughs").

A small file whose anchors (or `<<` merge keys) refer to each other can expand to billions of
values and exhaust memory. smtpconf counts the values it reads: without aliases a file has fewer
values than characters, and aliases may add 100,000 more before reading stops. Nothing is expanded
in memory to find out. Write repeated values out, or use fewer levels of aliases.
""")

declare("yaml-octal", "error", family=__name__, doc="""
A number is read as octal or base 60 by YAML 1.1.

`port: 0465` is the number 309 to PyYAML and Ansible, and `1:30` is 90. Write the number without a
leading zero (`465`), or quote it if it is meant as text.
""")

declare("yaml-truthy", "warning", family=__name__, doc="""
`yes`, `no`, `on`, `off`, `y` or `n` is read as a boolean by YAML 1.1.

`security: no` is the boolean false, not the word "no" (and not `none`). Write `true`/`false`
for booleans, or quote the word if you mean the text.
""")

declare("schema", "error", family=__name__, doc="""
A value does not match the smtpconf schema (`smtpconf schema` prints it).

Reported at the offending value or key: an unknown key (with the closest known one), a wrong type,
a value outside its allowed set, or a string with spaces, newlines or control characters where a
host name, user name, address or map key is expected. Those characters would otherwise reach
Postfix's main.cf, its lookup tables or client configs, where a newline starts a new setting.
""")

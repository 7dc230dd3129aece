"""Load an smtpconf file: YAML with positions for every value.

The result is plain JSON-like data (dicts, lists, str, int, bool, None) plus a map from each value's
path to the line and column it came from. Positions come from the parser's node marks, never from
searching the text afterwards.

The loader refuses what would make later stages hang or lie: alias bombs, duplicate keys (YAML
silently keeps the last one), non-UTF-8 or binary input and oversized files. It also flags YAML 1.1
surprises that matter in mail config: ``security: no`` is the boolean false, and ``port: 0465`` is
the octal number 309.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import yaml

try:  # libyaml is ~10x faster; the pure-Python loader gives the same nodes and marks.
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    _CParser = None

from smtpconf.errors import FatalError
from smtpconf.findings import Finding, Level, printable
from smtpconf.rules import level_of

MAX_BYTES = 16 * 1024 * 1024
# Without aliases a file has fewer values than characters. Aliases may repeat values, up to this
# many beyond that: a "billion laughs" file (or a merge-key bomb) stops here, long before memory or
# time run out, while files that reuse an anchor hundreds of times are fine.
ALIAS_EXPANSION_LIMIT = 100_000

JsonPath = tuple[Union[str, int], ...]
Position = tuple[int, int]

_TAG = "tag:yaml.org,2002:"
_IGNORE = re.compile(r"#\s*smtpconf:\s*ignore\[([A-Za-z0-9_,\- ]+)\]")
_TRUTHY_WORDS = {"yes", "no", "on", "off", "y", "n"}
# Keys whose values are secrets: a message about their YAML never repeats the value (SPEC §11).
_SECRET_KEYS = frozenset({"password", "refresh_token", "client_secret"})
_SECRET_READS = {"yaml-octal": "an octal or base-60 number", "yaml-truthy": "a boolean"}
_CONSTRUCTOR = yaml.SafeLoader("")  # only its scalar constructors and resolver are used
# The base loader composes without YAML 1.1 implicit typing (every plain scalar is a string), which
# is most of PyYAML's time; _scalar resolves only the plain scalars that can be something else.
# These are the first characters of YAML 1.1 bools, nulls, numbers, timestamps, merge and value keys.
_MAYBE_TYPED = frozenset("yYnNtTfFoO~-+.0123456789<=")


@dataclass
class Document:
    """A loaded file: its data and where every value came from."""

    file: str  # as the user named it, for messages
    path: Path
    data: Any
    positions: dict[JsonPath, Position] = field(default_factory=dict)
    key_positions: dict[JsonPath, Position] = field(default_factory=dict)
    ignores: dict[int, frozenset[str]] = field(default_factory=dict)

    def pos(self, path: JsonPath) -> Position:
        """Line and column of the value at ``path``, or of its nearest ancestor that has one."""
        while path:
            found = self.positions.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return self.positions.get((), (1, 1))

    def key_pos(self, path: JsonPath) -> Position:
        """Line and column of the key naming the member at ``path`` (the value's when it has none)."""
        return self.key_positions.get(path) or self.pos(path)

    def finding(self, path: JsonPath, level: Level, rule: str, message: str, *, key: bool = False) -> Finding:
        line, col = self.key_pos(path) if key else self.pos(path)
        return Finding(self.file, line, col, level, rule, message)

    def found(self, path: JsonPath, rule: str, message: str, *, key: bool = False) -> Finding:
        """``finding`` at the level the registry declares for ``rule``."""
        return self.finding(path, level_of(rule), rule, message, key=key)

    def ignored(self, finding: Finding) -> bool:
        rules = self.ignores.get(finding.line)
        return rules is not None and (finding.rule in rules or "all" in rules)


def _finding(file: str, line: int, col: int, rule: str, message: str) -> Finding:
    """A finding of the loader, at the level the registry declares for ``rule``."""
    return Finding(file, line, col, level_of(rule), rule, message)


class _AliasLimit(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        self.mark = mark


def read_text(path: Path, file: str) -> tuple[str | None, list[Finding]]:
    """Read ``path`` as UTF-8 text, or explain at which byte it is not. It must be a regular file,
    and is read up to MAX_BYTES by reading (``/dev/zero`` and FIFOs report no size)."""
    from smtpconf.files import IsDirectory, NotReadable, TooLarge, read_regular

    name = printable(file, 4096)
    try:
        raw = read_regular(path, MAX_BYTES)
    except IsDirectory:
        raise FatalError(f"{name}: is a directory, expected a YAML file") from None
    except TooLarge:
        return None, [
            _finding(file, 1, 1, "yaml-syntax",
                     f"file is larger than {MAX_BYTES // 2**20} MiB, the most smtpconf reads — split it or "
                     "check that this is the right file")
        ]
    except NotReadable as exc:
        raise FatalError(f"{name}: {exc}") from None
    nul = raw.find(b"\0")
    if nul >= 0:
        line, col = _byte_position(raw, nul)
        return None, [_finding(file, line, col, "yaml-syntax",
                               "binary file (NUL byte): an smtpconf file is UTF-8 YAML text")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = _byte_position(raw, exc.start)
        return None, [_finding(file, line, col, "yaml-syntax",
                               f"not UTF-8 (byte 0x{raw[exc.start]:02x}): save the file as UTF-8")]
    return text, []


def _byte_position(raw: bytes, offset: int) -> Position:
    before = raw[:offset]
    line_start = before.rfind(b"\n") + 1
    return before.count(b"\n") + 1, len(before[line_start:].decode("utf-8", "replace")) + 1


def load(path: Path, file: str | None = None) -> tuple[Document | None, list[Finding]]:
    """Load one file. Returns the document (None when it cannot be read as YAML) and findings."""
    file = file if file is not None else str(path)
    text, findings = read_text(path, file)
    if text is None:
        return None, findings
    return load_text(text, path, file)


# Tags the composer gives untagged nodes. Plain (unquoted) scalars get their own, so that an explicit
# `!!str no` stays the text "no" while a plain `no` is resolved as YAML 1.1 reads it.
_PLAIN = "smtpconf:plain"
_IMPLICIT_TAGS = {yaml.ScalarNode: _TAG + "str", yaml.SequenceNode: _TAG + "seq", yaml.MappingNode: _TAG + "map"}


def compose(text: str) -> yaml.Node | None:
    """Parse into nodes with marks, without YAML 1.1 implicit typing (see _MAYBE_TYPED).

    PyYAML's C parser calls back into Python to resolve the tag of every node; a constant answer
    halves the time of a large file. Explicit tags (``!!int "5"``) are kept by the parser itself.
    """
    if _CParser is None:  # pragma: no cover
        return yaml.compose(text, Loader=_PlainBaseLoader)
    return _Composer(text).get_single_node()


class _PlainBaseLoader(yaml.BaseLoader):
    def resolve(self, kind: type, value: Any, implicit: Any) -> str:  # type: ignore[override]
        return _PLAIN if kind is yaml.ScalarNode and implicit[0] else _IMPLICIT_TAGS[kind]


if _CParser is not None:

    class _Composer(_CParser):  # type: ignore[misc, valid-type]
        def resolve(self, kind: type, value: Any, implicit: Any) -> str:
            return _PLAIN if kind is yaml.ScalarNode and implicit[0] else _IMPLICIT_TAGS[kind]

        def descend_resolver(self, parent: Any, index: Any) -> None:
            pass

        def ascend_resolver(self) -> None:
            pass


def load_text(text: str, path: Path, file: str) -> tuple[Document | None, list[Finding]]:
    try:
        root = compose(text)
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_finding(file, exc, text)]
    except yaml.YAMLError as exc:
        return None, [_finding(file, 1, 1, "yaml-syntax", str(exc).splitlines()[0])]
    except RecursionError:
        return None, [_finding(file, 1, 1, "yaml-syntax", "nesting is too deep")]
    doc = Document(file=file, path=path, data=None, ignores=_parse_ignores(text, root))
    if root is None:
        return None, [_finding(file, 1, 1, "schema",
                               "file is empty: start with `version: 1` (`smtpconf init` writes a starter file)")]
    walker = _Walker(doc, budget=len(text) + ALIAS_EXPANSION_LIMIT)
    try:
        doc.data = walker.value(root, ())
    except _AliasLimit as exc:
        return None, [_finding(file, exc.mark.line + 1, exc.mark.column + 1, "yaml-alias-limit",
                               f"aliases and merge keys expand to more than {ALIAS_EXPANSION_LIMIT:,} repeated "
                               "values (an alias bomb?): write the values out or use fewer levels of aliases")]
    except RecursionError:
        return None, [_finding(file, 1, 1, "yaml-syntax", "nesting is too deep")]
    return doc, list(walker.findings)


def _syntax_finding(file: str, exc: yaml.MarkedYAMLError, text: str) -> Finding:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "invalid YAML"
    if "end of stream" in problem and exc.context_mark is not None:
        mark = exc.context_mark  # "unclosed quote": where it was opened, not the end of the file
    if "another document" in problem:
        line = mark.line + 1 if mark else 1
        return _finding(file, line, mark.column + 1 if mark else 1, "yaml-syntax",
                        "an smtpconf file is one YAML document: remove this second document (`---`)")
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    if mark is not None and text[mark.index : mark.index + 1] == "\t":
        problem += " (a tab: YAML indentation must use spaces)"
    context = f" {exc.context}" if exc.context and exc.context not in problem else ""
    return _finding(file, line, col, "yaml-syntax", f"{problem}{context}".strip())


@lru_cache(maxsize=4096)  # ports, security words and booleans repeat thousands of times
def _implicit_tag(value: str) -> str:
    return str(_CONSTRUCTOR.resolve(yaml.ScalarNode, value, (True, False)))


def _parse_ignores(text: str, root: yaml.Node | None) -> dict[int, frozenset[str]]:
    """``# smtpconf: ignore[rule-a, rule-b]`` silences those rules on its line; a comment alone on a
    line silences them on the next line too (like yamllint's disable-line).

    Only a real comment counts: the parser's scalars say where values are, and an ignore written
    inside one (``name: "ops # smtpconf: ignore[all]"``, a block scalar) is text, not a comment.
    """
    ignores: dict[int, frozenset[str]] = {}
    if "smtpconf:" not in text:
        return ignores
    candidates = list(_IGNORE.finditer(text))
    if not candidates:
        return ignores
    inside = _inside_scalars([m.start() for m in candidates], root)
    for match in candidates:
        if match.start() in inside:
            continue
        line_start = text.rfind("\n", 0, match.start()) + 1
        number = text.count("\n", 0, match.start()) + 1
        rules = frozenset(r.strip() for r in match.group(1).split(",") if r.strip())
        alone = not text[line_start:match.start()].strip()
        for target in ([number, number + 1] if alone else [number]):
            ignores[target] = ignores.get(target, frozenset()) | rules
    return ignores


def _inside_scalars(offsets: list[int], root: yaml.Node | None) -> set[int]:
    """Those of ``offsets`` (character indexes) that lie within a scalar of the document (a key or a
    value, quotes included): every node is visited once, aliases and all."""
    import bisect

    spans: list[tuple[int, int]] = []
    seen: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            spans.append((node.start_mark.index, node.end_mark.index))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
    spans.sort()
    starts = [start for start, _ in spans]
    inside = set()
    for offset in offsets:
        index = bisect.bisect_right(starts, offset) - 1
        if index >= 0 and spans[index][0] <= offset < spans[index][1]:
            inside.add(offset)
    return inside


def _shown_tag(tag: str) -> str:
    return printable("!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag)


class _Walker:
    """Turns composed nodes into data, recording positions and YAML-level findings."""

    def __init__(self, doc: Document, budget: int) -> None:
        self.doc = doc
        self.findings: dict[Finding, None] = {}  # ordered; an aliased node is walked once per use
        # PyYAML resolves an alias to the anchored node object itself, so expanding aliases is just
        # walking the same nodes again. Every value walked (and every merge) spends one unit.
        self._budget = budget
        self._secret: str | None = None  # the secret key (password, ...) whose value is being read

    def _spend(self, node: yaml.Node) -> None:
        self._budget -= 1
        if self._budget < 0:
            raise _AliasLimit(node.start_mark)

    def value(self, node: yaml.Node, path: JsonPath) -> Any:
        self._spend(node)
        mark = node.start_mark
        self.doc.positions[path] = (mark.line + 1, mark.column + 1)
        if node.__class__ is yaml.ScalarNode:
            if _SECRET_KEYS.isdisjoint(path):
                return self._scalar(node)
            return self._secret_scalar(node, path)
        if node.tag != _IMPLICIT_TAGS[node.__class__]:  # `!foo {...}`, `!!str [..]`, `!!set`, `!!omap`
            self._add(node, "yaml-syntax", f"unsupported YAML tag {_shown_tag(node.tag)} on a "
                                           f"{'list' if node.__class__ is yaml.SequenceNode else 'mapping'}: "
                                           "smtpconf files use plain YAML lists and mappings")
        if node.__class__ is yaml.SequenceNode:
            return [self.value(child, path + (index,)) for index, child in enumerate(node.value)]
        return self._mapping(node, path, frozenset())

    def _mapping(self, node: yaml.MappingNode, path: JsonPath, taken: frozenset[str]) -> dict[str, Any]:
        """A mapping's members; ``taken`` are keys already set by a mapping that merges this one."""
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge" or (key_node.value == "<<" and key_node.tag == _PLAIN):
                merges.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._add(key_node, "yaml-syntax", "a mapping key must be a plain value, not a list or mapping")
                continue
            # Keys are names (relays, groups, domains, addresses): read them as written, so that a
            # relay called `163` or a key `no` stays the string the user typed.
            key = key_node.value
            if key_node.tag != _PLAIN and key_node.tag != _TAG + "str":
                self._scalar(key_node)  # only for its findings: `!foo key:`, `!!bool maybe:`
            if key in first_line:
                self._add(key_node, "duplicate-key",
                          f"duplicate key '{printable(key)}' (first at line {first_line[key]}); YAML keeps only "
                          "the last value, so remove or rename one")
                continue
            first_line[key] = key_node.start_mark.line + 1
            if key in taken:
                continue  # the merging mapping's own value wins, with its own position
            child = path + (key,)
            self.doc.key_positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self.value(value_node, child)
        for merge in merges:  # YAML merge keys (`<<: *base`): explicit keys win, then earlier sources
            sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
            for source in sources:
                self._spend(source)
                if not isinstance(source, yaml.MappingNode):
                    self._add(source, "yaml-syntax", "`<<` must merge a mapping or a list of mappings")
                    continue
                result.update(self._mapping(source, path, taken | result.keys()))
        return result

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        tag = node.tag
        if tag == _PLAIN:
            if not node.value or node.value[0] in _MAYBE_TYPED:
                tag = _implicit_tag(node.value)
            else:
                return node.value
        if tag == _TAG + "str":
            return node.value
        if tag == _TAG + "int":
            return self._int(node)
        if tag == _TAG + "bool":
            if node.value.lower() not in _CONSTRUCTOR.bool_values:
                return self._not_a(node, "boolean")
            value = _CONSTRUCTOR.construct_yaml_bool(node)
            if node.value.lower() in _TRUTHY_WORDS and node.tag == _PLAIN:
                self._add(node, "yaml-truthy",
                          f"'{node.value}' is read by YAML 1.1 as the boolean {str(value).lower()}; write "
                          f"{str(value).lower()}, or quote it if you meant the text")
            return value
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "float":
            try:
                return _CONSTRUCTOR.construct_yaml_float(node)
            except ValueError:
                return self._not_a(node, "number")
        if tag == _TAG + "timestamp" and not _CONSTRUCTOR.timestamp_regexp.match(node.value):
            return self._not_a(node, "timestamp")
        if tag in (_TAG + "timestamp", _TAG + "binary", _TAG + "value"):
            return node.value  # JSON has no timestamp: keep the text, and let the schema judge it
        self._add(node, "yaml-syntax", f"unsupported YAML tag {_shown_tag(tag)}: smtpconf files use plain YAML "
                                       "values")
        return node.value

    def _int(self, node: yaml.ScalarNode) -> Any:
        text = node.value.replace("_", "").lstrip("+-")
        if len(text) > 30:
            return node.value  # no port or count is this long: the schema says "expected an integer"
        try:
            value = _CONSTRUCTOR.construct_yaml_int(yaml.ScalarNode(_TAG + "int", node.value))
        except ValueError:
            return node.value if node.tag == _PLAIN else self._not_a(node, "integer")
        legacy = ":" in text or (len(text) > 1 and text[0] == "0" and text[1] in "01234567")
        if legacy and node.tag == _PLAIN:
            kind = "base 60" if ":" in text else "octal"
            self._add(node, "yaml-octal",
                      f"'{node.value}' is read by YAML 1.1 as the {kind} number {value}; write the decimal "
                      "number you mean, or quote it")
        return value

    def _not_a(self, node: yaml.ScalarNode, kind: str) -> str:
        """An explicit tag (``!!bool foo``) on a text that is no such value: yaml.safe_load refuses it."""
        self._add(node, "yaml-syntax", f"'{printable(node.value)}' is not a YAML {kind} ({_shown_tag(node.tag)}): "
                                       "remove the tag, or write a value of that type")
        return str(node.value)

    def _secret_scalar(self, node: yaml.ScalarNode, path: JsonPath) -> Any:
        """A scalar under a secret key: its findings never repeat the value (SPEC §11)."""
        self._secret = next(str(part) for part in reversed(path) if part in _SECRET_KEYS)
        try:
            return self._scalar(node)
        finally:
            self._secret = None

    def _add(self, node: yaml.Node, rule: str, message: str) -> None:
        level = level_of(rule)
        if self._secret is not None:  # every message about the value is replaced: none may quote it
            message = (f"the value of `{self._secret}` is not read as text by YAML 1.1 "
                       f"({_SECRET_READS.get(rule, 'a typed value')}); quote it, or better, use a "
                       "reference such as {env: NAME} (this message does not repeat it)")
        mark = node.start_mark
        self.findings[Finding(self.doc.file, mark.line + 1, mark.column + 1, level, rule, message)] = None

"""Validate data against ``schemas/smtpconf.schema.json``.

The schema file is the contract (editors and check-jsonschema read it too). This module compiles the
JSON Schema 2020-12 keywords that file uses into small closures, because importing and running
python-jsonschema costs more than the rest of ``smtpconf lint`` together (it runs on every commit).
A keyword this compiler does not know is an error when the schema is compiled, so the schema can
never say more than is checked; ``tests/test_schema.py`` checks that both validators agree, and
``tests/test_conformance_jsonschema.py`` runs every group of the official JSON Schema 2020-12 test
suite whose keywords it knows.

Values compare as JSON values: ``1.0`` is the integer 1 (and equals ``1`` in ``const``, ``enum``
and ``uniqueItems``), while ``true`` is never the number 1, at any depth.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from smtpconf.findings import Hit, printable
from smtpconf.load import JsonPath
from smtpconf.resources import resource_path

SCHEMA_PATH = resource_path("schemas", "smtpconf.schema.json")
_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_ANNOTATIONS = {"$schema", "$id", "$comment", "$defs", "title", "description", "x-message", "default", "examples"}


# A compiled check appends what is wrong to ``out``. Appending to one list (rather than yielding)
# keeps the validator cheap enough to run on every commit over files with 10,000 accounts.
Validator = Callable[[Any, JsonPath, list[Hit]], None]


def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


@lru_cache(maxsize=1)
def _root_check() -> Validator:
    schema = load_schema()
    return _Compiler(schema).compile(schema)


def validate(data: Any) -> list[Hit]:
    """What is wrong with ``data``. Also the one place where a number written as ``587.0`` becomes
    the integer 587 where the schema wants an integer (for JSON Schema it is one), so the model and
    every stage after it hold an ``int``."""
    out: list[Hit] = []
    try:
        _root_check()(data, (), out)
    except RecursionError:  # the loader stops deeper nesting first; comparing lists recurses too
        return [Hit((), "nesting is too deep")]
    # dict.fromkeys: one report per problem, even when two keywords (minLength, pattern) share a message
    return list(dict.fromkeys(out))


def validator(schema: dict[str, Any] | bool) -> Callable[[Any], list[Hit]]:
    """A validator for any schema this compiler supports (ValueError names what it does not)."""
    check = _Compiler(schema).compile(schema)

    def run(data: Any) -> list[Hit]:
        out: list[Hit] = []
        check(data, (), out)
        return out

    return run


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


_TYPE_TEST: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
_TYPE_WORD = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
              "object": "a mapping", "array": "a list", "null": "null"}


def _json_key(value: Any) -> Any:
    """A hashable key under which two values are equal exactly when they are the same JSON value:
    ``1 == 1.0``, but ``true`` is not ``1``, also inside lists and mappings."""
    if value.__class__ is str or value is None:
        return value
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, list):
        return ("l",) + tuple(_json_key(item) for item in value)
    if isinstance(value, dict):
        return ("d", frozenset((name, _json_key(item)) for name, item in value.items()))
    return ("?", value)


def _integral(value: Any) -> Any:
    """``587.0`` as the integer the schema asked for; anything else unchanged."""
    return int(value) if value.__class__ is float and value.is_integer() else value


def _label(path: JsonPath) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return f"`{printable(part)}`: "
    return ""


class _Compiler:
    def __init__(self, root: dict[str, Any] | bool) -> None:
        self.root = root
        self.refs: dict[str, Validator] = {}

    def compile(self, schema: dict[str, Any] | bool) -> Validator:
        if schema is True:
            return _accept
        if schema is False:
            return _refuse
        if not isinstance(schema, dict):
            raise ValueError(f"a schema must be a mapping or a boolean, not {type_name(schema)}")
        if schema.get("$schema", _DIALECT) != _DIALECT:
            raise ValueError(f"only the JSON Schema 2020-12 dialect is supported, not {schema['$schema']}")
        if "$id" in schema and schema is not self.root:
            raise ValueError("nested $id (a schema resource of its own) is not supported")
        unknown = set(schema) - _ANNOTATIONS - set(_KEYWORDS) - {"type"}
        if unknown:
            raise ValueError(f"schema keyword(s) not supported by smtpconf's validator: {sorted(unknown)}")
        checks = [_KEYWORDS[k](self, schema) for k in _KEYWORDS if k in schema]
        type_check = _type(schema) if "type" in schema else None

        def check(value: Any, path: JsonPath, out: list[Hit]) -> None:
            if type_check is not None:
                error = type_check(value, path)
                if error is not None:
                    out.append(error)
                    return  # other keywords only make sense once the type is right
            for sub in checks:
                sub(value, path, out)

        return check

    def resolve(self, target: str) -> Any:
        """The subschema a local ``$ref`` (a JSON Pointer in a URI fragment) names."""
        from urllib.parse import unquote

        if target != "#" and not target.startswith("#/"):
            raise ValueError(f"only local $ref is supported: {target}")
        node: Any = self.root
        for part in target[2:].split("/") if target != "#" else ():
            part = unquote(part).replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise ValueError(f"$ref {target} names nothing in the schema") from None
        return node

    def wants_integer(self, schema: Any, depth: int = 0) -> bool:
        """Whether a value valid against ``schema`` is always an integer (``type: integer``, an
        integer ``const``), following ``$ref``."""
        if not isinstance(schema, dict) or depth > 20:
            return False
        const = schema.get("const")
        if schema.get("type") == "integer" or (type(const) is int):
            return True
        return "$ref" in schema and self.wants_integer(self.resolve(schema["$ref"]), depth + 1)

    def ref(self, target: str) -> Validator:
        if target not in self.refs:
            node = self.resolve(target)
            # Compile lazily through a cell so recursive definitions terminate.
            cell: list[Validator] = []
            self.refs[target] = lambda v, p, o: cell[0](v, p, o)
            cell.append(self.compile(node))
        return self.refs[target]


def _accept(value: Any, path: JsonPath, out: list[Hit]) -> None:
    pass


def _refuse(value: Any, path: JsonPath, out: list[Hit]) -> None:
    out.append(Hit(path, f"{_label(path)}is not allowed here"))


def _type(schema: dict[str, Any]) -> Callable[[Any, JsonPath], Hit | None]:
    names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    unknown = [n for n in names if n not in _TYPE_TEST]
    if unknown:
        raise ValueError(f"unknown type(s) {unknown}")
    tests = [_TYPE_TEST[n] for n in names]
    words = " or ".join(_TYPE_WORD[n] for n in names)

    def check(value: Any, path: JsonPath) -> Hit | None:
        if any(test(value) for test in tests):
            return None
        return Hit(path, f"{_label(path)}expected {words}, got {type_name(value)}")

    return check


def _ref(c: _Compiler, s: dict[str, Any]) -> Validator:
    return c.ref(s["$ref"])


def _enum(c: _Compiler, s: dict[str, Any]) -> Validator:
    allowed = s["enum"]
    keys = frozenset(_json_key(a) for a in allowed)
    words = ", ".join(json.dumps(a) if not isinstance(a, str) else a for a in allowed)

    def check(value: Any, path: JsonPath, out: list[Hit]) -> None:
        if _json_key(value) not in keys:
            shown = f"'{printable(value)}'" if isinstance(value, str) else type_name(value)
            out.append(Hit(path, f"{_label(path)}expected one of {words}; got {shown}"))

    return check


def _const(c: _Compiler, s: dict[str, Any]) -> Validator:
    expected = s["const"]
    key = _json_key(expected)

    def check(value: Any, path: JsonPath, out: list[Hit]) -> None:
        if _json_key(value) != key:
            out.append(Hit(path, f"{_label(path)}must be {json.dumps(expected)}"))

    return check


def _properties(c: _Compiler, s: dict[str, Any]) -> Validator:
    props = {name: c.compile(sub) for name, sub in s["properties"].items()}
    integers = [name for name, sub in s["properties"].items() if c.wants_integer(sub)]

    def check(value: Any, path: JsonPath, out: list[Hit]) -> None:
        if isinstance(value, dict):
            for name in integers:
                if name in value:
                    value[name] = _integral(value[name])
            for name, sub in props.items():
                if name in value:
                    sub(value[name], path + (name,), out)

    return check


def _additional(c: _Compiler, s: dict[str, Any]) -> Validator:
    known = set(s.get("properties", ()))
    extra = s["additionalProperties"]
    sub = c.compile(extra) if extra is not True and extra is not False else None
    integers = c.wants_integer(extra)

    def check(value: Any, path: JsonPath, out: list[Hit]) -> None:
        if not isinstance(value, dict):
            return
        for name, item in value.items():
            if name in known:
                continue
            if sub is not None:
                if integers:
                    item = value[name] = _integral(item)
                sub(item, path + (name,), out)
            elif extra is False:
                out.append(Hit(path + (name,), _unknown_key(name, known), at_key=True))

    return check


def _unknown_key(name: str, known: set[str]) -> str:
    import difflib  # only on this error path

    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"did you mean `{close[0]}`?" if close else f"expected one of: {', '.join(sorted(known))}"
    return f"unknown key `{printable(name)}`; {hint}"


def _property_names(c: _Compiler, s: dict[str, Any]) -> Validator:
    sub = c.compile(s["propertyNames"])

    def check(value: Any, path: JsonPath, out: list[Hit]) -> None:
        if isinstance(value, dict):
            for name in value:
                errors: list[Hit] = []
                sub(name, path + (name,), errors)
                out.extend(Hit(path + (name,), f"key {e.message}", at_key=True) for e in errors)

    return check


def _required(c: _Compiler, s: dict[str, Any]) -> Validator:
    names = s["required"]

    def check(value: Any, path: JsonPath, out: list[Hit]) -> None:
        if isinstance(value, dict):
            for name in names:
                if name not in value:
                    out.append(Hit(path, f"{_label(path)}missing required key `{name}`"))

    return check


def _pattern(c: _Compiler, s: dict[str, Any]) -> Validator:
    try:
        regex = re.compile(_python_regex(s["pattern"]))
    except re.error as exc:
        raise ValueError(f"pattern {s['pattern']!r} is not a Python regular expression: {exc}") from None
    message = s.get("x-message", f"does not match {s['pattern']}")

    def check(value: Any, path: JsonPath, out: list[Hit]) -> None:
        if isinstance(value, str) and regex.search(value) is None:
            out.append(Hit(path, f"{_label(path)}{message}"))

    return check


# ECMA-262 (the regex dialect of JSON Schema, and of editors) where Python's differs: \d and \w
# are ASCII, \s is its own list of white space, and $ is only the end of the text.
_ECMA_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_ECMA_CLASS = {"d": "0-9", "w": "A-Za-z0-9_", "s": _ECMA_SPACE}


def _python_regex(pattern: str) -> str:
    """``pattern`` (ECMA-262) as a Python regular expression that matches the same texts."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            if escaped in _ECMA_CLASS:
                out.append(f"[{_ECMA_CLASS[escaped]}]")
            elif escaped.lower() in _ECMA_CLASS:
                out.append(f"[^{_ECMA_CLASS[escaped.lower()]}]")
            else:
                out.append(char + escaped)
            index += 2
        elif char == "[":
            text, index = _python_class(pattern, index)
            out.append(text)
        else:
            out.append("\\Z" if char == "$" else char)
            index += 1
    return "".join(out)


def _python_class(pattern: str, start: int) -> tuple[str, int]:
    """The character class at ``pattern[start]`` (``[``) in Python's syntax, and the index after it.
    A negated shorthand inside it (``[\\s\\S]``) cannot be written as one Python class: the class
    becomes an alternation (or, negated, lookaheads) of classes that can."""
    index = start + 1
    negated = pattern[index : index + 1] == "^"
    index += negated
    body: list[str] = []
    complements: list[str] = []  # the sets of \D, \W, \S written in the class
    while index < len(pattern) and pattern[index] != "]":
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            if escaped in _ECMA_CLASS:
                body.append(_ECMA_CLASS[escaped])
            elif escaped.lower() in _ECMA_CLASS:
                complements.append(_ECMA_CLASS[escaped.lower()])
            else:
                body.append(char + escaped)
            index += 2
            continue
        body.append(char)
        index += 1
    if index >= len(pattern):
        raise ValueError(f"unterminated character class in {pattern!r}")
    index += 1  # the closing ]
    own = "".join(body)
    if not complements:
        return ("[^" if negated else "[") + own + "]", index
    if not negated and own in complements:
        return "(?s:.)", index  # [\s\S]: any character
    if not negated:  # one of: the class's own characters, or anything outside a shorthand's set
        return "(?:" + "|".join(([f"[{own}]"] if own else []) + [f"[^{c}]" for c in complements]) + ")", index
    # none of the own characters, and inside every shorthand's set
    return ((f"(?![{own}])" if own else "") + "".join(f"(?=[{c}])" for c in complements[:-1])
            + f"[{complements[-1]}]"), index


def _bound(keyword: str, test: Callable[[Any, Any], bool], what: str, measure: Callable[[Any], Any],
           applies: Callable[[Any], bool]) -> Callable[[_Compiler, dict[str, Any]], Validator]:
    def build(c: _Compiler, s: dict[str, Any]) -> Validator:
        limit = s[keyword]
        message = s.get("x-message")

        def check(value: Any, path: JsonPath, out: list[Hit]) -> None:
            if applies(value) and not test(measure(value), limit):
                out.append(Hit(path, f"{_label(path)}{message or what.format(limit)}"))

        return check

    return build


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _items(c: _Compiler, s: dict[str, Any]) -> Validator:
    sub = c.compile(s["items"])
    integers = c.wants_integer(s["items"])

    def check(value: Any, path: JsonPath, out: list[Hit]) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                if integers:
                    item = value[index] = _integral(item)
                sub(item, path + (index,), out)

    return check


def _unique(c: _Compiler, s: dict[str, Any]) -> Validator:
    def check(value: Any, path: JsonPath, out: list[Hit]) -> None:
        if s["uniqueItems"] and isinstance(value, list):
            seen: set[Any] = set()
            for index, item in enumerate(value):
                key = _json_key(item)
                if key in seen:
                    out.append(Hit(path + (index,), f"{_label(path)}lists the same item twice"))
                seen.add(key)

    return check


def _any_of(c: _Compiler, s: dict[str, Any]) -> Validator:
    branches = [(sub, c.compile(sub)) for sub in s["anyOf"]]
    message = s.get("x-message", "does not match any of the allowed forms")

    def check(value: Any, path: JsonPath, out: list[Hit]) -> None:
        results = []
        for _, sub in branches:
            errors: list[Hit] = []
            sub(value, path, errors)
            if not errors:
                return  # the common case: stop at the first branch that fits
            results.append(errors)
        # Report the branch meant for this kind of value (a mapping-shaped secret's own errors, say),
        # or the schema's own message when no branch or several fit.
        typed = [errors for (sub, _), errors in zip(branches, results)
                 if isinstance(sub, dict) and isinstance(sub.get("type"), str) and _TYPE_TEST[sub["type"]](value)]
        if len(typed) == 1:
            out.extend(typed[0])
        else:
            out.append(Hit(path, f"{_label(path)}{message}"))

    return check


_KEYWORDS: dict[str, Callable[[_Compiler, dict[str, Any]], Validator]] = {
    "$ref": _ref,
    "enum": _enum,
    "const": _const,
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional,
    "propertyNames": _property_names,
    "pattern": _pattern,
    "minLength": _bound("minLength", lambda n, lim: n >= lim, "must not be empty", len, lambda v: isinstance(v, str)),
    "maxLength": _bound("maxLength", lambda n, lim: n <= lim, "is longer than {} characters", len,
                        lambda v: isinstance(v, str)),
    "minimum": _bound("minimum", lambda n, lim: n >= lim, "must be at least {}", lambda v: v, _is_number),
    "maximum": _bound("maximum", lambda n, lim: n <= lim, "must be at most {}", lambda v: v, _is_number),
    "minProperties": _bound("minProperties", lambda n, lim: n >= lim, "needs at least {} key(s)", len,
                            lambda v: isinstance(v, dict)),
    "maxProperties": _bound("maxProperties", lambda n, lim: n <= lim, "allows at most {} key(s)", len,
                            lambda v: isinstance(v, dict)),
    "items": _items,
    "uniqueItems": _unique,
    "anyOf": _any_of,
}


def schema_text() -> str:
    return Path(SCHEMA_PATH).read_text(encoding="utf-8")

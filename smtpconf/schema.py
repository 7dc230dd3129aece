"""Validate data against ``schemas/smtpconf.schema.json``.

The schema file is the contract (editors and check-jsonschema read it too). This module compiles the
JSON Schema 2020-12 keywords that file uses into small closures, because importing and running
python-jsonschema costs more than the rest of ``smtpconf lint`` together (it runs on every commit).
A keyword this compiler does not know is an error when the schema is compiled, so the schema can
never say more than is checked; ``tests/test_schema.py`` checks that both validators agree.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, NamedTuple

from smtpconf.findings import printable
from smtpconf.load import JsonPath
from smtpconf.resources import resource_path

SCHEMA_PATH = resource_path("schemas", "smtpconf.schema.json")

_ANNOTATIONS = {"$schema", "$id", "$comment", "$defs", "title", "description", "x-message", "default", "examples"}


class SchemaError(NamedTuple):
    path: JsonPath
    message: str
    at_key: bool = False  # the problem is the key itself (unknown or malformed), not its value


# A compiled check appends what is wrong to ``out``. Appending to one list (rather than yielding)
# keeps the validator cheap enough to run on every commit over files with 10,000 accounts.
Check = Callable[[Any, JsonPath, list[SchemaError]], None]


def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


@lru_cache(maxsize=1)
def _root_check() -> Check:
    schema = load_schema()
    return _Compiler(schema).compile(schema)


def validate(data: Any) -> list[SchemaError]:
    out: list[SchemaError] = []
    _root_check()(data, (), out)
    # dict.fromkeys: one report per problem, even when two keywords (minLength, pattern) share a message
    return list(dict.fromkeys(out))


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
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
_TYPE_WORD = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
              "object": "a mapping", "array": "a list", "null": "null"}


def _label(path: JsonPath) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return f"`{printable(part)}`: "
    return ""


class _Compiler:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}

    def compile(self, schema: dict[str, Any]) -> Check:
        unknown = set(schema) - _ANNOTATIONS - set(_KEYWORDS) - {"type"}
        if unknown:
            raise ValueError(f"schema keyword(s) not supported by smtpconf's validator: {sorted(unknown)}")
        checks = [_KEYWORDS[k](self, schema) for k in _KEYWORDS if k in schema]
        type_check = _type(schema) if "type" in schema else None

        def check(value: Any, path: JsonPath, out: list[SchemaError]) -> None:
            if type_check is not None:
                error = type_check(value, path)
                if error is not None:
                    out.append(error)
                    return  # other keywords only make sense once the type is right
            for sub in checks:
                sub(value, path, out)

        return check

    def ref(self, target: str) -> Check:
        if target not in self.refs:
            if not target.startswith("#/"):
                raise ValueError(f"only local $ref is supported: {target}")
            node: Any = self.root
            for part in target[2:].split("/"):
                node = node[part]
            # Compile lazily through a cell so recursive definitions terminate.
            cell: list[Check] = []
            self.refs[target] = lambda v, p, o: cell[0](v, p, o)
            cell.append(self.compile(node))
        return self.refs[target]


def _type(schema: dict[str, Any]) -> Callable[[Any, JsonPath], SchemaError | None]:
    names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    tests = [_TYPE_TEST[n] for n in names]
    words = " or ".join(_TYPE_WORD[n] for n in names)

    def check(value: Any, path: JsonPath) -> SchemaError | None:
        if any(test(value) for test in tests):
            return None
        return SchemaError(path, f"{_label(path)}expected {words}, got {type_name(value)}")

    return check


def _ref(c: _Compiler, s: dict[str, Any]) -> Check:
    return c.ref(s["$ref"])


def _enum(c: _Compiler, s: dict[str, Any]) -> Check:
    allowed = s["enum"]
    words = ", ".join(json.dumps(a) if not isinstance(a, str) else a for a in allowed)

    def check(value: Any, path: JsonPath, out: list[SchemaError]) -> None:
        if not any(value == a and type(value) is type(a) for a in allowed):
            shown = f"'{printable(value)}'" if isinstance(value, str) else type_name(value)
            out.append(SchemaError(path, f"{_label(path)}expected one of {words}; got {shown}"))

    return check


def _const(c: _Compiler, s: dict[str, Any]) -> Check:
    expected = s["const"]

    def check(value: Any, path: JsonPath, out: list[SchemaError]) -> None:
        if not (value == expected and type(value) is type(expected)):
            out.append(SchemaError(path, f"{_label(path)}must be {json.dumps(expected)}"))

    return check


def _properties(c: _Compiler, s: dict[str, Any]) -> Check:
    props = {name: c.compile(sub) for name, sub in s["properties"].items()}

    def check(value: Any, path: JsonPath, out: list[SchemaError]) -> None:
        if isinstance(value, dict):
            for name, sub in props.items():
                if name in value:
                    sub(value[name], path + (name,), out)

    return check


def _additional(c: _Compiler, s: dict[str, Any]) -> Check:
    known = set(s.get("properties", ()))
    extra = s["additionalProperties"]
    sub = c.compile(extra) if isinstance(extra, dict) else None

    def check(value: Any, path: JsonPath, out: list[SchemaError]) -> None:
        if not isinstance(value, dict):
            return
        for name, item in value.items():
            if name in known:
                continue
            if sub is not None:
                sub(item, path + (name,), out)
            elif extra is False:
                out.append(SchemaError(path + (name,), _unknown_key(name, known), at_key=True))

    return check


def _unknown_key(name: str, known: set[str]) -> str:
    import difflib  # only on this error path

    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"did you mean `{close[0]}`?" if close else f"expected one of: {', '.join(sorted(known))}"
    return f"unknown key `{printable(name)}`; {hint}"


def _property_names(c: _Compiler, s: dict[str, Any]) -> Check:
    sub = c.compile(s["propertyNames"])

    def check(value: Any, path: JsonPath, out: list[SchemaError]) -> None:
        if isinstance(value, dict):
            for name in value:
                errors: list[SchemaError] = []
                sub(name, path + (name,), errors)
                out.extend(SchemaError(path + (name,), f"key {e.message}", at_key=True) for e in errors)

    return check


def _required(c: _Compiler, s: dict[str, Any]) -> Check:
    names = s["required"]

    def check(value: Any, path: JsonPath, out: list[SchemaError]) -> None:
        if isinstance(value, dict):
            for name in names:
                if name not in value:
                    out.append(SchemaError(path, f"{_label(path)}missing required key `{name}`"))

    return check


def _pattern(c: _Compiler, s: dict[str, Any]) -> Check:
    regex = re.compile(s["pattern"])
    message = s.get("x-message", f"does not match {s['pattern']}")

    def check(value: Any, path: JsonPath, out: list[SchemaError]) -> None:
        if isinstance(value, str) and regex.search(value) is None:
            out.append(SchemaError(path, f"{_label(path)}{message}"))

    return check


def _bound(keyword: str, test: Callable[[Any, Any], bool], what: str, measure: Callable[[Any], Any],
           applies: Callable[[Any], bool]) -> Callable[[_Compiler, dict[str, Any]], Check]:
    def build(c: _Compiler, s: dict[str, Any]) -> Check:
        limit = s[keyword]
        message = s.get("x-message")

        def check(value: Any, path: JsonPath, out: list[SchemaError]) -> None:
            if applies(value) and not test(measure(value), limit):
                out.append(SchemaError(path, f"{_label(path)}{message or what.format(limit)}"))

        return check

    return build


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _items(c: _Compiler, s: dict[str, Any]) -> Check:
    sub = c.compile(s["items"])

    def check(value: Any, path: JsonPath, out: list[SchemaError]) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                sub(item, path + (index,), out)

    return check


def _unique(c: _Compiler, s: dict[str, Any]) -> Check:
    def check(value: Any, path: JsonPath, out: list[SchemaError]) -> None:
        if s["uniqueItems"] and isinstance(value, list):
            seen: list[Any] = []
            for index, item in enumerate(value):
                if item in seen:
                    out.append(SchemaError(path + (index,), f"{_label(path)}lists the same item twice"))
                seen.append(item)

    return check


def _any_of(c: _Compiler, s: dict[str, Any]) -> Check:
    branches = [(sub, c.compile(sub)) for sub in s["anyOf"]]
    message = s.get("x-message", "does not match any of the allowed forms")

    def check(value: Any, path: JsonPath, out: list[SchemaError]) -> None:
        results = []
        for _, sub in branches:
            errors: list[SchemaError] = []
            sub(value, path, errors)
            if not errors:
                return  # the common case: stop at the first branch that fits
            results.append(errors)
        # Report the branch meant for this kind of value (a mapping-shaped secret's own errors, say),
        # or the schema's own message when no branch or several fit.
        typed = [errors for (sub, _), errors in zip(branches, results)
                 if "type" in sub and _TYPE_TEST[sub["type"]](value)]
        if len(typed) == 1:
            out.extend(typed[0])
        else:
            out.append(SchemaError(path, f"{_label(path)}{message}"))

    return check


_KEYWORDS: dict[str, Callable[[_Compiler, dict[str, Any]], Check]] = {
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

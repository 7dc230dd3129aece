"""The schema file is the contract; smtpconf's own validator must agree with python-jsonschema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from smtpconf.schema import SCHEMA_PATH, load_schema, validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema()
REFERENCE = jsonschema.Draft202012Validator(SCHEMA)
EXAMPLE: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "smtpconf.yaml").read_text(encoding="utf-8"))


def test_schema_is_valid_2020_12_with_an_id() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"].endswith("smtpconf.schema.json")


def mutants() -> list[tuple[str, Any]]:
    """Valid and invalid variants of the example, one change each."""
    cases: list[tuple[str, Any]] = [("example", EXAMPLE)]

    def variant(name: str, change: Any) -> None:
        data = copy.deepcopy(EXAMPLE)
        change(data)
        cases.append((name, data))

    bad_values = {
        "host-newline": "smtp.example.com\nrelayhost = evil",
        "host-trailing-newline": "smtp.example.com\n",
        "host-space": "smtp example.com",
        "host-comma": "a.example.com,b.example.com",
        "host-idn": "smtp.例子.测试",
        "host-ipv6": "::1",
        "host-nul": "smtp\x00.example.com",
        "host-u2028": "smtp.example.com\u2028x",
        "host-option": "-oProxyCommand=x",
        "host-empty-label": "a..example.com",
        "host-dash-end": "a-.example.com",
        "host-bidi": "smtp.exa\u202emple.com",
        "host-idn-dash": "-ü.example.com",
        "host-bracketed": "[::1]",
    }
    for name, host in bad_values.items():
        variant(name, lambda d, h=host: d["relays"]["lab"].__setitem__("host", h))
    variant("port-string", lambda d: d["relays"]["lab"].__setitem__("port", "587"))
    variant("port-zero", lambda d: d["relays"]["lab"].__setitem__("port", 0))
    variant("port-bool", lambda d: d["relays"]["lab"].__setitem__("port", True))
    variant("security-ssl", lambda d: d["relays"]["lab"].__setitem__("security", "ssl"))
    variant("username-crlf", lambda d: d["relays"]["lab"].__setitem__("username", "u\r\nAUTH"))
    variant("username-comma", lambda d: d["relays"]["lab"].__setitem__("username", "a,b"))
    variant("secret-two-kinds", lambda d: d["relays"]["lab"].__setitem__("password", {"env": "A", "file": "/b"}))
    variant("secret-inline", lambda d: d["relays"]["lab"].__setitem__("password", "plain"))
    variant("secret-env-space", lambda d: d["relays"]["lab"].__setitem__("password", {"env": "A B"}))
    variant("unknown-key", lambda d: d["relays"]["lab"].__setitem__("hots", "x"))
    variant("relay-no-host", lambda d: d["relays"].__setitem__("x", {"port": 25}))
    variant("relay-name-newline", lambda d: d["relays"].__setitem__("a\nb", {"host": "x"}))
    variant("sender-key-newline", lambda d: d["fleet"]["web"]["sender_relays"].__setitem__("a@b.c\n@d", "ses"))
    variant("sender-key-space", lambda d: d["fleet"]["web"]["sender_relays"].__setitem__("a b@c.d", "ses"))
    variant("sender-domain", lambda d: d["fleet"]["web"]["sender_relays"].__setitem__("@example.org", "ses"))
    variant("email-newline", lambda d: d["accounts"][0].__setitem__("email", "a@example.com\nBcc: x"))
    variant("email-unicode", lambda d: d["accounts"][0].__setitem__("email", "小明@例子.中国"))
    variant("name-newline", lambda d: d["accounts"][0].__setitem__("name", "A\nB"))
    variant("name-nel", lambda d: d["accounts"][0].__setitem__("name", "A\x85B"))
    variant("name-xml-forbidden", lambda d: d["accounts"][0].__setitem__("name", "A\ufffeB"))
    variant("username-bidi", lambda d: d["relays"]["lab"].__setitem__("username", "ops\u202e"))
    variant("tls-level-bogus", lambda d: d["fleet"]["web"].__setitem__("tls_level", "strict"))
    variant("version-2", lambda d: d.__setitem__("version", 2))
    variant("hosts-duplicate", lambda d: d["fleet"]["web"].__setitem__("hosts", ["a", "a"]))
    variant("srv-string", lambda d: d["domains"]["example.com"].__setitem__("srv", "yes"))
    variant("account-no-endpoint", lambda d: d["accounts"].append({"email": "a@b.c"}))
    variant("root-list", lambda d: None)
    cases[-1] = ("root-list", [EXAMPLE])
    return cases


@pytest.mark.parametrize("name,data", mutants(), ids=[n for n, _ in mutants()])
def test_smtpconf_validator_agrees_with_python_jsonschema(name: str, data: Any) -> None:
    assert (validate(data) == []) == REFERENCE.is_valid(data), [e.message for e in validate(data)]


@pytest.mark.parametrize("value", ["smtp.example.com\nrelayhost = evil", "smtp.example.com\r", "a b", "a,b", "x\t"])
def test_injection_is_stopped_in_every_value_that_reaches_a_config(value: str) -> None:
    for path in (("relays", "lab", "host"), ("relays", "lab", "username"), ("fleet", "web", "rewrite_sender")):
        data = copy.deepcopy(EXAMPLE)
        data[path[0]][path[1]][path[2]] = value
        errors = validate(data)
        assert [e.path for e in errors] == [path], errors
        assert "\n" not in errors[0].message and "\r" not in errors[0].message


def test_errors_point_at_unknown_keys_and_suggest_the_known_one() -> None:
    data = copy.deepcopy(EXAMPLE)
    data["relays"]["lab"]["hots"] = "x"
    (error,) = validate(data)
    assert error.at_key and error.path == ("relays", "lab", "hots") and "did you mean `host`" in error.message


def test_the_cli_prints_the_schema_file(capsys: pytest.CaptureFixture[str]) -> None:
    from smtpconf.cli import main

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(Path(SCHEMA_PATH).read_text())

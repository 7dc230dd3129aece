from __future__ import annotations

from pathlib import Path

from smtpconf.load import MAX_BYTES, load


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "f.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_every_value_and_key_keeps_its_line_and_column(tmp_path: Path) -> None:
    doc, findings = load(write(tmp_path, "version: 1\nrelays:\n  ops:\n    host: smtp.example.com\n    port: 587\n"))
    assert findings == [] and doc is not None
    assert doc.data["relays"]["ops"]["port"] == 587
    assert doc.pos(("relays", "ops", "port")) == (5, 11)
    assert doc.key_pos(("relays", "ops")) == (3, 3)
    # A path the file does not have falls back to its nearest ancestor.
    assert doc.pos(("relays", "ops", "security")) == doc.pos(("relays", "ops"))


def test_keys_stay_the_text_the_user_wrote(tmp_path: Path) -> None:
    doc, _ = load(write(tmp_path, "version: 1\nrelays:\n  163: {provider: '163'}\n  no: {host: x}\n"))
    assert doc is not None and set(doc.data["relays"]) == {"163", "no"}


def test_duplicate_key_is_reported_at_the_second_key(tmp_path: Path) -> None:
    _, findings = load(write(tmp_path, "a: 1\nb: 2\na: 3\n"))
    assert [(f.line, f.col, f.rule) for f in findings] == [(3, 1, "duplicate-key")]
    assert "first at line 1" in findings[0].message


def test_alias_bomb_fails_fast_without_expanding(tmp_path: Path) -> None:
    text = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for prev, name in zip("abcdefgh", "bcdefghi"):
        text += f"{name}: &{name} [" + ", ".join(["*" + prev] * 9) + "]\n"
    doc, findings = load(write(tmp_path, text))
    assert doc is None and [f.rule for f in findings] == ["yaml-alias-limit"]


def test_a_few_aliases_are_fine_and_merge_keys_work(tmp_path: Path) -> None:
    text = "base: &base {port: 587, security: starttls}\nr1: {<<: *base, host: a}\nr2:\n  <<: *base\n  port: 2587\n"
    doc, findings = load(write(tmp_path, text))
    assert findings == [] and doc is not None
    assert doc.data["r1"] == {"host": "a", "port": 587, "security": "starttls"}
    assert doc.data["r2"]["port"] == 2587  # explicit keys win over merged ones


def test_yaml_11_octal_port_and_truthy_words_are_flagged(tmp_path: Path) -> None:
    doc, findings = load(write(tmp_path, "port: 0465\nsecurity: no\nsrv: true\nquoted: '0465'\n"))
    assert doc is not None and doc.data["port"] == 309 and doc.data["quoted"] == "0465"
    assert [(f.line, f.rule, f.level) for f in findings] == [(1, "yaml-octal", "error"), (2, "yaml-truthy", "warning")]


def test_non_utf8_binary_empty_and_oversized_files(tmp_path: Path) -> None:
    _, findings = load(write(tmp_path, b"a: 1\nb: caf\xe9\n"))
    assert [(f.line, f.col, f.rule) for f in findings] == [(2, 7, "yaml-syntax")]
    _, findings = load(write(tmp_path, b"a: 1\x00\x01"))
    assert "binary" in findings[0].message
    _, findings = load(write(tmp_path, "# only a comment\n"))
    assert findings[0].rule == "schema" and "empty" in findings[0].message
    path = write(tmp_path, "")
    with open(path, "wb") as handle:
        handle.truncate(MAX_BYTES + 1)
    _, findings = load(path)
    assert findings[0].rule == "yaml-syntax" and "MiB" in findings[0].message


def test_a_tab_is_named_in_the_syntax_error(tmp_path: Path) -> None:
    _, findings = load(write(tmp_path, "a:\n\tb: 1\n"))
    assert findings[0].rule == "yaml-syntax" and "tab" in findings[0].message and findings[0].line == 2


def test_unknown_tags_are_refused(tmp_path: Path) -> None:
    _, findings = load(write(tmp_path, "a: !!python/object:os.system x\n"))
    assert [f.rule for f in findings] == ["yaml-syntax"]


def test_ignore_comments_cover_their_line_and_a_lone_comment_the_next(tmp_path: Path) -> None:
    doc, _ = load(write(tmp_path, "a: 1  # smtpconf: ignore[rule-a, rule-b]\n# smtpconf: ignore[rule-c]\nb: 2\n"))
    assert doc is not None
    assert doc.ignores[1] == {"rule-a", "rule-b"} and doc.ignores[3] == {"rule-c"}


def test_a_merge_key_bomb_fails_fast(tmp_path: Path) -> None:
    text = "a0: &a0 {host: h.example.com}\n"
    for level in range(1, 9):
        text += f"a{level}: &a{level} {{<<: [" + ", ".join([f"*a{level - 1}"] * 10) + "]}\n"
    doc, findings = load(write(tmp_path, text))
    assert doc is None and [f.rule for f in findings] == ["yaml-alias-limit"]


def test_hundreds_of_uses_of_one_anchor_are_fine(tmp_path: Path) -> None:
    text = "pw: &pw {env: PW}\naccounts:\n" + "".join(f"  - {{email: u{i}@example.com, password: *pw}}\n"
                                                      for i in range(500))
    doc, findings = load(write(tmp_path, text))
    assert findings == [] and doc is not None and len(doc.data["accounts"]) == 500


def test_an_explicit_key_beside_a_merge_keeps_its_own_position(tmp_path: Path) -> None:
    text = "base: &base\n  port: 465\n  security: tls\nrelay:\n  <<: *base\n  security: starttls\n"
    doc, _ = load(write(tmp_path, text))
    assert doc is not None and doc.data["relay"] == {"port": 465, "security": "starttls"}
    assert doc.pos(("relay", "security")) == (6, 13)
    assert doc.pos(("relay", "port")) == (2, 9)  # merged: where the value is written


def test_explicit_tags_win_over_yaml_11_guessing(tmp_path: Path) -> None:
    doc, findings = load(write(tmp_path, "a: !!str no\nb: !!str 0465\nc: !!int '587'\n"))
    assert doc is not None and doc.data == {"a": "no", "b": "0465", "c": 587}
    assert findings == []


def test_huge_numbers_are_left_to_the_schema(tmp_path: Path) -> None:
    doc, findings = load(write(tmp_path, "a: " + "1" * 5000 + "\nb: 0" + "7" * 5000 + "\nc: 1" + ":1" * 3000 + "\n"))
    assert doc is not None and findings == []
    assert all(isinstance(v, str) for v in doc.data.values())


def test_a_key_cannot_forge_an_output_line(tmp_path: Path) -> None:
    from smtpconf.report.text import report
    from smtpconf.rules import all_rules
    from tests.helpers import lint_text

    result = lint_text(tmp_path, 'version: 1\nrelays:\n  "evil\\nf.yaml:1:1: error [fake] forged\\u001b[31m": {host: x}\n')
    text = report(result.findings, all_rules())
    assert len(text.splitlines()) == len(result.findings) >= 1
    assert "\x1b" not in text and "[fake]" in text.splitlines()[0]


def test_a_second_document_is_named(tmp_path: Path) -> None:
    _, findings = load(write(tmp_path, "version: 1\n---\nversion: 1\n"))
    assert [(f.line, f.rule) for f in findings] == [(2, "yaml-syntax")] and "second document" in findings[0].message

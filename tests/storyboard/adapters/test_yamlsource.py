"""The safe YAML loader: plain data, the line and column of every node and key, and hard limits."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from storyboard.adapters import yamlsource
from storyboard.adapters.yamlsource import load_yaml, read_text
from storyboard.errors import InputError

TEXT = textwrap.dedent("""\
    sakuga: 1
    title: Rooftop
    characters:
      hana:
        name: Hana
        refs: [a.png, b.png]
    scenes:
      - id: roof
        description: >
          folded text
        shots:
          - {id: a, frames: 17, prompt: x}
          - id: b
            prompt: "quoted"
    """)


@pytest.fixture
def doc(tmp_path: Path):
    path = tmp_path / "sb.yaml"
    path.write_text(TEXT)
    return load_yaml(path)


def test_loads_plain_data(doc):
    assert doc.data == {
        "sakuga": 1, "title": "Rooftop",
        "characters": {"hana": {"name": "Hana", "refs": ["a.png", "b.png"]}},
        "scenes": [{"id": "roof", "description": "folded text\n",
                    "shots": [{"id": "a", "frames": 17, "prompt": "x"}, {"id": "b", "prompt": "quoted"}]}],
    }


@pytest.mark.parametrize("path, where", [
    ((), (1, 1)),
    (("title",), (2, 8)),
    (("characters", "hana"), (5, 5)),
    (("characters", "hana", "name"), (5, 11)),
    (("characters", "hana", "refs", 1), (6, 19)),
    (("scenes", 0), (8, 5)),
    (("scenes", 0, "description"), (9, 18)),
    (("scenes", 0, "shots", 0), (12, 9)),
    (("scenes", 0, "shots", 0, "frames"), (12, 25)),
    (("scenes", 0, "shots", 1), (13, 9)),
    (("scenes", 0, "shots", 1, "prompt"), (14, 17)),
])
def test_every_value_knows_its_line_and_column(doc, path, where):
    assert doc.locations[path] == where
    assert doc.where(path) == where


@pytest.mark.parametrize("path, where", [
    (("title",), (2, 1)),
    (("characters", "hana"), (4, 3)),
    (("characters", "hana", "refs"), (6, 5)),
    (("scenes", 0, "shots", 0, "frames"), (12, 17)),
    (("scenes", 0, "shots", 1, "prompt"), (14, 9)),
])
def test_every_key_knows_its_line_and_column(doc, path, where):
    assert doc.key_locations[path] == where
    assert doc.where(path, key=True) == where


def test_where_falls_back_to_the_nearest_known_ancestor(doc):
    assert doc.where(("scenes", 0, "shots", 1, "duration")) == (13, 9)       # missing field → its shot
    assert doc.where(("scenes", 0, "shots", 1, "duration"), key=True) == (13, 9)
    assert doc.where(("nothing", "here")) == (1, 1)
    problem = doc.problem(("scenes", 0, "shots", 0, "frames"), "too long")
    assert str(problem) == f"{doc.file}:12:25: error: too long"


def test_core_tags_and_scalars_are_plain_values(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text('a: !!str 123\nb: !!int "7"\nc: !!float 1\nd: 2024-05-01\ne: null\nf: true\ng: 0x10\nh: 1.5e+3\n')
    assert load_yaml(path).data == {"a": "123", "b": 7, "c": 1.0, "d": "2024-05-01", "e": None, "f": True,
                                    "g": 16, "h": 1500.0}


@pytest.mark.parametrize("text, tag", [
    ('x: !!python/object/apply:os.system ["touch pwned"]\n', "!!python/object/apply:os.system"),
    ("x: !!python/name:os.system\n", "!!python/name:os.system"),
    ("x: !!python/object:pathlib.Path {}\n", "!!python/object:pathlib.Path"),
    ("x: !!binary aGVsbG8=\n", "!!binary"),
    ("x: !!set {a, b}\n", "!!set"),
    ("x: !!omap [{a: 1}]\n", "!!omap"),
    ("x: !local [1, 2]\n", "!local"),
    ("x: !<tag:example.com,2024:thing> 1\n", "tag:example.com,2024:thing"),
])
def test_only_plain_yaml_tags_are_accepted(tmp_path: Path, monkeypatch, text, tag):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        load_yaml(path)
    [problem] = e.value.problems
    assert (problem.line, problem.col) == (1, 4)
    assert f"tag '{tag}' is not allowed" in problem.message
    assert not (tmp_path / "pwned").exists()


def test_every_bad_tag_is_reported_at_once(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("a: !one 1\nb: [!two 2, ok]\nc: {d: !three 3}\n")
    with pytest.raises(InputError) as e:
        load_yaml(path)
    assert [(p.line, p.col) for p in e.value.problems] == [(1, 4), (2, 5), (3, 8)]


@pytest.mark.parametrize("text, message", [
    ("x: !!int twelve\n", "'twelve' is not a valid '!!int' value"),
    ('x: !!int ""\n', "'' is not a valid '!!int' value"),
    ('x: !!float ""\n', "'' is not a valid '!!float' value"),
    ("x: !!bool maybe\n", "'maybe' is not a valid '!!bool' value"),
])
def test_a_core_tag_on_bad_text_is_an_input_error(tmp_path: Path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        load_yaml(path)
    assert [(p.line, p.col, p.message) for p in e.value.problems] == [(1, 4, message)]


def test_keys_are_text_and_unique(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("1: one\ntrue: yes\n[a, b]: list\nx: 1\nx: 2\n")
    with pytest.raises(InputError) as e:
        load_yaml(path)
    assert [(p.line, p.col, p.message) for p in e.value.problems] == [
        (3, 1, "mapping keys must be plain text, not a list or mapping"),
        (5, 1, "duplicate key 'x' (first on line 4)"),
    ]


def test_number_keys_become_text(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("1: one\ntrue: yes\n")
    assert load_yaml(path).data == {"1": "one", "true": True}


def test_merge_keys_are_refused(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    with pytest.raises(InputError, match="merge keys"):
        load_yaml(path)


def test_aliases_to_plain_values_are_fine(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("a: &x {k: [1, 2]}\nb: *x\n")
    doc = load_yaml(path)
    assert doc.data == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]}}
    assert doc.data["a"] is not doc.data["b"]   # built separately: editing one never changes the other
    assert doc.locations[("b", "k", 1)] == (1, 15)   # an alias points at what it refers to


def test_alias_expansion_is_capped(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(yamlsource, "MAX_NODES", 50)
    path = tmp_path / "t.yaml"
    path.write_text("a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: &b [*a, *a, *a, *a, *a]\nc: [*b]\n")
    with pytest.raises(InputError, match="more than 50 values"):
        load_yaml(path)
    path.write_text("a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*a, *a, *a]\n")
    assert len(load_yaml(path).data["b"]) == 3


@pytest.mark.parametrize("text", ["a: &x [*x]\n", "a: &x {b: *x}\n", "a: &x\n  - b: [*x]\n"])
def test_recursive_alias_is_refused(tmp_path: Path, text):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match="recursive alias"):
        load_yaml(path)


@pytest.mark.parametrize("depth, ok", [(30, True), (65, False), (100_000, False)])
def test_nesting_is_capped_before_python_recursion_is(tmp_path: Path, depth, ok):
    path = tmp_path / "t.yaml"
    path.write_text("a: " + "[" * depth + "]" * depth + "\n")
    if ok:
        expected: list = []
        for _ in range(depth - 1):
            expected = [expected]
        assert load_yaml(path).data["a"] == expected
        return
    with pytest.raises(InputError, match="nesting is deeper than 64 levels"):
        load_yaml(path)


def test_deep_block_nesting_is_capped(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("".join("  " * i + f"k{i}:\n" for i in range(200)))
    with pytest.raises(InputError, match="nesting"):
        load_yaml(path)


def test_size_limit(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(yamlsource, "MAX_BYTES", 100)
    path = tmp_path / "t.yaml"
    path.write_text("a: " + "x" * 96 + "\n")          # exactly 100 bytes
    assert load_yaml(path).data == {"a": "x" * 96}
    path.write_text("a: " + "x" * 97 + "\n")
    with pytest.raises(InputError, match="file is 101 bytes; input files are limited to 100 bytes"):
        load_yaml(path)


@pytest.mark.parametrize("text, line, col, message", [
    ("a: [1, 2\n", 2, 1, "expected ',' or ']', but got '<stream end>' (parsing a flow sequence that starts on line 1)"),
    ("a: b: c\n", 1, 5, "mapping values are not allowed here"),
    ("a: 1\n b: 2\n", 2, 3, "mapping values are not allowed here"),
    ("a:\n\t- 1\n", 2, 1, "found character '\\t' that cannot start any token"),
    ("a: 1\n---\nb: 2\n", 2, 1, "expected a single document in the stream"),
    ("a: 'x\n", 2, 1, "found unexpected end of stream"),
    ("a: *nowhere\n", 1, 4, "found undefined alias 'nowhere'"),
    ("a: 1\nb: \x07\n", 2, 4, "character U+0007 is not allowed in a YAML file"),
])
def test_syntax_errors_are_one_line_with_the_right_position(tmp_path: Path, text, line, col, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        load_yaml(path)
    [problem] = e.value.problems
    assert (problem.line, problem.col) == (line, col), problem
    assert problem.message.startswith("YAML syntax: ")
    assert message in problem.message
    assert "\n" not in str(problem)


@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n", "---\n", "--- # start\n...\n"])
def test_empty_documents_are_refused(tmp_path: Path, text):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        load_yaml(path)
    assert [(p.line, p.col, p.message) for p in e.value.problems] == [(1, 1, "the file is empty")]


def test_an_explicit_null_document_is_data_for_validation_to_refuse(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("~\n")
    assert load_yaml(path).data is None


def test_read_text_strips_a_bom_and_tries_encodings_in_order(tmp_path: Path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffa: 1\n".encode())
    assert read_text(path) == "a: 1\n"
    path.write_bytes("提示".encode("gbk"))
    assert read_text(path, encodings=("utf-8", "gbk")) == "提示"
    with pytest.raises(InputError) as e:
        read_text(path)
    [problem] = e.value.problems
    assert (problem.line, problem.col) == (1, 1)
    assert "not valid utf-8 text (byte 0: 0xcc)" in problem.message


def test_read_text_refuses_what_is_not_a_readable_file(tmp_path: Path):
    with pytest.raises(InputError, match="cannot read file"):
        read_text(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="not a regular file"):
        read_text(tmp_path)

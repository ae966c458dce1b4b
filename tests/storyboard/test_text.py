"""Lines as editors count them, and the characters refused in input."""
import pytest

from storyboard.errors import MAX_PROBLEMS, InputError, Problem
from storyboard.model import Shot
from storyboard.text import LineTable, describe, split_lines, value_problem


@pytest.mark.parametrize("text, lines", [
    ("", []),
    ("a", ["a"]),
    ("a\n", ["a"]),
    ("a\n\n", ["a", ""]),
    ("a\r\nb\rc\nd", ["a", "b", "c", "d"]),
    ("a\r\r\nb", ["a", "", "b"]),
    ("a\fb\vc\x1cd\x85e\u2028f\u2029g", ["a\fb\vc\x1cd\x85e\u2028f\u2029g"]),   # none of these end a line
])
def test_only_lf_crlf_and_cr_end_a_line(text, lines):
    assert split_lines(text) == lines


def test_positions_count_lines_as_split_lines_does():
    text = "ab\r\ncd\ref\n\u2028gh"
    table = LineTable(text)
    assert [table.position(text.index(c)) for c in "acegh"] == [(1, 1), (2, 1), (3, 1), (4, 2), (4, 3)]


@pytest.mark.parametrize("ch, words", [
    ("\x1b", "U+001B (ESC, a control character)"),
    ("\x00", "U+0000 (NUL, a control character)"),
    ("\x9b", "U+009B (a control character)"),
    ("\u202e", "U+202E (RIGHT-TO-LEFT OVERRIDE, a bidirectional-text control"),
    ("\u2028", "U+2028 (LINE SEPARATOR, a line break to some programs but not to editors)"),
])
def test_refused_characters_are_named(ch, words):
    assert describe(ch) == words or describe(ch).startswith(words)


def test_text_values_refuse_control_characters_with_their_position_but_keep_tabs_and_newlines():
    assert value_problem("a\tb\nc — 夏夜 \u200e") is None
    assert value_problem("ab\x1b[31m") == "contains U+001B (ESC, a control character) at character 3: remove it"
    assert "U+000D" in value_problem("a\rb")
    with pytest.raises(ValueError, match=r"contains U\+0007 \(BEL"):
        Shot(id="a", frames=17, prompt="ding\a")


def test_past_the_problem_cap_one_line_counts_the_rest():
    problems = [Problem("f", n, 1, f"p{n}") for n in range(1, MAX_PROBLEMS + 51)]
    error = InputError(problems[::-1])
    assert error.problems[:MAX_PROBLEMS] == problems[:MAX_PROBLEMS]
    assert error.problems[-1] == Problem("f", MAX_PROBLEMS + 1, 1, "50 more problems not shown: fix the ones above first")
    assert InputError(problems[:3], omitted=1).problems[-1].message.startswith("1 more problem not shown")

"""Reading users' text files: size caps, UTF-8 first, GBK only where it cannot be Western mojibake."""
from pathlib import Path

import pytest

from storyboard.adapters.textfile import check_characters, decode, read_bytes
from storyboard.errors import InputError

BOTH = ("utf-8", "gbk")


def problem(raw: bytes, encodings=BOTH) -> tuple[int, int, str]:
    with pytest.raises(InputError) as e:
        decode(Path("p.txt"), raw, encodings)
    [p] = e.value.problems
    return p.line, p.col, p.message


@pytest.mark.parametrize("text", [
    "夏夜的城市上空绽放着烟花。aesthetic score: 5.5@@a.png\n",
    "少女Hana在天台上@@a.png\n",           # Latin letters next to hanzi
    "中@@a.png\n",                          # a lone hanzi whose bytes read as two Latin letters
    "朱镕基\r\n第二行@@a.png",             # an extension character whose second byte is a letter
])
def test_chinese_gbk_text_reads_as_gbk(text):
    assert decode(Path("p.txt"), text.encode("gbk"), BOTH) == text


def test_utf8_comes_first_and_its_byte_order_mark_is_dropped():
    assert decode(Path("p.txt"), "\ufeffPokémon 夏夜".encode(), BOTH) == "Pokémon 夏夜"


@pytest.mark.parametrize("text, col, western, gbk", [
    ("A wild Pokémon@@a.png\n", 11, "'Pokémon'", "'Pok閙on'"),
    ("x\nO coração@@a.png\n", 7, "'coração'", "'cora玢o'"),
    ("it’s@@a.png\n", 3, "'it’s'", "'it抯'"),
])
def test_western_text_that_is_also_valid_gbk_is_refused_with_both_readings(text, col, western, gbk):
    line = text[: text.index(western.strip("'")[2])].count("\n") + 1
    got_line, got_col, message = problem(text.encode("cp1252"))
    assert (got_line, got_col) == (line, col)
    assert f"{western} as Western European text (cp1252) but {gbk} as GBK" in message
    assert "save the file as UTF-8" in message and "tried utf-8, gbk" in message


def test_bytes_valid_in_neither_are_placed_at_their_line_and_column():
    assert problem(b"ok\r\nab\xff\xffc") == (2, 3, "file is not valid utf-8 or gbk text (byte 6: 0xff); save it as UTF-8")
    assert problem("caf\xe9\n".encode("latin-1"), ("utf-8",))[:2] == (1, 4)


def test_utf16_is_named():
    assert "UTF-16" in problem("hi".encode("utf-16"))[2]


def test_read_bytes_reads_no_more_than_the_limit(tmp_path: Path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 101)
    with pytest.raises(InputError, match="file is 101 bytes; input files are limited to 100 bytes"):
        read_bytes(path, limit=100)
    assert read_bytes(path, limit=101) == b"x" * 101


def test_refused_characters_are_all_reported_at_their_positions_then_counted():
    with pytest.raises(InputError) as e:
        check_characters(Path("s.pv"), "ok\n\x1ba\r\n" + "\0" * 300, "a PV script")
    problems = e.value.problems
    assert (problems[0].line, problems[0].col) == (2, 1)
    assert problems[0].message == "character U+001B is not allowed in a PV script (ESC, a control character)"
    assert (problems[1].line, problems[1].col) == (3, 1) and len(problems) == 101
    assert problems[-1].message.startswith("201 more problems not shown")

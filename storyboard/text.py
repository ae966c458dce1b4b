"""Text as an editor shows it: where lines end, and the characters sakuga refuses in its input.

Only `\\n`, `\\r\\n` and `\\r` end a line, in every format. The other characters that Python's
`str.splitlines` or YAML 1.1 take for line breaks (form feed, U+0085, U+2028, U+2029) are not line
breaks here: most editors show them inside a line, so counting them would put errors on lines the
user cannot find. They are refused, like every control character, at their own line and column.
"""
from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterator

LINE_BREAK = re.compile(r"\r\n?|\n")

# Refused in every input file and in every text value: C0 controls except tab, line feed and carriage
# return; DEL; the C1 controls (U+0085 among them); the Unicode line and paragraph separators; the
# bidirectional embeddings, overrides and isolates (they make text display in another order than it is
# stored, so a title can show one thing and say another); lone surrogates (from YAML `\ud800` escapes)
# and the two noncharacters U+FFFE and U+FFFF.
# Tab stays allowed; carriage return and line feed end lines in files but are refused inside a value
# where only an escape can put them (`\r` moves the terminal's cursor back over what was printed).
# File names take no line break at all.
_REFUSED = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff"
REFUSED = re.compile(f"[{_REFUSED}]")
REFUSED_IN_VALUES = re.compile(f"[\r{_REFUSED}]")
REFUSED_IN_PATHS = re.compile(f"[\r\n{_REFUSED}]")

_NAMES = {"\n": "LINE FEED", "\0": "NUL", "\a": "BEL", "\b": "BACKSPACE", "\v": "LINE TABULATION", "\f": "FORM FEED",
          "\r": "CARRIAGE RETURN", "\x1b": "ESC", "\x7f": "DEL", "\x85": "NEXT LINE"}


def split_lines(text: str) -> list[str]:
    """The lines of `text`, ended by `\\n`, `\\r\\n` or `\\r` only (a final line break ends the last line)."""
    lines = LINE_BREAK.split(text)
    if lines[-1] == "":
        lines.pop()
    return lines


class LineTable:
    """1-based (line, column) of character offsets into one text, lines ended as `split_lines` ends them."""

    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in LINE_BREAK.finditer(text)]

    def position(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, index) - 1
        return line + 1, index - self.starts[line] + 1


def about(ch: str) -> str:
    """What a refused character is, e.g. "ESC, a control character"."""
    cp = ord(ch)
    name = _NAMES.get(ch) or unicodedata.name(ch, "")
    if ch in "\u2028\u2029":
        kind = "a line break to some programs but not to editors"
    elif 0x202A <= cp <= 0x202E or 0x2066 <= cp <= 0x2069:
        kind = "a bidirectional-text control, which makes text display in another order than it reads"
    elif 0xD800 <= cp <= 0xDFFF:
        kind = "half of a UTF-16 surrogate pair, not a character"
    elif cp in (0xFFFE, 0xFFFF):
        kind = "not a character"
    else:
        kind = "a control character"
    return f"{name}, {kind}" if name else kind


def describe(ch: str) -> str:
    """A refused character with its code, e.g. "U+001B (ESC, a control character)"."""
    return f"U+{ord(ch):04X} ({about(ch)})"


def refused(text: str) -> Iterator[re.Match]:
    """Every refused character of a whole input file."""
    return REFUSED.finditer(text)


def value_problem(value: str) -> str | None:
    """What is wrong with a text value's characters (for the model's validators), or None."""
    m = REFUSED_IN_VALUES.search(value)
    if m is None:
        return None
    return f"contains {describe(m.group())} at character {m.start() + 1}: remove it"

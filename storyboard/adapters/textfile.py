"""Reading a user's text file: a size cap, a decoding that never guesses, and the characters refused.

Every input format goes through here. A file is read up to `MAX_BYTES` (never trusting what the file
system says its size is), decoded as UTF-8 (a byte-order mark is dropped) or, where a format allows
it, as GBK, but never into silent mojibake: Western European text saved as cp1252 is often valid GBK
too (`Pokémon` reads as `Pok閙on`), so a GBK reading is refused when the bytes look like that
(`docs/formats.md`, "Encodings"). Refused characters (`storyboard/text.py`) are reported at their line
and column before a format's parser sees the text.
"""
from __future__ import annotations

import os
import re
import stat
import unicodedata
from pathlib import Path

from ..errors import MAX_PROBLEMS, InputError, Problem
from ..text import LineTable, about, refused

MAX_BYTES = 2 * 1024 * 1024
_BYTE_LINE_BREAK = re.compile(rb"\r\n?|\n")
_HIGH_RUN = re.compile(rb"[\x80-\xff]+")
_WESTERN_MARKS = set("\u2018\u2019\u201c\u201d\u2013\u2014\u2026")   # cp1252's curly quotes, dashes, ellipsis


def _too_large(path: Path, size: int, limit: int) -> InputError:
    return InputError.single(path, f"file is {size:,} bytes; input files are limited to {limit:,} bytes "
                                   f"({limit // 2**20} MiB)")


def read_bytes(path: Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; anything else is an input error."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise InputError.single(path, "not a regular file")
        if size > limit:
            raise _too_large(path, size, limit)
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):   # swapped after the check above
                raise InputError.single(path, "not a regular file")
            raw = f.read(limit + 1)
    except OSError as e:
        raise InputError.single(path, f"cannot read file: {e.strerror or e}") from None
    if len(raw) > limit:  # grew between stat and read
        raise _too_large(path, len(raw), limit)
    return raw


def read_text(path: Path, *, encodings: tuple[str, ...] = ("utf-8",), limit: int = MAX_BYTES) -> str:
    """Read a user's text file with a size cap; what does not decode becomes an input error."""
    return decode(path, read_bytes(path, limit), encodings)


def _byte_position(raw: bytes, index: int, encoding: str) -> tuple[int, int]:
    """1-based line and column (in characters of `encoding`) of byte `index`."""
    starts = [0] + [m.end() for m in _BYTE_LINE_BREAK.finditer(raw, 0, index)]
    return len(starts), len(raw[starts[-1]:index].decode(encoding, "replace")) + 1


def decode(path: Path, raw: bytes, encodings: tuple[str, ...]) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError.single(path, "file is UTF-16 text (it starts with a UTF-16 byte-order mark); "
                                      "save it as UTF-8")
    for enc in encodings:
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError as e:
            last, last_enc = e, enc
            continue
        if enc != "utf-8" and (word := _western_word(raw)) is not None:
            raise _ambiguous(path, raw, word, encodings[: encodings.index(enc) + 1], enc)
        return text[1:] if text.startswith("\ufeff") else text
    line, col = _byte_position(raw, last.start, last_enc)
    raise InputError.single(
        path, f"file is not valid {' or '.join(encodings)} text (byte {last.start}: 0x{raw[last.start]:02x}); "
              f"save it as UTF-8", line, col)


def _western_word(raw: bytes) -> tuple[int, int] | None:
    """Where the first non-ASCII bytes are (as a word's start and end) when every run of non-ASCII bytes
    in `raw` reads in cp1252 as one or two accented letters (or curly quotes, dashes) inside a word of
    Latin letters, as in `Pokémon`, `coração`, `it’s`; None when some run does not (GBK text: hanzi come
    in pairs of bytes, mostly in longer runs, and rarely glued to Latin letters on both readings)."""
    first = None
    for m in _HIGH_RUN.finditer(raw):
        if m.end() - m.start() > 2:
            return None
        try:
            chars = m.group().decode("cp1252")
        except UnicodeDecodeError:   # bytes cp1252 leaves undefined: not Western text
            return None
        if not all(unicodedata.category(c).startswith("L") or c in _WESTERN_MARKS for c in chars):
            return None
        if not (raw[m.start() - 1:m.start()].isalpha() or raw[m.end():m.end() + 1].isalpha()):
            return None
        if first is None:
            first = m.start(), m.end()
    return first


def _ambiguous(path: Path, raw: bytes, word: tuple[int, int], tried: tuple[str, ...], enc: str) -> InputError:
    """The file reads as GBK and as cp1252: name the word, both readings and what to do."""
    start, end = word   # widened to the word around it: Latin letters and non-ASCII bytes
    while start > 0 and start > word[0] - 30 and _in_word(raw[start - 1]):
        start -= 1
    while end < len(raw) and end < word[1] + 30 and _in_word(raw[end]):
        end += 1
    western, eastern = raw[start:end].decode("cp1252", "replace"), raw[start:end].decode(enc, "replace")
    line, col = _byte_position(raw, word[0], "latin-1")   # one character per byte, as in cp1252
    return InputError.single(
        path, f"file is not UTF-8, and its bytes read two ways: {western!r} as Western European text (cp1252) "
              f"but {eastern!r} as {enc.upper()}; sakuga will not guess (tried {', '.join(tried)}): "
              f"save the file as UTF-8", line, col)


def _in_word(byte: int) -> bool:
    return byte >= 0x80 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def check_characters(path: Path, text: str, what: str, prefix: str = "") -> None:
    """Refuse `text` (all of file `path`, a `what` such as "a YAML file") if it holds a refused
    character, naming each (up to `MAX_PROBLEMS`) at its line and column."""
    problems: list[Problem] = []
    omitted = 0
    table = None
    for m in refused(text):
        if len(problems) >= MAX_PROBLEMS:
            omitted += 1
            continue
        table = table or LineTable(text)
        line, col = table.position(m.start())
        ch = m.group()
        problems.append(Problem(str(path), line, col,
                                f"{prefix}character U+{ord(ch):04X} is not allowed in {what} ({about(ch)})"))
    if problems:
        raise InputError(problems, omitted)

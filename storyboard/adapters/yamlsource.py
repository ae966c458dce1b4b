"""Safe YAML → `Document`, remembering the line and column of every node.

PyYAML composes the node graph (aliases stay shared nodes, so composing is cheap); we construct plain
data ourselves so that only the core tags are accepted and alias expansion is capped: a billion-laughs
file fails after `MAX_NODES` nodes instead of eating memory, a self-referencing alias is refused, and
nesting deeper than `MAX_DEPTH` is refused while composing (before Python's recursion limit is near).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from ..document import Document, PathKey
from ..errors import InputError, Problem

MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

_T = "tag:yaml.org,2002:"
_SCALARS = {
    _T + "str": SafeConstructor.construct_yaml_str,
    _T + "int": SafeConstructor.construct_yaml_int,
    _T + "float": SafeConstructor.construct_yaml_float,
    _T + "bool": SafeConstructor.construct_yaml_bool,
    _T + "null": SafeConstructor.construct_yaml_null,
    _T + "timestamp": SafeConstructor.construct_yaml_str,  # dates stay text: no field wants a date
}


def _too_large(path: Path, size: int) -> InputError:
    return InputError.single(path, f"file is {size:,} bytes; input files are limited to {MAX_BYTES:,} bytes "
                                   f"({MAX_BYTES // 2**20} MiB)")


def read_text(path: Path, *, encodings: tuple[str, ...] = ("utf-8",)) -> str:
    """Read a user's text file with a size cap; decoding errors become input errors."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise InputError.single(path, "not a regular file")
        if size > MAX_BYTES:
            raise _too_large(path, size)
        raw = path.read_bytes()
    except OSError as e:
        raise InputError.single(path, f"cannot read file: {e.strerror or e}") from None
    if len(raw) > MAX_BYTES:  # grew between stat and read
        raise _too_large(path, len(raw))
    for enc in encodings:
        try:
            text = raw.decode(enc)
            return text[1:] if text.startswith("\ufeff") else text
        except UnicodeDecodeError as e:
            last = e
    line = raw[: last.start].count(b"\n") + 1
    col = last.start - (raw.rfind(b"\n", 0, last.start) + 1) + 1
    raise InputError.single(
        path, f"file is not valid {' or '.join(encodings)} text (byte {last.start}: 0x{raw[last.start]:02x}); "
              f"save it as UTF-8", line, col)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, composing nodes only, with a cap on nesting (its composer recurses)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nesting is deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _syntax_message(e: yaml.MarkedYAMLError) -> str:
    """PyYAML's context and problem as one phrase, e.g. "expected ',' or '}', but got '<stream end>'
    (parsing a flow mapping that starts on line 3)"."""
    problem = (e.problem or "invalid YAML").strip()
    if "cannot start any token" in problem and ("'@'" in problem or "'`'" in problem):
        problem += '; put the text in quotes, e.g. prompt: "@hana waves"'
    if e.context and e.context_mark and e.problem_mark and e.context_mark.line != e.problem_mark.line:
        context = e.context.strip().removeprefix("while ")
        return f"{problem} ({context} that starts on line {e.context_mark.line + 1})"
    if e.context:
        return f"{e.context.strip()}: {problem}"
    return problem


def _oneline(message: str) -> str:
    return " ".join(message.split())


def load_yaml(path: Path | str, text: str | None = None) -> Document:
    """Parse YAML text (read from `path` unless given) into a Document; raises InputError."""
    path = Path(path)
    if text is None:
        text = read_text(path)
    loader = None
    try:
        loader = _Loader(text)  # checks every character first
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise InputError.single(path, _oneline(f"YAML syntax: {_syntax_message(e)}"), line, col) from None
    except yaml.reader.ReaderError as e:
        line, col = _position(text, e.position)
        what = f"character U+{e.character:04X}" if isinstance(e.character, int) else "this character"
        raise InputError.single(path, f"YAML syntax: {what} is not allowed in a YAML file", line, col) from None
    except yaml.YAMLError as e:
        raise InputError.single(path, _oneline(f"YAML syntax: {e}")) from None
    finally:
        if loader is not None:
            loader.dispose()
    doc = Document(file=path, data=None)
    if root is None or (root.tag == _T + "null" and root.value == ""):   # nothing, or only "---"
        raise InputError.single(path, "the file is empty")
    builder = _Builder(doc)
    doc.data = builder.build(root, ())
    if builder.problems:
        raise InputError(builder.problems)
    return doc


class _Builder:
    def __init__(self, doc: Document):
        self.doc = doc
        self.nodes = 0
        self.problems: list[Problem] = []
        self.constructor = SafeConstructor()

    def _at(self, node: yaml.Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def _fail(self, node: yaml.Node, message: str) -> None:
        line, col = self._at(node)
        self.problems.append(Problem(str(self.doc.file), line, col, message))

    def _bad_tag(self, node: yaml.Node) -> None:
        self._fail(node, f"tag {_tag(node.tag)} is not allowed (only plain YAML values: text, numbers, "
                         f"true/false, lists and mappings)")

    def build(self, node: yaml.Node, path: PathKey, depth: int = 0, parents: tuple[int, ...] = ()) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self._fail(node, f"document expands to more than {MAX_NODES} values (alias bomb?)")
            raise InputError(self.problems)
        if id(node) in parents:
            self._fail(node, "an alias refers to the node that contains it (recursive alias)")
            raise InputError(self.problems)
        if depth > MAX_DEPTH:
            self._fail(node, f"nesting is deeper than {MAX_DEPTH} levels")
            raise InputError(self.problems)
        self.doc.locations.setdefault(path, self._at(node))
        if isinstance(node, yaml.ScalarNode):
            make = _SCALARS.get(node.tag)
            if make is None:
                self._bad_tag(node)
                return None
            try:
                return make(self.constructor, node)
            except Exception:  # noqa: BLE001  PyYAML's constructors raise KeyError, IndexError... on bad text
                text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
                self._fail(node, f"{text!r} is not a valid {_tag(node.tag)} value")
                return None
        parents = parents + (id(node),)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _T + "seq":
                self._bad_tag(node)
                return None
            return [self.build(item, path + (i,), depth + 1, parents) for i, item in enumerate(node.value)]
        if node.tag != _T + "map":
            self._bad_tag(node)
            return None
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _T + "merge":
                self._fail(key_node, "merge keys (<<) are not supported: write the fields out")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._fail(key_node, "mapping keys must be plain text, not a list or mapping")
                continue
            if key_node.tag not in _SCALARS:
                self._bad_tag(key_node)
                continue
            key = str(self.constructor.construct_scalar(key_node))
            if key in out:
                line, _ = self.doc.key_locations[path + (key,)]
                self._fail(key_node, f"duplicate key {key!r} (first on line {line})")
                continue
            self.doc.key_locations[path + (key,)] = self._at(key_node)
            out[key] = self.build(value_node, path + (key,), depth + 1, parents)
        return out


def _tag(tag: str) -> str:
    """A tag as written: 'tag:yaml.org,2002:python/name' → '!!python/name'."""
    return repr("!!" + tag.removeprefix(_T) if tag.startswith(_T) else tag)

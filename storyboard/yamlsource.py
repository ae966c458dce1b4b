"""Safe YAML → `Document`, remembering the line and column of every node.

PyYAML composes the node graph (aliases stay shared nodes, so composing is cheap); we construct plain
data ourselves so that only the core tags are accepted and alias expansion is capped: a billion-laughs
file fails after `MAX_NODES` nodes instead of eating memory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from .document import Document, PathKey
from .errors import InputError, Problem

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


def read_text(path: Path, *, encodings: tuple[str, ...] = ("utf-8",)) -> str:
    """Read a user's text file with a size cap; decoding errors become input errors."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise InputError.single(path, f"cannot read file: {e.strerror or e}") from None
    if not path.is_file():
        raise InputError.single(path, "not a regular file")
    if size > MAX_BYTES:
        raise InputError.single(path, f"file is {size} bytes; the limit is {MAX_BYTES}")
    raw = path.read_bytes()
    for enc in encodings:
        try:
            text = raw.decode(enc)
            return text[1:] if text.startswith("\ufeff") else text
        except UnicodeDecodeError as e:
            last = e
    line = raw[: last.start].count(b"\n") + 1
    raise InputError.single(path, f"file is not valid {' or '.join(encodings)} text (byte {last.start})", line)


def load_yaml(path: Path | str, text: str | None = None) -> Document:
    path = Path(path)
    if text is None:
        text = read_text(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(m for m in (e.context, e.problem) if m) or "invalid YAML"
        raise InputError.single(path, f"YAML syntax: {message}", line, col) from None
    except yaml.YAMLError as e:
        raise InputError.single(path, f"YAML syntax: {e}") from None
    doc = Document(file=path, data=None)
    if root is None:
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

    def build(self, node: yaml.Node, path: PathKey, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self._fail(node, f"document expands to more than {MAX_NODES} nodes (alias bomb?)")
            raise InputError(self.problems)
        if depth > MAX_DEPTH:
            self._fail(node, f"nesting deeper than {MAX_DEPTH} levels (recursive alias?)")
            raise InputError(self.problems)
        self.doc.locations.setdefault(path, self._at(node))
        if isinstance(node, yaml.ScalarNode):
            make = _SCALARS.get(node.tag)
            if make is None:
                self._fail(node, f"tag {node.tag!r} is not allowed (only plain YAML values)")
                return None
            try:
                return make(self.constructor, node)
            except (yaml.YAMLError, ValueError) as e:
                self._fail(node, f"bad value: {e}")
                return None
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _T + "seq":
                self._fail(node, f"tag {node.tag!r} is not allowed (only plain YAML values)")
                return None
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        if node.tag != _T + "map":
            self._fail(node, f"tag {node.tag!r} is not allowed (only plain YAML values)")
            return None
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _T + "merge":
                self._fail(key_node, "merge keys (<<) are not supported")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._fail(key_node, "mapping keys must be plain text")
                continue
            key = str(self.constructor.construct_scalar(key_node))
            if key in out:
                self._fail(key_node, f"duplicate key {key!r}")
                continue
            self.doc.key_locations[path + (key,)] = self._at(key_node)
            out[key] = self.build(value_node, path + (key,), depth + 1)
        return out

"""Safe YAML → `Document`, remembering the line and column of every node.

PyYAML composes the node graph (aliases stay shared nodes, so composing is cheap); we construct plain
data ourselves so that only the core tags are accepted and alias expansion is capped: a billion-laughs
file fails after `MAX_NODES` nodes instead of eating memory, and a self-referencing alias is refused.
The composer itself counts the nodes it makes and stops at `MAX_NODES` too, and refuses nesting deeper
than `MAX_DEPTH` (before Python's recursion limit is near), so no file costs more than that to read.
Lines and columns are counted as an editor counts them (`storyboard/text.py`): characters YAML 1.1
takes for line breaks but editors do not (U+0085, U+2028, U+2029) are refused before parsing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from ..document import Document, PathKey
from ..errors import InputError, Problem
from ..text import LineTable
from .textfile import MAX_BYTES, check_characters, read_text

try:
    from yaml.cyaml import CParser
except ImportError:   # PyYAML built without libyaml: the pure-Python parser does it all
    CParser = None

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "load_yaml", "read_text"]

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


class _Limit(yaml.YAMLError):
    """A file past one of the loader's limits, at the node where it crossed it (not a syntax error)."""

    def __init__(self, message: str, mark: yaml.Mark):
        super().__init__(message)
        self.message, self.mark = message, mark


class _Composing(Composer, Resolver):
    """PyYAML's composer with caps on nesting (it recurses) and on the number of nodes it makes (aliases
    are not new nodes; a mapping key counts with its value), under either parser below."""

    def _start_composing(self) -> None:
        Composer.__init__(self)
        Resolver.__init__(self)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent, index):
        is_key = isinstance(parent, yaml.MappingNode) and index is None
        if not is_key and not self.check_event(yaml.AliasEvent):
            self._nodes += 1
            if self._nodes > MAX_NODES:
                raise _Limit(f"the file holds more than {MAX_NODES:,} values; split it into several storyboards",
                             self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nesting is deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Loader(_Composing, Reader, Scanner, Parser):
    """The pure-Python parser: what every syntax error is worded and placed by."""

    def __init__(self, stream: str):
        Reader.__init__(self, stream)   # checks every character first
        Scanner.__init__(self)
        Parser.__init__(self)
        self._start_composing()


_Fast = None
if CParser is not None:
    class _Fast(_Composing, CParser):
        """libyaml's parser (the same events and marks, several times faster) under the same composer;
        a file it finds wrong is parsed again by `_Loader`, so messages never depend on which ran."""

        def __init__(self, stream: str):
            CParser.__init__(self, stream)
            self._start_composing()


def _syntax_message(e: yaml.MarkedYAMLError, lines: LineTable) -> str:
    """PyYAML's context and problem as one phrase, e.g. "expected ',' or '}', but got '<stream end>'
    (parsing a flow mapping that starts on line 3)"."""
    problem = (e.problem or "invalid YAML").strip()
    if "cannot start any token" in problem and ("'@'" in problem or "'`'" in problem):
        problem += '; put the text in quotes, e.g. prompt: "@hana waves"'
    if e.context and e.context_mark and e.problem_mark:
        context_line = lines.position(e.context_mark.index)[0]
        if context_line != lines.position(e.problem_mark.index)[0]:
            context = e.context.strip().removeprefix("while ")
            return f"{problem} ({context} that starts on line {context_line})"
    if e.context:
        return f"{e.context.strip()}: {problem}"
    return problem


def _oneline(message: str) -> str:
    return " ".join(message.split())


def _compose(path: Path, text: str, lines: LineTable) -> yaml.Node | None:
    """The node graph of `text`; syntax errors and limits become input errors at their position."""
    if _Fast is not None:
        try:
            return _run(_Fast, text)
        except _Limit as e:
            raise InputError.single(path, e.message, *lines.position(e.mark.index)) from None
        except yaml.YAMLError:
            pass   # worded and placed by the pure-Python parser, below
    try:
        return _run(_Loader, text)
    except _Limit as e:
        raise InputError.single(path, e.message, *lines.position(e.mark.index)) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = lines.position(mark.index) if mark else (1, 1)
        raise InputError.single(path, _oneline(f"YAML syntax: {_syntax_message(e, lines)}"), line, col) from None
    except yaml.reader.ReaderError as e:
        what = f"character U+{e.character:04X}" if isinstance(e.character, int) else "this character"
        raise InputError.single(path, f"YAML syntax: {what} is not allowed in a YAML file",
                                *lines.position(e.position)) from None
    except yaml.YAMLError as e:
        raise InputError.single(path, _oneline(f"YAML syntax: {e}")) from None


def _run(loader_type, text: str) -> yaml.Node | None:
    loader = loader_type(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def load_yaml(path: Path | str, text: str | None = None) -> Document:
    """Parse YAML text (read from `path` unless given) into a Document; raises InputError."""
    path = Path(path)
    if text is None:
        text = read_text(path, limit=MAX_BYTES)
    check_characters(path, text, "a YAML file", prefix="YAML syntax: ")
    lines = LineTable(text)
    root = _compose(path, text, lines)
    doc = Document(file=path, data=None)
    if root is None or (root.tag == _T + "null" and root.value == ""):   # nothing, or only "---"
        raise InputError.single(path, "the file is empty")
    builder = _Builder(doc, lines)
    doc.data = builder.build(root, ())
    if builder.problems:
        raise InputError(builder.problems)
    return doc


class _Builder:
    def __init__(self, doc: Document, lines: LineTable):
        self.doc, self.lines = doc, lines
        self.nodes = 0
        self.problems: list[Problem] = []
        self.constructor = SafeConstructor()

    def _at(self, node: yaml.Node) -> tuple[int, int]:
        return self.lines.position(node.start_mark.index)

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

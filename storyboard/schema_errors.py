"""Pydantic's schema errors in an artist's words, at the line and column they come from.

`problems_from_validation` turns one `ValidationError` over a `Document`'s data into `Problem`s: unknown
fields with a "did you mean", missing fields, wrong kinds of value, ids, limits. Used for storyboards,
model presets and scheduling workloads alike.
"""
from __future__ import annotations

import difflib
import math
import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .document import Document
from .errors import Problem
from .model import Id


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model that sits at `loc` (used for 'did you mean' on unknown keys)."""
    ann: Any = model
    for part in loc:
        ann = _unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            f = ann.model_fields.get(part) if isinstance(part, str) else None
            if f is None:
                return []
            ann = f.annotation
        elif typing.get_origin(ann) in (list, tuple):
            ann = typing.get_args(ann)[0]
        elif typing.get_origin(ann) is dict:
            ann = typing.get_args(ann)[1]
        else:
            return []
    ann = _unwrap(ann)
    return list(ann.model_fields) if isinstance(ann, type) and issubclass(ann, BaseModel) else []


def _unwrap(ann: Any) -> Any:
    """Strip Annotated and Optional; a union with exactly one model in it becomes that model."""
    while True:
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            ann = typing.get_args(ann)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [_unwrap(a) for a in typing.get_args(ann)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            return models[0] if len(models) == 1 else ann
        else:
            return ann


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    """What a YAML value is, in an artist's words."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"the number {value}"
    if value is None:
        return "an empty value"
    return f"text {_short(value)}"


def _clean_loc(data: Any, loc: tuple, keep_last: bool) -> tuple:
    """Pydantic's error location as a path through the data: union tags and `[key]` markers dropped."""
    out: list = []
    for i, part in enumerate(loc):
        if isinstance(data, dict) and part in data or isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif keep_last and i == len(loc) - 1:
            pass
        else:
            continue
        out.append(part)
    return tuple(out)


_QUOTE_HINT = " (put it in quotes if it is meant as text)"
_ID_RULE = "ids use lowercase letters, digits, `-` and `_`, and start with a letter or digit"
_EXPECTED = {
    "model_type": "a mapping (`key: value` lines)",
    "dict_type": "a mapping (`key: value` lines)",
    "model_attributes_type": "a mapping (`key: value` lines)",
    "list_type": "a list (`[a, b]` or `- ` lines)",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "`true` or `false`",
    "bool_parsing": "`true` or `false`",
}


def _schema_message(err: dict, loc: tuple, name: str) -> tuple[tuple, str]:
    """(where, message) for one pydantic error that is not about a missing or unknown field."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    field_level = bool(loc) and isinstance(loc[-1], str)
    label = f"`{name}`: " if field_level else ""
    if not loc and kind == "model_type":
        return loc, (f"a storyboard must be a mapping of fields (`sakuga: 1`, `title: ...`, `scenes: ...`), "
                     f"not {_kind(value)}")
    if kind in _EXPECTED:
        if not field_level and name != "document":
            label = f"each entry of `{name}`: "
        # YAML reads 1984, 1.5 and yes/no/on/off as numbers and booleans
        hint = _QUOTE_HINT if kind == "string_type" and isinstance(value, int | float) else ""
        return loc, f"{label}expected {_EXPECTED[kind]}, got {_kind(value)}{hint}"
    if loc[-1:] == ("sakuga",) and kind == "literal_error":
        return loc, f"unsupported schema version {_short(value)}: this sakuga reads `sakuga: 1`"
    if loc[-1:] == ("transition",):
        return loc, f"`transition`: expected `cut` or `{{crossfade: SECONDS}}`, got {_kind(value)}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == Id.__metadata__[0].pattern:
        return loc, f"{label}{_short(value)} is not a valid id ({_ID_RULE})"
    if kind == "too_short" and isinstance(value, list | dict):
        n = ctx.get("min_length")
        return loc, f"{label}needs at least {n} {'entry' if n == 1 else 'entries'} (got {len(value)})"
    if kind == "too_long" and isinstance(value, list | dict):
        return loc, f"{label}has {len(value)} entries; the limit is {ctx.get('max_length')}"
    if kind == "string_too_short":
        return loc, f"{label}must not be empty"
    if kind == "string_too_long":
        return loc, f"{label}is {len(value)} characters long; the limit is {ctx.get('max_length')}"
    if isinstance(value, float) and not math.isfinite(value):
        return loc, f"{label}must be a finite number (got {value})"
    if kind == "value_error" and isinstance(value, dict) and "duration" in str(err["msg"]):
        if "duration" in value and "frames" in value:
            return loc + ("frames",), "a shot takes `duration` or `frames`, not both"
        return loc, "a shot needs a length: add `duration: SECONDS` or `frames: COUNT`"
    msg = err["msg"].removeprefix("Value error, ")
    msg = re.sub(r"^Input should be\b", "must be", msg)
    msg = msg[0].lower() + msg[1:] if msg else msg
    got = f" (got {_short(value)})" if not isinstance(value, dict | list) else ""
    return loc, f"{label}{msg}{got}"


def problems_from_validation(doc: Document, error: ValidationError, model: type[BaseModel] | None = None) -> list[Problem]:
    errors = error.errors(include_url=False)
    suggested: set[tuple] = set()   # (parent path, field) a "did you mean" already points at
    problems = []
    for err in errors:
        if err["type"] != "extra_forbidden":
            continue
        loc = _clean_loc(doc.data, tuple(err["loc"]), keep_last=True)
        known = _fields_at(model, loc[:-1]) if model else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if close:
            suggested.add((loc[:-1], close[0]))
        hint = f" (did you mean `{close[0]}`?)" if close else (f" (known: {', '.join(known)})" if known else "")
        problems.append(doc.problem(loc, f"unknown field {_field_name(loc[-1])}{hint}", key=True))
    for err in errors:
        raw = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            continue
        if raw[-1:] == ("[key]",):  # a mapping key that is not a valid id
            loc = _clean_loc(doc.data, raw[:-1], keep_last=True)
            problems.append(doc.problem(loc, f"{_short(loc[-1])} is not a valid id ({_ID_RULE})", key=True))
            continue
        loc = _clean_loc(doc.data, raw, keep_last=err["type"] == "missing")
        name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "document")
        if err["type"] == "missing":
            if (loc[:-1], loc[-1]) in suggested:
                continue
            hint = " (the schema version: add `sakuga: 1` at the top)" if loc == ("sakuga",) else ""
            problems.append(doc.problem(loc[:-1], f"missing required field `{name}`{hint}"))
            continue
        where, message = _schema_message(err, loc, name)
        problems.append(doc.problem(where, message, key=where != loc))
    return problems


def _field_name(key: Any) -> str:
    text = str(key)
    return f"`{text}`" if text.isprintable() and "`" not in text and len(text) <= 60 else _short(text)

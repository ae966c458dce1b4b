"""A segment's engine options: the preset's `options:` and the shot's overrides, as the planner froze them.

`Segment.options` holds (key, JSON text) pairs so that a segment stays a hashable frozen value; every
engine reads them through `option`.
"""
from __future__ import annotations

import json
from typing import Any

from storyboard.plan import Segment


def option(segment: Segment, key: str, default: Any) -> Any:
    """An engine option of the segment (stored as JSON text), or `default`."""
    raw = dict(segment.options).get(key)
    return default if raw is None else json.loads(raw)

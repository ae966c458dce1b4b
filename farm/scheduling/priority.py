"""Job priorities: names users type, integers the policy compares (higher is more urgent)."""
from __future__ import annotations

PRIORITIES = {"low": -10, "normal": 0, "high": 10, "urgent": 20}


def parse_priority(text: str | int) -> int:
    """A named priority (low, normal, high, urgent) or an integer; higher is more urgent."""
    if isinstance(text, int):
        return text
    if text in PRIORITIES:
        return PRIORITIES[text]
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)} or an integer, not {text!r}") from None
    if not -1000 <= value <= 1000:
        raise ValueError(f"priority {value} is outside -1000..1000")
    return value

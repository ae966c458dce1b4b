"""Takes: a shot rendered again with some of its settings changed (prompt, seed, motion, aesthetic).

Take 1 is the shot as the storyboard writes it; take N > 1 is the same shot with its overrides laid
over it. The planner compiles every take of a shot; the cut uses the approved one. Take N's segments
are named `<shot>~N.<index>`, so their files never meet take 1's, and their content hashes differ
wherever their pixels would. What the takes are and which is approved is the farm's to record (its
ledger); this module only checks overrides and applies them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from .errors import InputError
from .model import Shot

OVERRIDES = ("prompt", "seed", "motion", "aesthetic")


@dataclass(frozen=True)
class ShotTakes:
    """The takes of one shot beyond the storyboard's (take number → overrides) and the approved one."""

    overrides: Mapping[int, Mapping] = field(default_factory=dict)
    approved: int = 1

    def numbers(self) -> list[int]:
        return [1, *sorted(n for n in self.overrides if n != 1)]


def segment_id(shot: str, take: int, index: int) -> str:
    """Take 1 keeps the storyboard's names (`<shot>.<index>`); a later take's are its own."""
    return f"{shot}.{index}" if take == 1 else f"{shot}~{take}.{index}"


def check_overrides(overrides: Mapping) -> dict:
    """The overrides of a new take, validated by the storyboard's own field rules (InputError naming the
    field otherwise); at least one must be given."""
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(OVERRIDES))
    if unknown:
        raise InputError.single(unknown[0], f"a take changes only {', '.join(OVERRIDES)}, not {unknown[0]!r}")
    if not given:
        raise InputError.single("take", f"a new take changes at least one of {', '.join(OVERRIDES)}")
    try:   # the other fields only make the shot whole: what is checked is what was given
        Shot.model_validate({"id": "take", "frames": 1, "prompt": "take", **given})
    except ValidationError as e:
        err = e.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "take"
        raise InputError.single(name, f"{name}: {err['msg']} (got {err.get('input')!r})") from None
    return given


def apply(shot: Shot, overrides: Mapping) -> Shot:
    """The shot as take with `overrides` renders it."""
    return shot.model_copy(update={k: v for k, v in overrides.items() if k in OVERRIDES}) if overrides else shot

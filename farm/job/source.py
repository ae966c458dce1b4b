"""Reading a storyboard as a render is started from it (the command line's `--model`, `--size`, `--speed`,
`--asset-root`): what `sakuga render` and `resume` plan, and what a new take plans again."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from storyboard.errors import InputError


def load_storyboard(file: Path, model: str | None, asset_roots: list[Path] | None, size: str | None = None,
                    speed: list[str] | None = None):
    """The storyboard at `file` and its plan (input errors name the file, line and field); `size` is
    `--size` as given, and the `--speed` flags are laid over its presets' speed options."""
    from storyboard.load import load as read
    from storyboard.plan import build_plan

    overrides = speed_overrides(speed)
    loaded = read(file, model=model, asset_roots=asset_roots or [], size=output_size(size))
    if overrides:
        if loaded.preset.engine != "wan":
            raise InputError.single("--speed", f"--speed: model {loaded.preset.name!r} ({loaded.preset.engine} "
                                               "engine) has no speed options; they are for wan presets")
        loaded = replace(loaded, preset=loaded.preset.with_speed(overrides), speed=overrides)
    return loaded, build_plan(loaded)


def output_size(text: str | None) -> tuple[int, int] | None:
    """`--size WxH` as (width, height)."""
    if text is None:
        return None
    from storyboard.size import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise InputError.single("--size", str(e)) from None


def speed_overrides(flags: list[str] | None) -> dict:
    """`--speed` flags as a `speed:` block, checked (InputError naming the flag)."""
    if not flags:
        return {}
    from engine.wan.speed_options import parse_flags

    return parse_flags(flags)

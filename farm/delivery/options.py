"""What a job is asked to deliver: `--deliver` (profiles and the render's own masters) and
`--upscaler` as the job's config, and that config checked against a render. The CLI, the cluster's
entrypoint and the studio's API all go through here."""
from __future__ import annotations

from storyboard.errors import InputError, Problem

MASTERS = ("prores", "png")     # the render's own masters, beside OUT/episode.mp4


def masters(deliver: list[str] | None) -> list[str]:
    """The `--deliver` values that are masters of the render's own cut (prores, png)."""
    return sorted({m for m in deliver or [] if m in MASTERS})


def delivery(deliver: list[str] | None, upscaler: str | None) -> dict:
    """`--deliver` and `--upscaler` as a job's config: the masters, the profiles, the upscaler."""
    profiles = list(dict.fromkeys(d for d in deliver or [] if d not in MASTERS))
    if upscaler is not None and not profiles:
        raise InputError.single("--upscaler", "--upscaler is for --deliver profiles, and none was given")
    return {"deliver": masters(deliver), "profiles": profiles, "upscaler": upscaler}


def check_delivery(plan, config: dict, weights: bool = True) -> None:
    """Each profile of a job's config checked against its render, and (`weights`: the upscalers load
    on this machine) the upscalers' checkpoints: InputError (exit 2) for an unknown profile, a size the
    upscaler cannot reach, a rate the EDL cannot carry, a missing checkpoint."""
    if not config.get("profiles"):
        return
    from engine.upscale.presets import check_weights
    from farm.stages.stage import delivery_plans

    try:
        plans = delivery_plans(plan, config["profiles"], config.get("upscaler"))
    except InputError as e:   # --deliver also takes the render's masters: say so beside the known profiles
        raise InputError([Problem(p.file, p.line, p.col, p.message + f"; or a master: {', '.join(MASTERS)}")
                          if p.message.startswith("unknown delivery profile") else p for p in e.problems]) from None
    for d in plans:
        if weights and d.upscaler is not None:
            check_weights(d.upscaler)

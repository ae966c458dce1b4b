"""A model preset's `architecture:` block: the real configs of its components.

Each name is a file `configs/architectures/<name>.<kind>.json` (for example `wan2.1-i2v-14b` as a
`transformer`). Plain data, no torch: `engine/memory/` instantiates the configs on the meta device and
plans a preset's GPU memory from them; a preset without the block (animatic, noop, the tiny model)
keeps a hand-written `memory_gb`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import StringConstraints, model_validator

from .model import Strict

ARCHITECTURES_DIR = Path(__file__).resolve().parents[1] / "configs" / "architectures"
ConfigName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]

# the preset's field (role) and the kind of config it names: the file's second suffix
KINDS = {"transformer": "transformer", "transformer_2": "transformer", "text_encoder": "text_encoder",
         "image_encoder": "image_encoder", "vae": "vae"}


def config_path(name: str, kind: str) -> Path:
    return ARCHITECTURES_DIR / f"{name}.{kind}.json"


class Architecture(Strict):
    """The components a `wan` preset loads, by the name of their config in configs/architectures/."""

    transformer: ConfigName
    transformer_2: ConfigName | None = None      # Wan2.2 A14B pairs: the low-noise expert
    text_encoder: ConfigName
    image_encoder: ConfigName | None = None      # Wan2.1 I2V only
    vae: ConfigName

    @model_validator(mode="after")
    def _configs_exist(self):
        for role, name in self.components().items():
            path = config_path(name, KINDS[role])
            if not path.is_file():
                suffix = f".{KINDS[role]}.json"
                known = sorted(p.name[: -len(suffix)] for p in ARCHITECTURES_DIR.glob(f"*{suffix}"))
                raise ValueError(f"{role}: no config {path.name} in configs/architectures/ "
                                 f"(known {KINDS[role]}s: {', '.join(known) or 'none'})")
        return self

    def components(self) -> dict[str, str]:
        """Role → config name, for the components the preset has."""
        return {role: getattr(self, role) for role in KINDS if getattr(self, role) is not None}

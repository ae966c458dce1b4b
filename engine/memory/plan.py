"""The residency plan: where a preset's components live for a segment on a GPU of a given size.

For a preset with an `architecture:` block, a GPU of `gpu_gib`, a gang of `degree` and a segment size,
each residency is costed on the busiest rank (rank 0: it encodes and decodes), in order of preference,
and the first that fits is the plan:

  gpu               whole model on the GPU
  text_encoder_cpu  UMT5-XXL on the CPU (it runs once per new prompt; its embeddings are cached)
  fsdp              gangs only: the transformer(s) sharded across the gang with FSDP2, each rank holding
                    1/k and gathering one block at a time over the gang's links; text encoder on the CPU
  model_offload     diffusers' model CPU offload: each component moved to the GPU while it runs
  group_offload     diffusers' group offload: the transformer's blocks streamed from CPU memory one
                    (plus one prefetched) at a time; text encoder on the CPU
  (none)            does not fit: the farm retries on a wider gang

A mode needs: the weights it keeps on the GPU (counted on the meta device, `components.py`), plus the
largest transient of the segment's phases (text encode, image encode, VAE encode, denoise, VAE decode:
`activations.py`) times FRAGMENTATION, plus RESERVE_GIB (and GANG_RESERVE_GIB in a gang). Those two
margins are estimates (no GPU has measured them for sakuga yet). GiB = 2^30 bytes, as torch and
nvidia-smi report a card. `offload=True` (the farm after running out of memory at the widest gang, or
`--offload`) keeps only the offload modes that need less than the unforced choice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from storyboard.presets import Preset

from . import activations as act

GIB = 2 ** 30
RESERVE_GIB = 1.0          # CUDA context, cuBLAS and cuDNN workspaces (estimate)
GANG_RESERVE_GIB = 0.5     # NCCL's buffers for a gang's communicator (estimate)
FRAGMENTATION = 1.15       # the caching allocator's reserve over live bytes at a transient peak (estimate)
MODES = ("gpu", "text_encoder_cpu", "fsdp", "model_offload", "group_offload")
OFFLOAD_MODES = ("model_offload", "group_offload")
WHAT = {
    "gpu": "whole model on the GPU",
    "text_encoder_cpu": "text encoder on the CPU, the rest on the GPU",
    "fsdp": "transformer sharded across the gang (FSDP2), text encoder on the CPU",
    "model_offload": "model CPU offload (each component on the GPU while it runs)",
    "group_offload": "group offload (transformer blocks streamed from CPU memory), text encoder on the CPU",
    None: "does not fit",
}
ELEM = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Work:
    """One segment's size and the gang it runs on."""
    width: int
    height: int
    frames: int
    degree: int = 1
    tiled: bool | None = None       # VAE tiling; None: as the preset's options say
    cfg_halves: bool = False        # CFG's passes on the gang's halves: each denoises at degree / 2

    def __post_init__(self):
        if min(self.width, self.height, self.frames, self.degree) < 1:
            raise ValueError(f"a segment needs a positive size, frame count and degree, not {self}")


@dataclass(frozen=True)
class Need:
    """What one residency needs on the busiest GPU of the gang."""
    mode: str
    weights: int            # bytes of weights resident on the GPU
    transient: int          # the largest phase's live bytes
    phase: str              # which phase that is
    reserve_gib: float

    @property
    def gib(self) -> float:
        return (self.weights + FRAGMENTATION * self.transient) / GIB + self.reserve_gib


@dataclass(frozen=True)
class Plan:
    mode: str | None                     # the residency chosen; None when none fits
    gpu_gib: float
    work: Work
    needs: dict[str, Need] = field(repr=False)
    fitting: tuple[str, ...] = ()        # every mode allowed that fits, in order of preference

    @property
    def need(self) -> Need:
        """The chosen mode's need; when none fits, the most frugal one's (what was missing)."""
        if self.mode is not None:
            return self.needs[self.mode]
        return min(self.needs.values(), key=lambda n: n.gib)

    @property
    def fits(self) -> bool:
        return self.mode is not None

    def describe(self) -> str:
        w = self.work
        head = f"{w.width}x{w.height}x{w.frames} at degree {w.degree} on {self.gpu_gib:g} GiB: "
        if self.fits:
            return head + f"{WHAT[self.mode]}, ~{self.need.gib:.1f} GiB (peak in {self.need.phase})"
        return head + f"does not fit (the most frugal, {WHAT[self.need.mode]}, needs ~{self.need.gib:.1f} GiB)"


@dataclass(frozen=True)
class ModelMemory:
    """A preset's components, counted, and how it runs them (dtype, FP8 weights, VAE tiling, pictures)."""
    components: dict            # role → components.Component
    elem: int
    fp8: bool = False
    tiling_from: int | bool = 720
    pictures: bool = True

    @classmethod
    def of(cls, preset: Preset) -> ModelMemory:
        from .components import component

        if preset.architecture is None:
            raise ValueError(f"preset {preset.name!r} has no architecture: block to plan its memory from")
        from engine.wan.options import optional_path

        speed = preset.options.get("speed") if isinstance(preset.options.get("speed"), dict) else {}
        tiling = speed.get("vae_tiling", preset.options.get("vae_tiling_from", 720))
        parts = {role: component(role, name) for role, name in preset.architecture.components().items()}
        if optional_path(preset.options.get("qc_encoder")) is not None:
            # a QC encoder of its own stays on the GPU next to the pipeline: counted as Wan2.1's CLIP-H,
            # the one docs/models.md suggests (its folder is not read here)
            parts["qc_encoder"] = component("image_encoder", "clip-vit-h-14")
        return cls(parts, ELEM[preset.options.get("dtype", "bfloat16")], speed.get("fp8", "off") not in ("off", False),
                   tiling, preset.pictures)

    def weights(self, role: str) -> int:
        c = self.components.get(role)
        if c is None:
            return 0
        return c.weight_bytes(self.elem, self.fp8 and c.role.startswith("transformer"))

    def tiled(self, work: Work) -> bool:
        if work.tiled is not None:
            return work.tiled
        if isinstance(self.tiling_from, bool):
            return self.tiling_from
        return min(work.width, work.height) >= self.tiling_from

    def transients(self, work: Work) -> dict[str, int]:
        """Each phase's live bytes on rank 0 (the text encoder's only when it runs on the GPU)."""
        from engine.parallel.layout import layout

        t = self.components["transformer"]
        shape = act.TransformerShape.from_config(t.config)
        vae = act.VaeShape.from_config(self.components["vae"].config)
        total = act.tokens(shape, vae, work.width, work.height, work.frames)
        sp = work.degree // 2 if work.cfg_halves else work.degree
        split = layout(sp, t.config["num_attention_heads"], total)
        tiled = self.tiled(work)
        phases = {"text encode": act.encoder_bytes("text_encoder", self.elem),
                  "denoise": sum(act.denoise_bytes(shape, total, sp, self.elem, split.ulysses, split.ring).values()),
                  "VAE decode": act.vae_decode_bytes(vae, work.width, work.height, work.frames, tiled, self.elem)}
        if "image_encoder" in self.components or "qc_encoder" in self.components:
            phases["image encode"] = act.encoder_bytes("image_encoder", self.elem)
        if self.pictures:
            phases["VAE encode"] = act.vae_encode_bytes(vae, work.width, work.height, work.frames, tiled, self.elem)
        return phases


def plan(model: ModelMemory, gpu_gib: float, work: Work, offload: bool = False) -> Plan:
    """The first residency (in MODES order) whose need fits `gpu_gib`."""
    needs = {need.mode: need for need in (_need(model, mode, work) for mode in MODES) if need is not None}
    order = [m for m in MODES if m in needs]
    if offload:
        # strictly less than what was (or would have been) used; group offload is as frugal as it gets
        unforced = next((m for m in order if needs[m].gib <= gpu_gib), None)
        ceiling = needs[unforced].gib if unforced is not None else math.inf
        order = [m for m in OFFLOAD_MODES if needs[m].gib < ceiling or m == unforced == "group_offload"]
    fitting = tuple(m for m in order if needs[m].gib <= gpu_gib)
    return Plan(fitting[0] if fitting else None, gpu_gib, work, needs, fitting)


def _need(model: ModelMemory, mode: str, work: Work) -> Need | None:
    k = work.degree
    if mode == "fsdp" and k == 1:
        return None
    reserve = RESERVE_GIB + (GANG_RESERVE_GIB if k > 1 else 0.0)
    phases = model.transients(work)
    transformers = [model.components[r] for r in ("transformer", "transformer_2") if r in model.components]
    t_bytes = sum(model.weights(c.role) for c in transformers)
    others = model.weights("image_encoder") + model.weights("vae") + model.weights("qc_encoder")
    if mode == "model_offload":
        return _model_offload(model, phases, transformers, reserve)
    if mode in ("gpu", "text_encoder_cpu"):
        weights = t_bytes + others + (model.weights("text_encoder") if mode == "gpu" else 0)
    elif mode == "fsdp":
        weights = math.ceil(t_bytes / k) + _unsharded(model, transformers) + others
    else:   # group_offload: the blocks outside, one running and one prefetched, plus what is not a block
        weights = _unsharded(model, transformers) + others
    if mode != "gpu":
        phases = {p: b for p, b in phases.items() if p != "text encode"}
    phase = max(phases, key=phases.get)
    return Need(mode, weights, phases[phase], phase, reserve)


def _unsharded(model: ModelMemory, transformers: list) -> int:
    """Two blocks (the one running and the next, gathered or fetched ahead) and the rest of the largest
    transformer: what FSDP2 and group offload hold in full while one transformer runs."""
    fp8 = model.fp8
    return max(2 * c.block_bytes(model.elem, fp8) + c.weight_bytes(model.elem, fp8)
               - c.blocks * c.block_bytes(model.elem, fp8) for c in transformers)


def _model_offload(model: ModelMemory, phases: dict[str, int], transformers: list, reserve: float) -> Need:
    """Each phase with its own component on the GPU; the VAE, used for the condition before the
    transformer runs, is only offloaded after the denoising loop (diffusers' hook order)."""
    vae, qc = model.weights("vae"), model.weights("qc_encoder")     # the QC encoder is not offloaded
    biggest = max(model.weights(c.role) for c in transformers)
    resident = {p: b + qc for p, b in {"text encode": model.weights("text_encoder"), "VAE encode": vae,
                                        "image encode": model.weights("image_encoder"), "denoise": biggest + vae,
                                        "VAE decode": vae}.items()}
    phase = max(phases, key=lambda p: resident[p] + FRAGMENTATION * phases[p])
    return Need("model_offload", resident[phase], phases[phase], phase, reserve)


class DoesNotFit(MemoryError):
    """No residency of the preset fits this GPU for the segment (the farm retries on a wider gang)."""


@dataclass(frozen=True)
class Residency:
    """What a worker loads a preset as: the mode, what it needs at its peak and what it keeps on the
    GPU between segments (an offloaded model keeps nothing there)."""
    mode: str
    need_gib: float
    resident_gib: float


def residency(preset: Preset, work: Work, gpu_gib: float, offload: bool = False,
              loaded: tuple[str, ...] = ()) -> Residency:
    """The residency a worker with `gpu_gib` of GPU memory uses for `work`. A mode in `loaded` (the
    preset is already loaded that way) that fits is kept: reloading 30-60 GB of weights costs minutes,
    a less preferred mode seconds. A preset without `architecture` needs its `memory_gb` (none when
    offloaded). Raises DoesNotFit when nothing fits."""
    if preset.architecture is None:
        gb = 0.0 if offload else preset.memory_gb
        return Residency("model_offload" if offload else "gpu", gb, gb)
    chosen = plan(model_memory(preset), gpu_gib, work, offload)
    if not chosen.fits:
        raise DoesNotFit(f"preset {preset.name!r}: {chosen.describe()}")
    mode = next((m for m in chosen.fitting if m in loaded), chosen.mode)
    need = chosen.needs[mode]
    kept = 0.0 if mode == "model_offload" else need.weights / GIB + need.reserve_gib
    return Residency(mode, need.gib, kept)


def model_memory(preset: Preset) -> ModelMemory:
    """`ModelMemory.of(preset)`, once per preset (the worker asks for every segment)."""
    key = preset.model_dump_json()
    if key not in _MODELS:
        _MODELS[key] = ModelMemory.of(preset)
    return _MODELS[key]


_MODELS: dict[str, ModelMemory] = {}


def whole_model_gib(preset: Preset, degrees: list[int]) -> dict[int, float]:
    """GiB per GPU to hold `preset` whole for one segment of its longest length at its native size
    (1280x720 when it has none), per gang degree: the figure `sakuga models check` and `models list`
    show (a smaller GPU gets another residency: `residency`)."""
    width, height = getattr(preset, "native_size", None) or (1280, 720)
    memory = model_memory(preset)
    return {k: plan(memory, math.inf, Work(width, height, preset.max_frames, k)).needs["gpu"].gib for k in degrees}

"""A first, simple estimate of a `wan` preset's GPU memory per rank, for `sakuga models check`.

    per GPU = every component's weights at the preset's dtype          (each rank of a sequence-parallel
            + activations of the transformer for its share of tokens    gang holds the whole model)

    activations ≈ tokens / degree × (10 × hidden + 2 × ffn_dim) × 2 bytes

at the reference shot: 1280x720, the preset's longest segment. Ten hidden-wide tensors (residual stream,
q, k, v, attention output, norms) and two FFN-wide ones (the up-projection and its GELU) are alive at
the peak of a block, in a 2-byte dtype. It ignores the VAE's decode peak (tiled above 720p) and offload.
Presets with an `architecture:` block are planned by `engine/memory/` instead; this estimate remains
for presets without one (a folder sakuga has no real config for).
"""
from __future__ import annotations

REFERENCE = (1280, 720)      # width, height of the shot the estimate is for
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def per_gpu_gb(preset, weight_parameters: int, transformer: dict | None, degree: int) -> float:
    """GB per GPU of `preset` at sequence-parallel `degree`: `weight_parameters` (every component the
    worker keeps on the GPU) at the preset's dtype, plus the activations of `transformer` (a diffusers
    config) for this rank's tokens."""
    dtype = preset.options.get("dtype", "bfloat16")
    weights = weight_parameters * BYTES.get(dtype, 2)
    activations = 0.0
    if transformer:
        hidden = int(transformer["num_attention_heads"]) * int(transformer["attention_head_dim"])
        tokens = preset.tokens(preset.max_frames, *REFERENCE)
        activations = tokens / degree * (10 * hidden + 2 * int(transformer["ffn_dim"])) * 2
    return (weights + activations) / 1e9

"""GPU memory planned from the real model shapes, and the residency that follows from it.

- `components.py`: each component's parameters, counted from its real config on the meta device.
- `activations.py`: what a segment needs on top of the weights (denoising per rank, VAE encode and
  decode tiled or not, the encoders), as formulas whose constants `replay.py` checks.
- `plan.py`: for a preset, a GPU size, a gang degree and a segment size, which residency fits
  (whole model, text encoder on CPU, FSDP across the gang, model or group offload) and what it needs.
- `residency.py`: doing what the plan chose to a loaded pipeline; `fsdp.py`: the transformer sharded
  across the gang with FSDP2.
- `replay.py`: diffusers' own forward run on fake tensors, counting the bytes it keeps alive.

This file imports nothing, so the plan's arithmetic stays importable without torch.
"""

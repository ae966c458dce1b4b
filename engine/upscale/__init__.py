"""Anime super-resolution: upscaling rendered frames to a delivery size.

- `presets.py`: upscaler presets (`configs/upscalers/<name>.yaml`), their cost model and where their
  weights are (no torch: the command line checks them before anything loads).
- `loader.py`: a checkpoint into a model through spandrel, which detects the architecture.
- `tiny.py`: `sr-tiny`, a random-weight compact net sakuga builds itself (tests, laptops).
- `framing.py`: the centre crop to a delivery's aspect and whether the net must run (no torch).
- `tiles.py`: tiled inference with overlap, so any frame fits the accelerator.
- `upscaler.py`: `Upscaler`, frames in, frames at the exact target size out.

This file imports nothing, so `engine.upscale.presets` and `framing` stay free of torch.
"""

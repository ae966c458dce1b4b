"""The Wan / AniSora engine through diffusers.

- `engine.py`: `WanEngine`, one segment top to bottom (fit, encode, condition, denoise, decode, measure).
- `keyframe_pipeline.py`: `KeyframePipeline`, Wan image-to-video with condition pictures at any frame.
- `text_pipeline.py`: `TextPipeline`, Wan text-to-video; `denoising.py`: the loop both run, with step
  checkpoints (resume, stop: docs/checkpoints.md).
- `similarity.py`: character similarity, the QC figure that needs the model's image encoder.
- `options.py`: a `wan` preset's `options:` and where its weights are (no torch, no diffusers).
- `layouts/`: transformer checkpoints in every published layout, told from their files; `weights.py` loads
  one (meta model, tensor by tensor, cast while reading), `architecture.py` fits one to the model,
  `model_check.py` is `sakuga models check`. `tiny.py`: the tiny random-weight model.

This file imports nothing, so `engine.wan.options` stays free of torch.
"""

"""The GPU worker actor: one per GPU, keeps its engine loaded across segments.

A worker gets a segment plus the bytes of its input pictures and returns the encoded segment and its
last frame (lossless PNG, for continuity). It never touches the output folder: the driver publishes,
so workers need no shared filesystem with the driver.
"""
from __future__ import annotations

import io
import os
import socket
import time

import numpy as np
import ray
from PIL import Image

from engine.base import Engine, create
from storyboard.plan import ImageRef, Segment
from storyboard.presets import Preset

from .video import encode_mp4_bytes, png_bytes


def decode_image(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@ray.remote(num_cpus=0)
class SegmentWorker:
    def __init__(self, name: str):
        self.name = name
        self.engines: dict[str, Engine] = {}

    def where(self) -> dict:
        return {"worker": self.name, "host": socket.gethostname(), "pid": os.getpid(),
                "node": ray.get_runtime_context().get_node_id(), "gpus": ray.get_gpu_ids()}

    def render(self, preset: Preset, segment: Segment, images: dict[ImageRef, bytes]) -> dict:
        started = time.time()
        engine = self.engines.get(preset.name)
        if engine is None:
            engine = self.engines[preset.name] = create(preset)
        pictures = {ref: decode_image(data) for ref, data in images.items()}
        rendered = engine.render(segment, pictures)
        frames = rendered.frames
        if frames.shape != (segment.frames, segment.height, segment.width, 3) or frames.dtype != np.uint8:
            raise RuntimeError(f"engine {preset.engine} returned frames of shape {frames.shape} "
                               f"({frames.dtype}) for segment {segment.id}")
        rendered_at = time.time()
        mp4 = encode_mp4_bytes(frames, segment.fps, segment.width, segment.height)
        return {
            "mp4": mp4,
            "last_png": png_bytes(rendered.last_frame),
            "metrics": dict(rendered.metrics),
            "render_s": rendered_at - started,
            "encode_s": time.time() - rendered_at,
            "started": started,
            "worker": self.name,
            "node": ray.get_runtime_context().get_node_id(),
        }

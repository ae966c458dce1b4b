"""The picture encoders of a Wan engine: the one that steers identity, and the one that measures it.

A character bank row (`engine.bank`) holds two things: a token sequence the transformer's image
cross-attention reads (Wan2.1 and AniSora V3: the pipeline's own CLIP image encoder, 257 tokens from
its penultimate layer) and one identity vector that QC similarity compares with the output's frames.
Wan2.2 (AniSora V3.2) has neither an image encoder nor image cross-attention, so a preset may name a
QC encoder of its own (`options.qc_encoder`, a CLIP vision folder): its vectors then measure
similarity for every preset that names it, so figures of different models are comparable.

The row's encoder id says which encoders made it: the steering encoder's fingerprint, the QC
encoder's, or both joined by `+` when they differ (tokens from the first, vectors from the second).
Two encoders with the same weights are one encoder (one fingerprint, one pass).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .options import qc_encoder_folders

logger = logging.getLogger(__name__)

_INT_OF_SIZE = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def fingerprint(module: torch.nn.Module) -> str:
    """Identifies an encoder's weights (config, and every tensor's bits summed as integers), not its file
    path. Integer sums, not float ones: a float sum depends on the order, so on the thread count, and
    workers with other thread counts must agree on the id or their character banks would not be shared."""
    h = hashlib.sha256(json.dumps(getattr(module, "config", {}).to_dict() if hasattr(module, "config") else {},
                                  sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, p in module.state_dict().items():
            bits = p.detach().contiguous().view(_INT_OF_SIZE[p.element_size()])
            h.update(f"{name}:{tuple(p.shape)}:{p.dtype}:{int(bits.sum(dtype=torch.int64))}".encode())
    return f"{type(module).__name__}-{h.hexdigest()[:16]}"


class PictureEncoder:
    """A CLIP vision tower and its image processor: per picture, a token sequence (penultimate layer) and
    one vector (the projected image embedding when the model has a projection, else the pooled output)."""

    def __init__(self, model: torch.nn.Module, processor):
        self.model, self.processor = model.eval(), processor
        self.id = fingerprint(model)

    @torch.no_grad()
    def encode(self, pictures: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Tokens (N, T, D) and vectors (N, E) of RGB uint8 pictures, each as the processor prepares it."""
        inputs = self.processor(images=[Image.fromarray(p) for p in pictures], return_tensors="pt")
        param = next(self.model.parameters())
        out = self.model(pixel_values=inputs["pixel_values"].to(param.device, param.dtype), output_hidden_states=True)
        vectors = out.image_embeds if getattr(out, "image_embeds", None) is not None else out.pooler_output
        return out.hidden_states[-2].float().cpu().numpy(), vectors.float().cpu().numpy()


def load_qc_encoder(folder: Path, device: torch.device, dtype: torch.dtype) -> PictureEncoder:
    """The CLIP vision encoder at `folder` (checked by `options.check_weights` before), on `device`."""
    from transformers import CLIPImageProcessor, CLIPVisionModel, CLIPVisionModelWithProjection

    model_dir, processor_dir = qc_encoder_folders(folder)
    architectures = json.loads((model_dir / "config.json").read_text()).get("architectures") or []
    # a bare vision tower has no projection: loading one with a projection would draw it at random
    cls = CLIPVisionModel if architectures == ["CLIPVisionModel"] else CLIPVisionModelWithProjection
    model = cls.from_pretrained(model_dir, dtype=dtype).to(device)
    logger.debug("QC encoder %s from %s", cls.__name__, model_dir)
    return PictureEncoder(model, CLIPImageProcessor.from_pretrained(processor_dir))


@dataclass
class BankEncoders:
    steer: PictureEncoder | None    # the pipeline's image encoder: tokens for image cross-attention
    qc: PictureEncoder | None       # the preset's QC encoder: vectors for similarity

    def __post_init__(self):
        if self.steer is not None and self.qc is not None and self.qc.id == self.steer.id:
            self.qc = None          # the same weights: one encoder does both

    @property
    def id(self) -> str | None:
        """The encoder id of this engine's bank rows; None: no encoder, no bank."""
        ids = [e.id for e in (self.steer, self.qc) if e is not None]
        return "+".join(ids) or None

    def measure(self, pictures: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Tokens and vectors of the encoder that measures similarity."""
        return (self.qc or self.steer).encode(pictures)

    def encode(self, pictures: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """What a bank row holds for each picture: the steering encoder's tokens, the measuring one's vectors."""
        tokens, vectors = (self.steer or self.qc).encode(pictures)
        if self.steer is not None and self.qc is not None:
            vectors = self.qc.encode(pictures)[1]
        return tokens, vectors

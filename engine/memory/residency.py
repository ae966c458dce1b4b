"""Doing what the residency plan chose to a loaded diffusers pipeline.

  gpu               `pipe.to(device)`
  text_encoder_cpu  everything on the device but the text encoder, which runs on the CPU
  fsdp              the transformer(s) sharded across the gang (`fsdp.py`), text encoder on the CPU,
                    the image encoder and the VAE on the device
  model_offload     `pipe.enable_model_cpu_offload(device=...)`
  group_offload     each transformer's blocks streamed from CPU memory (`enable_group_offload`, block
                    level, one block a group, on a side stream so the copy overlaps compute), text
                    encoder on the CPU, the rest on the device

On a CPU every mode is "everything on the CPU", except FSDP, which shards there too (gloo).
"""
from __future__ import annotations

import logging

import torch

from . import fsdp

logger = logging.getLogger(__name__)
CPU = torch.device("cpu")


def place(pipe, mode: str, device: torch.device) -> torch.device:
    """Put `pipe`'s components where `mode` says; returns the device the text encoder computes on."""
    if mode == "fsdp":
        return _shard_across_gang(pipe, device)
    if device.type == "cpu" or mode == "gpu":
        pipe.to(device)
        return device
    if mode == "model_offload":
        pipe.enable_model_cpu_offload(device=device)
        return device
    if mode not in ("text_encoder_cpu", "group_offload"):
        raise ValueError(f"unknown residency {mode!r}")
    for name, component in _modules(pipe):
        if name == "text_encoder":
            component.to(CPU)
        elif mode == "group_offload" and name.startswith("transformer"):
            component.enable_group_offload(onload_device=device, offload_device=CPU, offload_type="block_level",
                                           num_blocks_per_group=1, use_stream=True)
        else:
            component.to(device)
    logger.debug("residency %s: text encoder on the CPU", mode)
    return CPU


def _shard_across_gang(pipe, device: torch.device) -> torch.device:
    text_device = device if device.type == "cpu" else CPU
    for name, component in _modules(pipe):
        if name.startswith("transformer"):
            fsdp.shard(component, device)
        else:
            component.to(text_device if name == "text_encoder" else device)
    return text_device


def _modules(pipe):
    return [(name, c) for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)]

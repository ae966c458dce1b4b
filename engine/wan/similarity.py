"""Character similarity: how much a segment's frames look like its characters, to the model's own eyes.

The QC figure that needs the model's image encoder (the model-free ones are in `engine.qc`): the cosine
between each character's bank vector and the mean identity vector of a few frames sampled evenly from
the segment, per character (`character_similarity.<id>`) and their mean (`character_similarity`).
Measured with the encoder that made the bank, so the two vectors live in one space.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from storyboard.plan import Segment

from ..bank import CharacterBank, cosine
from ..qc import sample_indices

Encode = Callable[[list[np.ndarray]], tuple[np.ndarray, np.ndarray]]   # pictures → (tokens, vectors)


def character_similarity(segment: Segment, frames: np.ndarray, bank: CharacterBank, encoder_id: str | None,
                         encode: Encode, samples: int) -> dict[str, float]:
    """Cosine between each character's bank vector and the mean vector of `samples` output frames
    encoded by `encode`; empty without an encoder or without characters the bank knows."""
    metrics: dict[str, float] = {}
    if encoder_id is None or not segment.characters:
        return metrics
    known = [(ch.id, bank.character(ch.id, encoder_id, [r.sha256 for r in ch.refs])) for ch in segment.characters]
    known = [(cid, entry[1]) for cid, entry in known if entry is not None]
    if not known:
        return metrics
    picks = frames[sample_indices(len(frames), samples)]
    _, vectors = encode(list(picks))
    shot_vector = vectors.mean(axis=0)
    for cid, vector in known:
        metrics[f"character_similarity.{cid}"] = cosine(vector, shot_vector)
    metrics["character_similarity"] = float(np.mean([metrics[f"character_similarity.{c}"] for c, _ in known]))
    return metrics

"""The character bank: each character's reference pictures, encoded once by the model's image encoder.

A row is keyed by (character, picture sha256, encoder fingerprint) and holds what the encoder makes
of the picture: the token sequence the Wan transformer cross-attends to (`tokens`, T x D) and one
identity vector (`vector`, D, the pooled output) used for QC similarity. A character's embedding is
the mean over its pictures. The bank is a plain table so it can live in `DIR/characters.parquet`
and be reused on resume; rows of another encoder are kept but ignored.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

SCHEMA = pa.schema([
    ("character", pa.string()), ("image_sha256", pa.string()), ("encoder", pa.string()),
    ("tokens_shape", pa.list_(pa.int32())), ("tokens", pa.binary()),      # float32, row-major
    ("vector", pa.list_(pa.float32())),
])


@dataclass(frozen=True)
class Embedding:
    character: str
    image_sha256: str
    encoder: str
    tokens: np.ndarray      # (T, D) float32
    vector: np.ndarray      # (D,) float32

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.character, self.image_sha256, self.encoder)


class CharacterBank:
    def __init__(self, rows: Iterable[Embedding] = ()):
        self.rows: dict[tuple[str, str, str], Embedding] = {r.key: r for r in rows}

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, key: tuple[str, str, str]) -> bool:
        return key in self.rows

    def add(self, rows: Iterable[Embedding]) -> None:
        self.rows.update((r.key, r) for r in rows)

    def for_encoder(self, encoder: str) -> CharacterBank:
        return CharacterBank(r for r in self.rows.values() if r.encoder == encoder)

    def character(self, character: str, encoder: str, images: Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Mean tokens and mean vector of a character's pictures (only `images` if given); None if unknown."""
        wanted = set(images) if images is not None else None
        rows = [r for r in self.rows.values() if r.character == character and r.encoder == encoder
                and (wanted is None or r.image_sha256 in wanted)]
        if not rows:
            return None
        return (np.mean([r.tokens for r in rows], axis=0, dtype=np.float32),
                np.mean([r.vector for r in rows], axis=0, dtype=np.float32))

    def to_table(self) -> pa.Table:
        rows = sorted(self.rows.values(), key=lambda r: r.key)
        return pa.Table.from_pylist([
            {"character": r.character, "image_sha256": r.image_sha256, "encoder": r.encoder,
             "tokens_shape": list(r.tokens.shape), "tokens": np.ascontiguousarray(r.tokens, np.float32).tobytes(),
             "vector": r.vector.astype(np.float32).tolist()} for r in rows], schema=SCHEMA)

    @classmethod
    def from_table(cls, table: pa.Table) -> CharacterBank:
        if not set(SCHEMA.names) <= set(table.column_names):
            raise ValueError(f"not a character bank: columns {table.column_names}")
        rows = []
        for r in table.select(SCHEMA.names).to_pylist():
            shape = tuple(r["tokens_shape"])
            tokens = np.frombuffer(r["tokens"], dtype=np.float32)
            if len(shape) != 2 or tokens.size != shape[0] * shape[1]:
                raise ValueError(f"character bank row {r['character']}/{r['image_sha256'][:12]} is damaged")
            rows.append(Embedding(r["character"], r["image_sha256"], r["encoder"], tokens.reshape(shape).copy(),
                                  np.asarray(r["vector"], dtype=np.float32)))
        return cls(rows)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom else 0.0

"""Character banks: every character's pictures encoded once per model encoder, kept in
`characters.parquet` (rows already there are reused) and shared with all workers."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.bank import CharacterBank
from farm.job.publish import atomic_path
from farm.workers.slots import Pool

from .protocols import RunnableJob

logger = logging.getLogger(__name__)


def read_bank(path: Path) -> CharacterBank:
    """The character bank of an earlier run into the same folder; a damaged one is rebuilt."""
    if not path.is_file():
        return CharacterBank()
    try:
        return CharacterBank.from_table(pq.read_table(path))
    except (OSError, ValueError, pa.ArrowException):
        logger.warning("%s: unreadable, the character bank is rebuilt", path)
        return CharacterBank()


def build_banks(job: RunnableJob, pool: Pool) -> dict[str, Any]:
    """The job's bank per preset name (a handle shared with the workers), for the presets whose
    unfinished segments show characters; writes the job's `characters.parquet`."""
    bank = read_bank(job.folder.characters)
    shared = {}
    for name, preset in job.plan.presets.items():
        cast = {(ch.id, r.sha256): r for s in job.unfinished() if s.model == name
                for ch in s.characters for r in ch.refs}
        if not cast:
            continue
        wanted = []
        for (cid, sha), ref in sorted(cast.items()):
            try:
                wanted.append((cid, sha, job.picture(ref)))
            except OSError as e:   # gone or changed: its segments fail when they are dispatched, saying so
                logger.warning("%s: %s", job.id, e)
        encoded = pool.encode_bank(preset, wanted, list(bank.rows))
        if encoded is None or encoded[0] is None:
            continue
        encoder, new = encoded
        bank.add(new.rows.values())
        shared[name] = pool.share(bank.for_encoder(encoder))
    if len(bank):
        with atomic_path(job.folder.characters) as tmp:
            pq.write_table(bank.to_table(), tmp)
    return shared

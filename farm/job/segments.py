"""What a job knows of each of its segments in this run, and the error of a picture that changed."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .results import Published


class InputChanged(OSError):
    """A picture's bytes are not the ones validation saw."""



@dataclass
class SegmentState:
    """What this run knows of one segment."""
    status: str = "pending"
    attempts: int = 0                    # recorded in the ledger, over every run
    tries: int = 0                       # in this run: at most MAX_ATTEMPTS
    error: str | None = None
    origin: str | None = None            # rendered, cache, resumed
    published: Published | None = None

    def row(self) -> dict:
        """The manifest's view: what was recorded, then status, error, attempts and origin."""
        record = asdict(self.published) if self.published else {}
        return {**record, "status": "done" if self.status == "published" else self.status, "error": self.error,
                "attempts": self.attempts, "origin": self.origin}

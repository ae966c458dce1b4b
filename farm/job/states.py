"""The one state machine of a render: which status may follow which, for jobs, segments and attempts.

Every status change of the farm goes through `Machine.move`, so an impossible change (a published
segment started again, a finished job marked running without being reopened) fails loudly where it is
attempted instead of leaving a ledger that `sakuga resume` would misread.

    segment:  pending ─► running ─► published
                 │  ▲       │ ▲
                 │  └───────┘ └ (an attempt failed and will be retried, or was interrupted/cancelled)
                 └─► failed / skipped (given up; a resume makes them pending again)
    attempt:  running ─► done / died / error / oom / timeout / interrupted / cancelled / node-lost / preempted
    job:      queued ─► running ─► done / failed / interrupted / cancelled ─► running (resumed)
"""
from __future__ import annotations

from dataclasses import dataclass


class IllegalTransition(RuntimeError):
    """A status change the state machine does not allow (a bug in the caller, never the user's input)."""


@dataclass(frozen=True)
class Machine:
    name: str
    moves: dict[str, frozenset[str]]

    @property
    def states(self) -> tuple[str, ...]:
        return tuple(self.moves)

    def allowed(self, old: str, new: str) -> bool:
        return new in self.moves.get(old, frozenset())

    def move(self, old: str, new: str, what: str = "") -> str:
        """`new`, if `old` may become it; else IllegalTransition naming `what`."""
        if new not in self.moves:
            raise IllegalTransition(f"{self.name} {what}: unknown status {new!r}")
        if not self.allowed(old, new):
            raise IllegalTransition(f"{self.name} {what}: cannot go from {old!r} to {new!r}")
        return new


def _m(name: str, moves: dict[str, set[str]]) -> Machine:
    return Machine(name, {k: frozenset(v) for k, v in moves.items()})


SEGMENT = _m("segment", {
    "pending": {"running", "published", "failed", "skipped"},
    "running": {"pending", "published", "failed"},
    "published": {"pending"},            # its file no longer matches its hash: render it again
    "failed": {"pending"},               # a resumed job gives it a fresh set of attempts
    "skipped": {"pending"},
})
# a segment that will not change any more in this run
SETTLED = frozenset({"published", "failed", "skipped"})

ATTEMPT_ENDS = frozenset({"done", "died", "error", "oom", "timeout", "interrupted", "cancelled", "node-lost",
                          "preempted"})
# ends that are not the segment's fault: they do not count against its attempts (`preempted`: asked to
# stop at a step boundary for more urgent work; it goes on from its checkpoint)
NOT_COUNTED = frozenset({"interrupted", "cancelled", "node-lost", "preempted"})
ATTEMPT = _m("attempt", {"running": set(ATTEMPT_ENDS), **{end: set() for end in ATTEMPT_ENDS}})

JOB = _m("job", {
    "queued": {"running", "cancelled"},
    "running": {"done", "failed", "interrupted", "cancelled"},
    "done": {"running"},
    "failed": {"running"},
    "interrupted": {"running"},
    "cancelled": {"running"},
})
JOB_ENDS = frozenset({"done", "failed", "interrupted", "cancelled"})

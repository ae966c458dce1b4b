"""The one error type users can cause with their input, carrying file/line/column per problem."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# A hostile 2 MiB file can hold a million mistakes; past this many, one line says how many more there are.
MAX_PROBLEMS = 100


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: error: {self.message}"


class InputError(Exception):
    """One or more problems in a user's input file, all reported at once (the first `MAX_PROBLEMS`,
    in file order, then one line counting the rest; `omitted` counts problems found but never listed)."""

    def __init__(self, problems: list[Problem], omitted: int = 0):
        found = sorted(set(problems))
        shown = found[:MAX_PROBLEMS]
        omitted += len(found) - len(shown)
        if omitted and shown:
            first = found[len(shown)] if len(found) > len(shown) else shown[-1]
            shown.append(Problem(first.file, first.line, first.col,
                                 f"{omitted:,} more problem{'s' if omitted > 1 else ''} not shown: fix the ones above first"))
        self.problems = shown
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, file: str | Path, message: str, line: int = 1, col: int = 1) -> "InputError":
        return cls([Problem(str(file), line, col, message)])

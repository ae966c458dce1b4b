"""Where the farm's log lines go on the command line: stderr, plain, at a level the user picks
(`sakuga --verbose` / `--quiet`). Each module logs to its own `logging.getLogger(__name__)`."""
from __future__ import annotations

import logging
import sys

PACKAGES = ("farm", "engine", "storyboard")


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (a test runner swaps it per command)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


_handler = _Stderr()
_handler.setFormatter(logging.Formatter("%(message)s"))


def setup(*, verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if _handler not in logger.handlers:
            logger.addHandler(_handler)
        logger.propagate = False

"""The `sakuga` command line: one module per command group, all calling the farm API."""
from .app import main

__all__ = ["main"]

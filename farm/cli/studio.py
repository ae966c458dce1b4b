"""`sakuga studio`: the farm in a browser, and its JSON API."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .options import Address, Gpus


def studio(
    address: Address = None,
    root: Annotated[Path, typer.Option("--root", help="Storyboards are opened from under this folder.")] = Path("."),
    host: Annotated[str, typer.Option("--host", help="Bind address; anything but the loopback needs users (sakuga users add).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8188,
    gpus: Gpus = 1,
) -> None:
    """Serve the studio: the farm API over HTTP (local farm by default, or the cluster's with --address)."""
    from farm.web.serve import serve

    serve(root=root, host=host, port=port, address=address, gpus=gpus)


def register(app: typer.Typer) -> None:
    app.command()(studio)

"""`sakuga users`: the farm's named users and their tokens, run on the head (the farm's home there)."""
from __future__ import annotations

from typing import Annotated

import typer

from storyboard.errors import InputError

app = typer.Typer(no_args_is_help=True, help="The farm's users: per-user tokens for the studio's API (run on the head).")


@app.command()
def add(
    name: str,
    admin: Annotated[bool, typer.Option("--admin", help="May cancel and reprioritise anyone's job.")] = False,
) -> None:
    """Add a user and print their token (shown this once: hand it to them)."""
    from farm.access.users import UserStore

    token = UserStore().add(name, admin)
    typer.echo(f"{name}{' (admin)' if admin else ''}: added; their token (shown this once):", err=True)
    typer.echo(token)


@app.command("list")
def list_() -> None:
    """List the users (names and roles; tokens are never shown again)."""
    from farm.access.users import UserStore

    for user in UserStore().list():
        typer.echo(f"{user.name}{'  admin' if user.admin else ''}")


@app.command()
def remove(name: str) -> None:
    """Remove a user: their token stops working at once; their jobs and outputs stay."""
    from farm.access.users import UserStore

    if not UserStore().remove(name):
        raise InputError.single("user", f"{name!r} is not a user of this farm (see `sakuga users list`)")
    typer.echo(f"{name}: removed")

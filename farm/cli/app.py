"""The `sakuga` command: the typer app, its command groups, and the one place where errors users can
cause become output: input errors are `FILE:LINE:COL: error:` lines and exit code 2, an unreachable
cluster is one `error:` line and exit 1, never a traceback."""
from __future__ import annotations

import sys
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from farm.cluster.errors import ClusterError
from storyboard.errors import InputError

from . import bench, cache, cluster, inputs, logs, models, render, selftest, studio, takes, users


class _Group(TyperGroup):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as e:
            for problem in e.problems:
                typer.echo(str(problem), err=True)
            raise typer.Exit(2) from None
        except ClusterError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(cls=_Group, add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="sakuga: render AI anime storyboards on a GPU cluster.")


@app.callback()
def _options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Say more: each worker started or lost, each gang formed.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Only warnings and errors on stderr.")] = False,
) -> None:
    logs.setup(verbose=verbose, quiet=quiet)


@app.command("version")
def version_() -> None:
    """Print sakuga's version (what `submit` compares with the cluster's)."""
    from farm.cluster.client import sakuga_version

    typer.echo(sakuga_version())


for group in (inputs, render, cluster, studio, takes):
    group.register(app)
app.add_typer(models.app, name="models")
app.add_typer(cache.app, name="cache")
app.add_typer(bench.app, name="bench")
app.add_typer(selftest.app, name="selftest")
app.add_typer(users.app, name="users")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted: the ledger is saved; `sakuga resume OUT` continues", err=True)
        sys.exit(130)

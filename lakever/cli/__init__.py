"""The lakever command line: a thin client of the public Python API.

One boundary turns `lakever.LakeverError` into ``error: <message>`` on stderr
and exit code 1; usage errors exit 2 (typer); anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import sys

import typer

import lakever
from lakever.cli import data, refs, rows, schema, sql

app = typer.Typer(
    name="lakever",
    help="Versioned datasets on Parquet: commits, time travel, SQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data.register(app)
refs.register(app)
sql.register(app)
schema.register(app)
rows.register(app)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"lakever {lakever.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """Versioned datasets on Parquet: commits, time travel, SQL."""


def main() -> None:
    """Entry point of the ``lakever`` script."""
    try:
        app(standalone_mode=True)
    except lakever.LakeverError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)

"""The lakever command line: a thin client of the public Python API.

One boundary turns `lakever.LakeverError` into ``error: <message>`` on stderr
and exit code 1 (``--debug`` prints the traceback first); usage errors exit 2
(typer); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import traceback

import typer

import lakever
from lakever.cli import card, data, drift, export, maintenance, refs, remote, rows, schema, sql

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
remote.register(app)
maintenance.register(app)
export.register(app)
drift.register(app)
card.register(app)

_debug = False


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"lakever {lakever.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="On an error, print the traceback before the error line."
    ),
) -> None:
    """Versioned datasets on Parquet: commits, time travel, SQL."""
    global _debug
    _debug = debug


def main() -> None:
    """Entry point of the ``lakever`` script."""
    try:
        app(standalone_mode=True)  # exits through SystemExit, usage errors with 2
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except lakever.LakeverError as exc:
        if _debug:
            traceback.print_exc()
        # One line, whatever the message holds (DuckDB errors carry line breaks).
        message = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        message = as_flags(message, _command(sys.argv[1:]))
        typer.echo(f"error: {message}", err=True)
        code = 1
    _exit(code)


#: The Python parameter a message starts with -> the flag that sets it on the command line.
_FLAGS = {
    "where": "--where",
    "set": "--set",
    "on": "--key",
    "primary_key": "--key",
    "columns": "--column",
    "schema_mode": "--schema-mode",
    "partition_by": "--partition-by",
    "sort_by": "--sort-by",
    "message": "--message",
    "author": "--author",
    "strategy": "--strategy",
}
#: Commands where a parameter has another flag.
_COMMAND_FLAGS = {"init": {"primary_key": "--primary-key"}}


def _command(argv: list[str]) -> str | None:
    """The command a command line runs (its first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def as_flags(message: str, command: str | None) -> str:
    """``message`` with the Python parameter it starts with named as the command's flag
    (``where 'x >' ...`` -> ``--where 'x >' ...``): errors speak the language of the
    place they reach the user in. Only the first word is changed; values never are."""
    word, sep, rest = message.partition(" ")
    flags = {**_FLAGS, **_COMMAND_FLAGS.get(command or "", {})}
    if sep and word in flags:
        return f"{flags[word]} {rest}"
    return message


def _exit(code: int) -> None:
    """End the process without tearing down native libraries.

    pyarrow's and DuckDB's worker threads are std::threads owned by C++ statics,
    destroyed after the interpreter finalizes; a worker still starting, finishing or
    being joined at that moment makes libstdc++ call std::terminate, and the process
    dies with SIGABRT ("terminate called without an active exception") after the
    command succeeded. So: flush what the command printed, run the ``atexit``
    callbacks (lakever's own cleanup, e.g. DuckDB's temporary files), then leave with
    ``os._exit``, skipping the interpreter's finalization and the C++ destructors.
    Every commit is durable before a command returns, so nothing is lost.
    """
    with contextlib.suppress(BrokenPipeError):  # the reader (`| head`) went away
        sys.stdout.flush()
    with contextlib.suppress(BrokenPipeError):
        sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)

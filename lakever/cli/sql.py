"""``lakever sql``: query a lake's datasets with DuckDB SQL and time travel."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pyarrow as pa
import typer

import lakever as lv
from lakever.cli._output import print_json, print_table
from lakever.sql import translate_errors

FORMATS = ("table", "csv", "json", "parquet")


def sql(
    query: str = typer.Argument(..., help="DuckDB SQL; datasets are tables, with time travel."),
    lake: str = typer.Option(".", "--lake", "-l", help="Folder holding the datasets."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json or parquet."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file."),
    limit: int | None = typer.Option(None, "--limit", "-n", min=0, help="Print at most N rows."),
) -> None:
    """Run SQL over the datasets of a lake, e.g. "SELECT * FROM events VERSION AS OF 3"."""
    if fmt not in FORMATS:
        raise lv.InvalidArgument(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "parquet" and output is None:
        raise lv.InvalidArgument("--format parquet needs --output FILE")
    relation = lv.connect(lake).sql(query)
    with translate_errors("query", query, None):  # errors while it runs, e.g. a bad cast
        table: pa.Table = relation.to_arrow_table()
    if limit is not None:
        table = table.slice(0, limit)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert output is not None
        try:
            pq.write_table(table, str(output))
        except OSError as exc:
            raise _output_error(output, exc) from exc
        typer.echo(f"wrote {table.num_rows} rows to {output}")
        return
    if fmt == "csv":
        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        _emit(buf.getvalue(), output)
        return
    if fmt == "json":
        if output is None:
            print_json(table.to_pylist())
        else:
            import json

            _emit(json.dumps(table.to_pylist(), default=str, indent=2).encode(), output)
        return
    if output is not None:
        raise lv.InvalidArgument("--output needs --format csv, json or parquet")
    print_table(None, table.schema.names, [tuple(r.values()) for r in table.to_pylist()])


def _emit(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        try:
            output.write_bytes(data)
        except OSError as exc:
            raise _output_error(output, exc) from exc
        typer.echo(f"wrote {len(data)} bytes to {output}")


def _output_error(output: Path, exc: OSError) -> lv.InvalidArgument:
    """A file the CLI writes could not be written: one line naming it and why."""
    if output.is_dir():
        reason = "it is a directory"
    elif output.parent.exists() and not output.parent.is_dir():
        reason = f"{str(output.parent)!r} is a file, not a directory"
    elif not output.parent.is_dir():
        reason = f"directory {str(output.parent)!r} does not exist"
    else:
        reason = exc.strerror or str(exc)
    return lv.InvalidArgument(f"cannot write --output {str(output)!r}: {reason}")


def register(app: typer.Typer) -> None:
    """Add the sql command to ``app``."""
    app.command()(sql)

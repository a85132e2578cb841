"""Data commands: init, append, overwrite, log, show, cat, explain."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import typer

import lakever as lv
from lakever.cli._graph import branch_heads, collect_graph, draw_graph
from lakever.cli._input import parse_partition, read_contract, read_input
from lakever.cli._output import human_bytes, print_json, print_lines, print_pairs, print_table

PATH_ARG = typer.Argument(
    ..., help="Dataset location: a path, or a file://, s3://, gs://, az:// or memory:// URI."
)
VERSION_ARG = typer.Argument(
    None,
    help="Version number, timezone-aware ISO time (2026-11-01T00:00:00+00:00), or a pin. "
    "Default: latest.",
)
JSON_OPT = typer.Option(False, "--json", help="Print JSON instead of a table.")
MESSAGE_OPT = typer.Option(None, "--message", "-m", help="Commit message.")
AUTHOR_OPT = typer.Option(
    None,
    "--author",
    envvar="LAKEVER_AUTHOR",
    show_envvar=True,
    help="Who makes the change, recorded with it (default: the OS user).",
)
BRANCH_OPT = typer.Option(None, "--branch", "-b", help="Branch (default: main).")


class SchemaMode(StrEnum):
    """How a write treats columns that differ from the dataset's schema."""

    strict = "strict"
    add = "add"
    merge = "merge"


SCHEMA_MODE_OPT = typer.Option(
    SchemaMode.strict,
    "--schema-mode",
    help="strict: the file must have the dataset's columns; add: new columns are added; "
    "merge: also widen columns (int32 -> int64, ...).",
)
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}")


def parse_version(text: str | None) -> int | str | datetime | None:
    """CLI form of ``version=``: digits are a version number, an ISO 8601 time is "as of",
    anything else is a tag, branch or snapshot id."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    if not _TIME.match(text):
        return text
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise lv.InvalidArgument(
            f"version {text!r} looks like a time but is not valid ISO 8601 "
            "(e.g. 2026-11-01T00:00:00+00:00)"
        ) from None
    if when.tzinfo is None:
        raise lv.InvalidArgument(
            f"time {text!r} has no timezone; add one, e.g. {when.isoformat()}+00:00"
        )
    return when


def open_at(path: str, version: str | None, branch: str | None = None) -> lv.Dataset:
    """Open ``path`` at CLI version/branch arguments (a pin given as PATH is accepted too)."""
    return lv.open_dataset(path, version=parse_version(version), branch=branch)


def _commit_line(ds: lv.Dataset) -> str:
    c = ds.commit
    return (
        f"committed version {c.version} of {ds.uri} (snapshot {c.snapshot_id[:12]}): "
        f"{c.rows_added} rows added, {c.total_rows} rows total"
    )


def schema_mode_value(mode: SchemaMode) -> Literal["strict", "add", "merge"]:
    return mode.value


def init(
    path: str = PATH_ARG,
    source: Path = typer.Option(..., "--from", help="Parquet or CSV file with the first rows."),
    primary_key: list[str] | None = typer.Option(
        None, "--primary-key", help="Key column, unique and non-null (repeat for several)."
    ),
    partition_by: list[str] | None = typer.Option(
        None,
        "--partition-by",
        help="Partition column, or day(COL), hour(COL), month(COL), year(COL) (repeatable).",
    ),
    sort_by: list[str] | None = typer.Option(
        None, "--sort-by", help="Cluster rows by this column; -COL descending (repeatable)."
    ),
    contract: Path | None = typer.Option(
        None, "--contract", help="pandera contract (JSON or YAML) every commit must satisfy."
    ),
    message: str | None = MESSAGE_OPT,
    author: str | None = AUTHOR_OPT,
) -> None:
    """Create a dataset from a Parquet or CSV file (version 0)."""
    table = read_input(source)
    unknown = [k for k in primary_key or () if k not in table.column_names]
    if unknown:
        raise lv.InvalidArgument(
            f"--primary-key {unknown[0]!r} is not a column of {str(source)!r} (columns: "
            f"{', '.join(table.column_names)})"
        )
    ds = lv.create_dataset(
        path,
        table,
        primary_key=primary_key or None,
        partition_by=[parse_partition(p) for p in partition_by or ()] or None,
        sort_by=sort_by or None,
        contract=None if contract is None else read_contract(contract),
        message=message,
        author=author,
    )
    typer.echo(_commit_line(ds))


def append(
    path: str = PATH_ARG,
    file: Path = typer.Argument(..., help="Parquet or CSV file with the rows to add."),
    schema_mode: SchemaMode = SCHEMA_MODE_OPT,
    message: str | None = MESSAGE_OPT,
    author: str | None = AUTHOR_OPT,
    branch: str | None = BRANCH_OPT,
) -> None:
    """Append the rows of a Parquet or CSV file as a new version.

    A CSV file is read with the dataset's column types.
    """
    ds = lv.open_dataset(path, branch=branch)
    ds = ds.append(
        read_input(file, ds.schema),
        schema_mode=schema_mode_value(schema_mode),
        message=message,
        author=author,
    )
    typer.echo(_commit_line(ds))


def overwrite(
    path: str = PATH_ARG,
    file: Path = typer.Argument(..., help="Parquet or CSV file with the new rows."),
    schema_mode: SchemaMode = SCHEMA_MODE_OPT,
    message: str | None = MESSAGE_OPT,
    author: str | None = AUTHOR_OPT,
    branch: str | None = BRANCH_OPT,
) -> None:
    """Replace all rows with those of a Parquet or CSV file (history keeps the old ones).

    A CSV file is read with the dataset's column types.
    """
    ds = lv.open_dataset(path, branch=branch)
    ds = ds.overwrite(
        read_input(file, ds.schema),
        schema_mode=schema_mode_value(schema_mode),
        message=message,
        author=author,
    )
    typer.echo(
        f"committed version {ds.version} of {ds.uri} (snapshot {ds.snapshot_id[:12]}): "
        f"{ds.commit.rows_removed} rows replaced by {ds.commit.rows_added}"
    )


def commit_json(c: lv.Commit) -> dict[str, Any]:
    """A commit as JSON: the branch by name (branch ids are internal)."""
    out = c.to_dict()
    out.pop("branch_id", None)
    out["branch"] = out.pop("branch_name")
    return out


def log(
    path: str = PATH_ARG,
    limit: int | None = typer.Option(None, "--limit", "-n", min=0, help="Show at most N commits."),
    branch: str | None = BRANCH_OPT,
    graph: bool = typer.Option(False, "--graph", help="Draw branches and merges."),
    all_branches: bool = typer.Option(False, "--all", help="Show the commits of every branch."),
    as_json: bool = JSON_OPT,
) -> None:
    """Show the history of commits, newest first."""
    ds = lv.open_dataset(path, branch=branch)
    if graph or all_branches:
        commits = collect_graph(ds, all_branches=all_branches)[:limit]
    else:
        commits = ds.history(limit=limit)
    if as_json:
        print_json([commit_json(c) for c in commits])
        return
    if graph:
        print_lines(draw_graph(commits, branch_heads(ds)))
        return
    rows = [
        (
            f"{c.version} (expired)" if c.expired else c.version,
            c.snapshot_id[:12],
            c.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            c.operation,
            c.author,
            f"+{c.rows_added} -{c.rows_removed}",
            c.total_rows,
            c.message,
        )
        for c in commits
    ]
    print_table(
        None,
        ["version", "snapshot", "time (UTC)", "operation", "author", "rows", "total", "message"],
        rows,
    )


def show(
    path: str = PATH_ARG,
    version: str | None = VERSION_ARG,
    branch: str | None = BRANCH_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Show one snapshot: commit metadata, schema, row count and fragments."""
    ds = open_at(path, version, branch)
    c = ds.commit
    field_ids = ds.field_ids
    schema = [
        {
            "name": f.name,
            "type": str(f.type),
            "nullable": f.nullable,
            "field_id": field_ids.get(f.name),
        }
        for f in ds.schema
    ]
    fragments = ds.fragments()
    if as_json:
        out: dict[str, Any] = {
            "uri": ds.uri,
            "pin": ds.pin(),
            "commit": commit_json(c),
            "num_rows": ds.num_rows,
            "schema": schema,
            "fragments": [f.to_dict() for f in fragments],
        }
        print_json(out)
        return
    print_pairs(
        f"{ds.uri} @ version {c.version}",
        [
            ("branch", ds.branch_name),
            ("snapshot", c.snapshot_id),
            ("pin", ds.pin()),
            ("time (UTC)", c.timestamp.isoformat()),
            ("operation", c.operation),
            ("author", c.author),
            ("message", c.message),
            ("properties", ", ".join(f"{k}={v}" for k, v in c.properties.items())),
            ("rows", ds.num_rows),
            ("fragments", f"{c.total_fragments} ({human_bytes(c.total_bytes)})"),
        ],
    )
    print_table(
        "schema",
        ["field id", "column", "type", "nullable"],
        [(s["field_id"], s["name"], s["type"], s["nullable"]) for s in schema],
    )
    print_table(
        "fragments",
        ["path", "rows", "size", "sha256"],
        [
            (
                f.path,
                f"{f.num_rows - f.deleted_rows} (+{f.deleted_rows} deleted)"
                if f.deleted_rows
                else f.num_rows,
                human_bytes(f.size_bytes),
                f.content_hash.split(":")[-1][:16],
            )
            for f in fragments
        ],
    )


def cat(
    path: str = PATH_ARG,
    version: str | None = VERSION_ARG,
    limit: int = typer.Option(20, "--limit", "-n", min=0, help="Print at most N rows."),
    branch: str | None = BRANCH_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Print the first rows of a snapshot."""
    ds = open_at(path, version, branch)
    batches = []
    taken = 0
    if limit:
        for batch in ds.to_batches(batch_size=min(limit, 65536)):
            batches.append(batch.slice(0, limit - taken))
            taken += batches[-1].num_rows
            if taken >= limit:
                break
    table = pa.Table.from_batches(batches, schema=ds.schema)
    if as_json:
        print_json(table.to_pylist())
        return
    print_table(
        f"{ds.uri} @ version {ds.version}: {taken} of {ds.num_rows} rows",
        table.schema.names,
        [tuple(r.values()) for r in table.to_pylist()],
    )


def explain(
    path: str = PATH_ARG,
    filter: str = typer.Argument(..., help="DuckDB SQL boolean expression."),
    version: str | None = VERSION_ARG,
    branch: str | None = BRANCH_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Show how many fragments a filter reads after partition and statistics pruning."""
    plan = open_at(path, version, branch).explain(filter)
    if as_json:
        print_json(plan.to_dict())
        return
    print_table(
        f"filter: {plan.filter}",
        ["step", "fragments", "rows", "bytes"],
        [
            ("total", plan.fragments_total, plan.rows_total, human_bytes(plan.bytes_total)),
            ("after partition pruning", plan.fragments_after_partition_pruning, "", ""),
            (
                "after stats pruning",
                plan.fragments_after_stats_pruning,
                plan.rows_after_pruning,
                human_bytes(plan.bytes_after_pruning),
            ),
        ],
    )


def register(app: typer.Typer) -> None:
    """Add the data commands to ``app``."""
    for fn in (init, append, overwrite, log, show, cat, explain):
        app.command()(fn)

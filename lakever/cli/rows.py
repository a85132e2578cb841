"""Row commands: diff, changes, delete, update, upsert."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import typer

import lakever as lv
from lakever.cli._input import read_input
from lakever.cli._output import print_json, print_lines, print_styled_table, print_table
from lakever.cli.data import (
    AUTHOR_OPT,
    BRANCH_OPT,
    JSON_OPT,
    MESSAGE_OPT,
    PATH_ARG,
    SCHEMA_MODE_OPT,
    SchemaMode,
    parse_version,
    schema_mode_value,
)


class Mode(StrEnum):
    """How rows are deleted: deletion vectors, or rewritten fragments."""

    merge_on_read = "merge-on-read"
    copy_on_write = "copy-on-write"


_RowMode = Literal["merge-on-read", "copy-on-write"]
MODE_OPT = typer.Option(
    Mode.merge_on_read,
    "--mode",
    help="merge-on-read (deletion vectors) or copy-on-write (rewrite the fragments).",
)
KEY_OPT = typer.Option(
    None, "--key", "-k", help="Key column (repeat for several). Default: the primary key."
)
_NEW = "bold yellow"


def _ref(text: str) -> int | str | Any:
    value = parse_version(text)
    assert value is not None
    return value


def _m(mode: Mode) -> _RowMode:
    return mode.value


def _fragments(n: int) -> str:
    return f"{n} fragment" + ("" if n == 1 else "s")


def _committed(before: lv.Dataset, after: lv.Dataset, what: str) -> str:
    if after.version == before.version:
        return (
            f"no rows match {what}: nothing committed ({before.uri} stays at version "
            f"{before.version})"
        )
    c = after.commit
    p = c.parameters
    return (
        f"committed version {c.version} of {after.uri} ({p['mode']}): {p['rows_deleted']} rows "
        f"deleted, {p['rows_written']} written, {_fragments(p['fragments_touched'])} touched; "
        f"{c.total_rows} rows total"
    )


def delete(
    path: str = PATH_ARG,
    where: str = typer.Option(..., "--where", "-w", help="DuckDB SQL boolean expression."),
    mode: Mode = MODE_OPT,
    message: str | None = MESSAGE_OPT,
    author: str | None = AUTHOR_OPT,
    branch: str | None = BRANCH_OPT,
) -> None:
    """Delete the rows where a SQL condition holds (e.g. --where "user_id = 42")."""
    ds = lv.open_dataset(path, branch=branch)
    after = ds.delete(where=where, mode=_m(mode), message=message, author=author)
    typer.echo(_committed(ds, after, f"{where!r}"))


def _assignments(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        column, sep, expr = item.partition("=")
        if not sep or not column.strip():
            raise lv.InvalidArgument(f"--set {item!r} must be COLUMN=SQL_EXPRESSION")
        out[column.strip()] = expr
    return out


def update(
    path: str = PATH_ARG,
    set_: list[str] = typer.Option(
        ..., "--set", "-s", help="COLUMN=SQL_EXPRESSION (repeatable), e.g. --set \"label='spam'\"."
    ),
    where: str | None = typer.Option(None, "--where", "-w", help="Rows to update (default all)."),
    mode: Mode = MODE_OPT,
    message: str | None = MESSAGE_OPT,
    author: str | None = AUTHOR_OPT,
    branch: str | None = BRANCH_OPT,
) -> None:
    """Set columns to SQL expressions in the rows where a condition holds."""
    ds = lv.open_dataset(path, branch=branch)
    after = ds.update(
        set=_assignments(set_), where=where, mode=_m(mode), message=message, author=author
    )
    typer.echo(_committed(ds, after, repr(where) if where else "(no rows)"))


def upsert(
    path: str = PATH_ARG,
    file: Path = typer.Argument(..., help="Parquet or CSV file with the rows to upsert."),
    key: list[str] | None = KEY_OPT,
    mode: Mode = MODE_OPT,
    schema_mode: SchemaMode = SCHEMA_MODE_OPT,
    message: str | None = MESSAGE_OPT,
    author: str | None = AUTHOR_OPT,
    branch: str | None = BRANCH_OPT,
) -> None:
    """Insert rows with new keys and replace the rows whose key matches.

    A CSV file is read with the dataset's column types.
    """
    ds = lv.open_dataset(path, branch=branch)
    after = ds.upsert(
        read_input(file, ds.schema),
        on=key or None,
        mode=_m(mode),
        schema_mode=schema_mode_value(schema_mode),
        message=message,
        author=author,
    )
    typer.echo(_committed(ds, after, "(no rows in the file)"))


def _cell(value: Any) -> str:
    return "null" if value is None else str(value)


def _sample_rows(d: lv.Diff, n: int) -> None:
    """Print up to ``n`` removed, added and changed rows; changed cells highlighted."""
    columns = d.schema.names
    s = d.summary
    if d.key is not None:
        changed = d.changed().slice(0, n).to_pylist()
        shown = [c for c in columns if any(c in r["_changed_columns"] for r in changed)]
        rows = []
        for r in changed:
            cells: list[tuple[str, str | None]] = [(_cell(r[k]), None) for k in d.key]
            for c in shown:
                if c in r["_changed_columns"]:
                    cells.append((f"{_cell(r['_old'][c])} -> {_cell(r['_new'][c])}", _NEW))
                else:
                    cells.append((_cell(r["_new"].get(c)), None))
            rows.append(cells)
        if rows:
            print_styled_table(
                f"changed (first {len(rows)} of {s.rows_changed})", [*d.key, *shown], rows
            )
            _more("changed", s.rows_changed - len(rows))
    for what, table, style in (("removed", d.removed(), "red"), ("added", d.added(), "green")):
        sample = table.slice(0, n).to_pylist()
        if sample:
            print_styled_table(
                f"{what} (first {len(sample)} of {table.num_rows})",
                columns,
                [[(_cell(r[c]), style) for c in columns] for r in sample],
            )
            _more(what, table.num_rows - len(sample))


def _more(what: str, n: int) -> None:
    if n > 0:
        print_lines(
            [f"... and {n:,} more {what} rows; use --rows N to show more (with --json too)"]
        )


def _sides(
    path: str,
    a: str,
    b: str,
    branch: str | None,
    key: list[str] | None,
    columns: list[str] | None = None,
) -> tuple[lv.Dataset, lv.Dataset]:
    """Open both sides as `lv.diff` resolves them; check ``--key`` and ``--column``."""
    sides = []
    for text in (a, b):
        ref = _ref(text)
        sides.append(
            lv.open_dataset(path, version=ref, branch=None if isinstance(ref, str) else branch)
        )
    names = [
        *sides[1].schema.names,
        *(n for n in sides[0].schema.names if n not in sides[1].schema.names),
    ]
    unknown = [k for k in key or () if k not in names]
    if unknown:
        raise lv.InvalidArgument(
            f"--key {unknown[0]!r} is not a column of version {sides[0].version} or version "
            f"{sides[1].version} (columns: {', '.join(names)})"
        )
    both = [n for n in sides[1].schema.names if n in sides[0].schema.names]
    one_sided = [c for c in columns or () if c not in both]
    if one_sided:
        raise lv.InvalidArgument(
            f"--column {one_sided[0]!r} is not a column of both version {sides[0].version} and "
            f"version {sides[1].version} (columns both have: {', '.join(both)})"
        )
    return sides[0], sides[1]


def diff(
    path: str = PATH_ARG,
    a: str = typer.Argument(..., help="Older side: version, time, tag, branch or snapshot id."),
    b: str = typer.Argument(..., help="Newer side, likewise."),
    key: list[str] | None = KEY_OPT,
    columns: list[str] | None = typer.Option(
        None,
        "--column",
        "-c",
        help="Compare (and show) only this column (repeat for several), plus the key.",
    ),
    rows: int = typer.Option(0, "--rows", "-n", min=0, help="Also show up to N rows of each kind."),
    branch: str | None = BRANCH_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Show what changed between two snapshots: rows, fragments and schema."""
    side_a, side_b = _sides(path, a, b, branch, key, columns)
    d = lv.diff(path, _ref(a), _ref(b), on=key or None, columns=columns or None, branch=branch)
    s = d.summary
    if as_json:
        out = d.to_dict()
        # Branches by name: branch ids are internal.
        out["a"]["branch"] = side_a.commit.branch_name
        out["b"]["branch"] = side_b.commit.branch_name
        if rows:
            out["rows"] = {
                "removed": d.removed().slice(0, rows).to_pylist(),
                "added": d.added().slice(0, rows).to_pylist(),
                "changed": d.changed().slice(0, rows).to_pylist() if d.key else [],
            }
        print_json(out)
        return
    key_text = ", ".join(d.key) if d.key else "none (rows compared as a multiset)"
    print_table(
        f"{path}: version {d.a.version} ({d.a.snapshot_id[:12]}) -> version {d.b.version} "
        f"({d.b.snapshot_id[:12]}); key: {key_text}",
        ["", "rows", "fragments"],
        [
            ("added", s.rows_added, s.fragments_added),
            ("removed", s.rows_removed, s.fragments_removed),
            ("changed", s.rows_changed if d.key else "", s.fragments_modified),
            ("shared (not read)", "", s.fragments_shared),
        ],
    )
    if s.schema_changes:
        print_lines(["schema changes:", *(f"  {c.describe()}" for c in s.schema_changes)])
    if rows:
        _sample_rows(d, rows)


def changes(
    path: str = PATH_ARG,
    since: str = typer.Option(..., "--since", help="Show the changes after this version."),
    key: list[str] | None = KEY_OPT,
    limit: int = typer.Option(50, "--limit", "-n", min=0, help="Print at most N rows."),
    branch: str | None = BRANCH_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Show the change feed: rows inserted, deleted and updated after a version."""
    ds = lv.open_dataset(path, branch=branch)
    unknown = [k for k in key or () if k not in ds.schema.names]
    if unknown:
        raise lv.InvalidArgument(
            f"--key {unknown[0]!r} is not a column of {ds.uri} (columns: "
            f"{', '.join(ds.schema.names)})"
        )
    tables = []
    taken = 0
    for table in ds.changes(since=_ref(since), on=key or None):
        tables.append(table.slice(0, limit - taken))
        taken += tables[-1].num_rows
        if taken >= limit:
            break
    rows = pa.concat_tables(tables).to_pylist() if tables else []
    if as_json:
        print_json(rows)
        return
    columns = ["_commit_version", "_change_type", *ds.schema.names]
    print_table(
        f"{ds.uri}: changes after {since} up to version {ds.version} (first {len(rows)})",
        ["version", "change", *ds.schema.names],
        [[r[c] for c in columns] for r in rows],
    )


def register(app: typer.Typer) -> None:
    """Add the row commands to ``app``."""
    for fn in (diff, changes, delete, update, upsert):
        app.command()(fn)

"""Schema and contract commands: schema, schema-diff, validate."""

from __future__ import annotations

import json
from typing import Any

import typer

import lakever as lv
from lakever.cli._output import print_json, print_table
from lakever.cli.data import JSON_OPT, PATH_ARG, VERSION_ARG, open_at


def _columns(ds: lv.Dataset) -> list[dict[str, Any]]:
    ids = ds.field_ids
    return [
        {"name": f.name, "type": str(f.type), "nullable": f.nullable, "field_id": ids.get(f.name)}
        for f in ds.schema
    ]


def schema(
    path: str = PATH_ARG,
    version: str | None = VERSION_ARG,
    history: bool = typer.Option(
        False, "--history", help="Show every schema up to VERSION and what each commit changed."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Show the schema of a snapshot (field ids, types, contract), or its history."""
    ds = open_at(path, version)
    if history:
        versions = ds.schema_history()
        if as_json:
            print_json([v.to_dict() for v in versions])
            return
        print_table(
            f"{ds.uri}: schema history up to version {ds.version} (--json for each schema)",
            ["version", "time (UTC)", "operation", "changes"],
            [
                (
                    v.version,
                    v.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
                    v.operation,
                    "\n".join(c.describe() for c in v.changes)
                    or "first schema: " + ", ".join(f"{f.name} {f.type}" for f in v.schema),
                )
                for v in versions
            ],
        )
        return
    columns = _columns(ds)
    contract = ds.contract
    if as_json:
        print_json(
            {
                "uri": ds.uri,
                "version": ds.version,
                "schema": columns,
                "contract": None if contract is None else json.loads(contract.to_json()),
            }
        )
        return
    print_table(
        f"{ds.uri} @ version {ds.version}",
        ["field id", "column", "type", "nullable"],
        [(c["field_id"], c["name"], c["type"], c["nullable"]) for c in columns],
    )
    if contract is None:
        typer.echo("contract: none")
    else:
        typer.echo(f"contract: {contract.to_json()}")


def schema_diff(
    path: str = PATH_ARG,
    a: str = typer.Argument(..., help="The older version (number or timezone-aware ISO time)."),
    b: str = typer.Argument(..., help="The newer version."),
    as_json: bool = JSON_OPT,
) -> None:
    """Show how the schema changed from version A to version B (columns matched by field id)."""
    old, new = open_at(path, a), open_at(path, b)
    changes = old.schema_diff(new)
    if as_json:
        print_json([c.to_dict() for c in changes])
        return
    if not changes:
        typer.echo(f"no schema changes from version {old.version} to version {new.version}")
        return
    print_table(
        f"{old.uri}: schema changes from version {old.version} to version {new.version}",
        ["change", "field id", "column", "from", "to"],
        [
            (
                c.kind,
                c.field_id,
                c.column,
                c.old_column if c.kind == "rename" else c.old_type,
                c.column if c.kind == "rename" else c.new_type,
            )
            for c in changes
        ],
    )


def validate(
    path: str = PATH_ARG,
    version: str | None = VERSION_ARG,
) -> None:
    """Re-check every row of a snapshot against the contract it had; exit 1 on a violation."""
    ds = open_at(path, version)
    try:
        rows = ds.validate()
    except lv.ContractViolation as exc:
        cases = exc.failure_cases.to_pylist()
        print_table(
            "failure cases",
            ["column", "check", "failing value", "rows"],
            [(c["column"], c["check"], c["failure_case"], c["count"]) for c in cases],
        )
        raise
    typer.echo(f"version {ds.version} of {ds.uri} satisfies its contract ({rows} rows checked)")


def register(app: typer.Typer) -> None:
    """Add the schema commands to ``app``."""
    app.command()(schema)
    app.command("schema-diff")(schema_diff)
    app.command()(validate)

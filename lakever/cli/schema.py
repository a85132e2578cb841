"""Schema and contract commands: schema, schema-diff, evolve, contract, validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

import lakever as lv
from lakever.cli._input import parse_type, read_contract, split_pair
from lakever.cli._output import print_json, print_lines, print_table
from lakever.cli.data import (
    AUTHOR_OPT,
    BRANCH_OPT,
    JSON_OPT,
    MESSAGE_OPT,
    PATH_ARG,
    VERSION_ARG,
    open_at,
)


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


def evolve(
    path: str = PATH_ARG,
    add: list[str] | None = typer.Option(
        None, "--add", help="NAME:TYPE, a new nullable column, e.g. score:double (repeatable)."
    ),
    rename: list[str] | None = typer.Option(
        None, "--rename", help="OLD=NEW (repeatable); the column keeps its field id."
    ),
    drop: list[str] | None = typer.Option(None, "--drop", help="Column to drop (repeatable)."),
    widen: list[str] | None = typer.Option(
        None, "--widen", help="COLUMN:TYPE, a wider type, e.g. id:int64 (repeatable)."
    ),
    contract: Path | None = typer.Option(
        None, "--contract", help="The contract (JSON or YAML) in force with the new schema."
    ),
    message: str | None = MESSAGE_OPT,
    author: str | None = AUTHOR_OPT,
    branch: str | None = BRANCH_OPT,
) -> None:
    """Change the schema without rewriting data: add, rename, drop or widen columns.

    Type names are those 'lakever schema' prints: int64, double, string, bool,
    date32\\[day], timestamp\\[us], timestamp\\[us, tz=UTC], decimal128(10, 2), ...
    """
    changes: dict[str, Any] = {
        "add": {
            name: parse_type(t, flag="--add")
            for name, t in (split_pair(a, ":", flag="--add", form="NAME:TYPE") for a in add or ())
        },
        "rename": dict(split_pair(r, "=", flag="--rename", form="OLD=NEW") for r in rename or ()),
        "drop": list(drop or ()),
        "widen": {
            name: parse_type(t, flag="--widen")
            for name, t in (
                split_pair(w, ":", flag="--widen", form="COLUMN:TYPE") for w in widen or ()
            )
        },
    }
    if not any(changes.values()):
        raise lv.InvalidArgument("give at least one of --add, --rename, --drop or --widen")
    ds = lv.open_dataset(path, branch=branch)
    if contract is not None:
        changes["contract"] = read_contract(contract)
    after = ds.evolve(**changes, message=message, author=author)
    print_lines(
        [
            f"committed version {after.version} of {after.uri} "
            f"(snapshot {after.snapshot_id[:12]}):",
            *(f"  {c.describe()}" for c in ds.schema_diff(after)),
        ]
    )


contract_app = typer.Typer(
    name="contract",
    help="Set, show or remove the contract (a pandera schema) checked on every commit.",
    no_args_is_help=True,
)


@contract_app.command("set")
def contract_set(
    path: str = PATH_ARG,
    file: Path = typer.Argument(
        ..., help="pandera schema as JSON or YAML (schema.to_json() / to_yaml())."
    ),
    message: str | None = MESSAGE_OPT,
    author: str | None = AUTHOR_OPT,
    branch: str | None = BRANCH_OPT,
) -> None:
    """Attach a contract in a new commit; rows already committed are not re-checked."""
    ds = lv.open_dataset(path, branch=branch)
    after = ds.set_contract(read_contract(file), message=message, author=author)
    typer.echo(
        f"committed version {after.version} of {after.uri} (snapshot {after.snapshot_id[:12]}): "
        f"contract set; 'lakever validate {path}' checks the rows already committed"
    )


@contract_app.command("show")
def contract_show(
    path: str = PATH_ARG,
    version: str | None = VERSION_ARG,
    branch: str | None = BRANCH_OPT,
    yaml: bool = typer.Option(False, "--yaml", help="Print YAML instead of JSON."),
) -> None:
    """Print the contract in force at a snapshot (pandera's JSON; exit 1 if there is none)."""
    ds = open_at(path, version, branch)
    contract = ds.contract
    if contract is None:
        raise lv.InvalidArgument(
            f"version {ds.version} of {ds.uri} has no contract; set one with "
            f"'lakever contract set {path} FILE'"
        )
    if yaml:
        print_lines(contract.to_yaml().rstrip("\n").splitlines())
        return
    print_json(json.loads(contract.to_json()))


@contract_app.command("remove")
def contract_remove(
    path: str = PATH_ARG,
    message: str | None = MESSAGE_OPT,
    author: str | None = AUTHOR_OPT,
    branch: str | None = BRANCH_OPT,
) -> None:
    """Remove the contract in a new commit."""
    ds = lv.open_dataset(path, branch=branch)
    if ds.contract is None:
        typer.echo(f"{ds.uri} has no contract: nothing committed (version {ds.version})")
        return
    after = ds.set_contract(None, message=message, author=author)
    typer.echo(
        f"committed version {after.version} of {after.uri} (snapshot {after.snapshot_id[:12]}): "
        "contract removed"
    )


def validate(
    path: str = PATH_ARG,
    version: str | None = VERSION_ARG,
    branch: str | None = BRANCH_OPT,
    limit: int = typer.Option(
        20, "--limit", "-n", min=0, help="Print at most N failure cases (--json prints all)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print every failure case as JSON."),
) -> None:
    """Re-check every row of a snapshot against the contract it had; exit 1 on a violation."""
    ds = open_at(path, version, branch)
    if ds.contract is None:
        raise lv.InvalidArgument(
            f"version {ds.version} of {ds.uri} has no contract to validate against; set one "
            f"with 'lakever contract set {path} FILE'"
        )
    try:
        rows = ds.validate()
    except lv.ContractViolation as exc:
        cases = exc.failure_cases
        total = sum(n or 0 for n in cases.column("count").to_pylist())
        if as_json:
            print_json(cases.to_pylist())
        else:
            shown = cases.slice(0, limit).to_pylist()
            print_table(
                f"failure cases (first {len(shown)} of {cases.num_rows:,})",
                ["column", "check", "failing value", "rows"],
                [(c["column"], c["check"], c["failure_case"], c["count"]) for c in shown],
            )
            if cases.num_rows > len(shown):
                print_lines(
                    [
                        f"... and {cases.num_rows - len(shown):,} more failure cases; "
                        "use --limit N, or --json for all"
                    ]
                )
        raise lv.ContractViolation(
            f"version {ds.version} of {ds.uri} violates its contract: {total:,} failing "
            f"value(s) in {cases.num_rows:,} failure case(s) (listed on stdout). Rows "
            "committed before the contract was set, or with validation skipped, were not "
            f"checked; correct them with 'lakever update', 'lakever delete' or "
            f"'lakever overwrite {path} FILE'",
            failure_cases=cases,
        ) from exc
    typer.echo(f"version {ds.version} of {ds.uri} satisfies its contract ({rows} rows checked)")


def register(app: typer.Typer) -> None:
    """Add the schema commands to ``app``."""
    app.command()(schema)
    app.command("schema-diff")(schema_diff)
    app.command()(evolve)
    app.add_typer(contract_app)
    app.command()(validate)

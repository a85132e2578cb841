"""Export commands: ``lakever export delta|list|drop`` (a sub-app; each command stands
alone, so other formats add theirs next to them)."""

from __future__ import annotations

import typer

import lakever as lv
from lakever.cli._output import human_bytes, print_json, print_table
from lakever.cli.data import AUTHOR_OPT, BRANCH_OPT, JSON_OPT, PATH_ARG, parse_version

app = typer.Typer(
    name="export",
    help="Publish a dataset's history in another table format (zero copy), list and drop "
    "what exports hold.",
    no_args_is_help=True,
)


def delta(
    path: str = PATH_ARG,
    ref_target: list[str] = typer.Argument(
        ...,
        metavar="[REF] TARGET",
        help="REF: version number, ISO time, tag, branch or snapshot id to export up to "
        "(default: the head). TARGET: where the Delta table goes: the dataset root or a "
        "directory above it.",
    ),
    branch: str | None = BRANCH_OPT,
    author: str | None = AUTHOR_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Export the branch's history as a Delta Lake table over the dataset's own Parquet
    files; run again to append the versions committed since (docs/export.md)."""
    if len(ref_target) > 2:
        raise lv.InvalidArgument(f"export delta takes [REF] TARGET, got {ref_target}")
    ref, target = (None, ref_target[0]) if len(ref_target) == 1 else ref_target
    ds = lv.open_dataset(path, version=parse_version(ref), branch=branch)
    r = ds.export_delta(target, author=author)
    if as_json:
        print_json(r.to_dict())
        return
    if not r.versions_written:
        typer.echo(
            f"{r.target} is up to date: Delta versions {r.first_version}..{r.head_version} "
            f"show versions {r.first_version}..{r.head_version} of {r.branch!r}"
        )
        return
    first, last = r.versions_written[0], r.versions_written[-1]
    typer.echo(
        f"exported versions {first}..{last} of {r.branch!r} to {r.target} as Delta versions "
        f"{first}..{last}: {r.files_referenced} file(s) referenced in place, "
        f"{r.files_rewritten} rewritten ({human_bytes(r.bytes_rewritten)}), "
        f"{human_bytes(r.bytes_written)} written"
    )


def list_exports(path: str = PATH_ARG, as_json: bool = JSON_OPT) -> None:
    """List the snapshots exports hold (kept by expire and vacuum until dropped)."""
    held = lv.open_dataset(path).exports()
    if as_json:
        print_json([r.to_dict() for r in held])
        return
    rows = [
        (r.pin, r.version, r.snapshot_id[:12], r.created.strftime("%Y-%m-%d %H:%M"), r.reason)
        for r in held
    ]
    print_table("exports", ["export", "version", "snapshot", "created", "reason"], rows)


def drop(
    path: str = PATH_ARG,
    format: str = typer.Argument(..., help="The export's format, e.g. delta."),
    target: str = typer.Argument(..., help="The export's target, as given to export."),
    author: str | None = AUTHOR_OPT,
) -> None:
    """Stop holding the snapshots an export references; the next expire and vacuum may
    delete their files (the exported table is not touched: its readers may find files
    gone)."""
    n = lv.open_dataset(path).drop_export(format, target, author=author)
    typer.echo(f"dropped the {format} export to {target}: {n} snapshot(s) no longer held")


app.command("delta")(delta)
app.command("list")(list_exports)
app.command("drop")(drop)


def register(root: typer.Typer) -> None:
    """Add the ``export`` sub-app to ``root``."""
    root.add_typer(app)

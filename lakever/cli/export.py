"""Export commands: ``lakever export delta|iceberg|list|drop`` publish a dataset's history
in another table format over the same Parquet files, and list or drop what exports hold
(docs/export.md)."""

from __future__ import annotations

import typer

import lakever as lv
from lakever.cli._output import human_bytes, print_json, print_pairs, print_table
from lakever.cli.data import AUTHOR_OPT, BRANCH_OPT, JSON_OPT, PATH_ARG, parse_version

app = typer.Typer(
    name="export",
    help="Publish a dataset's history in another table format (zero copy), list and drop "
    "what exports hold.",
    no_args_is_help=True,
)


def _source_and_target(
    fmt: str, path: str, ref_target: list[str], branch: str | None
) -> tuple[lv.Dataset, str]:
    """The dataset at ``[REF]`` and the TARGET of ``export FMT PATH [REF] TARGET``."""
    if len(ref_target) > 2:
        raise typer.BadParameter(
            f"export {fmt} takes [REF] TARGET, got {ref_target}", param_hint="[REF] TARGET"
        )
    ref, target = (None, ref_target[0]) if len(ref_target) == 1 else ref_target
    return lv.open_dataset(path, version=parse_version(ref), branch=branch), target


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
    ds, target = _source_and_target("delta", path, ref_target, branch)
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


def iceberg(
    path: str = PATH_ARG,
    ref_target: list[str] = typer.Argument(
        ...,
        metavar="[REF] TARGET",
        help="REF: version number, ISO time, tag, branch or snapshot id to export up to "
        "(default: the head). TARGET: where the Iceberg table goes (a path or URI outside "
        "the dataset).",
    ),
    branch: str | None = BRANCH_OPT,
    author: str | None = AUTHOR_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Export the branch's history as an Apache Iceberg table over the dataset's own
    Parquet files; run again to append the versions committed since (docs/export.md)."""
    ds, target = _source_and_target("iceberg", path, ref_target, branch)
    done = ds.export_iceberg(target, author=author)
    if as_json:
        print_json(done.to_dict())
        return
    added = done.versions_added
    print_pairs(
        f"exported {ds.uri} to {done.target} (Apache Iceberg)"
        if added
        else f"{done.target} is up to date (nothing to export)",
        [
            ("metadata", done.metadata_location),
            ("versions added", f"{added[0]}..{added[-1]} ({len(added)})" if added else "none"),
            ("versions in the table", f"{done.first_version}..{done.last_version}"),
            ("tags", ", ".join(done.tags) or "none"),
            ("written", f"{human_bytes(done.bytes_written)} in {done.files_written} files"),
            ("of which deletes", human_bytes(done.delete_bytes_written)),
        ],
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
app.command("iceberg")(iceberg)
app.command("list")(list_exports)
app.command("drop")(drop)


def register(root: typer.Typer) -> None:
    """Add the ``export`` sub-app to ``root``."""
    root.add_typer(app)

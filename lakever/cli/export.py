"""Export commands: publish a dataset's history in another table format (docs/export.md)."""

from __future__ import annotations

import typer

from lakever.cli._output import human_bytes, print_json, print_pairs
from lakever.cli.data import AUTHOR_OPT, JSON_OPT, PATH_ARG, open_at

export_app = typer.Typer(
    name="export",
    help="Publish a dataset's history as a table of another format, no data copied.",
    no_args_is_help=True,
)


@export_app.command("iceberg")
def export_iceberg(
    path: str = PATH_ARG,
    ref_and_target: list[str] = typer.Argument(
        ...,
        metavar="[REF] TARGET",
        help="REF: export up to this version, tag or branch (default: the head of main); "
        "TARGET: where the Iceberg table goes (a path or URI outside the dataset).",
    ),
    author: str | None = AUTHOR_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Write Apache Iceberg metadata over the dataset's Parquet files (incremental)."""
    if len(ref_and_target) > 2:
        raise typer.BadParameter("give at most REF and TARGET", param_hint="[REF] TARGET")
    target = ref_and_target[-1]
    ref = ref_and_target[0] if len(ref_and_target) == 2 else None
    ds = open_at(path, ref)
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


def register(app: typer.Typer) -> None:
    """Add the export commands to ``app``."""
    app.add_typer(export_app)

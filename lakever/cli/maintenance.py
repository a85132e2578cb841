"""Maintenance commands: compact."""

from __future__ import annotations

from typing import Any

import typer

import lakever as lv
from lakever.cli._output import print_json
from lakever.cli.data import AUTHOR_OPT, BRANCH_OPT, JSON_OPT, MESSAGE_OPT, PATH_ARG


def compact(
    path: str = PATH_ARG,
    target_size: str = typer.Option(
        "128M", "--target-size", "-t", help="Size to aim for per new fragment (e.g. 64M, 1G)."
    ),
    where: str | None = typer.Option(
        None, "--where", "-w", help="Only fragments that may hold rows where this SQL holds."
    ),
    min_fragments: int = typer.Option(
        2,
        "--min-fragments",
        help="Leave runs of fewer small fragments alone (unless they have deleted rows).",
    ),
    message: str | None = MESSAGE_OPT,
    author: str | None = AUTHOR_OPT,
    branch: str | None = BRANCH_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Merge small fragments and drop deleted rows, in a commit that changes no row."""
    ds = lv.open_dataset(path, branch=branch)
    after = ds.compact(
        target_size=target_size,
        where=where,
        min_fragments=min_fragments,
        message=message,
        author=author,
    )
    committed = after.version != ds.version
    out: dict[str, Any] = {
        "uri": after.uri,
        "committed": committed,
        "version": after.version,
        "fragments_before": ds.commit.total_fragments,
        "fragments_after": after.commit.total_fragments,
    }
    if committed:
        p = after.commit.parameters
        keys = ("fragments_rewritten", "fragments_written", "deletion_vectors_materialized")
        out.update({k: p[k] for k in (*keys, "rows_purged")})
    if as_json:
        print_json(out)
    elif not committed:
        typer.echo(
            f"nothing to compact: nothing committed ({ds.uri} stays at version {ds.version})"
        )
    else:
        typer.echo(
            f"committed version {after.version} of {after.uri} (compact): "
            f"{out['fragments_rewritten']} fragments rewritten into {out['fragments_written']}, "
            f"{out['deletion_vectors_materialized']} deletion vectors materialized "
            f"({out['rows_purged']} deleted rows dropped); {out['fragments_after']} fragments "
            "total, rows unchanged"
        )


def register(app: typer.Typer) -> None:
    """Add the maintenance commands to ``app``."""
    app.command()(compact)

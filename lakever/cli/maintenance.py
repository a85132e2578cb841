"""Maintenance commands: compact, restore, verify."""

from __future__ import annotations

from typing import Any

import typer

import lakever as lv
from lakever.cli._output import human_bytes, print_json
from lakever.cli.data import AUTHOR_OPT, BRANCH_OPT, JSON_OPT, MESSAGE_OPT, PATH_ARG, parse_version


def restore(
    path: str = PATH_ARG,
    ref: str = typer.Argument(
        ..., help="Version number on the branch, ISO time, tag, branch or snapshot id."
    ),
    branch: str | None = BRANCH_OPT,
    message: str | None = MESSAGE_OPT,
    author: str | None = AUTHOR_OPT,
) -> None:
    """Commit a version whose rows and schema equal an older snapshot (history is kept)."""
    ds = lv.open_dataset(path, branch=branch)
    target = parse_version(ref)
    done = ds.restore(target if target is not None else ref, message=message, author=author)
    c = done.commit
    typer.echo(
        f"restored {ref!r} on {done.branch_name!r} of {done.uri}: version {c.version} "
        f"(snapshot {c.snapshot_id[:12]}), +{c.rows_added} -{c.rows_removed} rows, "
        f"{c.total_rows} rows total"
    )


def verify(
    path: str = typer.Argument(..., help="Dataset location, or a pin (lakever:...)."),
    all_refs: bool = typer.Option(False, "--all-refs", help="Check every branch and tag."),
    head: bool = typer.Option(
        False, "--head", help="Check only the head snapshot (default: every version)."
    ),
    branch: str | None = BRANCH_OPT,
    at: str | None = typer.Option(
        None, "--at", help="With a pin: where the dataset lives now (moved or copied)."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Check every file the snapshots reference and the log chain.

    Exit code 0 when everything is intact, 1 when a problem was found (one line each:
    file, what is wrong, affected branch@version).
    """
    if path.startswith("lakever:"):
        report = lv.verify(path, at)
    else:
        if at is not None:
            raise lv.InvalidArgument("--at is for pins: it says where a pinned dataset lives now")
        ds = lv.open_dataset(path, branch=branch)
        report = ds.verify(full=not head, all_refs=all_refs)
    if as_json:
        print_json(report.to_dict())
    else:
        for p in report.problems:
            typer.echo(str(p))
        state = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        typer.echo(
            f"{state}: {report.snapshots} snapshot(s), {report.files} file(s), "
            f"{human_bytes(report.bytes)} checked in {report.uri}"
        )
    if not report.ok:
        raise typer.Exit(1)


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
    for fn in (compact, restore, verify):
        app.command()(fn)

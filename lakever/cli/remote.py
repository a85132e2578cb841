"""Remote commands: push, pull, clone."""

from __future__ import annotations

import typer

import lakever as lv
from lakever.cli._output import human_bytes, print_json, print_lines
from lakever.cli.data import JSON_OPT

REFS_ARG = typer.Argument(
    None, help="Branches and tags to copy ('tag:NAME' / 'branch:NAME' if both). Default: all."
)
FORCE_OPT = typer.Option(
    False,
    "--force",
    help="Repoint a destination branch name that names another line of history. Never "
    "rewrites commits: diverged branches and moved tags are refused anyway.",
)


def _report(result: lv.SyncResult, *, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    lines = []
    for u in result.updated:
        if u.old_version is None:
            how = f"created at version {u.new_version}"
        elif u.forced:
            how = f"repointed (forced) to version {u.new_version}, was version {u.old_version}"
        else:
            how = f"version {u.old_version} -> {u.new_version}"
        lines.append(f"{u.kind} {u.name}: {how} (snapshot {u.new_snapshot_id[:12]})")
    lines.extend(
        f"{u.kind} {u.name}: up to date at version {u.new_version}" for u in result.up_to_date
    )
    lines.append(
        f"{result.objects_copied} objects copied ({human_bytes(result.bytes_copied)}), "
        f"{result.objects_skipped} already there"
    )
    print_lines(lines)


def push(
    local: str = typer.Argument(..., help="The dataset to push from."),
    remote: str = typer.Argument(..., help="The dataset to push to (created if absent)."),
    refs: list[str] | None = REFS_ARG,
    force: bool = FORCE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Copy branches and tags, and the history they need, to a remote dataset."""
    _report(lv.push(local, remote, refs or None, force=force), as_json=as_json)


def pull(
    remote: str = typer.Argument(..., help="The dataset to pull from."),
    local: str = typer.Argument(..., help="The dataset to pull into (created if absent)."),
    refs: list[str] | None = REFS_ARG,
    force: bool = FORCE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Copy branches and tags, and the history they need, from a remote dataset."""
    _report(lv.pull(remote, local, refs or None, force=force), as_json=as_json)


def clone(
    remote: str = typer.Argument(..., help="The dataset to copy."),
    local: str = typer.Argument(..., help="Where to put the copy (must not hold a dataset)."),
    ref: str | None = typer.Option(
        None, "--ref", help="Copy only this tag's or branch's history (default: everything)."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Copy a dataset: every branch and tag, or one ref's history."""
    _report(lv.clone(remote, local, ref=ref), as_json=as_json)


def register(app: typer.Typer) -> None:
    """Add the remote commands to ``app``."""
    for fn in (push, pull, clone):
        app.command()(fn)

"""Ref commands: tag, branch, merge."""

from __future__ import annotations

from enum import StrEnum

import typer

import lakever as lv
from lakever.cli._output import print_json, print_table
from lakever.cli.data import AUTHOR_OPT, BRANCH_OPT, JSON_OPT, MESSAGE_OPT, PATH_ARG, open_at

NAME_ARG = typer.Argument(None, help="Name to create (omit with --list or --delete).")


class Strategy(StrEnum):
    """Which side a merge takes on a conflict."""

    ours = "ours"
    theirs = "theirs"


def _need_name(name: str | None, what: str) -> str:
    if name is None:
        raise lv.InvalidArgument(f"give a {what} name to create, or use --list or --delete NAME")
    return name


def tag(
    path: str = PATH_ARG,
    name: str | None = NAME_ARG,
    version: str | None = typer.Option(
        None, "--version", "-v", help="Snapshot to tag: version, time, tag, branch or id."
    ),
    branch: str | None = BRANCH_OPT,
    message: str | None = MESSAGE_OPT,
    list_: bool = typer.Option(False, "--list", "-l", help="List tags."),
    delete: str | None = typer.Option(None, "--delete", "-d", help="Delete this tag."),
    author: str | None = AUTHOR_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Create, list or delete tags: immutable names for snapshots."""
    ds = open_at(path, version, branch)
    if delete is not None:
        ds.delete_tag(delete, author=author)
        typer.echo(f"deleted tag {delete!r}")
        return
    if list_:
        tags = ds.tags()
        if as_json:
            print_json([t.to_dict() for t in tags])
            return
        print_table(
            None,
            ["tag", "version", "snapshot", "created (UTC)", "author", "message"],
            [
                (
                    t.name,
                    t.version,
                    t.snapshot_id[:12],
                    t.created.strftime("%Y-%m-%d %H:%M:%S"),
                    t.author,
                    t.message,
                )
                for t in tags
            ],
        )
        return
    created = ds.tag(_need_name(name, "tag"), message=message, author=author)
    typer.echo(
        f"tagged version {created.version} (snapshot {created.snapshot_id[:12]}) "
        f"as {created.name!r}"
    )


def branch(
    path: str = PATH_ARG,
    name: str | None = NAME_ARG,
    from_: str | None = typer.Option(
        None, "--from", help="Start at this version, time, tag, branch or id (default: main)."
    ),
    list_: bool = typer.Option(False, "--list", "-l", help="List branches."),
    delete: str | None = typer.Option(None, "--delete", "-d", help="Delete this branch."),
    author: str | None = AUTHOR_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Create, list or delete branches."""
    ds = open_at(path, from_)
    if delete is not None:
        ds.delete_branch(delete, author=author)
        typer.echo(f"deleted branch {delete!r}")
        return
    if list_:
        branches = ds.branches()
        if as_json:
            print_json([b.to_dict() for b in branches])
            return
        print_table(
            None,
            ["branch", "head version", "head snapshot", "based on version"],
            [(b.name, b.head_version, b.head_snapshot_id[:12], b.base_version) for b in branches],
        )
        return
    created = ds.branch(_need_name(name, "branch"), author=author)
    typer.echo(
        f"created branch {created.branch_name!r} at version {created.version} "
        f"(snapshot {created.snapshot_id[:12]})"
    )


def merge(
    path: str = PATH_ARG,
    source: str = typer.Argument(..., help="Branch, tag or snapshot id to merge."),
    into: str | None = typer.Option(None, "--into", help="Target branch (default: main)."),
    strategy: Strategy | None = typer.Option(
        None, "--strategy", help="On conflict take 'ours' (target) or 'theirs' (source)."
    ),
    message: str | None = MESSAGE_OPT,
    author: str | None = AUTHOR_OPT,
) -> None:
    """Merge a branch (or tag, or snapshot) into another branch."""
    target = lv.open_dataset(path, branch=into)
    merged = target.merge(
        source,
        message=message,
        author=author,
        strategy=None if strategy is None else ("ours" if strategy is Strategy.ours else "theirs"),
    )
    if merged.version == target.version:
        typer.echo(f"already up to date: {merged.branch_name!r} contains {source!r}")
        return
    kind = merged.commit.parameters.get("kind")
    typer.echo(
        f"merged {source!r} into {merged.branch_name!r} ({kind}): version {merged.version}, "
        f"+{merged.commit.rows_added} -{merged.commit.rows_removed} rows"
    )


def register(app: typer.Typer) -> None:
    """Add the ref commands to ``app``."""
    for fn in (tag, branch, merge):
        app.command()(fn)

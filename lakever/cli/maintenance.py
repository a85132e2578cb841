"""Maintenance commands: compact, restore, verify, expire, vacuum, du, retain, release."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import typer

import lakever as lv
from lakever.cli._input import parse_duration
from lakever.cli._output import human_bytes, print_json, print_table
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
            + (f" ({report.expired} expired version(s) skipped)" if report.expired else "")
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


APPLY_OPT = typer.Option(False, "--apply", help="Do it (default: a dry run that changes nothing).")
GRACE_OPT = typer.Option(
    "7d",
    "--grace",
    help="Keep unreferenced and just-expired files younger than this (e.g. 7d, 12h).",
)


def _older_than(text: str | None) -> datetime | timedelta | None:
    """``--older-than``: a duration before now (30d) or an ISO 8601 time."""
    if text is None:
        return None
    when = parse_version(text)
    if isinstance(when, datetime):
        return when
    return parse_duration(text, flag="--older-than")


def expire(
    path: str = PATH_ARG,
    older_than: str | None = typer.Option(
        None, "--older-than", help="Versions committed before this: a duration (30d) or ISO time."
    ),
    keep_last: int | None = typer.Option(
        None, "--keep-last", help="Keep at least this many newest versions of each branch."
    ),
    apply: bool = APPLY_OPT,
    author: str | None = AUTHOR_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Expire old versions on every branch (tags, heads, retained pins are never expired).

    Opening an expired version fails with VersionExpired; vacuum then deletes what only
    expired versions held, after the grace period. Dry run unless --apply.
    """
    ds = lv.open_dataset(path)
    report = ds.expire(
        older_than=_older_than(older_than), keep_last=keep_last, dry_run=not apply, author=author
    )
    if as_json:
        print_json(report.to_dict())
        return
    verb = "would expire" if report.dry_run else "expired"
    for r in report.expired:
        typer.echo(f"{verb} {r.branch}@{r.first}..{r.last} ({r.count} versions)")
    for where, names in report.kept.items():
        typer.echo(f"kept {where}: {', '.join(names)}")
    tail = " (dry run: pass --apply to expire)" if report.dry_run and report.versions else ""
    typer.echo(f"{verb} {report.versions} version(s) of {report.uri} [{report.policy}]{tail}")


def vacuum(
    path: str = PATH_ARG,
    apply: bool = APPLY_OPT,
    grace: str = GRACE_OPT,
    allow_short_grace: bool = typer.Option(
        False, "--allow-short-grace", help="Allow --grace under 1h (no other process may run)."
    ),
    list_files: bool = typer.Option(False, "--list", help="List every file to delete."),
    as_json: bool = JSON_OPT,
) -> None:
    """Delete files no retained snapshot on any branch references. Dry run unless --apply.

    Decided by reachability: files only expired versions reference, and orphans of failed
    writes older than --grace. Shows which refs keep what alive.
    """
    ds = lv.open_dataset(path)
    report = ds.vacuum(
        dry_run=not apply,
        grace=parse_duration(grace, flag="--grace"),
        allow_short_grace=allow_short_grace,
    )
    if as_json:
        print_json(report.to_dict())
        return
    if list_files:
        for f in report.files:
            typer.echo(f"{f.reason:9} {human_bytes(f.size):>10}  {f.path}")
    rows = [(name, u.files, human_bytes(u.bytes)) for name, u in report.kept.items()]
    print_table("kept alive by", ["ref", "files", "bytes"], rows)
    reasons = ", ".join(f"{k} {v.files}" for k, v in sorted(report.by_reason().items()))
    verb = "would delete" if report.dry_run else "deleted"
    typer.echo(
        f"{verb} {len(report.files)} file(s), {human_bytes(report.bytes)}"
        + (f" ({reasons})" if reasons else "")
        + f" from {report.uri}"
    )
    if report.expiring.files:
        typer.echo(
            f"waiting: {report.expiring.files} file(s), {human_bytes(report.expiring.bytes)} "
            "of versions expired less than the grace period ago"
        )
    if report.recent.files:
        typer.echo(
            f"kept: {report.recent.files} unreferenced file(s) younger than the grace period "
            "(a commit may be in flight)"
        )
    if report.dry_run and report.files:
        typer.echo("dry run: pass --apply to delete")


def du(
    path: str = PATH_ARG,
    grace: str = GRACE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Where the bytes are: heads, tags, history, expiring, reclaimable; per ref; fragments."""
    ds = lv.open_dataset(path)
    report = ds.storage_report(grace=parse_duration(grace, flag="--grace"))
    if as_json:
        print_json(report.to_dict())
        return
    rows = [(k, u.files, human_bytes(u.bytes)) for k, u in report.categories.items()]
    rows.append(("metadata", report.metadata.files, human_bytes(report.metadata.bytes)))
    rows.append(("total", report.total.files, human_bytes(report.total.bytes)))
    print_table(f"storage of {report.uri}", ["category", "files", "bytes"], rows)
    excl = [(k, u.files, human_bytes(u.bytes)) for k, u in report.exclusive.items()]
    print_table("held only by", ["ref", "files", "bytes"], excl)
    hist = [(k, u.files, human_bytes(u.bytes)) for k, u in report.histogram.items()]
    print_table(f"head fragments ({report.fragments})", ["size", "fragments", "bytes"], hist)


def retain(
    path: str = PATH_ARG,
    ref: str | None = typer.Argument(
        None, help="Version, tag, branch or snapshot id to retain (default: the head)."
    ),
    reason: str = typer.Option("", "--reason", "-r", help="Why (shown by --list)."),
    list_all: bool = typer.Option(False, "--list", help="List retained snapshots instead."),
    branch: str | None = BRANCH_OPT,
    author: str | None = AUTHOR_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Keep a snapshot through every expiry (a pin logged with a model), until released."""
    ds = lv.open_dataset(path, version=parse_version(ref), branch=branch)
    if list_all:
        held = ds.retained()
        if as_json:
            print_json([r.to_dict() for r in held])
            return
        rows = [
            (
                r.snapshot_id[:12],
                r.version,
                r.created.strftime("%Y-%m-%d %H:%M"),
                r.author,
                r.reason,
            )
            for r in held
        ]
        print_table("retained", ["snapshot", "version", "created", "author", "reason"], rows)
        return
    r = ds.retain(reason=reason, author=author)
    if as_json:
        print_json(r.to_dict())
    else:
        typer.echo(f"retained snapshot {r.snapshot_id[:12]} (version {r.version}): {r.pin}")


def release(
    path: str = PATH_ARG,
    pin: str = typer.Argument(..., help="A pin, or 8+ hex digits of a retained snapshot id."),
    author: str | None = AUTHOR_OPT,
) -> None:
    """Stop retaining a snapshot; a later expiry may expire it."""
    r = lv.open_dataset(path).release(pin, author=author)
    typer.echo(f"released snapshot {r.snapshot_id[:12]} (version {r.version})")


def register(app: typer.Typer) -> None:
    """Add the maintenance commands to ``app``."""
    for fn in (compact, restore, verify, expire, vacuum, du, retain, release):
        app.command()(fn)

"""Push, pull and clone: copy refs, and exactly the history they need, between two datasets.

`sync` is the one operation underneath `push`, `pull` and `clone`. It works on two
`Storage` objects only, so every backend that implements the seam (local disk,
``memory://``, object stores) is a source or a destination. In order:

1. **Plan, writing nothing.** Each named ref's line of history on the source: a
   branch's own log entries and its base lines up to their base versions
   (``BRANCH.json``, recursively), a tag's line up to its version, and the lines of
   merge parents. The destination's log of each branch id is listed once; the
   entries it already has must be byte-identical to the source's (log entries are
   immutable, so equal bytes at version N mean equal history up to N) or the sync
   is refused (`RemoteConflict`). Refs are checked before anything is copied:
   branches fast-forward only, tags never move.
2. **Copy objects, verified.** Fragments and deletion vectors against the SHA-256
   their manifest records, schema and contract files against their
   content-addressed names, manifests against their snapshot's hash. Objects are
   immutable, so a name the destination already lists is not copied again
   (one ``list`` per directory, not one ``exists`` per object). Leaves first, then
   manifests, each wave flushed: a manifest on the destination implies its
   fragments are there, so an incremental sync never re-reads old manifests.
3. **Publish last.** Field-id claims, then log entries with put-if-absent in an
   order where every entry's parent, base and merge parent is published first (a
   log entry is what makes a version visible), then branch names and tags, then
   the advisory hints and an audit event per ref.

An interrupted sync leaves unreferenced objects and, at most, complete versions
without a name; running it again copies only what is missing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from lakever.errors import (
    CorruptMetadata,
    DatasetExists,
    DatasetNotFound,
    InvalidArgument,
    RefNotFound,
)
from lakever.format import LOG_DIR, Snapshot, format_time
from lakever.log import Line
from lakever.refs import (
    BranchInfo,
    Tag,
    get_branch,
    get_tag,
    line_for,
    list_branches,
    list_tags,
    record_event,
    ref_path,
    validate_ref_name,
)
from lakever.remote._copy import copy_claims, copy_objects, publish_entries
from lakever.remote._plan import (
    RefUpdate,
    Sync,
    SyncResult,
    branch_move,
    check_not_ahead,
    plan_history,
    tag_move,
)
from lakever.storage import Storage, open_storage

__all__ = ["RefUpdate", "SyncResult", "clone", "pull", "push", "sync"]

#: Concurrent copies: remote storage has latency, not bandwidth limits per request.
WORKERS = 16


# ------------------------------------------------------------------------ public API


def push(
    local: str,
    remote: str,
    refs: Sequence[str] | str | None = None,
    *,
    force: bool = False,
    storage_options: dict[str, Any] | None = None,
    remote_options: dict[str, Any] | None = None,
) -> SyncResult:
    """Copy branches and tags, and the history they need, from ``local`` to ``remote``.

    Args:
        local: the dataset to push from (a path or URI `open_dataset` accepts).
        remote: the dataset to push to; created if it does not exist.
        refs: branch and tag names (``"tag:NAME"`` / ``"branch:NAME"`` when a name is
            both); None pushes every branch and tag.
        force: repoint a remote branch name that names another line of history (a
            branch deleted and re-created) to the local line. Never rewrites a log
            entry: diverged commits on one line and moved tags are refused anyway.
        storage_options: options for ``local``'s storage.
        remote_options: options for ``remote``'s storage (never shown in messages).

    Returns:
        The refs updated or up to date, and the objects copied and skipped.

    Raises:
        RemoteConflict: the remote branch has commits the local one lacks, the two
            diverged, a tag names another snapshot, or both datasets assigned the
            same field ids; nothing was published.
        RefNotFound: a named ref does not exist locally.
        DatasetNotFound: nothing at ``local``.
        CorruptData, CorruptMetadata, BrokenHistory: the local history is damaged
            (nothing that depends on it was published).
        StorageError: a backend failed; re-running resumes.
    """
    return sync(
        open_storage(local, storage_options),
        open_storage(remote, remote_options),
        refs,
        force=force,
    )


def pull(
    remote: str,
    local: str,
    refs: Sequence[str] | str | None = None,
    *,
    force: bool = False,
    storage_options: dict[str, Any] | None = None,
    remote_options: dict[str, Any] | None = None,
) -> SyncResult:
    """Copy branches and tags, and the history they need, from ``remote`` to ``local``.

    The mirror image of `push` (same arguments, same rules, same errors):
    ``storage_options`` are ``local``'s, ``remote_options`` are ``remote``'s.
    """
    return sync(
        open_storage(remote, remote_options),
        open_storage(local, storage_options),
        refs,
        force=force,
    )


def clone(
    remote: str,
    local: str,
    *,
    ref: str | None = None,
    storage_options: dict[str, Any] | None = None,
    remote_options: dict[str, Any] | None = None,
) -> SyncResult:
    """Copy a dataset: every branch and tag, or only ``ref``'s history, into a new ``local``.

    Besides the errors below, it raises what `pull` raises.

    Raises:
        DatasetExists: ``local`` already holds a dataset.
        RefNotFound: ``ref`` is not a branch or tag of ``remote``.
    """
    src = open_storage(remote, remote_options)
    dst = open_storage(local, storage_options)
    if dst.list(LOG_DIR):
        raise DatasetExists(
            f"cannot clone into {dst.uri}: it already holds a dataset; pull into it instead "
            "(lakever.pull / 'lakever pull'), or clone into an empty location",
            uri=dst.uri,
        )
    return sync(src, dst, None if ref is None else [ref])


def sync(
    src: Storage,
    dst: Storage,
    refs: Sequence[str] | str | None = None,
    *,
    force: bool = False,
) -> SyncResult:
    """Copy ``refs`` (None: every branch and tag) and their history from ``src`` to ``dst``.

    See the module docstring for the order of operations and `push` for the rules.
    """
    branches, tags = _select(src, refs)
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="lakever-sync") as pool:
        s = Sync(src, dst, pool, force)
        heads: list[tuple[BranchInfo, Line, Snapshot]] = []
        for b in branches:
            line = line_for(src, b.id)
            head = line.head()
            if head is None:
                raise DatasetNotFound(
                    f"no lakever dataset at {src.uri} (branch {b.name!r} has no version); "
                    "nothing to copy",
                    uri=src.uri,
                )
            heads.append((b, line, head))
            s.need(line, head.version)
        tagged = []
        for t in tags:
            line = line_for(src, t.branch_id)
            snap = line.read(t.version)
            if snap is None or snap.snapshot_id != t.snapshot_id:
                path = src.full_path(ref_path("tag", t.name))
                raise CorruptMetadata(
                    f"tag {t.name!r} ({path}) names snapshot {t.snapshot_id} at version "
                    f"{t.version}, which is not in the source's log; nothing was copied",
                    path=path,
                )
            tagged.append(t)
            s.need(line, t.version)
        plan_history(s)
        for b, line, head in heads:
            check_not_ahead(s, b, line, head)
        branch_moves = [branch_move(s, b, head) for b, _, head in heads]
        tag_moves = [tag_move(s, t) for t in tagged]
        copy_objects(s)
        copy_claims(s)
        publish_entries(s)
        updated, current = [], []
        for move in [*branch_moves, *tag_moves]:
            if move.update.old_snapshot_id == move.update.new_snapshot_id and not move.apply:
                current.append(move.update)
                continue
            if move.apply is not None:
                move.apply()
            updated.append(move.update)
            action = "force-push" if move.update.forced else "push"
            with contextlib.suppress(OSError):  # the audit trail is informational
                record_event(dst, action, move.update.kind, _event_record(move.update))
    return SyncResult(tuple(updated), tuple(current), s.copied, s.bytes, s.skipped)


def _event_record(u: RefUpdate) -> dict[str, Any]:
    # The source's location is not recorded: a URI may carry credentials.
    return {
        "name": u.name,
        "old_version": u.old_version,
        "old_snapshot_id": u.old_snapshot_id,
        "version": u.new_version,
        "snapshot_id": u.new_snapshot_id,
        "created": format_time(datetime.now(UTC)),
    }


def _select(src: Storage, refs: Sequence[str] | str | None) -> tuple[list[BranchInfo], list[Tag]]:
    """The source's branches and tags ``refs`` names (None: all of them)."""
    if refs is None:
        return list_branches(src), list_tags(src)
    branches: list[BranchInfo] = []
    tags: list[Tag] = []
    for raw in [refs] if isinstance(refs, str) else refs:
        kind, _, name = raw.partition(":") if raw.startswith(("tag:", "branch:")) else ("", "", raw)
        validate_ref_name(name, kind="tag" if kind == "tag" else "branch")
        b = get_branch(src, name) if kind != "tag" else None
        t = get_tag(src, name) if kind != "branch" else None
        if b is not None and t is not None:
            raise InvalidArgument(
                f"{name!r} is both a branch and a tag of {src.uri}; "
                f"say 'branch:{name}' or 'tag:{name}'"
            )
        if b is not None and b not in branches:
            branches.append(b)
        elif t is not None and t not in tags:
            tags.append(t)
        elif b is None and t is None:
            raise RefNotFound(
                f"{name!r} is not a branch or tag of {src.uri}; see 'lakever branch "
                f"{src.uri} --list' and 'lakever tag {src.uri} --list'",
                name=name,
            )
    return branches, tags

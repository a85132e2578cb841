"""Turning what a user passes as ``version=`` / ``branch=`` / a pin into a snapshot.

One meaning per type: an int is a version number on the branch, a
timezone-aware datetime means "as of", a string is a tag, a branch or a
snapshot id (prefix of at least 8 hex digits), tried in that order; a string
matching more than one of them is refused as ambiguous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote

from lakever import refs
from lakever.errors import (
    CorruptMetadata,
    DatasetNotFound,
    InvalidArgument,
    InvalidRefName,
    VersionNotFound,
)
from lakever.format import MAIN_BRANCH, Snapshot, format_time
from lakever.log import Log
from lakever.storage import Storage

__all__ = ["PIN_PREFIX", "Located", "locate", "locate_pin", "make_pin"]

PIN_PREFIX = "lakever:"
_HEX = re.compile(r"[0-9a-f]{8,32}")


@dataclass(frozen=True, slots=True)
class Located:
    """A snapshot, the line it was reached through, and whether writes may follow."""

    log: Log
    snap: Snapshot
    writable: bool
    branch_name: str


def not_found(storage: Storage) -> DatasetNotFound:
    return DatasetNotFound(
        f"no lakever dataset at {storage.uri}; create one with lakever.create_dataset(uri, data) "
        "or 'lakever init PATH --from FILE'",
        uri=storage.uri,
    )


def _branch(storage: Storage, name: str) -> tuple[refs.BranchInfo, Log]:
    refs.validate_ref_name(name, kind="branch")
    info = refs.get_branch(storage, name)
    if info is None:
        names = [b.name for b in refs.list_branches(storage)]
        raise VersionNotFound(
            f"branch {name!r} not found in {storage.uri}; branches are {names}", version=name
        )
    return info, refs.line_for(storage, info.id)


def _owner_name(storage: Storage, snap: Snapshot) -> str:
    try:
        return refs.branch_by_id(storage, snap.branch).name
    except CorruptMetadata:
        return snap.branch


def locate(storage: Storage, *, version: Any, branch: str | None) -> Located:
    """Resolve ``version=`` and ``branch=`` on a dataset (see the module docstring)."""
    if isinstance(version, str):
        if branch is not None:
            raise InvalidArgument(
                f"version={version!r} names a tag, branch or snapshot by itself; "
                "do not combine a string version with branch="
            )
        return _locate_name(storage, version)
    if branch is None:
        info, log = refs.MAIN, Log(storage, MAIN_BRANCH)
    else:
        info, log = _branch(storage, branch)
    if version is None:
        head = log.head()
        if head is None:
            raise not_found(storage)
        return Located(log, head, writable=True, branch_name=info.name)
    return Located(log, _resolve_on_line(log, version), writable=False, branch_name=info.name)


def _resolve_on_line(log: Log, version: Any) -> Snapshot:
    uri = log.storage.uri
    if isinstance(version, bool) or not isinstance(version, int | datetime):
        raise InvalidArgument(
            "version must be an int (version number), a timezone-aware datetime, or a "
            f"tag / branch / snapshot id string, got {version!r}"
        )
    if isinstance(version, datetime):
        if version.tzinfo is None or version.utcoffset() is None:
            raise InvalidArgument(
                f"version datetime {version.isoformat()} is naive; pass a timezone-aware "
                "datetime, e.g. datetime(2026, 11, 1, tzinfo=UTC)"
            )
        head = log.head()
        if head is None:
            raise not_found(log.storage)
        snap = log.at_time(version, head)
        if snap is None:
            first = log.read(0)
            assert first is not None
            raise VersionNotFound(
                f"no version of {uri} existed at {version.isoformat()}; the first commit was at "
                f"{format_time(first.timestamp)}",
                version=version,
            )
        return snap
    snap = log.read(version) if version >= 0 else None
    if snap is None:
        latest = log.latest_version()
        if latest is None:
            raise not_found(log.storage)
        raise VersionNotFound(
            f"version {version} not found in {uri} on this branch "
            f"(versions are 0 to {latest}); see 'lakever log {uri}'",
            version=version,
        )
    return snap


def _locate_name(storage: Storage, text: str) -> Located:
    """A tag, a branch, or a snapshot id prefix; ``tag:NAME`` forces the tag meaning."""
    forced_tag = text.startswith("tag:")
    name = text.removeprefix("tag:")
    found: list[tuple[str, Located]] = []
    try:
        refs.validate_ref_name(name, kind="tag")
        valid_name = True
    except InvalidRefName:
        valid_name = False
    if valid_name:
        tag = refs.get_tag(storage, name)
        if tag is not None:
            snap = refs.line_for(storage, tag.branch_id).read(tag.version)
            if snap is None or snap.snapshot_id != tag.snapshot_id:
                raise CorruptMetadata(
                    f"tag {name!r} points to snapshot {tag.snapshot_id} at version {tag.version}, "
                    "which is not in the log",
                    path=name,
                )
            found.append(
                (
                    "tag",
                    Located(
                        refs.line_for(storage, snap.branch),
                        snap,
                        writable=False,
                        branch_name=_owner_name(storage, snap),
                    ),
                )
            )
        if not forced_tag:
            info = refs.get_branch(storage, name)
            if info is not None:
                log = refs.line_for(storage, info.id)
                head = log.head()
                if head is None:
                    raise not_found(storage)
                found.append(("branch", Located(log, head, writable=True, branch_name=name)))
    if not forced_tag and _HEX.fullmatch(text):
        snaps = refs.find_snapshot(storage, text)
        if len(snaps) > 1:
            raise InvalidArgument(
                f"snapshot id prefix {text!r} is ambiguous: it matches "
                f"{sorted(s.snapshot_id for s in snaps)}; give more digits"
            )
        for snap in snaps:
            found.append(
                (
                    "snapshot",
                    Located(
                        refs.line_for(storage, snap.branch),
                        snap,
                        writable=False,
                        branch_name=_owner_name(storage, snap),
                    ),
                )
            )
    if len(found) > 1:
        kinds = " and a ".join(k for k, _ in found)
        raise InvalidArgument(
            f"{text!r} is ambiguous: it names a {kinds}; use version='tag:{text}' for the tag "
            f"or branch={text!r} for the branch"
        )
    if not found:
        if Log(storage, MAIN_BRANCH).latest_version() is None:
            raise not_found(storage)
        tags = [t.name for t in refs.list_tags(storage)]
        branches = [b.name for b in refs.list_branches(storage)]
        hint = f"; for version number {text} pass the int {text}" if text.isdigit() else ""
        raise VersionNotFound(
            f"no tag, branch or snapshot id {text!r} in {storage.uri} (tags: {tags}; "
            f"branches: {branches}; snapshot ids need at least 8 hex digits){hint}",
            version=text,
        )
    return found[0][1]


def make_pin(uri: str, snap: Snapshot) -> str:
    return (
        f"{PIN_PREFIX}{uri}?branch={quote(snap.branch, safe='')}"
        f"&version={snap.version}&snapshot={snap.snapshot_id}"
    )


def locate_pin(pin: str, open_storage: Any) -> tuple[Storage, Located]:
    """Resolve a pin (see `make_pin`); verify that it still names the same snapshot."""
    body = pin[len(PIN_PREFIX) :]
    if "?" not in body:
        raise InvalidArgument(
            f"malformed pin {pin!r}: expected 'lakever:URI?branch=B&version=N&snapshot=ID'"
        )
    uri, query = body.rsplit("?", 1)
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    try:
        version = int(params["version"])
        snapshot = params["snapshot"]
    except (KeyError, ValueError) as exc:
        raise InvalidArgument(f"malformed pin {pin!r}: needs version=N and snapshot=ID") from exc
    storage: Storage = open_storage(uri)
    branch_id = params.get("branch", MAIN_BRANCH)
    try:
        log = refs.line_for(storage, branch_id)
    except CorruptMetadata:
        log = Log(storage, branch_id)
    snap = log.read(version)
    if snap is None:
        if Log(storage, MAIN_BRANCH).latest_version() is None:
            raise not_found(storage)
        raise VersionNotFound(
            f"pin {pin!r} refers to version {version}, which does not exist in {storage.uri}",
            version=version,
        )
    if snap.snapshot_id != snapshot:
        raise VersionNotFound(
            f"pin {pin!r} refers to snapshot {snapshot}, but version {version} of "
            f"{storage.uri} is snapshot {snap.snapshot_id}: the dataset was re-created or its "
            "history rewritten, so the pinned data is gone",
            version=version,
        )
    return storage, Located(log, snap, writable=False, branch_name=_owner_name(storage, snap))


def locate_snapshot(storage: Storage, branch_id: str, version: int, snapshot_id: str) -> Located:
    """The snapshot ``snapshot_id``, committed as ``version`` of branch id ``branch_id``.

    Raises:
        VersionNotFound: that version does not hold that snapshot (any more).
    """
    try:
        log = refs.line_for(storage, branch_id)
    except CorruptMetadata:
        log = Log(storage, branch_id)
    snap = log.read(version)
    if snap is None or snap.snapshot_id != snapshot_id:
        raise VersionNotFound(
            f"snapshot {snapshot_id} (version {version}) is no longer in {storage.uri}: the "
            "dataset was re-created or its history rewritten",
            version=version,
        )
    return Located(log, snap, writable=False, branch_name=_owner_name(storage, snap))

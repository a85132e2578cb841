"""Turning what a user passes as ``version=`` / ``branch=`` / a pin into a snapshot.

One meaning per type: an int is a version number on the branch, a
timezone-aware datetime means "as of", a string is a tag, a branch or a
snapshot id (prefix of at least 8 hex digits), tried in that order; a string
matching more than one of them is refused as ambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote

from lakever import _chain, refs
from lakever.errors import (
    CorruptMetadata,
    DatasetNotFound,
    InvalidArgument,
    InvalidRefName,
    RefNotFound,
    VersionNotFound,
)
from lakever.format import MAIN_BRANCH, SNAPSHOT_ID, Snapshot, format_time
from lakever.log import Line
from lakever.retention import expired_error, held_by_export, read_expiry, retained_path
from lakever.snapshot_lookup import find_snapshot
from lakever.storage import Storage

__all__ = ["PIN_PREFIX", "Located", "locate", "locate_pin", "make_pin", "pin_parts"]

PIN_PREFIX = "lakever:"
_HEX = re.compile(r"[0-9a-f]{8,32}")


@dataclass(frozen=True, slots=True)
class Located:
    """A snapshot, the line it was reached through, and whether writes may follow."""

    log: Line
    snap: Snapshot
    writable: bool
    branch_name: str


def not_found(storage: Storage) -> DatasetNotFound:
    return DatasetNotFound(
        f"no lakever dataset at {storage.uri}; create one with lakever.create_dataset(uri, data) "
        "or 'lakever init PATH --from FILE'",
        uri=storage.uri,
    )


def _branch(storage: Storage, name: str) -> tuple[refs.BranchInfo, Line]:
    refs.validate_ref_name(name, kind="branch")
    info = refs.get_branch(storage, name)
    if info is None:
        names = [b.name for b in refs.list_branches(storage)]
        raise VersionNotFound(
            f"branch {name!r} not found in {storage.uri}; branches are {names}", version=name
        )
    return info, refs.line_for(storage, info.id)


def owner_name(storage: Storage, snap: Snapshot) -> str:
    try:
        return refs.branch_by_id(storage, snap.branch_id).name
    except CorruptMetadata:
        return snap.branch_id


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
        info, log = refs.MAIN, Line(storage, MAIN_BRANCH)
    else:
        info, log = _branch(storage, branch)
    if version is None:
        head = log.head()
        if head is None:
            raise not_found(storage)
        return Located(log, head, writable=True, branch_name=info.name)
    return Located(log, _resolve_on_line(log, version), writable=False, branch_name=info.name)


def _resolve_on_line(log: Line, version: Any) -> Snapshot:
    uri = log.storage.uri
    if isinstance(version, bool) or not isinstance(version, int | datetime):
        raise InvalidArgument(
            "version must be an int (version number), a timezone-aware datetime, or a "
            f"tag / branch / snapshot id string, got {version!r}"
        )
    if isinstance(version, datetime):
        when = _resolve_time(log, version)
        check_readable(log.storage, when)
        return when
    snap = log.read(version) if version >= 0 else None
    if snap is None:
        latest = log.latest_version()
        if latest is None:
            raise not_found(log.storage)
        if 0 <= version <= latest:
            raise _chain.missing(log, version, later=latest)
        raise VersionNotFound(
            f"version {version} not found in {uri} on this branch "
            f"(versions are 0 to {latest}); see 'lakever log {uri}'",
            version=version,
        )
    _chain.check_next(log, snap)
    check_readable(log.storage, snap)
    return snap


def _resolve_time(log: Line, when: datetime) -> Snapshot:
    """The last commit at or before ``when``; a time after the newest commit is an error."""
    uri = log.storage.uri
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidArgument(
            f"version datetime {when.isoformat()} is naive; pass a timezone-aware "
            "datetime, e.g. datetime(2026, 11, 1, tzinfo=UTC)"
        )
    head = log.head()
    if head is None:
        raise not_found(log.storage)
    if when > head.timestamp:
        # As in Delta: the state "as of" a time not reached yet is unknown (a commit may
        # still land before it), so it is not silently the current head.
        branch = log.name if log.name is not None else log.branch_id
        raise VersionNotFound(
            f"no version of {uri} as of {when.isoformat()}: that is after the newest commit on "
            f"branch {branch!r}, version {head.version} at {format_time(head.timestamp)}; pass "
            "a time at or before it, or open without version= for the latest version",
            version=when,
        )
    snap = log.at_time(when, head)
    if snap is None:
        first = log.must_read(0)
        raise VersionNotFound(
            f"no version of {uri} existed at {when.isoformat()}; the first commit was at "
            f"{format_time(first.timestamp)}",
            version=when,
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
                        refs.line_for(storage, snap.branch_id),
                        snap,
                        writable=False,
                        branch_name=owner_name(storage, snap),
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
        snaps = find_snapshot(storage, text)
        if len(snaps) > 1:
            raise InvalidArgument(
                f"snapshot id prefix {text!r} is ambiguous: it matches "
                f"{sorted(s.snapshot_id for s in snaps)}; give more digits"
            )
        for snap in snaps:
            check_readable(storage, snap)
            found.append(
                (
                    "snapshot",
                    Located(
                        refs.line_for(storage, snap.branch_id),
                        snap,
                        writable=False,
                        branch_name=owner_name(storage, snap),
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
        if Line(storage, MAIN_BRANCH).latest_version() is None:
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


def make_pin(uri: str, snap: Snapshot, branch: str, *, merkle: str | None = None) -> str:
    """A pin naming ``snap``: the dataset, the branch by name, the version, the snapshot id,
    and (``merkle``) the Merkle root of its fragments, schema and contract.

    See docs/format.md, "Pins". Older pins hold the branch's id instead of its name,
    and no Merkle root; `locate_pin` reads them all.
    """
    tail = f"&merkle={merkle}" if merkle is not None else ""
    return (
        f"{PIN_PREFIX}{uri}?branch={quote(branch, safe='')}"
        f"&version={snap.version}&snapshot={snap.snapshot_id}{tail}"
    )


def pin_parts(pin: str) -> tuple[str, dict[str, str]]:
    """The dataset URI a pin names and its parameters (``branch``, ``version``, ...)."""
    body = pin[len(PIN_PREFIX) :]
    if not pin.startswith(PIN_PREFIX) or "?" not in body:
        raise InvalidArgument(
            f"malformed pin {pin!r}: expected 'lakever:URI?branch=B&version=N&snapshot=ID'"
        )
    uri, query = body.rsplit("?", 1)
    return uri, {k: v[-1] for k, v in parse_qs(query).items()}


def _pin_lines(storage: Storage, branch: str) -> Iterator[tuple[Line, str]]:
    """The lines a pin's ``branch=`` may name: a branch name, else (older pins) a branch id."""
    try:
        refs.validate_ref_name(branch, kind="branch")
        info = refs.get_branch(storage, branch)
    except InvalidRefName:
        info = None
    if info is not None:
        yield refs.line_for(storage, info.id), info.name
    if info is None or info.id != branch:
        try:
            line = refs.line_for(storage, branch)
        except CorruptMetadata:
            return  # not a branch id either (or its record is gone): the snapshot id decides
        yield line, line.name if line.name is not None else branch


def locate_pin(pin: str, open_storage: Any) -> tuple[Storage, Located]:
    """Resolve a pin (see `make_pin`) to exactly the snapshot it names, verified by id.

    The pinned branch name is tried first; if that name was deleted or now names
    another branch, the snapshot is found by its id, wherever its log entry is.
    ``open_storage`` gets the pin's URI; passing another (a moved or copied lake)
    is safe: the answer is verified by snapshot id wherever it is found.
    """
    uri, params = pin_parts(pin)
    try:
        version = int(params["version"])
        snapshot = params["snapshot"]
    except (KeyError, ValueError) as exc:
        raise InvalidArgument(f"malformed pin {pin!r}: needs version=N and snapshot=ID") from exc
    if not SNAPSHOT_ID.fullmatch(snapshot):
        raise InvalidArgument(f"malformed pin {pin!r}: snapshot= must be 32 hex digits")
    storage: Storage = open_storage(uri)
    for log, name in _pin_lines(storage, params.get("branch", MAIN_BRANCH)):
        snap = log.read(version) if version >= 0 else None
        if snap is not None and snap.snapshot_id == snapshot:
            check_readable(storage, snap)
            return storage, Located(log, snap, writable=False, branch_name=name)
    for snap in find_snapshot(storage, snapshot):
        if snap.snapshot_id == snapshot:
            check_readable(storage, snap)
            where = Located(
                refs.line_for(storage, snap.branch_id),
                snap,
                writable=False,
                branch_name=owner_name(storage, snap),
            )
            return storage, where
    if Line(storage, MAIN_BRANCH).latest_version() is None:
        raise not_found(storage)
    raise VersionNotFound(
        f"pin {pin!r} refers to snapshot {snapshot} (version {version}), which is not in the "
        f"log of {storage.uri}: the dataset was re-created or its history rewritten, so the "
        "pinned data is gone",
        version=version,
    )


def locate_snapshot(storage: Storage, branch_id: str, version: int, snapshot_id: str) -> Located:
    """The snapshot ``snapshot_id``, committed as ``version`` of branch id ``branch_id``.

    Raises:
        VersionNotFound: that version does not hold that snapshot (any more).
    """
    try:
        log = refs.line_for(storage, branch_id)
    except CorruptMetadata:
        log = Line(storage, branch_id)
    snap = log.read(version)
    if snap is None or snap.snapshot_id != snapshot_id:
        raise VersionNotFound(
            f"snapshot {snapshot_id} (version {version}) is no longer in {storage.uri}: the "
            "dataset was re-created or its history rewritten",
            version=version,
        )
    check_readable(storage, snap)
    return Located(log, snap, writable=False, branch_name=owner_name(storage, snap))


def resolve_source(storage: Storage, source: str) -> Snapshot:
    """The snapshot a merge source names (a branch head, a tag or a snapshot id).

    Raises:
        RefNotFound: ``source`` names no branch, tag or snapshot.
    """
    if not isinstance(source, str):
        raise InvalidArgument(f"merge source must be a branch, tag or snapshot id, got {source!r}")
    try:
        return locate(storage, version=source, branch=None).snap
    except VersionNotFound as exc:
        raise RefNotFound(str(exc), name=source) from exc


# ------------------------------------------------------------------ expiry


def check_readable(storage: Storage, snap: Snapshot) -> None:
    """Raise `VersionExpired` if ``snap`` (reached by number, time, id or pin) was expired.

    A snapshot a ref names (a retained pin, a tag, a branch head) stays readable even
    when an expiry lists it: an expiry that read the roots just before the ref was
    made, and published just after the ref's `guard_new_ref` read the expiry, lists
    it. Vacuum keeps every file a root needs all the same, so the ref wins.
    """
    r = read_expiry(storage).find(snap.branch_id, snap.version)
    if r is not None and not _named_by_ref(storage, snap):
        name = refs.name_of(storage, snap.branch_id)
        raise expired_error(storage, r, snap.version, name, f"version {snap.version}")


def _named_by_ref(storage: Storage, snap: Snapshot) -> bool:
    """Whether a retained pin, a tag or a branch head names ``snap`` (the refs whose
    creation `guard_new_ref` checks); a few small reads, on the expired path only."""
    if storage.exists(retained_path(snap.snapshot_id)):
        return True
    if held_by_export(storage, snap.snapshot_id):
        return True
    if any(t.snapshot_id == snap.snapshot_id for t in refs.list_tags(storage)):
        return True
    for info in refs.list_branches(storage):
        head = refs.line_for(storage, info.id).head()
        if head is not None and head.snapshot_id == snap.snapshot_id:
            return True
    return False


def check_range(storage: Storage, owners: Iterable[tuple[str, int]], what: str) -> None:
    """Raise `VersionExpired` if any (branch id, version) in ``owners`` was expired.

    ``what`` names the operation for the message (e.g. "the change feed since 3").
    """
    expiry = read_expiry(storage)
    if expiry.sequence is None:
        return
    for branch_id, version in owners:
        r = expiry.find(branch_id, version)
        if r is not None:
            name = refs.name_of(storage, branch_id)
            raise expired_error(storage, r, version, name, f"{what} crosses version {version}")

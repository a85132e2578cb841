"""Branches and tags: name validation, ref records, create/list/delete.

Names never appear in storage paths: a ref lives at
``_lakever/refs/{tags,branches}/<sha256(name)[:32]>.json`` and holds its name,
so no name can escape the dataset root or collide on a case-insensitive
filesystem. Refs are created with put-if-absent (so two writers can never both
create one) and are immutable; deleting one removes the file and appends an
audit event under ``_lakever/refs/events/``.

A branch has an immutable id (``main`` for the default branch, a random hex id
otherwise); its log lives under ``_lakever/log/<id>/`` and its
``BRANCH.json`` records where it started (base branch id, version, snapshot id).
Version numbers continue from the base: a branch made at main's version 5 has
versions 0..5 in common with main, and its first own commit is version 6.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from lakever.errors import (
    CorruptMetadata,
    InvalidArgument,
    InvalidRefName,
    RefExists,
    RefNotFound,
)
from lakever.format import (
    BRANCH_ID,
    LOG_ID,
    MAIN_BRANCH,
    META_DIR,
    SNAPSHOT_ID,
    Snapshot,
    branch_meta_path,
    canonical_json,
    format_time,
    is_unicode,
    parse_time,
)
from lakever.log import Line
from lakever.retention import (
    Retained,
    expired_error,
    export_path,
    list_exported,
    list_retained,
    load_retained,
    read_expiry,
    retained_path,
)
from lakever.storage import Storage

__all__ = [
    "BranchInfo",
    "Tag",
    "branch_meta_path",
    "line_for",
    "record_event",
    "ref_path",
    "validate_ref_name",
]

RefKind = Literal["tag", "branch"]
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
REFS_DIR = f"{META_DIR}/refs"
_DIRS: dict[str, str] = {"tag": "tags", "branch": "branches"}


def validate_ref_name(name: Any, *, kind: RefKind) -> str:
    """Return ``name`` if it follows git's ref-name rules, else raise InvalidRefName.

    Rules (git check-ref-format, plus ours): a non-empty string of at most 255
    bytes; no control characters, space, ``~ ^ : ? * [ \\``; no ``..`` or ``@{``;
    not ``@``; no leading ``-`` or ``/``, no trailing ``/`` or ``.``, no ``//``;
    no component that starts with ``.`` or ends with ``.lock``.
    """
    problem = None
    if not isinstance(name, str):
        problem = "must be a string"
    elif not name:
        problem = "must not be empty"
    elif not is_unicode(name):
        problem = "must be valid Unicode (it holds a lone surrogate, e.g. from undecodable bytes)"
    elif len(name.encode("utf-8", "surrogatepass")) > 255:
        problem = "must be at most 255 bytes"
    elif _FORBIDDEN.search(name):
        problem = "must not contain control characters, spaces or any of ~ ^ : ? * [ \\"
    elif ".." in name:
        problem = "must not contain '..'"
    elif "@{" in name or name == "@":
        problem = "must not be '@' or contain '@{'"
    elif name.startswith(("-", "/")):
        problem = "must not start with '-' or '/'"
    elif name.endswith(("/", ".")):
        problem = "must not end with '/' or '.'"
    elif "//" in name:
        problem = "must not contain '//'"
    elif any(c.startswith(".") or c.endswith(".lock") for c in name.split("/")):
        problem = "must not have a component starting with '.' or ending with '.lock'"
    if problem is not None:
        raise InvalidRefName(
            f"invalid {kind} name {name!r}: a {kind} name {problem} (git's ref-name rules); "
            f"use e.g. 'train-2026-11' or 'exp/dedup'",
            name=str(name),
        )
    assert isinstance(name, str)
    return name


def ref_path(kind: RefKind, name: str) -> str:
    """The path of the file of a tag or a branch name."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{REFS_DIR}/{_DIRS[kind]}/{digest}.json"


@dataclass(frozen=True, slots=True)
class Tag:
    """A tag: an immutable name for one snapshot."""

    name: str
    snapshot_id: str
    #: Id of the branch whose log holds the snapshot, and its version there.
    branch_id: str
    version: int
    created: datetime
    author: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "snapshot_id": self.snapshot_id,
            "version": self.version,
            "created": self.created.isoformat(),
            "author": self.author,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class BranchInfo:
    """A branch: a line of history with its own log."""

    name: str
    id: str
    #: (base branch id, base version, base snapshot id); None for main.
    base: tuple[str, int, str] | None
    created: datetime | None


def _load(storage: Storage, rel: str) -> dict[str, Any] | None:
    try:
        data = storage.read_bytes(rel)
    except FileNotFoundError:
        return None
    return _parsed(storage, rel, data)


def _parsed(storage: Storage, rel: str, data: bytes) -> dict[str, Any]:
    try:
        out = json.loads(data)
        if not isinstance(out, dict):
            raise ValueError("not an object")
        return out
    except ValueError as exc:
        path = storage.full_path(rel)
        raise CorruptMetadata(f"ref file {path} is not valid JSON ({exc})", path=path) from exc


def record_event(
    storage: Storage,
    action: str,
    kind: RefKind | Literal["retained", "export"],
    record: dict[str, Any],
) -> None:
    """Add ``{"action", "kind", **record}`` to the audit trail of ref changes."""
    now = datetime.now(UTC)
    rel = f"{REFS_DIR}/events/{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}.json"
    storage.write_new(rel, canonical_json({"action": action, "kind": kind, **record}))


# ------------------------------------------------------------- reading ref files

# Ref files carry no hash (a ref is mutable by design): every field is checked for its
# type and shape when read, so a damaged file is CorruptMetadata naming it, never a
# raw Python error or a read of another branch's rows.


def _malformed(what: str, path: str, key: str, value: Any) -> CorruptMetadata:
    return CorruptMetadata(
        f"{what} {path} is malformed: {key!r} is {value!r}; restore it from a backup "
        "(refs carry no hash: `lakever verify --all-refs` lists damaged ones)",
        path=path,
    )


def _text(
    j: Mapping[str, Any], key: str, what: str, path: str, shape: re.Pattern[str] | None = None
) -> str:
    value = j.get(key)
    if not isinstance(value, str) or (shape is not None and not shape.fullmatch(value)):
        raise _malformed(what, path, key, value)
    return value


def _count(j: Mapping[str, Any], key: str, what: str, path: str) -> int:
    value = j.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _malformed(what, path, key, value)
    return value


# --------------------------------------------------------------------------- tags


def _tag_from(j: dict[str, Any], path: str) -> Tag:
    what = "tag file"
    try:
        created = parse_time(j["created"])
    except (KeyError, TypeError, ValueError):
        raise _malformed(what, path, "created", j.get("created")) from None
    return Tag(
        name=_text(j, "name", what, path),
        snapshot_id=_text(j, "snapshot_id", what, path, SNAPSHOT_ID),
        branch_id=_text(j, "branch", what, path, LOG_ID),
        version=_count(j, "version", what, path),
        created=created,
        # Free text: older versions stored whatever was passed (e.g. a number).
        author=str(j.get("author", "")),
        message=str(j.get("message", "")),
    )


def get_tag(storage: Storage, name: str) -> Tag | None:
    rel = ref_path("tag", name)
    j = _load(storage, rel)
    if j is None:
        return None
    tag = _tag_from(j, storage.full_path(rel))
    return tag if tag.name == name else None


def create_tag(
    storage: Storage,
    name: str,
    *,
    snapshot_id: str,
    branch_id: str,
    version: int,
    author: str,
    message: str,
) -> Tag:
    validate_ref_name(name, kind="tag")
    record = {
        "name": name,
        "snapshot_id": snapshot_id,
        "branch": branch_id,
        "version": version,
        "created": format_time(datetime.now(UTC)),
        "author": author,
        "message": message,
    }
    storage.flush()
    if not storage.publish(ref_path("tag", name), canonical_json(record)):
        existing = get_tag(storage, name)
        where = f" (snapshot {existing.snapshot_id[:12]})" if existing else ""
        raise RefExists(
            f"tag {name!r} already exists{where}; tags never move: delete it first "
            f"(delete_tag / 'lakever tag PATH --delete {name}') to re-point it",
            name=name,
        )
    guard_new_ref(storage, branch_id, version, lambda: storage.delete(ref_path("tag", name)))
    record_event(storage, "create", "tag", record)
    return _tag_from(record, ref_path("tag", name))


def delete_tag(storage: Storage, name: str, *, author: str) -> Tag:
    validate_ref_name(name, kind="tag")
    if get_tag(storage, name) is None:  # a malformed file: CorruptMetadata, left in place
        raise RefNotFound(f"tag {name!r} does not exist; see tags()", name=name)
    # The tag removed is the one read from the bytes taken: another writer's delete, or
    # a tag of the same name created meanwhile, is never deleted or recorded by mistake.
    rel = ref_path("tag", name)
    taken = storage.take(rel)
    if taken is None:
        raise RefNotFound(f"tag {name!r} was just deleted by another writer", name=name)
    tag = _tag_from(_parsed(storage, rel, taken), storage.full_path(rel))
    record_event(storage, "delete", "tag", {**tag.to_dict(), "deleted_by": author})
    return tag


def list_tags(storage: Storage) -> list[Tag]:
    out = []
    for fname in storage.list(f"{REFS_DIR}/tags"):
        if not fname.endswith(".json"):
            continue
        rel = f"{REFS_DIR}/tags/{fname}"
        j = _load(storage, rel)
        if j is not None:
            out.append(_tag_from(j, storage.full_path(rel)))
    return sorted(out, key=lambda t: t.name)


# ----------------------------------------------------------------------- branches


def _branch_from(j: dict[str, Any], path: str) -> BranchInfo:
    what = "branch file"
    base = j.get("base")
    if base is not None and not isinstance(base, dict):
        raise _malformed(what, path, "base", base)
    try:
        created = parse_time(j["created"]) if j.get("created") else None
    except (TypeError, ValueError):
        raise _malformed(what, path, "created", j.get("created")) from None
    return BranchInfo(
        name=_text(j, "name", what, path),
        id=_text(j, "id", what, path, BRANCH_ID),
        base=None
        if base is None
        else (
            _text(base, "branch", what, path, LOG_ID),
            _count(base, "version", what, path),
            _text(base, "snapshot_id", what, path, SNAPSHOT_ID),
        ),
        created=created,
    )


def _named_id(storage: Storage, rel: str, j: Mapping[str, Any]) -> str:
    """The branch id a branch's name file points to (never main's)."""
    return _text(j, "id", "branch name file", storage.full_path(rel), BRANCH_ID)


MAIN = BranchInfo(name=MAIN_BRANCH, id=MAIN_BRANCH, base=None, created=None)


def get_branch(storage: Storage, name: str) -> BranchInfo | None:
    """Look a branch up by name (None if absent)."""
    if name == MAIN_BRANCH:
        return MAIN
    rel = ref_path("branch", name)
    j = _load(storage, rel)
    if j is None or j.get("name") != name:
        return None
    return branch_by_id(storage, _named_id(storage, rel, j))


def branch_by_id(storage: Storage, branch_id: str) -> BranchInfo:
    """Load a branch's immutable record by id (works after the name was deleted)."""
    if branch_id == MAIN_BRANCH:
        return MAIN
    if not BRANCH_ID.fullmatch(branch_id):
        raise CorruptMetadata(f"invalid branch id {branch_id!r} in metadata", path=branch_id)
    rel = branch_meta_path(branch_id)
    j = _load(storage, rel)
    path = storage.full_path(rel)
    if j is None:
        raise CorruptMetadata(f"branch record {path} is missing", path=path)
    info = _branch_from(j, path)
    if info.id != branch_id:  # a record copied or edited into another branch's place
        raise _malformed("branch file", path, "id", info.id)
    return info


def create_branch(
    storage: Storage, name: str, *, base: tuple[str, int, str], author: str
) -> BranchInfo:
    validate_ref_name(name, kind="branch")
    if name == MAIN_BRANCH or get_branch(storage, name) is not None:
        raise RefExists(
            f"branch {name!r} already exists; pick another name or delete it first", name=name
        )
    branch_id = uuid.uuid4().hex
    now = format_time(datetime.now(UTC))
    meta = {
        "id": branch_id,
        "name": name,
        "base": {"branch": base[0], "version": base[1], "snapshot_id": base[2]},
        "created": now,
        "author": author,
    }
    storage.write_new(branch_meta_path(branch_id), canonical_json(meta))
    storage.flush()
    if not storage.publish(
        ref_path("branch", name), canonical_json({"name": name, "id": branch_id})
    ):
        raise RefExists(f"branch {name!r} was just created by another writer", name=name)
    guard_new_ref(storage, base[0], base[1], lambda: storage.delete(ref_path("branch", name)))
    record_event(storage, "create", "branch", meta)
    return _branch_from(meta, branch_meta_path(branch_id))


def delete_branch(storage: Storage, name: str, *, author: str) -> BranchInfo:
    validate_ref_name(name, kind="branch")
    if name == MAIN_BRANCH:
        raise InvalidArgument("the default branch 'main' cannot be deleted")
    if get_branch(storage, name) is None:
        raise RefNotFound(f"branch {name!r} does not exist; see branches()", name=name)
    rel = ref_path("branch", name)
    taken = storage.take(rel)  # as in delete_tag: the branch removed is the one read
    if taken is None:
        raise RefNotFound(f"branch {name!r} was just deleted by another writer", name=name)
    info = branch_by_id(storage, _named_id(storage, rel, _parsed(storage, rel, taken)))
    record_event(storage, "delete", "branch", {"name": name, "id": info.id, "deleted_by": author})
    return info


def list_branches(storage: Storage) -> list[BranchInfo]:
    out = [MAIN]
    for fname in storage.list(f"{REFS_DIR}/branches"):
        if not fname.endswith(".json"):
            continue
        rel = f"{REFS_DIR}/branches/{fname}"
        j = _load(storage, rel)
        if j is not None:
            out.append(branch_by_id(storage, _named_id(storage, rel, j)))
    return [out[0], *sorted(out[1:], key=lambda b: b.name)]


def list_events(storage: Storage) -> list[dict[str, Any]]:
    """The audit trail of ref creations and deletions, oldest first."""
    out = []
    for fname in storage.list(f"{REFS_DIR}/events"):
        j = _load(storage, f"{REFS_DIR}/events/{fname}")
        if j is not None:
            out.append(j)
    return out


# ------------------------------------------------------------------ lines & lookup


def line_for(storage: Storage, branch_id: str, _above: frozenset[str] = frozenset()) -> Line:
    """The `Line` of a branch id, with its base lines chained below it."""
    info = branch_by_id(storage, branch_id)
    if info.base is None:
        return Line(storage, info.id, name=info.name)
    base_id, base_version, base_snapshot_id = info.base
    if base_id in _above or base_id == branch_id:  # damaged records: bases in a cycle
        path = storage.full_path(branch_meta_path(branch_id))
        raise _malformed("branch file", path, "base", {"branch": base_id})
    return Line(
        storage,
        info.id,
        (line_for(storage, base_id, _above | {branch_id}), base_version),
        base_snapshot_id=base_snapshot_id,
        name=info.name,
    )


# ------------------------------------------------------------------ expiry guard


def name_of(storage: Storage, branch_id: str) -> str:
    """A branch's name (kept after deletion), or its id when its record is unreadable."""
    try:
        return branch_by_id(storage, branch_id).name
    except CorruptMetadata:
        return branch_id


def guard_new_ref(storage: Storage, branch_id: str, version: int, undo: Callable[[], None]) -> None:
    """After a ref to version ``version`` of branch log ``branch_id`` was written: if an
    expiry meanwhile expired that version, run ``undo`` (remove the ref) and raise
    `VersionExpired` (docs/format.md §9)."""
    r = read_expiry(storage).find(branch_id, version)
    if r is None:
        return
    undo()
    name = name_of(storage, branch_id)
    raise expired_error(storage, r, version, name, f"version {version}")


# --------------------------------------------------------------- retained pins


def retain(storage: Storage, snap: Snapshot, *, pin: str, reason: str, author: str) -> Retained:
    """Keep ``snap`` through every expiry until `release` (idempotent: an existing
    record for the snapshot is returned as it is)."""
    if not isinstance(reason, str):
        raise InvalidArgument(f"reason must be a string, got {reason!r}")
    record = {
        "snapshot_id": snap.snapshot_id,
        "branch": snap.branch_id,
        "version": snap.version,
        "pin": pin,
        "reason": reason,
        "created": format_time(datetime.now(UTC)),
        "author": author,
    }
    rel = retained_path(snap.snapshot_id)
    storage.flush()
    if not storage.publish(rel, canonical_json(record)):
        existing = load_retained(storage, rel)
        if existing is not None:
            return existing
    guard_new_ref(storage, snap.branch_id, snap.version, lambda: storage.delete(rel))
    record_event(storage, "create", "retained", record)
    return Retained.from_json(record, storage.full_path(rel))


def hold_for_export(
    storage: Storage, snap: Snapshot, *, export: str, reason: str, author: str
) -> Retained:
    """Keep ``snap`` through every expiry and vacuum while export ``export`` (an
    `export_id`) references its files (idempotent); `drop_export` lets it go."""
    record = {
        "snapshot_id": snap.snapshot_id,
        "branch": snap.branch_id,
        "version": snap.version,
        "pin": export,
        "reason": reason,
        "created": format_time(datetime.now(UTC)),
        "author": author,
    }
    rel = export_path(export, snap.snapshot_id)
    storage.flush()
    if not storage.publish(rel, canonical_json(record)):
        existing = load_retained(storage, rel)
        if existing is not None:
            return existing
    guard_new_ref(storage, snap.branch_id, snap.version, lambda: storage.delete(rel))
    return Retained.from_json(record, storage.full_path(rel))


def drop_export(storage: Storage, export: str, *, author: str) -> list[Retained]:
    """Stop holding every snapshot export ``export`` holds; returns what it held."""
    held = [r for r in list_exported(storage) if r.pin == export]
    for r in held:
        storage.delete(export_path(export, r.snapshot_id))
    if held:
        record_event(storage, "delete", "export", {"export": export, "deleted_by": author})
    return held


def release(storage: Storage, snapshot_id: str, *, author: str) -> Retained:
    """Stop retaining a snapshot (by full id); later expiries may expire it."""
    found = [r for r in list_retained(storage) if r.snapshot_id.startswith(snapshot_id)]
    if len(snapshot_id) < 8 or len(found) != 1:
        held = [r.snapshot_id[:12] for r in list_retained(storage)]
        raise RefNotFound(
            f"no single retained snapshot matches {snapshot_id!r} (retained: {held}); give a "
            "pin or at least 8 hex digits of a retained snapshot id",
            name=snapshot_id,
        )
    r = found[0]
    storage.delete(retained_path(r.snapshot_id))
    record_event(storage, "delete", "retained", {**r.to_dict(), "deleted_by": author})
    return r

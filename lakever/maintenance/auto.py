"""Table properties, and the maintenance they switch on after a commit.

Table properties are settings recorded in every snapshot record and carried
forward by every commit (``table_properties`` in docs/format.md). The keys are
checked when set -- a misspelt key would otherwise silently do nothing:

* ``compact.auto`` -- ``"true"`` runs a compaction after a commit once a threshold
  passes (default ``"false"``);
* ``compact.min_small_fragments`` -- the number of small fragments (live bytes
  below the target) that triggers it (default 16);
* ``compact.max_deleted_fraction`` -- the share of the snapshot's rows that
  deletion vectors hide above which it triggers (default 0.1);
* ``compact.target_size`` -- the ``target_size`` it runs with (default 128M).

The compaction is a commit of its own after the one that triggered it. That
commit is acknowledged already, so a compaction that fails (e.g. it keeps losing to
concurrent row changes) is logged and never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from lakever._writer import _check_message, default_author
from lakever.commit import Change, SetTableProperties
from lakever.errors import InvalidArgument, LakeverError
from lakever.format import Snapshot
from lakever.maintenance.compact import DEFAULT_TARGET_SIZE, compact, live_bytes, parse_size
from lakever.manifest_list import ManifestFiles
from lakever.snapshot import SnapshotState

__all__ = ["DEFAULTS", "after_commit", "check_properties", "set_properties"]

_log = logging.getLogger("lakever")

#: Every known table property and its default value.
DEFAULTS: dict[str, str] = {
    "compact.auto": "false",
    "compact.min_small_fragments": "16",
    "compact.max_deleted_fraction": "0.1",
    "compact.target_size": str(DEFAULT_TARGET_SIZE),
}


def _boolean(v: str) -> None:
    if v not in ("true", "false"):
        raise ValueError("'true' or 'false'")


def _count(v: str) -> None:
    if not v.isdigit() or int(v) < 2:
        raise ValueError("an integer >= 2")


def _fraction(v: str) -> None:
    try:
        ok = 0.0 <= float(v) <= 1.0
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("a number between 0 and 1")


def _size(v: str) -> None:
    try:
        parse_size(v)
    except InvalidArgument:
        raise ValueError("a size such as '128M'") from None


_CHECKS: dict[str, Callable[[str], None]] = {
    "compact.auto": _boolean,
    "compact.min_small_fragments": _count,
    "compact.max_deleted_fraction": _fraction,
    "compact.target_size": _size,
}


def check_properties(values: object) -> tuple[tuple[str, str | None], ...]:
    """``values`` (key -> string, or None to remove the key) checked, in key order."""
    if not isinstance(values, Mapping) or not values:
        raise InvalidArgument(
            f"properties must be a non-empty dict of key -> string (None removes), got {values!r}"
        )
    out: list[tuple[str, str | None]] = []
    for key, value in sorted(values.items()):
        if key not in _CHECKS:
            raise InvalidArgument(
                f"unknown table property {key!r}; known: {', '.join(sorted(_CHECKS))}"
            )
        if value is not None:
            if not isinstance(value, str):
                raise InvalidArgument(f"table property {key!r} must be a string, got {value!r}")
            try:
                _CHECKS[key](value)
            except ValueError as exc:
                raise InvalidArgument(
                    f"table property {key!r} must be {exc}, got {value!r}"
                ) from None
        out.append((key, value))
    return tuple(out)


def set_properties(
    state: SnapshotState,
    values: Mapping[str, str | None],
    *,
    message: str | None,
    author: str | None,
) -> Snapshot:
    """Commit new table property values (operation ``"set_properties"``); no data changes."""
    _check_message(message)
    changes = check_properties(values)
    change = Change(
        operation="set_properties",
        author=author if author is not None else default_author(),
        message=message or "",
        properties={},
        updates=(SetTableProperties(changes),),
        parameters={"table_properties": dict(changes)},
    )
    return state.line.commit(state.snap, change, io=ManifestFiles(state.storage))


def _setting(state: SnapshotState, key: str) -> str:
    return state.snap.table_properties.get(key, DEFAULTS[key])


def due(state: SnapshotState) -> bool:
    """Whether the snapshot passes a threshold of automatic compaction."""
    if _setting(state, "compact.auto") != "true" or state.snap.operation == "compact":
        return False
    deleted = sum(m.deleted_rows for m in state.snap.manifests)
    total = deleted + state.snap.summary.total_rows
    if total and deleted / total > float(_setting(state, "compact.max_deleted_fraction")):
        return True
    target = parse_size(_setting(state, "compact.target_size"))
    small = sum(1 for e in state.entries if live_bytes(e) < target)
    return small >= int(_setting(state, "compact.min_small_fragments"))


def after_commit(state: SnapshotState) -> Snapshot | None:
    """Run the automatic compaction ``state``'s table properties ask for, if due; the
    compaction's snapshot, or None (not due, nothing to do, or it failed: logged)."""
    if not due(state):
        return None
    try:
        return compact(
            state,
            target_size=_setting(state, "compact.target_size"),
            message="automatic compaction",
        )
    except LakeverError as exc:
        _log.warning(
            "automatic compaction of %s after version %d failed (the commit stands): %s",
            state.uri,
            state.snap.version,
            exc,
        )
        return None

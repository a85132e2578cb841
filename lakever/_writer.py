"""The write path: data in, committed snapshot out.

Order of effects (the crash-safety argument): fragments, then manifests, are
written as new immutable files and made durable; only then is the log entry
created with put-if-absent. A writer killed at any point leaves either no new
version or a complete one, plus at worst unreferenced files.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from lakever._convert import to_arrow_stream
from lakever.errors import InvalidArgument
from lakever.format import ManifestRef, Snapshot
from lakever.fragments import (
    DEFAULT_MAX_ROWS_PER_FRAGMENT,
    make_manifest,
    read_manifest,
    write_fragments,
    write_manifest,
)
from lakever.log import MANIFEST_FANOUT, Change, Log
from lakever.schema import assign_field_ids, conform, schema_from_json, schema_to_json
from lakever.storage import Storage

__all__ = ["commit_data", "default_author"]


def default_author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _check_properties(properties: Mapping[str, str] | None) -> dict[str, str]:
    if properties is None:
        return {}
    if not isinstance(properties, Mapping):
        raise InvalidArgument(f"properties must be a dict of str to str, got {properties!r}")
    bad = [k for k, v in properties.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise InvalidArgument(
            f"properties must map str to str; these keys have a non-string key or value: {bad}"
        )
    return dict(properties)


def merge_manifest_levels(
    storage: Storage, refs: tuple[ManifestRef, ...]
) -> tuple[ManifestRef, ...]:
    """Merge every run of MANIFEST_FANOUT same-level manifests into one of the next level.

    Levels never increase along the list, so a level's manifests are adjacent
    and merging them in place keeps the order of fragments. The list stays at
    most ``(MANIFEST_FANOUT - 1) * levels`` long, and each fragment entry is
    rewritten O(log n) times over its life: an append's cost does not grow with
    the number of fragments already in the dataset.
    """
    out = list(refs)
    changed = True
    while changed:
        changed = False
        for i in range(len(out) - MANIFEST_FANOUT + 1):
            run = out[i : i + MANIFEST_FANOUT]
            if len({m.level for m in run}) == 1:
                entries = [e for m in run for e in read_manifest(storage, m)]
                merged = write_manifest(storage, entries, level=run[0].level + 1)
                out[i : i + MANIFEST_FANOUT] = [merged]
                changed = True
                break
    return tuple(out)


def _conformed(tables: Iterable[pa.Table], target: pa.Schema, what: str) -> Iterator[pa.Table]:
    for t in tables:
        yield conform(t, target, what=what)


def commit_data(
    storage: Storage,
    log: Log,
    base: Snapshot | None,
    data: Any,
    *,
    operation: str,
    message: str | None,
    author: str | None,
    properties: Mapping[str, str] | None,
    max_rows_per_fragment: int | None = None,
) -> Snapshot:
    """Write ``data`` as fragments and commit it as ``operation`` on top of ``base``."""
    if max_rows_per_fragment is None:
        max_rows_per_fragment = DEFAULT_MAX_ROWS_PER_FRAGMENT
    if (
        isinstance(max_rows_per_fragment, bool)
        or not isinstance(max_rows_per_fragment, int)
        or max_rows_per_fragment <= 0
    ):
        raise InvalidArgument(
            f"max_rows_per_fragment must be a positive int, got {max_rows_per_fragment!r}"
        )
    if message is not None and not isinstance(message, str):
        raise InvalidArgument(f"message must be a string, got {message!r}")
    props = _check_properties(properties)
    data_schema, tables = to_arrow_stream(data)
    if base is None:
        target, last_id = assign_field_ids(data_schema)
    else:
        target = schema_from_json(base.schema)
        last_id = base.last_field_id
    what = f"{operation} to {storage.uri}"
    if base is not None:
        # Check the schema before writing any byte, so a mismatch costs nothing.
        conform(data_schema.empty_table(), target, what=what)
    entries = write_fragments(
        storage, _conformed(tables, target, what), max_rows=max_rows_per_fragment
    )
    added = make_manifest(storage, entries, level=0) if entries else None
    change = Change(
        operation=operation,
        author=author if author is not None else default_author(),
        message=message or "",
        properties=props,
        schema=schema_to_json(target),
        last_field_id=last_id,
        added=added,
        replace_all=operation == "overwrite",
    )
    return log.commit(
        base, change, merge_manifests=lambda refs: merge_manifest_levels(storage, refs)
    )

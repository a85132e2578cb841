"""Field ids handed out dataset-wide, so that no two branches ever assign the same one.

A field id names one column forever, on every branch (docs/format.md §5.1). A
snapshot's ``last_field_id`` only knows the ids of its own line, so two branches
that each handed out "``last_field_id`` + 1" would give one id to two different
columns, and a merge would then show one column's values under the other.

Every field id beyond those of a dataset's creation is therefore *claimed*
before it is used. Claim ``N`` is the immutable object
``_lakever/field-ids/<N:020d>.json`` holding ``{"first", "last", "branch",
"created"}``, created with put-if-absent; claims are numbered contiguously from 0
and each one starts above the previous one's ``last``, so claimed ranges never
overlap and the next free id is one above the newest claim. The newest claim is
found like the newest log version: from the advisory ``LATEST`` hint plus a
forward probe (galloping, then binary search), so a claim costs a few existence
checks, one read and one put whatever the length of history.

Ids a claim skips (claimed by another branch, or by a commit that then lost a
race) are simply never used: ids need not be dense, only unique. The first claim
of a dataset written before claims existed starts above the ``last_field_id`` of
every branch head (a one-time scan of the heads), so it never hands out an id an
older writer already used.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from lakever.errors import CorruptMetadata, SchemaEvolutionError, StorageError
from lakever.format import (
    FIELD_ID_DIR,
    LOG_DIR,
    canonical_json,
    field_id_claim_path,
    format_time,
    newest_number,
)
from lakever.storage import Storage

__all__ = ["MAX_FIELD_ID", "claim_field_ids"]

#: Parquet stores field ids as int32.
MAX_FIELD_ID = 2**31 - 1


def _hint_path() -> str:
    return f"{FIELD_ID_DIR}/LATEST"


def _exists(storage: Storage) -> Callable[[int], bool]:
    return lambda seq: storage.exists(field_id_claim_path(seq))


def _newest_claim(storage: Storage) -> int | None:
    """The number of the newest claim (None: no claim yet)."""
    exists = _exists(storage)
    try:
        hint: int | None = int(storage.read_bytes(_hint_path()).decode().strip())
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        hint = None
    if hint is not None and hint >= 0 and exists(hint):
        return newest_number(exists, hint)
    return newest_number(exists, 0) if exists(0) else None


def _last_of(storage: Storage, seq: int) -> int:
    """The last id of claim ``seq``, verified."""
    rel = field_id_claim_path(seq)
    path = storage.full_path(rel)
    try:
        j = json.loads(storage.read_bytes(rel))
        first, last = j["first"], j["last"]
    except FileNotFoundError as exc:
        raise CorruptMetadata(
            f"field id claim {path} is missing although a later one exists; it was deleted "
            "outside lakever",
            path=path,
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptMetadata(
            f"field id claim {path} is truncated or malformed ({exc!r}); it was modified "
            "outside lakever",
            path=path,
        ) from exc
    if not (isinstance(first, int) and isinstance(last, int) and 0 < first <= last):
        raise CorruptMetadata(f"field id claim {path} holds an invalid range", path=path)
    return last


def _highest_in_heads(storage: Storage) -> int:
    """The highest ``last_field_id`` of any branch head (deleted branches included)."""
    from lakever.refs import line_for

    high = 0
    for branch_id in storage.list(LOG_DIR):
        head = line_for(storage, branch_id).head()
        if head is not None:
            high = max(high, head.last_field_id)
    return high


def claim_field_ids(
    storage: Storage, count: int, *, floor: int, branch: str, columns: Sequence[str] = ()
) -> int:
    """Reserve ``count`` consecutive field ids no other commit, on any branch, ever gets.

    Args:
        count: how many ids the commit assigns (at least 1).
        floor: the base snapshot's ``last_field_id``; the ids are all above it.
        branch: id of the branch committing (recorded for inspection).
        columns: the columns being added (for the error message).

    Returns:
        The first reserved id; the commit uses ``first .. first + count - 1``.

    Raises:
        SchemaEvolutionError: the ids would pass the Parquet limit (2**31 - 1).
        CorruptMetadata: a claim is missing or malformed.
    """
    assert count > 0
    seq = _newest_claim(storage)
    while True:
        if seq is None:
            # The dataset's first claim: above every id any earlier writer assigned.
            low, n = _highest_in_heads(storage), 0
        else:
            low, n = _last_of(storage, seq), seq + 1
        first = max(low, floor) + 1
        last = first + count - 1
        if last > MAX_FIELD_ID:
            raise SchemaEvolutionError(
                f"cannot add {', '.join(map(repr, columns)) or 'columns'}: that needs {count} "
                f"more field id(s), the dataset has used field ids up to {first - 1}, and "
                "Parquet stores them as 32-bit integers. Write the data to a new dataset",
                column=", ".join(columns),
                old_type=None,
                new_type=None,
            )
        record = {"first": first, "last": last, "branch": branch}
        record["created"] = format_time(datetime.now(UTC))
        if storage.publish(field_id_claim_path(n), canonical_json(record)):
            with contextlib.suppress(OSError, StorageError):  # advisory, like the log's LATEST
                storage.write_hint(_hint_path(), b"%020d\n" % n)
            return first
        # Another writer took claim n: continue above the newest claim.
        seq = newest_number(_exists(storage), n)

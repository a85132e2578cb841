"""The result of a diff: summary numbers and the changed rows, as Arrow or polars."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lakever._convert import arrow_to_polars
from lakever._records import Commit, SchemaChange
from lakever.errors import InvalidArgument

if TYPE_CHECKING:
    import polars as pl

__all__ = ["CHANGE_TYPE", "Diff", "DiffSummary", "Result", "change_table"]

#: The change-type column of `Diff.to_polars` and of the change feed, with the values of
#: Delta Lake's change data feed: insert, delete, update_preimage, update_postimage.
CHANGE_TYPE = "_change_type"


@dataclass(frozen=True, slots=True)
class Result:
    """Indices into the rows read from each side (int64 arrays, ascending)."""

    #: Rows of the older side that the newer lacks.
    removed: pa.Array[Any]
    #: Rows of the newer side that the older lacks.
    added: pa.Array[Any]
    #: Changed keys: row in the older side, row in the newer side (ordered by it), and
    #: the names of the columns that differ (list<string>).
    changed_old: pa.Array[Any]
    changed_new: pa.Array[Any]
    changed_columns: pa.Array[Any]

    @staticmethod
    def of(removed: pa.Array[Any], added: pa.Array[Any]) -> Result:
        empty = pa.array([], pa.int64())
        return Result(removed, added, empty, empty, pa.array([], pa.list_(pa.string())))


@dataclass(frozen=True, slots=True)
class DiffSummary:
    """What changed between two snapshots, in numbers."""

    #: Rows only the newer snapshot has (by key: keys it adds).
    rows_added: int
    #: Rows only the older snapshot has (by key: keys it removes).
    rows_removed: int
    #: Keys both have with different values (0 without a key).
    rows_changed: int
    #: Data files only the newer snapshot lists.
    fragments_added: int
    #: Data files only the older snapshot lists.
    fragments_removed: int
    #: Fragments both list identically (never read by the diff).
    fragments_shared: int
    #: Data files both list with different deletion vectors (only the rows one side
    #: deletes and the other does not were read).
    fragments_modified: int
    #: Schema changes from the older snapshot to the newer, by field id.
    schema_changes: tuple[SchemaChange, ...]
    #: The key the rows were matched by (None: compared as a multiset).
    key: tuple[str, ...] | None

    @property
    def rows_touched(self) -> int:
        """Rows the diff reports (added + removed + changed)."""
        return self.rows_added + self.rows_removed + self.rows_changed

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out = {k: getattr(self, k) for k in self.__slots__}
        out["schema_changes"] = [c.to_dict() for c in self.schema_changes]
        out["key"] = None if self.key is None else list(self.key)
        return out


class Diff:
    """The differences between two snapshots of a dataset (see `lakever.diff`).

    ``a`` is the older side and ``b`` the newer: rows "added" are in ``b`` only.
    Tables are in one schema holding every column of either side (matched by
    field id, named as in ``b``).
    """

    __slots__ = ("_added", "_changed", "_removed", "_result", "a", "b", "schema", "summary")

    def __init__(
        self,
        a: Commit,
        b: Commit,
        schema: pa.Schema,
        removed: pa.Table,
        added: pa.Table,
        result: Result,
        summary: DiffSummary,
    ) -> None:
        #: The commits of the older and newer snapshots (version, snapshot id, time...).
        self.a = a
        self.b = b
        #: The schema of the tables this diff returns.
        self.schema = schema
        self.summary = summary
        self._removed = removed
        self._added = added
        self._result = result

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<lakever.Diff version {self.a.version} -> {self.b.version}: +{s.rows_added} "
            f"-{s.rows_removed} ~{s.rows_changed} rows, {len(s.schema_changes)} schema changes>"
        )

    @property
    def key(self) -> list[str] | None:
        """The key columns rows were matched by, or None."""
        return None if self.summary.key is None else list(self.summary.key)

    @property
    def schema_changes(self) -> list[SchemaChange]:
        """Columns added, dropped, renamed, widened or made nullable from ``a`` to ``b``."""
        return list(self.summary.schema_changes)

    def added(self) -> pa.Table:
        """Rows (by key: keys) only the newer snapshot has."""
        return self._added.take(self._result.added)

    def removed(self) -> pa.Table:
        """Rows (by key: keys) only the older snapshot has."""
        return self._removed.take(self._result.removed)

    def _pairs(self) -> tuple[pa.Table, pa.Table]:
        r = self._result
        return self._removed.take(r.changed_old), self._added.take(r.changed_new)

    def changed(self) -> pa.Table:
        """One row per changed key: the key columns, ``_changed_columns`` (names), and the
        structs ``_old`` and ``_new`` holding the values of the columns that changed in
        any row.

        Raises:
            InvalidArgument: the diff has no key (rows can only be added or removed).
        """
        if self.summary.key is None:
            raise InvalidArgument(
                "this diff has no key, so rows are only added or removed; pass on=[key "
                "columns] (or declare a primary key) to see changed rows"
            )
        old, new = self._pairs()
        changed_columns = self._result.changed_columns
        differ = set(pc.unique(pc.list_flatten(changed_columns)).to_pylist())
        columns = [n for n in self.schema.names if n in differ]
        key = list(self.summary.key)
        out = new.select(key).append_column("_changed_columns", changed_columns)
        for name, side in (("_old", old), ("_new", new)):
            fields = [side.schema.field(c) for c in columns]
            arrays = [side.column(c).combine_chunks() for c in columns]
            struct: pa.Array[Any] = (
                pa.StructArray.from_arrays(arrays, fields=fields)
                if columns
                else pa.array([{}] * old.num_rows, pa.struct([]))
            )
            out = out.append_column(name, struct)
        return out

    def to_arrow(self) -> pa.Table:
        """Every change in one table: the columns plus ``_change_type`` ("insert",
        "delete", "update_preimage", "update_postimage"; preimage and postimage rows of a
        changed key are adjacent)."""
        return change_table(self._removed, self._added, self._result)

    def to_polars(self) -> pl.DataFrame:
        """`to_arrow` as a polars DataFrame."""
        return arrow_to_polars(self.to_arrow())

    def to_dict(self) -> dict[str, Any]:
        """The summary, the two snapshots and the schema changes, JSON-ready."""
        return {
            "a": {
                "version": self.a.version,
                "snapshot_id": self.a.snapshot_id,
                "branch": self.a.branch_name,
            },
            "b": {
                "version": self.b.version,
                "snapshot_id": self.b.snapshot_id,
                "branch": self.b.branch_name,
            },
            **self.summary.to_dict(),
        }


def _labelled(table: pa.Table, label: str) -> pa.Table:
    return table.append_column(CHANGE_TYPE, pa.array([label] * table.num_rows, pa.string()))


def change_table(removed: pa.Table, added: pa.Table, result: Result) -> pa.Table:
    pre = _labelled(removed.take(result.changed_old), "update_preimage")
    post = _labelled(added.take(result.changed_new), "update_postimage")
    n = pre.num_rows
    # Interleave: each key's preimage is followed by its postimage.
    pairs = pa.concat_tables([pre, post]).take(
        pa.array([i + n * side for i in range(n) for side in (0, 1)], pa.int64())
    )
    return pa.concat_tables(
        [
            _labelled(removed.take(result.removed), "delete"),
            pairs,
            _labelled(added.take(result.added), "insert"),
        ]
    )

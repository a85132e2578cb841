"""Primary keys: declared once, enforced on every commit that adds rows.

A dataset may declare a primary key (``create_dataset(..., primary_key=["id"])``);
the snapshot records it as field ids, so renaming a key column keeps the key.
Every commit that adds rows checks, before its log entry is created, that the
rows it adds have no null key, repeat no key among themselves, and repeat no key
of the live rows they join. The last check is cheap for typical appends: the
added fragments' key min/max (manifest statistics, no read) rule out every
existing fragment whose key range does not overlap, and DuckDB reads only the
key columns of the few that remain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

from lakever._metafiles import read_schema
from lakever.errors import CommitConflict, InvalidArgument, PrimaryKeyViolation
from lakever.evolution import stats_compatible
from lakever.format import FragmentEntry, Snapshot, schema_id
from lakever.manifests import read_manifest
from lakever.planner import plan_of
from lakever.reader import ScanPlan, read_plan, read_positions
from lakever.schema import iter_field_ids, schema_to_json
from lakever.sql import cursor, quote_identifier, register_arrow, schema_map
from lakever.storage import Storage

__all__ = ["KeyCheck", "StatsOf", "check_declared", "stats_function"]

#: A fragment's stats by field id, valid under the current schema.
StatsOf = Callable[[FragmentEntry], Mapping[int, Mapping[str, Any]]]
_EXAMPLES = 10


def stats_function(storage: Storage, schema: pa.Schema) -> StatsOf:
    """Stats of fragments read under ``schema`` (bounds of widened columns kept only if valid)."""
    sid = schema_id_of(schema)
    current = dict(iter_field_ids(schema))

    def stats_of(e: FragmentEntry) -> Mapping[int, Mapping[str, Any]]:
        if e.schema_id == sid:
            return e.stats
        written = dict(iter_field_ids(read_schema(storage, e.schema_id)))
        out: dict[int, Mapping[str, Any]] = {}
        for fid, st in e.stats.items():
            if fid in current and fid in written:
                keep = stats_compatible(written[fid].type, current[fid].type)
                out[fid] = st if keep else {"nulls": st.get("nulls", 0)}
        return out

    return stats_of


def schema_id_of(schema: pa.Schema) -> str:
    """The schema id of ``schema`` (with field ids)."""
    return schema_id(schema_to_json(schema))


def check_declared(schema: pa.Schema, columns: Sequence[str]) -> tuple[int, ...]:
    """The field ids of a primary key being declared on ``schema``; refuse unusable keys."""
    if isinstance(columns, str) or not isinstance(columns, Sequence) or not columns:
        raise InvalidArgument(
            f"primary_key must be a non-empty list of column names, got {columns!r}"
        )
    ids = {f.name: fid for fid, f in iter_field_ids(schema)}
    missing = [c for c in columns if c not in ids]
    if missing or len(set(columns)) != len(columns):
        raise InvalidArgument(
            f"primary_key {list(columns)} must name distinct columns of the data; the data "
            f"has columns {schema.names}"
        )
    for c in columns:
        t = schema.field(c).type
        unusable = pa.types.is_nested(t) or pa.types.is_floating(t)  # NaN is not a key
        if unusable or schema_map(pa.schema([schema.field(c)])) is None:
            raise InvalidArgument(
                f"primary key column {c!r} has type {t}, which cannot be a key: use integer, "
                "string, binary, decimal, date or timestamp columns"
            )
    return tuple(ids[c] for c in columns)


def _value(stat: Any, t: pa.DataType) -> Any:
    return Decimal(stat) if pa.types.is_decimal(t) else stat


def _ranges(
    entries: Sequence[FragmentEntry], key: Sequence[tuple[int, pa.DataType]], stats_of: StatsOf
) -> dict[int, tuple[Any, Any]]:
    """Per key field id, the (min, max) of ``entries`` (a field is left out when unknown)."""
    out: dict[int, tuple[Any, Any]] = {}
    for fid, t in key:
        lo = hi = None
        for e in entries:
            s = stats_of(e).get(fid, {})
            if "min" not in s or "max" not in s:
                break
            a, b = _value(s["min"], t), _value(s["max"], t)
            lo = a if lo is None or a < lo else lo
            hi = b if hi is None or b > hi else hi
        else:
            if lo is not None:
                out[fid] = (lo, hi)
    return out


def _may_overlap(
    e: FragmentEntry,
    ranges: Mapping[int, tuple[Any, Any]],
    key: Sequence[tuple[int, pa.DataType]],
    stats_of: StatsOf,
) -> bool:
    stats = stats_of(e)
    for fid, t in key:
        if fid not in ranges:
            continue
        s = stats.get(fid, {})
        if "min" not in s or "max" not in s:
            continue
        lo, hi = ranges[fid]
        try:
            if _value(s["max"], t) < lo or _value(s["min"], t) > hi:
                return False
        except TypeError:
            continue
    return True


class KeyCheck:
    """The primary-key checks of one commit: the rows it adds against the rows they join.

    Key columns are read through scan plans (`lakever.reader`: verified fragments,
    deletion vectors applied, exact types) and compared in DuckDB.
    """

    def __init__(
        self,
        storage: Storage,
        schema: pa.Schema,
        key: Sequence[int],
        *,
        stats_of: StatsOf | None = None,
        what: str,
    ) -> None:
        by_id = dict(iter_field_ids(schema))
        missing = [fid for fid in key if fid not in by_id]
        if missing:
            raise InvalidArgument(f"primary key field ids {missing} are not in the schema")
        self.storage = storage
        self.schema = schema
        self.fields = [by_id[fid] for fid in key]
        self.names = [f.name for f in self.fields]
        self.key = [(fid, by_id[fid].type) for fid in key]
        self.stats_of = stats_of or stats_function(storage, schema)
        self.what = what

    def _plan(self, entries: Sequence[FragmentEntry]) -> ScanPlan:
        return plan_of(
            self.storage,
            self.schema,
            entries,
            self.names,
            lambda sid: read_schema(self.storage, sid),
        )

    def _keys(self, entries: Sequence[FragmentEntry]) -> pa.Table:
        """The key columns of the live rows of ``entries``."""
        return read_plan(self._plan(entries))

    def _run(self, query: str, **tables: pa.Table) -> pa.Table:
        """Run ``query`` on a private cursor with ``tables`` registered by name."""
        con = cursor()
        try:
            for name, table in tables.items():
                register_arrow(con, name, table)
            result: pa.Table = con.sql(query).to_arrow_table()
            return result
        finally:
            con.close()

    def _examples(self, table: pa.Table) -> list[dict[str, Any]]:
        return [{n: r[n] for n in self.names} for r in table.to_pylist()]

    def _cols(self, prefix: str = "") -> str:
        return ", ".join(prefix + quote_identifier(n) for n in self.names)

    def duplicates(self, added: Sequence[FragmentEntry]) -> list[dict[str, Any]]:
        """Keys repeated among ``added`` rows, or null."""
        if not added:
            return []
        nulls = " OR ".join(f"{quote_identifier(n)} IS NULL" for n in self.names)
        query = (
            f"SELECT {self._cols()}, count(*) AS __n FROM __added "
            f"GROUP BY ALL HAVING __n > 1 OR {nulls} ORDER BY ALL LIMIT {_EXAMPLES}"
        )
        return self._examples(self._run(query, __added=self._keys(added)))

    def _candidates(
        self, added: Sequence[FragmentEntry], existing: Sequence[FragmentEntry]
    ) -> list[FragmentEntry]:
        ranges = _ranges(added, self.key, self.stats_of)
        return [e for e in existing if _may_overlap(e, ranges, self.key, self.stats_of)]

    def collisions(
        self, added: Sequence[FragmentEntry], existing: Sequence[FragmentEntry]
    ) -> list[dict[str, Any]]:
        """Keys of ``added`` rows that live rows of ``existing`` already have."""
        if not added or not existing:
            return []
        candidates = self._candidates(added, existing)
        if not candidates:
            return []
        using = ", ".join(quote_identifier(n) for n in self.names)
        query = (
            f"SELECT DISTINCT {self._cols()} FROM __existing "
            f"SEMI JOIN __added USING ({using}) ORDER BY ALL LIMIT {_EXAMPLES}"
        )
        return self._examples(
            self._run(query, __existing=self._keys(candidates), __added=self._keys(added))
        )

    def matches(
        self, added: Sequence[FragmentEntry], existing: Sequence[FragmentEntry]
    ) -> list[tuple[FragmentEntry, pa.Array[Any]]]:
        """The live rows of ``existing`` whose key an ``added`` row has: per fragment (in
        order), the file positions of those rows (ascending).

        Only fragments whose key range overlaps the added rows' are read.
        """
        if not added or not existing:
            return []
        candidates = self._candidates(added, existing)
        if not candidates:
            return []
        by_path = {e.path: e for e in candidates}
        keys = self._keys(added)
        using = ", ".join(quote_identifier(n) for n in self.names)
        out = []
        for task, positions, rows in read_positions(self._plan(candidates)):
            rows = rows.append_column("__pos", pa.array(positions, pa.int64()))
            hit = self._run(
                f"SELECT __pos FROM __rows SEMI JOIN __added USING ({using}) ORDER BY __pos",
                __rows=rows,
                __added=keys,
            )
            if hit.num_rows:
                out.append((by_path[task.path], hit.column(0).combine_chunks()))
        return out

    def _key_text(self) -> str:
        return ", ".join(self.names)

    def check(self, added: Sequence[FragmentEntry], existing: Sequence[FragmentEntry]) -> None:
        """Raise `PrimaryKeyViolation` if ``added`` rows break the key among themselves or
        against the live rows of ``existing``."""
        dupes = self.duplicates(added)
        if dupes:
            raise PrimaryKeyViolation(
                f"primary key ({self._key_text()}) violated: the rows {self.what} adds have "
                f"null or repeated keys, e.g. {_show(dupes)}. Nothing was committed; "
                "deduplicate the rows first",
                columns=self.names,
                examples=dupes,
            )
        taken = self.collisions(added, existing)
        if taken:
            raise PrimaryKeyViolation(
                f"primary key ({self._key_text()}) violated: the rows {self.what} adds have keys "
                f"that live rows already have, e.g. {_show(taken)}. Nothing was committed; use "
                "upsert() to replace the rows with these keys",
                columns=self.names,
                examples=taken,
            )

    def recheck(self, added: Sequence[FragmentEntry]) -> Callable[[Snapshot, Snapshot], None]:
        """The `Line.commit` hook: refuse to replay ``added`` on a winner that added a same key."""

        def hook(previous: Snapshot, winner: Snapshot) -> None:
            before = {e.path for m in previous.manifests for e in read_manifest(self.storage, m)}
            theirs = [
                e
                for m in winner.manifests
                for e in read_manifest(self.storage, m)
                if e.path not in before
            ]
            taken = self.collisions(added, theirs)
            if taken:
                raise CommitConflict(
                    f"commit to {self.storage.uri} conflicts with version {winner.version}, "
                    f"which added rows with the same primary key ({self._key_text()}), e.g. "
                    f"{_show(taken)}. Re-open the dataset and retry (an upsert then replaces "
                    "them)",
                    winning_version=winner.version,
                )

        return hook


def _show(examples: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(
        "(" + ", ".join(f"{k}={v!r}" for k, v in ex.items()) + ")" for ex in examples[:5]
    )

"""Stable splits and samples: rows assigned by a hash of their key, on every read path.

A row's place is decided by one number, its *bucket*: the first 16 hex digits of the
SHA-256 of a canonical text of the seed and the row's key values, read as an unsigned
64-bit integer (docs/format.md §11, docs/splits.md). A split or a sample is a range
``[lo, hi)`` of buckets. The bucket is written once, as a DuckDB SQL expression
(`bucket_sql`), and the range becomes a filter (`Subset.filter`), which every reader
evaluates with DuckDB like any other filter (Arrow, DuckDB, polars, batches, plans
read on Ray or Dask workers, SQL): so no two paths can disagree, and a row keeps its
split whatever else changes in the dataset, on every branch and version.

Changing the canonical text, the hash or the range arithmetic would move rows to
other splits: that is a format change (the golden test in tests/test_splits.py
pins assignments for fixed keys).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pyarrow as pa

from lakever.errors import InvalidArgument
from lakever.ml.batches import SHUFFLE_BUFFER
from lakever.reader import READAHEAD
from lakever.sql import quote_identifier, quote_literal

if TYPE_CHECKING:
    import dask.dataframe
    import duckdb
    import pandas as pd
    import polars as pl
    import ray.data

    from lakever.reader import ExplainReport, ScanPlan
    from lakever.snapshot import SnapshotState

__all__ = ["BUCKETS", "Subset", "bucket_sql", "make_sample", "make_splits", "range_sql"]

#: Buckets are the integers ``0 <= b < 2**64``.
BUCKETS = 1 << 64
#: A sum of fractions this close to 1 covers every row (float sums such as 3 * (1/3)).
TOLERANCE = Fraction(1, 10**9)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")


class Readable(Protocol):
    """What a subset reads through, `lakever.Dataset` (named structurally, so this
    module does not import the view that imports it)."""

    _state: SnapshotState

    @property
    def uri(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def schema(self) -> pa.Schema: ...
    @property
    def primary_key(self) -> list[str] | None: ...
    def plan(
        self, *, filter: str | None = None, columns: Sequence[str] | None = None
    ) -> ScanPlan: ...
    def explain(self, filter: str) -> ExplainReport: ...
    def to_arrow(
        self, columns: Sequence[str] | None = None, *, filter: str | None = None
    ) -> pa.Table: ...
    def to_batches(
        self,
        batch_size: int = ...,
        *,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        readahead: int = ...,
        shard: tuple[int, int] | None = None,
        worker: tuple[int, int] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        shuffle_buffer: int = ...,
        drop_last: bool = False,
        even: bool = False,
        format: Literal["arrow", "numpy", "dict"] = "arrow",
    ) -> Iterator[Any]: ...
    def to_polars(
        self, columns: Sequence[str] | None = None, *, filter: str | None = None
    ) -> pl.DataFrame: ...
    def to_pandas(
        self, columns: Sequence[str] | None = None, *, filter: str | None = None
    ) -> pd.DataFrame: ...
    def scan(self, *, filter: str | None = None) -> pl.LazyFrame: ...
    def to_ray(
        self,
        *,
        filter: str | None = None,
        columns: Sequence[str] | None = None,
        max_rows_per_task: int | None = None,
    ) -> ray.data.Dataset: ...
    def to_dask(
        self,
        *,
        filter: str | None = None,
        columns: Sequence[str] | None = None,
        max_rows_per_task: int | None = None,
    ) -> dask.dataframe.DataFrame: ...


# ----------------------------------------------------------------- the hash (one definition)


def _canonical(column: str, t: pa.DataType) -> str:
    """SQL for the canonical text of a non-null value of ``column`` (type ``t``).

    Raises:
        InvalidArgument: ``t`` has no stable text (floats, nested types, others).
    """
    c = quote_identifier(column)
    if pa.types.is_integer(t):
        return f"CAST({c} AS VARCHAR)"  # decimal digits, '-' for negatives
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return c
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return f"lower(hex({c}))"
    if pa.types.is_date(t):
        # Nanoseconds since the epoch of the day's midnight: a date widened to a
        # timestamp (lakever.evolution allows it) keeps its text, hence its split.
        return f"CAST(CAST(({c} - DATE '1970-01-01') AS HUGEINT) * 86400000000000 AS VARCHAR)"
    if pa.types.is_timestamp(t):
        # Nanoseconds since the epoch (UTC for zoned values), whatever the unit.
        if t.unit == "ns":
            ns = f"CAST(epoch_ns({c}) AS VARCHAR)"
        else:
            # DuckDB's implicit cast of TIMESTAMP_S/_MS to TIMESTAMP fails outside the
            # nanosecond range (years 1677-2262); the explicit one does not.
            us = f"epoch_us({c})" if t.tz is not None else f"epoch_us(CAST({c} AS TIMESTAMP))"
            ns = f"CAST(CAST({us} AS HUGEINT) * 1000 AS VARCHAR)"
        # DuckDB reads the two extreme int64 values as +-infinity, which have no epoch:
        # a row must never silently fall out of every split.
        infinite = quote_literal(
            f"split key column {column!r} holds a timestamp DuckDB reads as infinite (the "
            "largest or smallest int64); such rows cannot be assigned to a split: fix or "
            "delete them, or use another key"
        )
        return f"coalesce({ns}, error({infinite}))"
    if pa.types.is_decimal(t):
        if t.precision > 38:
            raise InvalidArgument(
                f"key column {column!r} is a {t} with more than 38 digits, which DuckDB cannot "
                "read; use an integer or string key"
            )
        text = f"CAST({c} AS VARCHAR)"
        # The exact value without trailing zeros: 1.50 and 1.5 are the same key.
        return f"rtrim(rtrim({text}, '0'), '.')" if t.scale > 0 else text
    if pa.types.is_floating(t):
        why = (
            "floats are not stable keys (rounding gives equal-looking values different "
            "bits, and their text differs between engines); use an integer or string id, "
            "or a decimal"
        )
    elif pa.types.is_nested(t):
        why = "nested values have no canonical text; use a flat column (or several)"
    else:
        why = "only integers, strings, binaries, dates, timestamps and decimals can be keys"
    raise InvalidArgument(f"key column {column!r} has type {t}: {why}")


def bucket_sql(schema: pa.Schema, key: Sequence[str], seed: int) -> str:
    """The DuckDB SQL expression of a row's bucket (UBIGINT) for ``key`` and ``seed``.

    The hashed text is the seed in decimal, then for each key column ``:`` and either
    ``N`` (NULL) or ``<UTF-8 byte length of T>=<T>`` with ``T`` the value's canonical
    text (see `_canonical`); the bucket is the first 16 hex digits of its SHA-256.

    Raises:
        InvalidArgument: a key column is missing, or its type cannot be a key.
    """
    parts = [quote_literal(str(seed))]
    for name in key:
        if name not in schema.names:
            raise InvalidArgument(
                f"key column {name!r} is not in this snapshot (columns: {schema.names}); keys "
                "are columns of the snapshot read, by their names in it (after a rename, "
                "use the new name: the values, hence the splits, are unchanged)"
            )
        text = _canonical(name, schema.field(name).type)
        value = f"CAST(strlen({text}) AS VARCHAR) || '=' || {text}"
        parts.append(
            f"CASE WHEN {quote_identifier(name)} IS NULL THEN ':N' ELSE ':' || {value} END"
        )
    return f"CAST('0x' || substr(sha256({' || '.join(parts)}), 1, 16) AS UBIGINT)"


def range_sql(bucket: str, lo: int, hi: int) -> str:
    """The SQL condition ``lo <= bucket < hi`` (bounds at 0 and 2**64 left out)."""
    conds = ([f"{bucket} >= {lo}"] if lo > 0 else []) + (
        [f"{bucket} < {hi}"] if hi < BUCKETS else []
    )
    return " AND ".join(conds) if conds else "TRUE"


# ----------------------------------------------------------------- arguments


def _exact(value: Any, what: str) -> Fraction:
    """A fraction argument as the exact decimal it prints as (0.1 is 1/10)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{what} must be a number in (0, 1], got {value!r}")
    if not math.isfinite(value):
        raise InvalidArgument(f"{what} must be in (0, 1], got {value!r}")
    f = Fraction(repr(float(value)))
    if not 0 < f <= 1:
        raise InvalidArgument(f"{what} must be in (0, 1], got {value!r}")
    return f


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgument(f"seed must be an int, got {seed!r}")
    return seed


def _key_of(view: Readable, key: str | Sequence[str] | None) -> tuple[str, ...]:
    if key is None:
        pk = view.primary_key
        if not pk:
            raise InvalidArgument(
                f"{view.uri} has no primary key: pass key= (a column, or a list of columns "
                "whose values identify a row)"
            )
        return tuple(pk)
    names = (key,) if isinstance(key, str) else key
    if not isinstance(names, Sequence) or not names or not all(isinstance(n, str) for n in names):
        raise InvalidArgument(f"key must be a column name or a list of them, got {key!r}")
    if len(set(names)) != len(names):
        raise InvalidArgument(f"key names a column twice: {list(names)}")
    return tuple(names)


def _bound(cum: Fraction) -> int:
    return BUCKETS if cum >= 1 - TOLERANCE else (cum.numerator * BUCKETS) // cum.denominator


def make_splits(
    view: Readable,
    fractions: Mapping[str, float],
    *,
    key: str | Sequence[str] | None,
    seed: int,
) -> dict[str, Subset]:
    """The splits of ``view``: consecutive bucket ranges in the order of ``fractions``."""
    if not isinstance(fractions, Mapping) or not fractions:
        raise InvalidArgument(
            f"fractions must be a non-empty dict of split name -> fraction, got {fractions!r}"
        )
    exact = {}
    for name, value in fractions.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidArgument(
                f"split name {name!r} is not valid: use 1-64 letters, digits, '_' or '-', "
                "starting with a letter or '_'"
            )
        exact[name] = _exact(value, f"fraction of split {name!r}")
    total = sum(exact.values(), Fraction(0))
    if total > 1 + TOLERANCE:
        raise InvalidArgument(
            f"the fractions sum to {float(total):g} > 1: {dict(fractions)}; make them sum to "
            "1 (every row in one split) or less (the rest in none)"
        )
    names, seed = _key_of(view, key), _check_seed(seed)
    bucket = bucket_sql(view.schema, names, seed)
    out, cum, lo = {}, Fraction(0), 0
    for name, f in exact.items():
        cum += f
        hi = _bound(cum)
        out[name] = Subset(view, name, names, seed, lo, hi, bucket)
        lo = hi
    return out


def make_sample(
    view: Readable, frac: float, *, key: str | Sequence[str] | None, seed: int
) -> Subset:
    """The rows whose bucket is below ``frac * 2**64``."""
    f = _exact(frac, "frac")
    names, seed = _key_of(view, key), _check_seed(seed)
    return Subset(view, "sample", names, seed, 0, _bound(f), bucket_sql(view.schema, names, seed))


# ----------------------------------------------------------------- the subset


@dataclass(frozen=True, slots=True)
class Subset:
    """A split or a sample of one snapshot: its rows, read like the snapshot itself.

    Every read takes the same arguments as the `lakever.Dataset` method of the same
    name; ``filter=`` is combined with the subset's own `filter` (AND).
    """

    #: The snapshot the rows come from.
    view: Readable
    #: The split's name ("sample" for a sample).
    name: str
    #: The key columns (names in this snapshot).
    key: tuple[str, ...]
    seed: int
    #: The bucket range ``[lo, hi)`` of the rows (``0 <= lo <= hi <= 2**64``).
    lo: int
    hi: int
    _bucket: str

    def __repr__(self) -> str:
        share = (self.hi - self.lo) / BUCKETS
        return (
            f"<lakever.Subset {self.name!r} of {self.view.uri!r} version={self.view.version} "
            f"key={list(self.key)} seed={self.seed} fraction={share:.6g}>"
        )

    @property
    def fraction(self) -> float:
        """The share of buckets in this subset (the expected share of rows)."""
        return (self.hi - self.lo) / BUCKETS

    @property
    def filter(self) -> str:
        """The subset as one DuckDB SQL expression over the snapshot's columns.

        Usable anywhere lakever takes a filter, and in SQL over the same dataset, e.g.
        ``lake.sql(f"SELECT count(*) FROM events WHERE {train.filter}")``.
        """
        return range_sql(self._bucket, self.lo, self.hi)

    def _with(self, filter: str | None) -> str:
        if filter is None:
            return self.filter
        if not isinstance(filter, str) or not filter.strip():
            raise InvalidArgument(f"filter must be a non-empty SQL expression, got {filter!r}")
        from lakever.expr import parse_expression

        parse_expression(filter, what="filter")  # the caller's text is reported alone
        return f"({self.filter}) AND ({filter})"

    def sample(self, frac: float) -> Subset:
        """The first ``frac`` of this subset's buckets: a sample of its rows (nested:
        a smaller ``frac`` gives a subset of a larger one)."""
        f = _exact(frac, "frac")
        width = self.hi - self.lo
        hi = self.hi if f >= 1 - TOLERANCE else self.lo + (f.numerator * width) // f.denominator
        return replace(self, name=f"{self.name}.sample", hi=hi)

    def plan(self, *, filter: str | None = None, columns: Sequence[str] | None = None) -> ScanPlan:
        """The read plan of the subset (`Dataset.plan`): Ray, Dask and training loaders
        read its tasks with ``plan.read(task)``, the subset's filter applied."""
        return self.view.plan(filter=self._with(filter), columns=columns)

    def explain(self, filter: str | None = None) -> ExplainReport:
        """What reading the subset touches (fragments, rows, bytes; reads none)."""
        return self.view.explain(self._with(filter))

    def to_arrow(
        self, columns: Sequence[str] | None = None, *, filter: str | None = None
    ) -> pa.Table:
        """The subset's rows as a pyarrow Table, in the snapshot's order."""
        return self.view.to_arrow(columns, filter=self._with(filter))

    def to_batches(
        self,
        batch_size: int = 65536,
        *,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        readahead: int = READAHEAD,
        shard: tuple[int, int] | None = None,
        worker: tuple[int, int] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        shuffle_buffer: int = SHUFFLE_BUFFER,
        drop_last: bool = False,
        even: bool = False,
        format: Literal["arrow", "numpy", "dict"] = "arrow",
    ) -> Iterator[Any]:
        """The subset's rows in batches, with the training options of `Dataset.to_batches`
        (shards, workers, shuffling, ``drop_last``, ``even``, output formats)."""
        return self.view.to_batches(
            batch_size, columns=columns, filter=self._with(filter), readahead=readahead,
            shard=shard, worker=worker, shuffle=shuffle, seed=seed, epoch=epoch,
            shuffle_buffer=shuffle_buffer, drop_last=drop_last, even=even, format=format,
        )  # fmt: skip

    def to_polars(
        self, columns: Sequence[str] | None = None, *, filter: str | None = None
    ) -> pl.DataFrame:
        """The subset's rows as a polars DataFrame."""
        return self.view.to_polars(columns, filter=self._with(filter))

    def to_pandas(
        self, columns: Sequence[str] | None = None, *, filter: str | None = None
    ) -> pd.DataFrame:
        """The subset's rows as a pandas DataFrame."""
        return self.view.to_pandas(columns, filter=self._with(filter))

    def scan(self, *, filter: str | None = None) -> pl.LazyFrame:
        """The subset's rows as a polars LazyFrame."""
        return self.view.scan(filter=self._with(filter))

    def to_ray(
        self,
        *,
        filter: str | None = None,
        columns: Sequence[str] | None = None,
        max_rows_per_task: int | None = None,
    ) -> ray.data.Dataset:
        """The subset as a Ray Dataset (`Dataset.to_ray`)."""
        f = self._with(filter)
        return self.view.to_ray(filter=f, columns=columns, max_rows_per_task=max_rows_per_task)

    def to_dask(
        self,
        *,
        filter: str | None = None,
        columns: Sequence[str] | None = None,
        max_rows_per_task: int | None = None,
    ) -> dask.dataframe.DataFrame:
        """The subset as a Dask DataFrame (`Dataset.to_dask`)."""
        f = self._with(filter)
        return self.view.to_dask(filter=f, columns=columns, max_rows_per_task=max_rows_per_task)

    def count(self) -> int:
        """How many rows the subset holds (reads the key columns)."""
        return self.to_arrow(list(self.key)).num_rows

    def sql(
        self,
        query: str,
        *,
        con: duckdb.DuckDBPyConnection | None = None,
        trusted: bool = False,
    ) -> duckdb.DuckDBPyRelation:
        """Run a DuckDB SQL query in which the table ``self`` holds the subset's rows
        (`Dataset.sql`; time travel is refused: split another version instead)."""
        from lakever.ml._subset_sql import run

        return run(self.view._state, self.filter, query, con=con, trusted=trusted)

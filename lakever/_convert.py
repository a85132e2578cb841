"""Conversions between the data libraries users hand us and Arrow.

polars and pandas are imported only when data of theirs is seen or requested.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakever._batching import regroup
from lakever.errors import InvalidArgument
from lakever.schema import map_leaves, narrow_decimal, wide_decimal_columns

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

__all__ = [
    "arrow_to_pandas",
    "arrow_to_polars",
    "check_polars_can_read",
    "polars_can_hold",
    "scan_parquet",
    "to_arrow_stream",
]

#: A streamed input (a RecordBatchReader, an Arrow C stream) is gathered into tables of
#: this many rows
_STREAM_ROWS = 1 << 20
#: ... or this many in-memory bytes (wide rows: embeddings), whichever comes first.
_STREAM_BYTES = 64 << 20


def _module_of(obj: Any) -> str:
    return type(obj).__module__.split(".", 1)[0]


def _strip(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata(None) if table.schema.metadata else table


def to_arrow_stream(data: Any) -> tuple[pa.Schema, Iterable[pa.Table]]:
    """Return the schema of ``data`` and an iterable of Arrow tables holding its rows.

    Accepts a pyarrow Table, RecordBatch or RecordBatchReader (streamed, never
    fully materialised), a polars DataFrame or LazyFrame, or a pandas DataFrame.
    """
    if isinstance(data, pa.Table):
        table = _strip(data)
        return table.schema, [table]
    if isinstance(data, pa.RecordBatch):
        table = _strip(pa.Table.from_batches([data]))
        return table.schema, [table]
    if isinstance(data, pa.RecordBatchReader):
        return data.schema.remove_metadata(), _iter_reader(data)
    module = _module_of(data)
    if module == "polars":
        import polars as pl

        if isinstance(data, pl.LazyFrame):
            data = data.collect()
        if isinstance(data, pl.DataFrame):
            table = data.to_arrow()
            return table.schema, [table]
    if module == "pandas":
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            table = _strip(pa.Table.from_pandas(data, preserve_index=False))
            return table.schema, [table]
    if hasattr(data, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(data)
        return reader.schema.remove_metadata(), _iter_reader(reader)
    raise InvalidArgument(
        f"cannot write data of type {type(data).__module__}.{type(data).__qualname__}; pass a "
        "pyarrow Table/RecordBatch/RecordBatchReader, a polars DataFrame/LazyFrame or a pandas "
        "DataFrame"
    )


def _iter_reader(reader: pa.RecordBatchReader) -> Iterator[pa.Table]:
    def table(batches: list[pa.RecordBatch]) -> pa.Table:
        return pa.Table.from_batches(batches, schema=reader.schema).replace_schema_metadata(None)

    yield from regroup(reader, _STREAM_ROWS, table, _STREAM_BYTES)


def _polars_zone(tz: str) -> bool:
    """Whether polars accepts ``tz`` (an IANA name; fixed offsets other than +00:00 fail)."""
    import zoneinfo

    if tz in ("+00:00", "-00:00"):
        return True
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _polars_leaf(t: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(t) and t.tz is not None and not _polars_zone(t.tz):
        return pa.timestamp(t.unit, tz="UTC")
    return narrow_decimal(t)


def _for_polars(t: pa.DataType) -> pa.DataType:
    """``t`` as polars can hold it, the same values: time zones polars cannot name as UTC
    (the same instants), a decimal256 of at most 38 digits as decimal128 (polars panics
    on 256-bit decimals)."""
    return map_leaves(t, _polars_leaf)


def arrow_to_polars(table: pa.Table) -> pl.DataFrame:
    """``table`` as a polars DataFrame.

    polars names time zones by IANA name only: a column stored with a fixed offset
    (e.g. ``+05:30``) comes back in UTC, the same instants (polars would panic).
    """
    import polars as pl

    check_polars_can_read(table.schema)
    target = pa.schema([f.with_type(_for_polars(f.type)) for f in table.schema])
    if target != table.schema:
        table = table.cast(target)
    df = pl.from_arrow(table, rechunk=False)
    assert isinstance(df, pl.DataFrame)
    return df


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas()


def check_polars_can_read(schema: pa.Schema) -> None:
    """Raise `InvalidArgument` for columns polars cannot hold: decimals of more than 38
    digits (``decimal256``), on which polars panics (a ``PanicException``)."""
    wide = wide_decimal_columns(schema)
    if wide:
        raise InvalidArgument(
            f"polars cannot hold column(s) {wide}: decimals of more than 38 digits; read them "
            "with to_arrow() or to_pandas(), or pass columns= without them"
        )


def polars_can_hold(schema: pa.Schema) -> bool:
    """Whether polars reads ``schema`` as it is (no time zone it cannot name)."""
    return all(_for_polars(f.type) == f.type for f in schema)


def scan_parquet(paths: list[str], columns: list[str]) -> pl.LazyFrame:
    """A polars lazy scan of Parquet files (columns by name)."""
    import polars as pl

    return pl.scan_parquet(paths).select(columns)

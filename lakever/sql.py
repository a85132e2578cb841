"""Everything DuckDB: connections, a snapshot as a relation, filters, quoting.

A snapshot is read with ``read_parquet(files, schema=MAP{field_id: {name, type,
default_value}})``: DuckDB maps each fragment's columns to the snapshot schema by
Parquet field id (nested fields through ``children``), so renamed columns come
back under their new names, added ones as NULL, widened ones cast, dropped ones
not at all, exactly as the Arrow reader does. DuckDB is imported lazily, only
when a filter or SQL is used.

A fragment with deleted rows is read on its own (``file_row_number=true``) and
filtered with ``get_bit`` on a bitmap DuckDB builds from its deletion-vector
file (``bitstring_agg``), so the SQL reader shows the same rows, in the same
order, as the Arrow reader. A filter is used rather than an anti-join because
DuckDB does not keep row order through joins.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakever.errors import InvalidArgument, LakeverError, StorageError
from lakever.schema import (
    field_id,
    map_leaves,
    narrow_decimal,
    nested_fields,
    wide_decimal_columns,
)
from lakever.storage import Storage

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "connect",
    "connect_locked",
    "cursor",
    "duckdb_type",
    "importable",
    "quote_identifier",
    "quote_literal",
    "register",
    "register_arrow",
    "run_filter",
    "run_query",
    "schema_map",
    "translate_errors",
]


def quote_identifier(name: str) -> str:
    """Quote a SQL identifier for DuckDB (double quotes, embedded quotes doubled)."""
    if "\x00" in name:
        raise InvalidArgument(f"identifier {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Quote a SQL string literal for DuckDB (single quotes, embedded quotes doubled)."""
    if "\x00" in text:
        raise InvalidArgument(f"string {text!r} contains a NUL character")
    return "'" + text.replace("'", "''") + "'"


_DUCK_TYPES = {
    pa.bool_(): "BOOLEAN",
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.uint8(): "UTINYINT",
    pa.uint16(): "USMALLINT",
    pa.uint32(): "UINTEGER",
    pa.uint64(): "UBIGINT",
    pa.float16(): "FLOAT",
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR",
    pa.large_string(): "VARCHAR",
    pa.binary(): "BLOB",
    pa.large_binary(): "BLOB",
    pa.date32(): "DATE",
    pa.date64(): "DATE",
}
_TIMESTAMPS = {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"}


def duckdb_type(t: pa.DataType) -> str | None:
    """The DuckDB type a column of Arrow type ``t`` is read as (None: no exact equivalent)."""
    if t in _DUCK_TYPES:
        return _DUCK_TYPES[t]
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            # DuckDB keeps nanoseconds only in TIMESTAMPTZ_NS (TIMESTAMPTZ holds microseconds).
            return "TIMESTAMPTZ_NS" if t.unit == "ns" else "TIMESTAMPTZ"
        return _TIMESTAMPS[t.unit]
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})" if t.precision <= 38 else None
    if pa.types.is_fixed_size_binary(t):
        return "BLOB"
    if (pa.types.is_time32(t) or pa.types.is_time64(t)) and t.unit != "ns":
        return "TIME"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        element = duckdb_type(t.value_type)
        return None if element is None else f"{element}[]"
    if pa.types.is_struct(t):
        fields = [(f.name, duckdb_type(f.type)) for f in t]
        if any(ft is None for _, ft in fields):
            return None
        return "STRUCT(" + ", ".join(f"{quote_identifier(n)} {ft}" for n, ft in fields) + ")"
    if pa.types.is_map(t):
        key, value = duckdb_type(t.key_type), duckdb_type(t.item_type)
        return None if key is None or value is None else f"MAP({key}, {value})"
    return None


def _children(t: pa.DataType) -> list[tuple[str, pa.Field[Any]]]:
    """Nested fields with the names DuckDB's schema map expects for them."""
    fields = nested_fields(t)
    if pa.types.is_map(t):
        return list(zip(("key", "value"), fields, strict=True))
    if pa.types.is_struct(t):
        return [(f.name, f) for f in fields]
    return [("element", f) for f in fields]  # DuckDB names a list's child "element"


def _entry(name: str, f: pa.Field[Any]) -> str | None:
    t, fid = duckdb_type(f.type), field_id(f)
    kids = [_entry(n, c) for n, c in _children(f.type)]
    if t is None or fid is None or any(k is None for k in kids):
        return None
    children = f", children: MAP {{{', '.join(k for k in kids if k)}}}" if kids else ""
    return (
        f"{fid}: {{name: {quote_literal(name)}, type: {quote_literal(t)}, "
        f"default_value: NULL{children}}}"
    )


def schema_map(schema: pa.Schema, *, partial: bool = False) -> str | None:
    """The ``read_parquet(schema=...)`` argument reading fragments by field id into ``schema``.

    None when a type has no exact DuckDB equivalent (e.g. durations); readers then
    fall back to Arrow. With ``partial``, such columns are left out instead (None
    only when no column is left).
    """
    entries = [_entry(f.name, f) for f in schema]
    if any(e is None for e in entries) and not partial:
        return None
    if not any(entries):
        return None
    return "MAP {" + ", ".join(e for e in entries if e) + "}"


def _settings(con: duckdb.DuckDBPyConnection) -> None:
    # Naive and zoned timestamps compare the same way on every machine.
    con.execute("SET GLOBAL TimeZone = 'UTC'")


def connect() -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection that never downloads extensions (times in UTC)."""
    import duckdb

    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    _settings(con)
    return con


_empty_lock = threading.Lock()
_empty_path: str | None = None
_copies = 0


def _empty_database() -> str:
    """A new empty DuckDB database file private to this process.

    DuckDB shares one database instance per file within a process, so every
    locked database gets its own copy of an empty file (a few KiB).
    """
    global _empty_path, _copies
    import os
    import shutil

    with _empty_lock:
        if _empty_path is None:
            import atexit
            import tempfile

            import duckdb

            folder = tempfile.mkdtemp(prefix="lakever-duckdb-")
            path = os.path.join(folder, "empty.duckdb")
            duckdb.connect(path).close()
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _empty_path = path
        _copies += 1
        copy = os.path.join(os.path.dirname(_empty_path), f"locked-{_copies}.duckdb")
        shutil.copyfile(_empty_path, copy)
        return copy


def connect_locked(directories: Sequence[str]) -> duckdb.DuckDBPyConnection:
    """A new DuckDB database that can read files only under ``directories`` and nothing else.

    No other file, no network, no extension install or load, no ATTACH, and no
    configuration change: the settings are locked before the caller gets it. The
    database is an empty file opened read-only, so nobody can create a persistent
    object (a table, a view, a macro shadowing a function) in it: whatever a
    caller creates is temporary, private to its own cursor.
    """
    import duckdb

    con = duckdb.connect(
        _empty_database(),
        read_only=True,
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    _settings(con)
    con.execute("SET allowed_directories = $dirs", {"dirs": sorted(directories)})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def register(con: duckdb.DuckDBPyConnection, storage: Storage) -> None:
    """Let DuckDB read ``storage``'s files (fsspec backends; local files need nothing)."""
    _register(con, storage)


def register_arrow(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """Register ``table`` on ``con`` as ``name`` with its columns `importable`: DuckDB
    cannot take Arrow's float16 ("Unsupported Internal Arrow Type e"); float32 holds every
    float16 value exactly, NaN and signed zeros included, so comparisons mean the same.

    Raises:
        InvalidArgument: rows with decimals of more than 38 digits (no DuckDB type).
    """
    wide = wide_decimal_columns(table.schema)
    if wide and table.num_rows:  # an empty table registers (and reads) as nothing
        raise InvalidArgument(
            f"DuckDB cannot read column(s) {wide}: decimals of more than 38 digits (DuckDB's "
            "DECIMAL holds 38); SQL, filters and row changes over them are not possible: "
            "write them as decimal128 (38 digits at most) or as strings"
        )
    schema = pa.schema([f.with_type(importable(f.type)) for f in table.schema])
    con.register(name, table if schema.equals(table.schema) else table.cast(schema))


def importable(t: pa.DataType) -> pa.DataType:
    """``t`` with the types DuckDB cannot import from Arrow widened exactly, nested ones
    included: float16 as float32, a decimal256 of at most 38 digits as decimal128."""
    return map_leaves(
        t, lambda leaf: pa.float32() if pa.types.is_float16(leaf) else narrow_decimal(leaf)
    )


_shared: duckdb.DuckDBPyConnection | None = None
_shared_lock = threading.Lock()


def cursor() -> duckdb.DuckDBPyConnection:
    """A new connection to lakever's process-wide in-memory DuckDB database.

    For lakever's own queries only (never a caller's SQL): opening a database costs
    ~25 ms, a cursor on an open one microseconds. Registered objects stay private to
    the cursor; close it when done.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = connect()
        return _shared.cursor()


def _register(con: duckdb.DuckDBPyConnection, storage: Storage) -> None:
    if storage.is_local:
        return
    fs = storage.fsspec_filesystem()
    if not con.filesystem_is_registered(
        fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    ):
        con.register_filesystem(fs)


_FILE_IN_MESSAGE = re.compile(r'file "([^"]+)"')


def _error(what: str, text: str, exc: Exception, public: pa.Schema | None) -> LakeverError:
    """The `LakeverError` for a DuckDB error running ``what`` (``text``): `StorageError`
    when DuckDB could not read a file (it changed after lakever verified it, or the
    storage failed), else `InvalidArgument` (the SQL is wrong for the data)."""
    import duckdb

    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, duckdb.IOException) or "Failed to read file" in first:
        found = _FILE_IN_MESSAGE.search(first)
        return StorageError(
            f"{what} {text!r} could not read a data file in DuckDB: {first}. The file "
            "changed after it was verified, or the storage failed: run the query again, "
            "and `lakever verify` on the dataset if it fails again",
            path=found.group(1) if found else "",
        )
    cols = f" (columns: {public.names})" if public is not None else ""
    return InvalidArgument(f"{what} {text!r} failed in DuckDB: {first}{cols}")


def run_filter(
    rel: duckdb.DuckDBPyRelation,
    public: pa.Schema,
    columns: Sequence[str],
    filter: str,
) -> duckdb.DuckDBPyRelation:
    """Apply a DuckDB SQL boolean expression and a projection to the snapshot's relation."""
    import duckdb

    try:
        rel = rel.filter(filter)
        return rel.project(", ".join(quote_identifier(c) for c in columns))
    except duckdb.Error as exc:
        raise _error("filter", filter, exc, public) from exc


def run_query(
    con: duckdb.DuckDBPyConnection, query: str, public: pa.Schema | None
) -> duckdb.DuckDBPyRelation:
    """Run ``query`` on ``con``; translate parse/bind errors into InvalidArgument."""
    import duckdb

    try:
        return con.sql(query)
    except duckdb.Error as exc:
        raise _error("query", query, exc, public) from exc


@contextmanager
def translate_errors(what: str, text: str, public: pa.Schema | None) -> Iterator[None]:
    """Turn a DuckDB error inside the block into a `LakeverError` naming ``what`` and
    ``text`` (`InvalidArgument`; `StorageError` for a file DuckDB could not read)."""
    import duckdb

    try:
        yield
    except duckdb.Error as exc:
        raise _error(what, text, exc, public) from exc

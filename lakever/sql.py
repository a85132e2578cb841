"""Everything DuckDB: connections, a snapshot as a relation, filters, quoting.

DuckDB is imported lazily, only when a filter or SQL is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from lakever.errors import InvalidArgument
from lakever.format import FragmentEntry
from lakever.storage import Storage

if TYPE_CHECKING:
    import duckdb

__all__ = ["connect", "quote_identifier", "relation", "run_filter", "run_query"]


def quote_identifier(name: str) -> str:
    """Quote a SQL identifier for DuckDB (double quotes, embedded quotes doubled)."""
    if "\x00" in name:
        raise InvalidArgument(f"identifier {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def connect() -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection that never downloads extensions."""
    import duckdb

    return duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )


def _register(con: duckdb.DuckDBPyConnection, storage: Storage) -> None:
    if storage.is_local:
        return
    fs = storage.fsspec_filesystem()
    if not con.filesystem_is_registered(
        fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    ):
        con.register_filesystem(fs)


def relation(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    public: pa.Schema,
    fragments: Sequence[FragmentEntry],
) -> duckdb.DuckDBPyRelation:
    """Return the snapshot's rows as a DuckDB relation on ``con``."""
    if not fragments:
        return con.from_arrow(public.empty_table())
    _register(con, storage)
    rel = con.read_parquet([storage.full_path(f.path) for f in fragments])
    return rel.project(", ".join(quote_identifier(n) for n in public.names))


def _error(what: str, text: str, exc: Exception, public: pa.Schema | None) -> InvalidArgument:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    cols = f" (columns: {public.names})" if public is not None else ""
    return InvalidArgument(f"{what} {text!r} failed in DuckDB: {first}{cols}")


def run_filter(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    public: pa.Schema,
    fragments: Sequence[FragmentEntry],
    columns: Sequence[str],
    filter: str,
) -> duckdb.DuckDBPyRelation:
    """Apply a DuckDB SQL boolean expression and a projection to the snapshot."""
    import duckdb

    rel = relation(con, storage, public, fragments)
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

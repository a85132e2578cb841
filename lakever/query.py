"""Running a caller's SQL over snapshots, on a closed surface.

Caller SQL (`Dataset.sql`, `Lake.sql`, the relations `to_duckdb` hands out) never
runs on lakever's own DuckDB database. It runs on a *locked* database
(`lakever.sql.connect_locked`): it can read the data directories of the datasets
it queries and nothing else -- no other file, no network, no extension, no
ATTACH, no configuration change. On top of that lock, the query must parse as one
read-only query (`lakever._sqlrewrite`), may only name datasets (and its own CTEs)
as tables, and may call only a short list of table functions.

Each call gets its own cursor; the snapshot views it needs are temporary views of
that cursor, so one caller's query cannot change what another reads. The locked
database is an empty file opened read-only: nothing persistent can be created
in it, even through a returned relation's own methods, so it is safely shared.

``trusted=True`` (documented opt-in) runs the SQL on a private, unlocked database
instead, with every DuckDB feature available.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakever._sqlrewrite import Reference, rewrite
from lakever.errors import InvalidArgument
from lakever.planner import make_plan, prune_entries
from lakever.reader import ScanPlan, read_plan
from lakever.sql import connect, connect_locked, quote_identifier, register_arrow, run_query
from lakever.sqlplan import duck_sql

if TYPE_CHECKING:
    import duckdb

    from lakever.snapshot import SnapshotState

__all__ = ["SqlRunner", "run_on_self", "snapshot_relation"]

_POOL_SIZE = 8
_pool: OrderedDict[frozenset[str], duckdb.DuckDBPyConnection] = OrderedDict()
_pool_lock = threading.Lock()


def locked_cursor(directories: Iterable[str]) -> duckdb.DuckDBPyConnection:
    """A fresh cursor on a locked database that may read under ``directories``."""
    key = frozenset(directories)
    with _pool_lock:
        for allowed in list(_pool):
            if key <= allowed:
                _pool.move_to_end(allowed)
                return _pool[allowed].cursor()
        con = connect_locked(sorted(key))
        _pool[key] = con
        while len(_pool) > _POOL_SIZE:
            _pool.popitem(last=False)
        return con.cursor()


def data_dirs(plans: Iterable[ScanPlan]) -> set[str]:
    return {p.storage.full_path("data").rstrip("/") + "/" for p in plans if p.storage.is_local}


def _view_sql(
    con: duckdb.DuckDBPyConnection, name: str, plan: ScanPlan, where: str | None = None
) -> None:
    """Make ``name`` a temporary view of ``con`` over the plan's live rows (those for
    which ``where``, a SQL condition, holds)."""
    sql = duck_sql(con, plan) if plan.tasks else None
    if sql is None:
        if where is None:
            register_arrow(con, name, read_plan(plan))
            return
        register_arrow(con, name + "__rows", read_plan(plan))
        sql = f"SELECT * FROM {quote_identifier(name + '__rows')}"
    if where is not None:
        sql = f"SELECT * FROM ({sql}) WHERE ({where})"
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_identifier(name)} AS {sql}")


def snapshot_relation(plan: ScanPlan) -> duckdb.DuckDBPyRelation:
    """The plan's live rows as a relation on a fresh cursor of a locked database."""
    con = locked_cursor(data_dirs([plan]))
    name = "__lakever_" + hashlib.sha256(plan.snapshot_id.encode()).hexdigest()[:16]
    _view_sql(con, name, plan)
    return con.table(name)


def scan_plan_for(state: SnapshotState, prune: str | None) -> ScanPlan:
    """Every column of the snapshot; fragments ``prune`` cannot match left out."""
    bound = None
    if prune is not None:
        from lakever.planner import bind

        try:
            bound = bind(state, prune, what="WHERE clause")
        except InvalidArgument:
            bound = None  # the query itself reports what is wrong with it
    _, kept = prune_entries(state, bound)
    return make_plan(state, kept, state.public.names, None)


@dataclass
class SqlRunner:
    """Runs caller SQL whose table names resolve to snapshots."""

    #: Whether a name is a dataset (CTE names never are).
    is_dataset: Callable[[str], bool]
    #: Every dataset name (for queries sqlglot cannot parse, in trusted mode).
    all_datasets: Callable[[], Iterable[str]]
    #: The snapshot a reference names.
    resolve: Callable[[Reference], SnapshotState]
    trusted: bool = False
    #: The error for a table name that is not a dataset.
    not_found: Callable[[str], Exception] | None = None
    #: Run on this connection (the caller's) instead of a locked or private one.
    connection: duckdb.DuckDBPyConnection | None = None
    #: A SQL condition every dataset's rows are filtered by (a split's, `lakever.ml.splits`).
    row_filter: str | None = None
    _private: duckdb.DuckDBPyConnection | None = None

    def run(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run ``query``; return its result relation (see the module docstring)."""
        views: list[tuple[str, ScanPlan]] = []

        def view_for(ref: Reference) -> str:
            state = self.resolve(ref)
            # On the caller's connection its settings (TimeZone, collation, ...) decide
            # what the WHERE clause means, and pruning judges it on lakever's: no pruning.
            prune = ref.prune if self.connection is None else None
            plan = scan_plan_for(state, prune)
            if ref.version is None and prune is None:
                name = ref.name  # the query may run verbatim
            else:
                key = f"{state.uri}\x00{state.snap.snapshot_id}\x00{prune or ''}"
                name = "__lakever_" + hashlib.sha256(key.encode()).hexdigest()[:24]
            views.append((name, plan))
            return name

        text = rewrite(
            query,
            is_dataset=self.is_dataset,
            view_for=view_for,
            all_datasets=self.all_datasets,
            trusted=self.trusted,
            not_found=self.not_found,
        )
        con = self._connection([p for _, p in views])
        for name, plan in views:
            _view_sql(con, name, plan, self.row_filter)
        return run_query(con, text, None)

    def _connection(self, plans: list[ScanPlan]) -> duckdb.DuckDBPyConnection:
        if self.connection is not None:
            return self.connection
        if not self.trusted:
            return locked_cursor(data_dirs(plans))
        if self._private is None:
            self._private = connect()
        return self._private.cursor()


def run_on_self(
    state: SnapshotState,
    query: str,
    *,
    at: Callable[[Reference], SnapshotState],
    not_found: Callable[[str], Exception],
    trusted: bool,
    connection: duckdb.DuckDBPyConnection | None,
    row_filter: str | None = None,
) -> duckdb.DuckDBPyRelation:
    """Run ``query`` with one table, ``self``: ``state``, or ``at(ref)`` for a reference
    with a version (``self VERSION AS OF ...``); any other table name raises
    ``not_found(name)`` (`Dataset.sql`, a split's ``sql``)."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidArgument(f"query must be a non-empty SQL string, got {query!r}")

    def resolve(ref: Reference) -> SnapshotState:
        if ref.name != "self":
            raise not_found(ref.name)
        return state if ref.version is None else at(ref)

    return SqlRunner(
        is_dataset=lambda n: n == "self",
        all_datasets=lambda: ["self"],
        resolve=resolve,
        trusted=trusted,
        connection=connection,
        not_found=not_found,
        row_filter=row_filter,
    ).run(query)

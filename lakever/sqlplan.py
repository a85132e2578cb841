"""A scan plan as DuckDB SQL: ``read_parquet`` through schema maps, with deletion vectors.

A snapshot is read with ``read_parquet(files, schema=MAP{field_id: {name, type,
default_value}})``: DuckDB maps each fragment's columns to the snapshot schema by
Parquet field id (nested fields through ``children``), so renamed columns come
back under their new names, added ones as NULL, widened ones cast, dropped ones
not at all, exactly as the Arrow reader does.

A fragment with deleted rows is read on its own (``file_row_number=true``) and
filtered with ``get_bit`` on a bitmap DuckDB builds (``bitstring_agg``) from its
deletion vector, registered on the connection as verified Arrow data, so the SQL
reader shows the same rows, in the same order, as the Arrow reader. A filter is
used rather than an anti-join because DuckDB does not keep row order through joins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import groupby
from typing import TYPE_CHECKING

import pyarrow as pa

from lakever.deletion import positions_of
from lakever.integrity import verify
from lakever.reader import ScanPlan, read_plan
from lakever.sql import cursor, quote_identifier, quote_literal, schema_map
from lakever.tasks import ReadTask

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "FILE_COLUMN",
    "duck_sql",
    "exact_in_duckdb",
    "POSITION_COLUMN",
    "position_columns",
    "plan_sql",
    "read_exact",
    "read_filtered",
    "reads_exactly",
    "register_plan",
    "relation",
]


#: Extra columns of `plan_sql` with ``positions``: the fragment's full path, and the
#: row's position in the file (what a deletion vector records).
FILE_COLUMN = "__lakever_file"
POSITION_COLUMN = "__lakever_pos"


def dv_table_name(task: ReadTask) -> str:
    """The name a fragment's deletion vector is registered under (its content hash)."""
    assert task.deletion is not None
    return "__lakever_dv_" + task.deletion.content_hash.removeprefix("sha256:")[:32]


def _live_condition(task: ReadTask) -> str:
    """A WHERE condition true for the rows of ``task`` its deletion vector does not list."""
    bitmap = (
        f"(SELECT bitstring_agg(position, 0::BIGINT, {task.num_rows - 1}::BIGINT) "
        f"FROM {quote_identifier(dv_table_name(task))})"
    )
    return f"get_bit({bitmap}, file_row_number::INTEGER) = 0"


def position_columns(tasks: Sequence[ReadTask]) -> list[str]:
    """The columns `plan_sql` adds for ``positions``: `POSITION_COLUMN`, after
    `FILE_COLUMN` when there is more than one task (one task's rows need no file name,
    which DuckDB would make as a string per row)."""
    return [FILE_COLUMN, POSITION_COLUMN] if len(tasks) > 1 else [POSITION_COLUMN]


def plan_sql(
    plan: ScanPlan,
    names: Sequence[str],
    mapping: str,
    tasks: Sequence[ReadTask] | None = None,
    *,
    positions: bool = False,
) -> str:
    """SQL for the live rows of the plan's tasks, in read order, read through ``mapping``.

    Consecutive fragments without deleted rows are read by one ``read_parquet``; a
    fragment with deleted rows alone, filtered by its deletion vector, which must be
    registered on the connection (`register_plan`). With ``positions`` the rows also
    carry the `position_columns` of the tasks. ``can_have_nan`` keeps DuckDB from
    skipping row groups by min/max that leave NaN out (duckdb/duckdb#25521).
    """
    storage = plan.storage
    tasks = plan.tasks if tasks is None else tasks
    columns = [quote_identifier(n) for n in names]
    parts = []
    named = positions and FILE_COLUMN in position_columns(tasks)
    for has_deletes, run in groupby(tasks, key=lambda t: t.deletion is not None):
        group = list(run)
        for chunk in [[t] for t in group] if has_deletes else [group]:
            files = "[" + ", ".join(quote_literal(storage.full_path(t.path)) for t in chunk) + "]"
            select, options, where = list(columns), ", can_have_nan=true", ""
            if named:
                file = FILE_COLUMN if not has_deletes else files[1:-1]
                select.append(f"{file} AS {FILE_COLUMN}")
                if not has_deletes:
                    options += f", filename={quote_literal(FILE_COLUMN)}"
            if positions:
                select.append(f"file_row_number AS {POSITION_COLUMN}")
            if positions or has_deletes:
                options += ", file_row_number=true"
            if has_deletes:
                where = " WHERE " + _live_condition(chunk[0])
            parts.append(
                f"SELECT {', '.join(select)} FROM read_parquet({files}, schema={mapping}"
                f"{options}){where}"
            )
    return " UNION ALL ".join(parts)


def register_plan(con: duckdb.DuckDBPyConnection, plan: ScanPlan) -> None:
    """Register the deletion vectors of the plan's tasks on ``con`` (verified positions).

    Deletion vectors reach DuckDB as Arrow tables read through `positions_of`, which
    verifies each against its hash, never as files DuckDB would read unchecked.
    """
    for t in plan.tasks:
        if t.deletion is not None:
            positions = positions_of(plan.storage, t)
            con.register(dv_table_name(t), pa.table({"position": positions}))


def duck_sql(
    con: duckdb.DuckDBPyConnection, plan: ScanPlan, names: Sequence[str] | None = None
) -> str | None:
    """SQL on ``con`` for the live rows of the plan's tasks (``names``: the columns,
    default the plan's), fragments verified and deletion vectors registered; None when
    DuckDB cannot read them (not local storage, a type DuckDB cannot be told, or a column
    named like DuckDB's ``file_row_number`` while rows are deleted)."""
    mapping = schema_map(plan.schema)
    if mapping is None or not plan.storage.is_local:
        return None
    if any(t.deletion is not None for t in plan.tasks) and any(
        n.lower() == "file_row_number" for n in plan.schema.names
    ):
        return None  # DuckDB's file_row_number option (deleted rows) would clash with it
    verify(plan.storage, plan.tasks, snapshot=plan.snapshot_id)
    register_plan(con, plan)
    return plan_sql(plan, plan.columns if names is None else names, mapping)


def relation(con: duckdb.DuckDBPyConnection, plan: ScanPlan) -> duckdb.DuckDBPyRelation:
    """The live rows of the plan's tasks (its columns; no filter) as a relation on ``con``.

    Fragments are verified first. Local fragments are read by DuckDB's Parquet reader
    through a schema map by field id; fragments on other storage, or snapshots with a
    type DuckDB cannot be told, are read through Arrow.
    """
    if not plan.tasks:
        return con.from_arrow(plan.output_schema.empty_table())
    sql = duck_sql(con, plan)
    if sql is None:
        return con.from_arrow(read_plan(replace(plan, filter=None, filter_columns=())))
    return con.sql(sql)


def exact_in_duckdb(t: pa.DataType) -> bool:
    """Whether DuckDB's Parquet reader returns values of ``t`` that cast back to ``t``
    exactly (same values, same nulls): flat numbers, strings, binaries, dates,
    timestamps in any unit and zone (DuckDB returns the instant; the cast restores the
    zone), decimals DuckDB can hold."""
    return (
        pa.types.is_integer(t)
        or t in (pa.float32(), pa.float64(), pa.bool_(), pa.date32())
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_timestamp(t)
        or (pa.types.is_decimal128(t) and t.precision <= 38)
    )


def reads_exactly(plan: ScanPlan, names: Sequence[str]) -> bool:
    """Whether DuckDB's Parquet scan returns the columns ``names`` of the plan's tasks
    exactly: local files read whole (no tasks cut into row groups by `ScanPlan.split`,
    which DuckDB would read in full), every column of an `exact_in_duckdb` type."""
    return (
        plan.storage.is_local
        and not any(t.row_range is not None for t in plan.tasks)
        and all(exact_in_duckdb(plan.schema.field(n).type) for n in names)
    )


def read_filtered(plan: ScanPlan) -> pa.Table | None:
    """The rows of a filtered plan read by DuckDB, with the filter in its scan (see
    `read_exact`); None for a plan without a filter, or one `read_exact` declines."""
    if plan.filter is None:
        return None
    return read_exact(plan)


def read_exact(plan: ScanPlan) -> pa.Table | None:
    """The rows of a plan read by DuckDB in one ``read_parquet`` over its whole file list,
    with the projection, the deletion vectors and the filter (if any) in its scan: the
    same rows, order and types as `ScanPlan.to_arrow`.

    None when the plan is not one DuckDB reads exactly (storage that is not local, a
    column of a type outside `exact_in_duckdb`, an empty projection, tasks cut into row groups
    by `ScanPlan.split`), or when DuckDB fails: the Arrow reader then reads the plan,
    and names any damage. Fragments are verified before DuckDB opens them.
    """
    import duckdb

    names = list(plan.columns) + [c for c in plan.filter_columns if c not in plan.columns]
    if not plan.columns or not reads_exactly(plan, names):
        return None
    if not plan.tasks:
        return plan.output_schema.empty_table()
    con = cursor()
    try:
        sql = duck_sql(con, plan, names)
        if sql is None:
            return None
        if plan.filter is not None:
            select = ", ".join(quote_identifier(c) for c in plan.columns)
            sql = f"SELECT {select} FROM ({sql}) WHERE ({plan.filter})"
        table = con.sql(sql).to_arrow_table()
        result: pa.Table = table.cast(plan.output_schema)
    except (duckdb.Error, pa.ArrowException):
        return None
    finally:
        con.close()
    return result

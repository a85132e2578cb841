"""The write step of a data commit: rows in, fragment entries out, anywhere.

A data commit is three steps (`lakever._writer`): *prepare* on the committing
process (the target schema and its id, the layout, the contract, the key), *write*
(this module: conform the rows to the target schema, check them against the
contract, split them by partition and sort them, write fragments with field ids,
statistics and content hashes) and *commit* (one log entry for every fragment
written). A `WritePlan` is the write step as a small picklable value, so the rows of
one commit can be written by the committing process (a local write) or by Ray or
Dask workers (`lakever.interop`), each returning only its fragment entries: both
run this same code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lakever._convert import to_arrow_stream
from lakever._types import SchemaMode
from lakever.format import FragmentEntry
from lakever.fragments import Layout, write_fragments
from lakever.partitioning import PartitionField, SortField, directory, split
from lakever.projection import conform
from lakever.storage import Storage

__all__ = ["WritePlan", "conformed", "layout_fn"]

Check = Callable[[pa.Table], None]


def conformed(
    tables: Iterable[pa.Table],
    target: pa.Schema,
    what: str,
    mode: SchemaMode,
    check: Check | None,
) -> Iterator[pa.Table]:
    """``tables`` conformed to ``target``, each checked by ``check`` before it is written."""
    for t in tables:
        t = conform(t, target, what=what, mode=mode)
        if check is not None:
            check(t)  # before the rows are written: a violation writes nothing more
        yield t


def layout_fn(spec: Sequence[PartitionField], sort: Sequence[SortField]) -> Layout | None:
    """Split rows by the partition ``spec`` and sort them by ``sort`` (None: neither)."""
    if not spec and not sort:
        return None

    def layout(table: pa.Table) -> Iterator[tuple[str, Any, pa.Table]]:
        for record, rows in split(table, spec, sort):
            yield directory(record, spec), record, rows

    return layout


@dataclass(frozen=True)
class WritePlan:
    """How to write the rows of one data commit as fragments (picklable, no open state).

    Made by the prepare step on the committing process; `write` runs there or on any
    worker that can reach the storage, and returns the fragment entries to commit.
    """

    storage: Storage
    #: The schema the rows are conformed to, with field ids.
    target: pa.Schema
    #: Its id (the schema file is written by the prepare step).
    schema_id: str
    #: How errors name the write ("append to /data/events").
    what: str
    schema_mode: SchemaMode
    max_rows: int
    spec: tuple[PartitionField, ...]
    sort: tuple[SortField, ...]
    #: (api, JSON text) of the contract every batch of rows is checked against (None: none).
    contract: tuple[str, str] | None

    def check(self) -> Check | None:
        """The contract check of this write (None: no contract is checked)."""
        if self.contract is None:
            return None
        from lakever import contract as contracts

        api, body = self.contract
        what = self.what

        def check(t: pa.Table) -> None:
            contracts.check(api, body, t, what=what)

        return check

    def write(self, tables: Iterable[pa.Table]) -> list[FragmentEntry]:
        """Conform, check and write ``tables``; return their fragment entries, in order.

        Raises:
            SchemaMismatch: rows that do not fit the target schema.
            ContractViolation: rows that break the contract (fragments written for earlier
                tables stay unreferenced: vacuum collects them).
        """
        rows = conformed(tables, self.target, self.what, self.schema_mode, self.check())
        return write_fragments(
            self.storage,
            rows,
            schema_id=self.schema_id,
            max_rows=self.max_rows,
            layout=layout_fn(self.spec, self.sort),
        )

    def write_data(self, data: Any) -> list[FragmentEntry]:
        """Write one part of the data (a pyarrow Table or a pandas/polars DataFrame, as a
        local write accepts them), as `write` does."""
        _, tables = to_arrow_stream(data)
        return self.write(tables)

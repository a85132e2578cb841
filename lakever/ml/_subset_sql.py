"""SQL over a split or sample: the table ``self`` holds the subset's rows only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakever.errors import DatasetNotFound, InvalidArgument

if TYPE_CHECKING:
    import duckdb

    from lakever._sqlrewrite import Reference
    from lakever.snapshot import SnapshotState

__all__ = ["run"]


def run(
    state: SnapshotState,
    where: str,
    query: str,
    *,
    con: duckdb.DuckDBPyConnection | None,
    trusted: bool,
) -> duckdb.DuckDBPyRelation:
    """Run ``query`` with ``self`` bound to the rows of ``state`` for which ``where`` holds."""
    from lakever.query import run_on_self

    if not isinstance(trusted, bool):
        raise InvalidArgument(f"trusted must be a bool, got {trusted!r}")

    def not_found(name: str) -> DatasetNotFound:
        return DatasetNotFound(
            f"{name!r} is not a table here: the SQL of a split knows only 'self' (its rows); "
            "use lakever.connect(root).sql(...) with the split's filter to join datasets",
            uri=name,
        )

    def at(ref: Reference) -> SnapshotState:
        raise InvalidArgument(
            f"a split reads one snapshot (version {state.snap.version}); for "
            f"'self' at {ref.version!r}, split that version: "
            "lakever.open_dataset(uri, version=...).split(...)"
        )

    return run_on_self(
        state, query, at=at, not_found=not_found, trusted=trusted, connection=con, row_filter=where
    )

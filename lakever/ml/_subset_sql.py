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
    from lakever.query import SqlRunner

    if not isinstance(query, str) or not query.strip():
        raise InvalidArgument(f"query must be a non-empty SQL string, got {query!r}")
    if not isinstance(trusted, bool):
        raise InvalidArgument(f"trusted must be a bool, got {trusted!r}")

    def not_found(name: str) -> DatasetNotFound:
        return DatasetNotFound(
            f"{name!r} is not a table here: the SQL of a split knows only 'self' (its rows); "
            "use lakever.connect(root).sql(...) with the split's filter to join datasets",
            uri=name,
        )

    def resolve(ref: Reference) -> SnapshotState:
        if ref.name != "self":
            raise not_found(ref.name)
        if ref.version is not None:
            raise InvalidArgument(
                f"a split reads one snapshot (version {state.snap.version}); for "
                f"'self' at {ref.version!r}, split that version: "
                "lakever.open_dataset(uri, version=...).split(...)"
            )
        return state

    return SqlRunner(
        is_dataset=lambda n: n == "self",
        all_datasets=lambda: ["self"],
        resolve=resolve,
        trusted=trusted,
        connection=con,
        not_found=not_found,
        row_filter=where,
    ).run(query)

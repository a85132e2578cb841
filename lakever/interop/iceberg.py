"""Publish a lakever dataset's history as an Apache Iceberg table, without copying data.

`export_iceberg` writes Iceberg table metadata (format version 2) at a target location:
one Iceberg snapshot per readable lakever version of the exported line, whose data files
are lakever's own Parquet fragments, by absolute path or URI. Only positional delete
files (lakever's deletion vectors) and metadata are written. Iceberg field ids are
lakever's field ids, so renames, added columns and widenings resolve by id as they do
in lakever. Every exported snapshot is held (`lakever.refs.hold_for_export`) so expiry
and vacuum keep its files until `Dataset.drop_export("iceberg", target)`. docs/export.md
describes the mapping.

pyiceberg is imported only when an export runs (``pip install 'lakever[iceberg]'``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lakever.interop import require
from lakever.snapshot import SnapshotState

__all__ = ["IcebergExport", "export_iceberg"]


@dataclass(frozen=True, slots=True)
class IcebergExport:
    """What an export to Apache Iceberg did."""

    #: The table's location (normalised URI: the key of the export's holds).
    target: str
    #: The table's current metadata file, which a reader opens
    #: (``pyiceberg.table.StaticTable.from_metadata``, a catalog's ``register_table``).
    metadata_location: str
    #: N of ``metadata/v<N>.metadata.json``.
    metadata_version: int
    #: lakever versions this call added as Iceberg snapshots (empty: nothing new).
    versions_added: tuple[int, ...]
    #: The oldest and newest lakever version the table holds.
    first_version: int | None
    last_version: int | None
    #: Iceberg snapshots in the table.
    snapshots: int
    #: lakever tags that name exported snapshots (Iceberg tag refs).
    tags: tuple[str, ...]
    #: Bytes and files this call wrote at the target (metadata, manifests, delete files).
    bytes_written: int
    #: Of which positional delete files (the only data an export writes).
    delete_bytes_written: int
    files_written: int
    #: lakever snapshots this call held for the export.
    held: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_iceberg(state: SnapshotState, target: str, *, author: str) -> IcebergExport:
    """Export the line of history of ``state`` up to its snapshot to ``target``.

    Incremental: a table this dataset's line exported before gets the versions committed
    since (a new metadata version); nothing is written when nothing changed.

    Raises:
        MissingDependency: pyiceberg is not installed.
        DatasetExists: ``target`` holds another Iceberg table or another dataset's export.
        RemoteConflict: the table's history is not a prefix of this line's (another
            branch, or versions newer than the exported ref).
        SchemaEvolutionError: a schema change Iceberg does not allow (e.g. int to double).
        InvalidArgument: a column type Iceberg has no type for, a target inside the
            dataset, or a dataset on storage Iceberg readers cannot open.
    """
    require("pyiceberg.table", "iceberg")
    from lakever.interop import _iceberg_table

    return IcebergExport(**_iceberg_table.export(state, target, author=author))

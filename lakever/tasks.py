"""Read tasks: one fragment (or a run of its row groups) to read, as a picklable value.

A `ReadTask` is what a worker needs to read its share of a snapshot: the file, the hash
it must have, the schema it was written under, its deletion vector, and which row
groups. The planner (`lakever.planner`) makes one per fragment left after pruning;
`split_tasks` cuts large files into tasks of consecutive row groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from lakever.errors import InvalidArgument
from lakever.format import DeletionVector, FragmentEntry
from lakever.integrity import damaged, reading, verify
from lakever.storage import Storage

__all__ = ["ReadTask", "split_tasks"]


@dataclass(frozen=True, slots=True)
class ReadTask:
    """One fragment to read: its file, how it was written, and the rows deleted from it."""

    #: Path of the Parquet file relative to the dataset root.
    path: str
    size_bytes: int
    #: ``sha256:<hex>`` of the file's bytes; verified before the file is read.
    content_hash: str
    #: Rows in the file (deleted rows included).
    num_rows: int
    #: Id of the schema the file was written under (its physical schema).
    schema_id: str
    #: The rows deleted from the file (None: none).
    deletion: DeletionVector | None = None
    #: The row groups of the file this task reads, consecutive (None: the whole file).
    row_groups: tuple[int, ...] | None = None
    #: File positions ``[start, stop)`` of the rows in those row groups (None: all rows).
    row_range: tuple[int, int] | None = None

    @property
    def live_rows(self) -> int:
        """Rows of the file that are not deleted (of the whole file, also when the task
        covers only some of its row groups)."""
        return self.num_rows - (self.deletion.count if self.deletion is not None else 0)

    @property
    def start(self) -> int:
        """File position of the task's first row."""
        return 0 if self.row_range is None else self.row_range[0]

    @property
    def stop(self) -> int:
        """File position after the task's last row."""
        return self.num_rows if self.row_range is None else self.row_range[1]

    @property
    def task_rows(self) -> int:
        """Rows the task covers (deleted rows included)."""
        return self.stop - self.start

    @staticmethod
    def of(e: FragmentEntry) -> ReadTask:
        return ReadTask(e.path, e.size_bytes, e.content_hash, e.num_rows, e.schema_id, e.deletion)


def split_tasks(
    storage: Storage, tasks: Sequence[ReadTask], max_rows: int, *, snapshot: str
) -> tuple[ReadTask, ...]:
    """``tasks`` with every file of more than ``max_rows`` rows cut into tasks of
    consecutive row groups holding at most ``max_rows`` rows each (a row group is never
    cut, so a task may hold one larger row group). Reads the footers of those files."""
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows <= 0:
        raise InvalidArgument(f"max_rows must be a positive int, got {max_rows!r}")
    out: list[ReadTask] = []
    verify(
        storage,
        [t for t in tasks if t.row_range is None and t.num_rows > max_rows],
        snapshot=snapshot,
    )
    for t in tasks:
        if t.row_range is not None or t.num_rows <= max_rows:
            out.append(t)
            continue
        sizes = _row_group_rows(storage, t, snapshot)
        groups: list[int] = []
        start = size = 0
        for g, n in enumerate(sizes):
            if groups and size + n > max_rows:
                out.append(_part(t, groups, start, start + size))
                groups, start, size = [], start + size, 0
            groups.append(g)
            size += n
        out.append(t if start == 0 else _part(t, groups, start, start + size))
    return tuple(out)


def _part(t: ReadTask, groups: list[int], start: int, stop: int) -> ReadTask:
    return replace(t, row_groups=tuple(groups), row_range=(start, stop))


def _row_group_rows(storage: Storage, t: ReadTask, snapshot: str) -> list[int]:
    """Rows per row group of a task's file, from its footer (checked against the manifest)."""
    import pyarrow.parquet as pq

    with reading(storage, snapshot, refs=[t]):
        meta = pq.read_metadata(storage.full_path(t.path), filesystem=storage.arrow_filesystem())
    sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    if sum(sizes) != t.num_rows:
        raise damaged(
            storage, t, snapshot, f"holds {sum(sizes)} rows, its manifest entry {t.num_rows}"
        )
    return sizes

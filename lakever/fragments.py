"""Data fragments: writing Parquet with field ids, statistics and content hashes.

A fragment is one immutable Parquet file. Its manifest entry (`lakever.manifests`)
records the row count, size, SHA-256 of the bytes, per-column min/max/null counts
keyed by field id, and the id of the schema the file was written under.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakever._batching import fits, regroup
from lakever._lru import Lru
from lakever._threads import ForkSafePool
from lakever.format import DATA_DIR, FragmentEntry
from lakever.schema import FIELD_ID_KEY
from lakever.storage import Storage
from lakever.storage.base import ByteSink

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "DEFAULT_MAX_ROWS_PER_FRAGMENT",
    "MAX_FRAGMENT_BYTES",
    "ROW_GROUP_BYTES",
    "ROW_GROUP_ROWS",
    "new_name",
    "write_fragments",
]

#: Rows per fragment before a write starts a new one. A million-row write becomes two
#: fragments that two threads encode at once (1M rows: 0.77x the time of one
#: `pq.write_table`, against 1.01x as one fragment; docs/benchmarks.md, "fourth pass").
DEFAULT_MAX_ROWS_PER_FRAGMENT = 1 << 19
#: In-memory (Arrow) bytes of a write's rows before it starts a new fragment, whatever
#: ``max_rows`` allows: wide rows (embeddings: 6 KB a row) split into fragments the
#: write threads encode at once, instead of one file of a few GB (docs/index.md).
MAX_FRAGMENT_BYTES = 512 << 20
#: Rows per Parquet row group in the fragments lakever writes, at most: the unit a read
#: task of a larger fragment covers (`ScanPlan.split`), a training shard is dealt in, and
#: DuckDB's row-group pruning skips (reads through DuckDB: `to_arrow`, SQL).
ROW_GROUP_ROWS = 1 << 20
#: In-memory (Arrow) bytes of a row group, at most about (as Iceberg's 128 MB default):
#: what a whole-row-group read holds at once (a shard cut inside a row group, a delete's
#: positions, a remote file's pre-buffer) stays bounded for wide rows.
ROW_GROUP_BYTES = 128 << 20
_MAX_STAT_STRING = 64
_WRITE_THREADS = max(1, min(4, os.cpu_count() or 1))


# ------------------------------------------------------------------------- stats


def _stat_value(value: Any, t: pa.DataType) -> Any:
    """Encode one min/max scalar as JSON (None when it cannot be a useful bound)."""
    if value is None:
        return None
    if pa.types.is_floating(t):
        f = float(value)
        return f if f == f and f not in (float("inf"), float("-inf")) else None
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return value
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return value if len(value) <= _MAX_STAT_STRING else None
    if isinstance(value, Decimal):
        return str(value)
    return None


def bounded(t: pa.DataType) -> bool:
    """Whether a column of type ``t`` gets min/max statistics (what pruning compares)."""
    return (
        pa.types.is_integer(t)
        or (pa.types.is_floating(t) and not pa.types.is_float16(t))
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_decimal(t)
        or pa.types.is_boolean(t)
        or pa.types.is_date(t)
        or pa.types.is_time(t)
        or pa.types.is_timestamp(t)
    )


#: How to read a bound from the footer: the Python type it must have, and whether it is
#: the raw (physical) value rather than the logical one.
_Kind = tuple[type, bool]


def _footer_kind(t: pa.DataType) -> _Kind | None:
    """How the footer's min/max is exactly lakever's bound for a column of type ``t``;
    None when the bound must be computed from the rows.

    Integers are read as logical values (unsigned ones are stored as signed). Temporal
    bounds are integer ticks: the footer's raw values, where the Parquet column keeps
    the Arrow unit (the writer stores timestamp[s] and time32[s] in milliseconds and
    date64 in days). Decimals are rare and left to compute.
    """
    if pa.types.is_boolean(t):
        return bool, False
    if pa.types.is_integer(t):
        return int, False
    if pa.types.is_floating(t) and not pa.types.is_float16(t):
        return float, False
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return str, False
    if (pa.types.is_timestamp(t) or pa.types.is_time32(t)) and t.unit == "s":
        return None
    if (
        pa.types.is_timestamp(t)
        or pa.types.is_time32(t)
        or pa.types.is_time64(t)
        or pa.types.is_date32(t)
    ):
        return int, True
    return None


class _ColumnPlan(NamedTuple):
    """How `_stats_for` records one top-level column of a schema."""

    column: int
    field_id: int
    #: A float column: NaNs are counted, and a zero bound is computed (see below).
    floating: bool
    #: Dates, times and timestamps: bounds computed from the rows are cast to ``ptype``.
    temporal: bool
    #: The type bounds are recorded in (temporal columns: integer ticks); None: no bounds.
    ptype: pa.DataType | None
    #: The Parquet column whose footer min/max is exactly the bound (-1: compute it), and
    #: how to read it (`_footer_kind`).
    leaf: int
    kind: _Kind | None


#: Plans by schema (the schemas of one dataset's writes repeat): (schema, had a footer, plan).
_PLANS: Lru[tuple[str, ...], tuple[pa.Schema, bool, tuple[_ColumnPlan, ...]]] = Lru(64)


def _plan(schema: pa.Schema, meta: pq.FileMetaData | None) -> tuple[_ColumnPlan, ...]:
    key = tuple(schema.names)
    hit = _PLANS.get(key)
    if hit is not None and hit[1] == (meta is not None) and hit[0].equals(schema, True):
        return hit[2]
    leaves: dict[str, int] = {}
    if meta is not None:
        for j in range(meta.num_columns):
            leaves.setdefault(meta.schema.column(j).path, j)
    plan: list[_ColumnPlan] = []
    for i, f in enumerate(schema):
        raw = (f.metadata or {}).get(FIELD_ID_KEY)
        if raw is None:
            continue
        t = f.type
        ptype: pa.DataType | None = None
        if bounded(t):
            ptype = t
            if pa.types.is_temporal(t):  # dates, times and timestamps: their integer ticks
                ptype = pa.int32() if t.bit_width == 32 else pa.int64()
        kind = _footer_kind(t)
        # A dotted name is ambiguous in the footer (a nested field's path looks the same).
        leaf = leaves.get(f.name, -1) if kind is not None and "." not in f.name else -1
        floating = pa.types.is_floating(t) and not pa.types.is_float16(t)
        temporal = pa.types.is_temporal(t)
        plan.append(_ColumnPlan(i, int(raw), floating, temporal, ptype, leaf, kind))
    out = tuple(plan)
    _PLANS.put(key, (schema, meta is not None, out))
    return out


def _footer_bound(meta: pq.FileMetaData, leaf: int, kind: _Kind) -> tuple[Any, Any] | None:
    """min/max over every row group of Parquet column ``leaf``, from the footer (free to
    read), read as ``kind`` (`_footer_kind`); None when a row group holding values has no
    min/max (the writer drops them for very long strings and all-NaN floats) or the
    footer's values are not of the expected type."""
    expected, raw = kind
    lo: Any = None
    hi: Any = None
    for g in range(meta.num_row_groups):
        col = meta.row_group(g).column(leaf)
        st = col.statistics
        if st is None or not st.has_min_max:
            if st is not None and st.null_count == col.num_values:
                continue  # only nulls here
            return None
        a, b = (st.min_raw, st.max_raw) if raw else (st.min, st.max)
        if type(a) is not expected or type(b) is not expected:
            return None
        lo = a if lo is None or a < lo else lo
        hi = b if hi is None or b > hi else hi
    return None if lo is None else (lo, hi)


def _stats_for(table: pa.Table, meta: pq.FileMetaData | None = None) -> dict[int, dict[str, Any]]:
    """Statistics by field id of the top-level columns of ``table``, written as ``meta``.

    Bounds come from the Parquet footer wherever it holds exactly the value computing
    them from the rows gives (`_footer_kind`); otherwise (and without ``meta``) they
    are computed.
    """
    out: dict[int, dict[str, Any]] = {}
    columns = table.columns
    for c in _plan(table.schema, meta):
        col = columns[c.column]
        nulls = col.null_count
        entry: dict[str, Any] = {"nulls": nulls}
        if c.floating:
            nans = pc.sum(pc.is_nan(col))  # type: ignore[type-var]  # it counts booleans
            entry["nans"] = nans.as_py() or 0
        ptype = c.ptype
        if ptype is not None and nulls < len(col):
            found = None
            if meta is not None and c.leaf >= 0 and c.kind is not None:
                found = _footer_bound(meta, c.leaf, c.kind)
            if found is not None and c.floating and 0 in found:
                # The footer records a zero bound as -0.0 (min) / 0.0 (max); computing
                # it gives the sign of a zero in the rows: compute, to record the same.
                found = None
            if found is not None:
                lo, hi = _stat_value(found[0], ptype), _stat_value(found[1], ptype)
            else:
                mm = pc.min_max(col)
                lo_s, hi_s = mm["min"], mm["max"]
                if c.temporal:
                    lo_s, hi_s = lo_s.cast(ptype), hi_s.cast(ptype)
                lo, hi = _stat_value(lo_s.as_py(), ptype), _stat_value(hi_s.as_py(), ptype)
            if lo is not None and hi is not None:
                entry["min"], entry["max"] = lo, hi
        out[c.field_id] = entry
    return out


# ------------------------------------------------------------------------- fragments


def new_name(directory: str) -> str:
    return f"{directory}/{uuid.uuid4().hex}.parquet"


#: Chunks at least this large are hashed on the hashing thread, overlapping encoding.
_HASH_AHEAD = 1 << 20
#: One thread hashing fragment bytes in the order they were queued.
_HASHER = ForkSafePool(1, "lakever-hash")


class _Hashing(io.RawIOBase):
    """The Parquet writer's output: passed on to storage as it comes, hashed and counted.

    The hash and size are of exactly the bytes handed to storage, in order; nothing
    holds the whole file. The first MiB is hashed as it comes; after that, chunks are
    gathered into batches of at least a MiB, hashed on one background thread (SHA-256
    releases the GIL) while the writer encodes the next ones. Batches go to that one
    thread in order, and nothing is hashed here once one went, so the bytes are hashed
    in order.
    """

    def __init__(self, sink: ByteSink) -> None:
        super().__init__()
        self._sink = sink
        self._sha = hashlib.sha256()
        self._last: Future[None] | None = None
        self._batch: list[bytes] = []
        self._batched = 0
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer, /) -> int:
        view = memoryview(b)
        if self._last is None and self.size + view.nbytes < _HASH_AHEAD:
            self._sha.update(view)
        else:
            # The writer hands over immutable bytes objects: safe to hash later.
            self._batch.append(b if isinstance(b, bytes) else bytes(view))
            self._batched += view.nbytes
            if self._batched >= _HASH_AHEAD:
                self._submit()
        self._sink.write(view)
        self.size += view.nbytes
        return view.nbytes

    def _submit(self) -> None:
        # One batch hashing while the next is gathered: memory stays within two batches
        # even if hashing were slower than encoding (it is several times faster).
        if self._last is not None:
            self._last.result()
        batch, self._batch, self._batched = self._batch, [], 0
        self._last = _HASHER.get().submit(_update_all, self._sha, batch)

    def hexdigest(self) -> str:
        """The SHA-256 of every byte written (waits for the hashing thread)."""
        if self._batch:
            self._submit()
        if self._last is not None:
            self._last.result()
        return self._sha.hexdigest()


def _update_all(sha: Any, chunks: list[bytes]) -> None:
    for chunk in chunks:
        sha.update(chunk)


#: Fewer rows than this are written without dictionaries.
_DICTIONARY_MIN_ROWS = 128
#: Rows sampled to decide which columns get a dictionary encoding.
_DICTIONARY_SAMPLE = 16_384


def dictionary_columns(table: pa.Table) -> bool | list[str]:
    """The columns worth a dictionary encoding: those with few distinct values in a
    sample of the first rows. Parquet writers try a dictionary on every column and fall
    back to plain encoding once it grows too large; on mostly distinct columns (ids,
    timestamps, measurements, free text) that attempt costs a fifth of the encoding time
    and saves nothing. The file reads back the same either way. Nested columns keep the
    writer's default (True for every column)."""
    if any(pa.types.is_nested(f.type) for f in table.schema):
        return True
    sample = table.slice(0, _DICTIONARY_SAMPLE)
    if sample.num_rows < _DICTIONARY_MIN_ROWS:
        # A small commit's few rows: a dictionary saves a few bytes at most and costs
        # a sixth of encoding them (100 rows x 5 columns: 0.25 ms -> 0.21 ms).
        return False
    if sample.num_rows < 1024:
        return True
    half = sample.num_rows // 2
    return [
        name
        for name, col in zip(sample.column_names, sample.columns, strict=True)
        if not _mostly_distinct(col, half)
    ]


def _mostly_distinct(col: pa.ChunkedArray[Any], half: int) -> bool:
    """More than ``half`` distinct values; False (the writer's default: try a dictionary)
    for a type Arrow cannot count distinct values of (e.g. ``null``)."""
    if pa.types.is_dictionary(col.type) or pa.types.is_boolean(col.type):
        return False
    try:
        return bool(pc.count_distinct(col, mode="all").as_py() > half)
    except pa.ArrowNotImplementedError:
        return False


#: A CRC32 in every page header: pyarrow reads verify it, so a change made after the file
#: was verified (bit rot under a long-running reader) is an error, not data. 3-7% of the
#: encoding CPU (benchmarks/page_checksums.py); a switch for that benchmark only.
PAGE_CHECKSUMS = True

#: Rows of at most this many bytes in memory are encoded to a buffer, then written.
_BUFFERED_MAX = 1 << 20


def _encode(table: pa.Table, out: pa.NativeFile) -> pq.FileMetaData:
    """Write ``table`` as one Parquet file to ``out``; the file's footer metadata."""
    with pq.ParquetWriter(
        out,
        table.schema,
        write_page_index=True,
        write_page_checksum=PAGE_CHECKSUMS,
        use_dictionary=dictionary_columns(table),  # type: ignore[arg-type]  # bool | list
    ) as writer:
        cuts = _cuts(table, ROW_GROUP_ROWS, ROW_GROUP_BYTES)
        for group in _slices(table, cuts):  # one row group each
            writer.write_table(group, row_group_size=max(1, group.num_rows))
    metadata: pq.FileMetaData = writer.writer.metadata
    return metadata


def _cuts(table: pa.Table, max_rows: int, max_bytes: int | None) -> list[int]:
    """The lengths of the consecutive parts ``table`` is cut into: the fewest parts of at
    most ``max_rows`` rows (filling each, the last shorter) -- unless ``max_bytes``
    (in-memory bytes) needs more, then that many parts of even rows. When rows differ in
    width so much that a part would be more than an eighth over ``max_bytes``, the parts
    of the row cut that are too large are cut by their bytes instead (`_byte_cuts`): no
    part holds much more than ``max_bytes`` unless it is one row."""
    n = table.num_rows
    if n <= max_rows and (max_bytes is None or fits(table, max_bytes)):
        return [n]  # the usual case: one part (a small commit pays nothing more)
    by_rows = [min(max_rows, n - start) for start in range(0, n, max_rows)]
    if max_bytes is None:
        return by_rows
    limit = max_bytes + max_bytes // 8
    by_bytes = -(-table.nbytes // max_bytes)
    bytes_decide = len(by_rows) < by_bytes and len(by_rows) < n
    lengths = _even_lengths(n, by_bytes) if bytes_decide else by_rows
    parts = list(zip(lengths, _slices(table, lengths), strict=True))
    if all(length <= 1 or part.nbytes <= limit for length, part in parts):
        return lengths
    out: list[int] = []
    for length, part in zip(by_rows, _slices(table, by_rows), strict=True):
        small = length <= 1 or part.nbytes <= limit
        out += [length] if small else _byte_cuts(part, max_bytes)
    return out


def _byte_cuts(table: pa.Table, max_bytes: int) -> list[int]:
    """Cut rows of uneven widths by their bytes: runs of rows (halved until a run is one
    row or at most an eighth of ``max_bytes``) gathered into parts that close near an
    even share of the bytes and never pass ``max_bytes`` (a wider row is a part alone)."""
    runs: list[tuple[int, int]] = []
    todo = [(0, table.num_rows)]
    grain = max(1, max_bytes // 8)
    while todo:
        start, length = todo.pop()
        size = table.slice(start, length).nbytes
        if length == 1 or size <= grain:
            runs.append((length, size))
        else:
            half = length // 2
            todo += [(start + half, length - half), (start, half)]  # the first half next
    total = sum(size for _, size in runs)
    goal = total / max(1, -(-total // max_bytes))
    lengths: list[int] = []
    rows = held = 0
    for length, size in runs:
        if rows and (held + size > max_bytes or held + size / 2 > goal):
            lengths.append(rows)
            rows = held = 0
        rows += length
        held += size
    return [*lengths, rows]


def _even_lengths(n: int, parts: int) -> list[int]:
    """``n`` rows cut into ``parts`` parts (at most ``n``, at least one) as even as rows allow."""
    parts = max(1, min(n, parts))
    base, extra = divmod(n, parts)
    return [base + 1] * extra + [base] * (parts - extra)


def _slices(table: pa.Table, lengths: list[int]) -> Iterator[pa.Table]:
    start = 0
    for length in lengths:
        yield table.slice(start, length)
        start += length


def _write_one(
    storage: Storage,
    table: pa.Table,
    schema_id: str,
    subdir: str = "",
    partition: Sequence[dict[str, Any]] | None = None,
) -> FragmentEntry:
    rel = new_name(f"{DATA_DIR}/{subdir}" if subdir else DATA_DIR)
    if table.nbytes <= _BUFFERED_MAX:
        # Small rows: encode in memory and hand storage one buffer (one write, its fsync
        # in the background until the commit's flush) instead of streaming each of the
        # writer's small chunks through Python. The bytes are the same.
        buffer = pa.BufferOutputStream()
        meta = _encode(table, buffer)
        data = memoryview(buffer.getvalue())
        storage.write_new(rel, data)
        size, digest = data.nbytes, hashlib.sha256(data).hexdigest()
    else:
        written: list[tuple[_Hashing, pq.FileMetaData]] = []

        def produce(sink: ByteSink) -> None:
            out = _Hashing(sink)
            written.append((out, _encode(table, pa.PythonFile(out, mode="w"))))

        storage.write_new_stream(rel, produce)
        ((out, meta),) = written
        size, digest = out.size, out.hexdigest()
    return FragmentEntry(
        path=rel,
        num_rows=table.num_rows,
        size_bytes=size,
        content_hash=f"sha256:{digest}",
        stats=_stats_for(table, meta),
        schema_id=schema_id,
        partition=None if partition is None else tuple(partition),
    )


#: A group of rows to write: (subdirectory under data/, partition record, rows).
Piece = tuple[str, "Sequence[dict[str, Any]] | None", pa.Table]
#: Splits conformed rows into pieces (partitioning and sorting); None: one piece.
Layout = Callable[[pa.Table], Iterable[Piece]]


def _chunks(pieces: Iterable[Piece], max_rows: int, max_bytes: int | None) -> Iterator[Piece]:
    """Regroup pieces into pieces of at most ``max_rows`` rows, never mixing partitions;
    a piece of more than ``max_bytes`` in-memory bytes is then cut by `_cuts`."""
    # By directory *and* record: two partitions can share a directory name (a NULL and
    # the string "__NULL__" both show as __NULL__); the record is the partition.
    for (subdir, _), group in itertools.groupby(pieces, key=lambda piece: piece[:2]):
        head = next(group)
        # Each group is consumed in full by regroup before groupby moves on.
        rest = (piece[2] for piece in group)  # noqa: B031
        tables = itertools.chain([head[2]], rest)
        for table in regroup(tables, max_rows, pa.concat_tables, max_bytes):
            cuts = _cuts(table, max_rows, max_bytes)  # [rows] when the piece fits
            for part in [table] if len(cuts) == 1 else _slices(table, cuts):
                yield subdir, head[1], part


def write_fragments(
    storage: Storage,
    tables: Iterable[pa.Table],
    *,
    schema_id: str,
    max_rows: int = DEFAULT_MAX_ROWS_PER_FRAGMENT,
    split_by_bytes: bool = True,
    layout: Layout | None = None,
) -> list[FragmentEntry]:
    """Write conformed tables as fragments (in parallel threads); return their entries.

    Every table is in the schema whose id is ``schema_id``. ``layout`` splits rows
    by partition (and sorts them); each fragment holds one partition, at most
    ``max_rows`` rows and (``split_by_bytes``) about `MAX_FRAGMENT_BYTES` in-memory
    bytes. The order of the returned entries follows the order of the pieces.
    """
    pieces: Iterable[Piece] = (
        ((("", None, t) for t in tables))
        if layout is None
        else (p for t in tables for p in layout(t))
    )
    chunks = _chunks(pieces, max_rows, MAX_FRAGMENT_BYTES if split_by_bytes else None)
    first = next(chunks, None)
    if first is None:
        return []
    second = next(chunks, None)
    if second is None:
        return [_write_one(storage, first[2], schema_id, first[0], first[1])]
    futures: list[Future[FragmentEntry]] = []
    pending: set[Future[FragmentEntry]] = set()
    with ThreadPoolExecutor(max_workers=_WRITE_THREADS) as pool:
        for subdir, partition, chunk in itertools.chain((first, second), chunks):
            # Bound memory: at most a few chunks in flight beyond the workers.
            while len(pending) >= 2 * _WRITE_THREADS:
                _, pending = wait(pending, return_when=FIRST_COMPLETED)
            future = pool.submit(_write_one, storage, chunk, schema_id, subdir, partition)
            futures.append(future)
            pending.add(future)
        return [f.result() for f in futures]

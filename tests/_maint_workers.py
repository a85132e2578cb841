"""Helpers (and, later, subprocess workers) for tests/test_maintenance_concurrency.py."""

from __future__ import annotations

import hashlib

import pyarrow as pa


def digest(table: pa.Table) -> str:
    """SHA-256 of the Arrow IPC stream of ``table`` sorted by id, in one record batch
    (so neither row order nor chunking changes it; every byte of every value does)."""
    table = table.sort_by("id").combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()

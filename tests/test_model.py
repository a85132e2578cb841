"""Stateful model test: random sequences of writes, opens and time travel against a model.

The model is a list of versions, each the list of row ids it holds (rows are
``events`` rows, so the other columns follow from the id). Ids repeat across
batches on purpose, so the row-order checks mean something. Runs on local disk
and on memory://.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import fsspec
import pyarrow as pa
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import lakever as lv

STARTS = st.integers(0, 40)
SIZES = st.integers(0, 6)
MESSAGES = st.sampled_from(["", "batch", "nächste Ladung", "a\nb"])
PROPERTIES = st.dictionaries(st.sampled_from(["k", "source", "ü"]), st.text(max_size=3), max_size=2)


def table_of(ids: list[int]) -> pa.Table:
    """The rows `events` builds for these ids (same schema, same derived columns)."""
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "value": pa.array([(i % 100) / 100 for i in ids], pa.float64()),
            "category": pa.array(["abc"[i % 3] for i in ids], pa.string()),
        }
    )


def batch(start: int, n: int) -> list[int]:
    return list(range(start, start + n))


@dataclass
class Recorded:
    """What the model knows about one committed version."""

    ids: list[int]
    snapshot_id: str
    timestamp: datetime
    operation: str
    message: str
    properties: dict[str, str]


class DatasetModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.uri = ""
        self.tmp: str | None = None
        self.versions: list[Recorded] = []
        #: Writable Datasets returned by writes and opens; older ones go stale.
        self.handles: list[lv.Dataset] = []
        self.checked: str | None = None
        self.batch_size = 1

    # ------------------------------------------------------------- setup

    @initialize(backend=st.sampled_from(["local", "memory"]))
    def setup(self, backend: str) -> None:
        if backend == "local":
            self.tmp = tempfile.mkdtemp(prefix="lakever-model-")
            self.uri = os.path.join(self.tmp, "ds")
        else:
            self.uri = f"memory://lakever-model/{uuid.uuid4().hex}/ds"

    def teardown(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.uri:
            fs = fsspec.filesystem("memory")
            root = "/" + self.uri.removeprefix("memory://").rsplit("/", 1)[0]
            if fs.exists(root):
                fs.rm(root, recursive=True)

    # ------------------------------------------------------------- helpers

    @property
    def latest(self) -> int:
        return len(self.versions) - 1

    def record(
        self, ds: lv.Dataset, ids: list[int], operation: str, message: str, props: dict[str, str]
    ) -> None:
        """Check a write's returned Dataset against the model, then add it as a version."""
        assert ds.version == len(self.versions)
        assert not ds.read_only
        assert ds.num_rows == len(ids)
        commit = ds.commit
        assert (commit.operation, commit.message, commit.properties) == (
            operation,
            message,
            props,
        )
        assert commit.total_rows == len(ids)
        if self.versions:
            assert commit.parent_id == self.versions[-1].snapshot_id
            assert ds.timestamp > self.versions[-1].timestamp
        else:
            assert commit.parent_id is None
        self.versions.append(
            Recorded(ids, ds.snapshot_id, ds.timestamp, operation, message, dict(props))
        )
        self.handles.append(ds)

    def writer(self, via: str, data: st.DataObject) -> lv.Dataset | None:
        """The Dataset a write goes through: the latest, or any earlier (maybe stale) one;
        None means write_dataset."""
        if via == "handle" and self.handles:
            return data.draw(st.sampled_from(self.handles), label="handle")
        if via == "write_dataset" or not self.versions:
            return None
        return lv.open_dataset(self.uri)

    # ------------------------------------------------------------- writes

    @rule(
        start=STARTS,
        n=SIZES,
        via=st.sampled_from(["create_dataset", "write_dataset"]),
        message=MESSAGES,
        props=PROPERTIES,
    )
    def create(self, start: int, n: int, via: str, message: str, props: dict[str, str]) -> None:
        """Create the dataset; once it exists, creating it again raises DatasetExists."""
        table = table_of(batch(start, n))
        kwargs: dict[str, Any] = {"message": message, "properties": props}

        def create_it() -> lv.Dataset:
            if via == "create_dataset":
                return lv.create_dataset(self.uri, table, **kwargs)
            return lv.write_dataset(self.uri, table, mode="create", **kwargs)

        if self.versions:
            with pytest.raises(lv.DatasetExists):
                create_it()
            return
        self.record(create_it(), batch(start, n), "create", message, props)

    @rule(
        data=st.data(),
        via=st.sampled_from(["latest", "handle", "write_dataset"]),
        start=STARTS,
        n=SIZES,
        message=MESSAGES,
        props=PROPERTIES,
    )
    def append(
        self, data: st.DataObject, via: str, start: int, n: int, message: str, props: dict[str, str]
    ) -> None:
        """An append through any handle, stale or not, lands on top of the latest version;
        write_dataset(mode="append") creates the dataset when it is missing."""
        ids = batch(start, n)
        if via == "latest" and not self.versions:
            with pytest.raises(lv.DatasetNotFound):
                lv.open_dataset(self.uri)
            return
        ds = self.writer(via, data)
        if ds is None:
            new = lv.write_dataset(
                self.uri, table_of(ids), mode="append", message=message, properties=props
            )
        else:
            before = (ds.version, ds.snapshot_id, ds.num_rows)
            new = ds.append(table_of(ids), message=message, properties=props)
            assert (ds.version, ds.snapshot_id, ds.num_rows) == before  # views never move
        if self.versions:
            self.record(new, self.versions[-1].ids + ids, "append", message, props)
        else:
            self.record(new, ids, "create", message, props)

    @rule(
        data=st.data(),
        via=st.sampled_from(["latest", "handle", "write_dataset"]),
        start=STARTS,
        n=SIZES,
        message=MESSAGES,
    )
    def overwrite(self, data: st.DataObject, via: str, start: int, n: int, message: str) -> None:
        """An overwrite replaces all rows, unless its handle is stale: then it conflicts
        with the version right after the handle's and commits nothing."""
        ids = batch(start, n)
        if via == "latest" and not self.versions:
            with pytest.raises(lv.DatasetNotFound):
                lv.open_dataset(self.uri)
            return
        ds = self.writer(via, data)
        if ds is None:
            new = lv.write_dataset(self.uri, table_of(ids), mode="overwrite", message=message)
        elif ds.version < self.latest:
            with pytest.raises(lv.CommitConflict) as info:
                ds.overwrite(table_of(ids), message=message)
            assert info.value.winning_version == ds.version + 1
            return
        else:
            new = ds.overwrite(table_of(ids), message=message)
        self.record(new, ids, "overwrite" if self.versions else "create", message, {})

    # ------------------------------------------------------------- reads

    @precondition(lambda self: self.versions)
    @rule(data=st.data(), how=st.sampled_from(["number", "time", "between", "other zone"]))
    def open_version(self, data: st.DataObject, how: str) -> None:
        """Open a known version by number or by its commit time (exact, halfway to the
        next commit, in another time zone): a read-only view of exactly that version."""
        v = data.draw(st.integers(0, self.latest), label="version")
        rec = self.versions[v]
        when: int | datetime = v
        if how == "time":
            when = rec.timestamp
        elif how == "between" and v < self.latest:
            nxt = self.versions[v + 1].timestamp
            when = rec.timestamp + (nxt - rec.timestamp) / 2
            assert rec.timestamp <= when < nxt
        elif how == "between":
            when = rec.timestamp  # nothing lies between the newest commit and the next
        elif how == "other zone":
            when = rec.timestamp.astimezone(timezone(timedelta(hours=-5, minutes=-30)))
        ds = lv.open_dataset(self.uri, version=when)
        assert (ds.version, ds.snapshot_id, ds.num_rows) == (v, rec.snapshot_id, len(rec.ids))
        assert ds.timestamp == rec.timestamp
        assert ds.to_arrow().equals(table_of(rec.ids))
        assert ds.read_only
        with pytest.raises(lv.ReadOnlyDataset):
            ds.append(table_of([1]))
        with pytest.raises(lv.ReadOnlyDataset):
            ds.overwrite(table_of([1]))
        assert [c.snapshot_id for c in ds.history()] == [
            r.snapshot_id for r in reversed(self.versions[: v + 1])
        ]

    @precondition(lambda self: self.versions)
    @rule(
        beyond=st.integers(1, 3),
        how=st.sampled_from(["after", "negative", "before", "later", "naive"]),
    )
    def open_missing_version(self, beyond: int, how: str) -> None:
        error: type[Exception] = lv.VersionNotFound
        if how == "after":
            version: int | datetime = self.latest + beyond
        elif how == "later":  # a time after the newest commit: an error, not the head
            version = self.versions[-1].timestamp + timedelta(microseconds=beyond)
        elif how == "negative":
            version = -beyond
        elif how == "before":
            version = self.versions[0].timestamp - timedelta(microseconds=beyond)
        else:
            version = self.versions[-1].timestamp.replace(tzinfo=None)
            error = lv.InvalidArgument
        with pytest.raises(error):
            lv.open_dataset(self.uri, version=version)

    @precondition(lambda self: self.versions)
    @rule(limit=st.none() | st.integers(0, 5))
    def history(self, limit: int | None) -> None:
        commits = lv.open_dataset(self.uri).history(limit)
        expected = list(reversed(self.versions))[:limit]
        assert len(commits) == len(expected)
        for c, rec, v in zip(commits, expected, range(self.latest, -1, -1), strict=False):
            assert (c.version, c.snapshot_id, c.timestamp, c.operation) == (
                v,
                rec.snapshot_id,
                rec.timestamp,
                rec.operation,
            )
            assert (c.message, c.properties, c.total_rows) == (
                rec.message,
                rec.properties,
                len(rec.ids),
            )

    @precondition(lambda self: self.versions)
    @rule(data=st.data(), size=st.integers(1, 9))
    def batches_of_any_version(self, data: st.DataObject, size: int) -> None:
        v = data.draw(st.integers(0, self.latest), label="version")
        ds = lv.open_dataset(self.uri, version=v)
        self.check_batches(ds, size, self.versions[v].ids)

    def check_batches(self, ds: lv.Dataset, size: int, ids: list[int]) -> None:
        batches = list(ds.to_batches(batch_size=size))
        assert all(b.num_rows == size for b in batches[:-1])
        assert all(0 < b.num_rows <= size for b in batches)
        assert sum(b.num_rows for b in batches) == len(ids)
        got = pa.Table.from_batches(batches, schema=ds.schema)
        assert got.equals(table_of(ids))

    # ------------------------------------------------------------- invariants

    @invariant()
    def latest_matches_model(self) -> None:
        if not self.uri:
            return
        if not self.versions:
            with pytest.raises(lv.DatasetNotFound):
                lv.open_dataset(self.uri)
            return
        rec = self.versions[-1]
        ds = lv.open_dataset(self.uri)
        assert (ds.version, ds.snapshot_id, ds.num_rows) == (
            self.latest,
            rec.snapshot_id,
            len(rec.ids),
        )
        assert not ds.read_only
        if self.checked == rec.snapshot_id:
            return  # content of this immutable snapshot verified already
        self.checked = rec.snapshot_id
        expected = table_of(rec.ids)
        table = ds.to_arrow()
        assert table.schema == expected.schema
        assert table.equals(expected)
        self.batch_size = self.batch_size % 7 + 1
        self.check_batches(ds, self.batch_size, rec.ids)
        assert ds.sql("SELECT count(*) FROM self").fetchall() == [(len(rec.ids),)]
        assert ds.sql("SELECT count(*) FROM self WHERE id % 2 = 0").fetchall() == [
            (sum(1 for i in rec.ids if i % 2 == 0),)
        ]


DatasetModel.TestCase.settings = settings(
    settings.get_profile("ci"), max_examples=25, stateful_step_count=30
)
test_dataset_model = pytest.mark.slow(DatasetModel.TestCase)

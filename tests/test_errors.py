"""Every public error, raised for real, with the message a user acts on."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

import lakever as lv
from lakever.format import log_path
from tests._data import events


def _log_file(location: str, version: int) -> str:
    return os.path.join(location, *log_path("main", version).split("/"))


def test_every_error_is_a_lakever_error():
    for name in lv.__all__:
        obj = getattr(lv, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, lv.LakeverError), name
    assert issubclass(lv.InvalidArgument, ValueError)


def test_dataset_not_found(location):
    with pytest.raises(lv.DatasetNotFound, match=r"no lakever dataset at .*create one with") as ei:
        lv.open_dataset(location)
    assert ei.value.uri.endswith("events")


def test_dataset_exists(location):
    lv.create_dataset(location, events(0, 1))
    with pytest.raises(lv.DatasetExists, match=r"a dataset already exists at .*mode='append'"):
        lv.create_dataset(location, events(0, 1))


def test_version_not_found(location):
    lv.create_dataset(location, events(0, 1)).append(events(1, 1))
    with pytest.raises(
        lv.VersionNotFound, match=r"version 7 not found .* \(versions are 0 to 1\)"
    ) as ei:
        lv.open_dataset(location, version=7)
    assert ei.value.version == 7
    with pytest.raises(lv.VersionNotFound, match=r"version -1 not found"):
        lv.open_dataset(location, version=-1)


def test_naive_datetime_refused(location):
    lv.create_dataset(location, events(0, 1))
    with pytest.raises(lv.InvalidArgument, match=r"is naive; pass a timezone-aware datetime"):
        lv.open_dataset(location, version=datetime(2026, 11, 1))


@pytest.mark.parametrize("bad", [1.5, True, b"0"])
def test_version_of_wrong_type(location, bad):
    lv.create_dataset(location, events(0, 1))
    with pytest.raises(lv.InvalidArgument, match=r"version must be an int"):
        lv.open_dataset(location, version=bad)


def test_numeric_string_version_hints_at_int(location):
    lv.create_dataset(location, events(0, 1))
    with pytest.raises(lv.VersionNotFound, match=r"for version number 3 pass the int 3"):
        lv.open_dataset(location, version="3")


def test_read_only_dataset(location):
    lv.create_dataset(location, events(0, 1))
    old = lv.open_dataset(location, version=0)
    with pytest.raises(
        lv.ReadOnlyDataset,
        match=r"detached at version 0 .* read-only; .* branch from this snapshot",
    ):
        old.append(events(1, 1))
    with pytest.raises(lv.ReadOnlyDataset):
        old.overwrite(events(1, 1))
    assert lv.open_dataset(location).version == 0  # nothing was written


def test_commit_conflict_names_winner(location):
    ds = lv.create_dataset(location, events(0, 1))
    ds.append(events(1, 1))  # someone else commits version 1
    with pytest.raises(lv.CommitConflict, match=r"conflicts with version 1") as ei:
        ds.overwrite(events(5, 1))
    assert ei.value.winning_version == 1
    assert lv.open_dataset(location).version == 1


def test_schema_mismatch_lists_every_column(location):
    ds = lv.create_dataset(location, events(0, 1))
    bad = pa.table({"id": ["x"], "value": [1.0], "extra": [1]})
    with pytest.raises(lv.SchemaMismatch) as ei:
        ds.append(bad)
    msg = str(ei.value)
    assert "column 'id' is string in the data but int64 in the dataset" in msg
    assert "column 'category' (string) is missing from the data" in msg
    assert "column 'extra' (int64) is not in the dataset schema" in msg
    assert ei.value.differences == [
        ("id", "int64", "string"),
        ("category", "string", None),
        ("extra", None, "int64"),
    ]
    assert lv.open_dataset(location).version == 0
    if "://" not in location:  # the mismatch was found before any fragment was written
        assert len(os.listdir(os.path.join(location, "data"))) == 1


def test_schema_mismatch_on_nulls_in_non_nullable(location):
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    ds = lv.create_dataset(location, pa.table({"id": [1]}, schema=schema))
    with pytest.raises(lv.SchemaMismatch, match=r"'id' is declared non-nullable .* 1 null"):
        ds.append(pa.table({"id": [None, 2]}))
    ds = ds.append(pa.table({"id": [2]}))  # nullable input without nulls is fine
    assert ds.to_arrow().schema.field("id").nullable is False


def test_duplicate_columns_refused(location):
    ds = lv.create_dataset(location, pa.table({"a": [1]}))
    dup = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(lv.SchemaMismatch, match=r"duplicate column names \['a'\]"):
        ds.append(dup)


def test_unsupported_type_refused(location):
    t = pa.table({"x": pa.array([{"a": 1}], pa.struct([("a", pa.int8())]))})
    lv.create_dataset(location, t)  # supported
    bad = pa.table({"i": pa.array([(1, 2, 3)], pa.month_day_nano_interval())})
    with pytest.raises(lv.InvalidArgument, match=r"column 'i': type month_day_nano_interval"):
        lv.create_dataset(location + "-2", bad)


def test_bad_properties_and_message(location):
    with pytest.raises(lv.InvalidArgument, match=r"properties must map str to str"):
        lv.create_dataset(location, events(0, 1), properties={"k": 1})  # type: ignore[dict-item]
    with pytest.raises(lv.InvalidArgument, match=r"message must be a string"):
        lv.create_dataset(location, events(0, 1), message=3)  # type: ignore[arg-type]


def test_corrupt_metadata_truncated(local_location):
    lv.create_dataset(local_location, events(0, 1)).append(events(1, 1))
    path = _log_file(local_location, 1)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    with pytest.raises(lv.CorruptMetadata, match=r"is truncated or not valid JSON") as ei:
        lv.open_dataset(local_location, version=1)
    assert ei.value.path == path
    assert lv.open_dataset(local_location, version=0).num_rows == 1


def test_corrupt_metadata_tampered(local_location):
    lv.create_dataset(local_location, events(0, 1))
    path = _log_file(local_location, 0)
    record = json.loads(Path(path).read_text())
    record["message"] = "rewritten"
    with open(path, "w") as f:
        f.write(json.dumps(record))
    with pytest.raises(lv.CorruptMetadata, match=r"does not match its snapshot id") as ei:
        lv.open_dataset(local_location)
    assert ei.value.path == path


def test_corrupt_manifest_detected(local_location):
    from lakever.manifests import _CACHE

    ds = lv.create_dataset(local_location, events(0, 10), max_rows_per_fragment=1)
    manifest = ds._snap.manifests[0].path
    assert manifest is not None  # 10 fragments: too many to inline, written as a file
    with open(os.path.join(local_location, manifest), "ab") as f:
        f.write(b"x")
    _CACHE.clear()  # verified manifests are cached in-process; a new process reads the file
    with pytest.raises(lv.CorruptMetadata, match=r"does not match the hash recorded"):
        lv.open_dataset(local_location).to_arrow()


def test_unsupported_format_version(local_location):
    lv.create_dataset(local_location, events(0, 1))
    path = _log_file(local_location, 0)
    record = json.loads(Path(path).read_text())
    record["format_version"] = lv.FORMAT_VERSION + 1
    with open(path, "w") as f:
        f.write(json.dumps(record))
    with pytest.raises(lv.UnsupportedFormatVersion, match=r"upgrade lakever") as ei:
        lv.open_dataset(local_location)
    assert (ei.value.found, ei.value.supported) == (lv.FORMAT_VERSION + 1, lv.FORMAT_VERSION)


def test_storage_error_on_read_only_backend():
    with pytest.raises(lv.StorageError, match=r"cannot open storage for 'nosuchproto://x'"):
        lv.create_dataset("nosuchproto://x", events(0, 1))


def test_pin_of_recreated_dataset(local_location):
    import shutil

    pin = lv.create_dataset(local_location, events(0, 1)).pin()
    shutil.rmtree(local_location)
    lv.create_dataset(local_location, events(5, 1))
    with pytest.raises(lv.VersionNotFound, match=r"re-created or its history rewritten"):
        lv.open_dataset(pin)
    with pytest.raises(lv.InvalidArgument, match=r"malformed pin"):
        lv.open_dataset("lakever:/x/y")


# Input a review found raising raw Python errors (2026-12-03): each is now a named error,
# and the dataset is left as it was.
BAD_INPUT = {
    "sql VERSION AS OF 1.5": (
        lambda ds: ds.sql("SELECT * FROM self VERSION AS OF 1.5"),
        lv.InvalidArgument,
        "must be a whole number or a string, got 1.5",
    ),
    "sql TIMESTAMP AS OF 2.0": (
        lambda ds: ds.sql("SELECT * FROM self TIMESTAMP AS OF 2.0"),
        lv.InvalidArgument,
        "got 2.0",
    ),
    "split nan": (
        lambda ds: ds.split({"a": float("nan")}, key="id"),
        lv.InvalidArgument,
        "must be in (0, 1], got nan",
    ),
    "sample inf": (lambda ds: ds.sample(float("inf"), key="id"), lv.InvalidArgument, "got inf"),
    "message surrogate": (
        lambda ds: ds.append(events(10, 1), message="x\udc80"),
        lv.InvalidArgument,
        "not valid Unicode",
    ),
    "author surrogate": (
        lambda ds: ds.append(events(10, 1), author="\udc80"),
        lv.InvalidArgument,
        "not valid Unicode",
    ),
    "property surrogate": (
        lambda ds: ds.append(events(10, 1), properties={"k": "\udc80"}),
        lv.InvalidArgument,
        "not valid Unicode",
    ),
    "tag surrogate": (lambda ds: ds.tag("a\udc80"), lv.InvalidRefName, "valid Unicode"),
    "branch surrogate": (lambda ds: ds.branch("b\udc80"), lv.InvalidRefName, "valid Unicode"),
    "tag message not text": (lambda ds: ds.tag("t", message=5), lv.InvalidArgument, "got 5"),
    "author not text": (
        lambda ds: ds.append(events(10, 1), author=5),
        lv.InvalidArgument,
        "author must be a string, got 5",
    ),
    "delete author not text": (
        lambda ds: ds.delete(where="id = 1", author=5),
        lv.InvalidArgument,
        "author must be a string",
    ),
    "contract without columns": (
        lambda ds: ds.set_contract(lv.load_contract('{"a": 1}')),
        lv.InvalidArgument,
        "a mapping with 'columns'",
    ),
    "rename surrogate": (
        lambda ds: ds.evolve(rename={"id": "i\udc80"}),
        lv.InvalidArgument,
        "valid Unicode",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_input_is_a_named_error_and_changes_nothing(location, case):
    call, error, message = BAD_INPUT[case]
    ds = lv.create_dataset(location, events(0, 5))
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(ds)
    after = lv.open_dataset(location)
    assert (after.version, after.to_arrow().equals(ds.to_arrow())) == (0, True)
    assert after.tags() == [] and [b.name for b in after.branches()] == ["main"]

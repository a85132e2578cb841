"""SQL building blocks: quoting, the Arrow -> DuckDB type map, the field-id schema map."""

from __future__ import annotations

import decimal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lakever as lv
from lakever.schema import FIELD_ID_KEY, assign_field_ids
from lakever.sql import duckdb_type, importable, quote_identifier, quote_literal, schema_map

# Text DuckDB can hold: anything but NUL (which the quoting functions refuse).
_TEXT = st.text(st.characters(blacklist_characters="\x00", codec="utf-8"), max_size=20)
HOSTILE = ["", "'", "''", '"', '""', "a'b", 'a"b', "x'; DROP TABLE t; --", "é'ü\"", "\\'"]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_quoted_literal_reads_back_as_itself(text):
    assert duckdb.sql(f"SELECT {quote_literal(text)}").fetchall() == [(text,)]


@pytest.mark.parametrize("name", [n for n in HOSTILE if n])
def test_a_quoted_identifier_names_exactly_that_column(name):
    rel = duckdb.sql(f"SELECT 1 AS {quote_identifier(name)}, 2 AS other")
    assert rel.columns == [name, "other"]
    assert duckdb.sql(f"SELECT {quote_identifier(name)} FROM rel").fetchall() == [(1,)]


@given(_TEXT)
def test_quoting_round_trips_any_text(text):
    assert duckdb.sql(f"SELECT {quote_literal(text)}").fetchall() == [(text,)]
    if text:
        assert duckdb.sql(f"SELECT 7 AS {quote_identifier(text)}").columns == [text]


def test_quoting_doubles_the_quote_character_and_only_it():
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal('say "hi"') == "'say \"hi\"'"
    assert quote_identifier('a "b"') == '"a ""b"""'
    assert quote_identifier("it's") == '"it\'s"'


@pytest.mark.parametrize("quote", [quote_literal, quote_identifier])
def test_nul_is_refused(quote):
    with pytest.raises(lv.InvalidArgument, match="NUL character"):
        quote("a\x00b")


TYPES = [
    (pa.bool_(), "BOOLEAN"),
    (pa.int8(), "TINYINT"),
    (pa.int16(), "SMALLINT"),
    (pa.int32(), "INTEGER"),
    (pa.int64(), "BIGINT"),
    (pa.uint8(), "UTINYINT"),
    (pa.uint16(), "USMALLINT"),
    (pa.uint32(), "UINTEGER"),
    (pa.uint64(), "UBIGINT"),
    (pa.float32(), "FLOAT"),
    (pa.float64(), "DOUBLE"),
    (pa.string(), "VARCHAR"),
    (pa.large_string(), "VARCHAR"),
    (pa.binary(), "BLOB"),
    (pa.large_binary(), "BLOB"),
    (pa.date32(), "DATE"),
    (pa.timestamp("s"), "TIMESTAMP_S"),
    (pa.timestamp("ms"), "TIMESTAMP_MS"),
    (pa.timestamp("us"), "TIMESTAMP"),
    (pa.timestamp("ns"), "TIMESTAMP_NS"),
    (pa.timestamp("us", tz="UTC"), "TIMESTAMP WITH TIME ZONE"),
    (pa.timestamp("ms", tz="+02:00"), "TIMESTAMP WITH TIME ZONE"),
    (pa.timestamp("ns", tz="+02:00"), "TIMESTAMPTZ_NS"),
    (pa.decimal128(10, 2), "DECIMAL(10,2)"),
    (pa.decimal128(38, 0), "DECIMAL(38,0)"),
    (pa.binary(4), "BLOB"),
    (pa.time64("us"), "TIME"),
    (pa.time32("ms"), "TIME"),
    (pa.list_(pa.int32()), "INTEGER[]"),
    (pa.large_list(pa.string()), "VARCHAR[]"),
    (pa.struct([("a b", pa.int64()), ('q"', pa.string())]), 'STRUCT("a b" BIGINT, "q""" VARCHAR)'),
    (pa.map_(pa.string(), pa.float64()), "MAP(VARCHAR, DOUBLE)"),
]


@pytest.mark.parametrize(("arrow", "name"), TYPES, ids=[str(t) for t, _ in TYPES])
def test_duckdb_type_is_the_type_duckdb_reads(arrow, name):
    mapped = duckdb_type(arrow)
    assert mapped is not None
    # The mapped type is what DuckDB itself reads an Arrow column of that type as.
    arrow_table = pa.table({"c": pa.array([None], arrow)})  # noqa: F841 (read by DuckDB)
    read = str(duckdb.sql("SELECT c FROM arrow_table").types[0])
    assert read == name
    assert str(duckdb.sql(f"SELECT NULL::{mapped} AS c").types[0]) == name


@pytest.mark.parametrize(
    "arrow",
    [
        pa.duration("s"),
        pa.time64("ns"),
        pa.decimal256(40, 2),
        pa.decimal256(39, 0),  # DuckDB's decimals stop at 38 digits
        pa.list_(pa.duration("ms")),
        pa.struct([("a", pa.int8()), ("d", pa.duration("s"))]),
        pa.map_(pa.duration("s"), pa.int8()),
        pa.map_(pa.int8(), pa.duration("s")),
        pa.null(),
    ],
)
def test_types_without_an_exact_duckdb_equivalent_map_to_none(arrow):
    assert duckdb_type(arrow) is None


def _with_ids(fields: list[tuple[str, pa.DataType, int]]) -> pa.Schema:
    return pa.schema(
        [pa.field(n, t, metadata={FIELD_ID_KEY: str(fid).encode()}) for n, t, fid in fields]
    )


def _stored(tmp_path, table: pa.Table) -> str:
    path = str(tmp_path / "f.parquet")
    pq.write_table(table, path)
    return path


def test_the_schema_map_reads_columns_by_field_id_whatever_their_stored_name(tmp_path):
    # Stored under old names, in another order; read back by field id under new names.
    stored = _with_ids([("old_b", pa.string(), 2), ("old_a", pa.int32(), 1)])
    path = _stored(tmp_path, pa.table({"old_b": ["x"], "old_a": [7]}, schema=stored))
    target = _with_ids([("it's", pa.int64(), 1), ("b", pa.string(), 2), ("gone", pa.float64(), 3)])
    mapping = schema_map(target)
    assert mapping is not None
    rel = duckdb.sql(f"SELECT * FROM read_parquet({quote_literal(path)}, schema={mapping})")
    assert rel.columns == ["it's", "b", "gone"]
    assert [str(t) for t in rel.types] == ["BIGINT", "VARCHAR", "DOUBLE"]
    assert rel.fetchall() == [(7, "x", None)]


def test_the_schema_map_of_nested_columns_names_their_children(tmp_path):
    t = pa.struct([pa.field("x", pa.int32()), pa.field("y", pa.list_(pa.string()))])
    m = pa.map_(pa.string(), pa.int64())
    schema = pa.schema([("s", t), ("m", m)])
    ids, _ = assign_field_ids(schema)
    table = pa.table({"s": [{"x": 1, "y": ["a", "b"]}], "m": pa.array([[("k", 5)]], m)}, schema=ids)
    path = _stored(tmp_path, table)
    mapping = schema_map(ids)
    assert mapping is not None
    rows = duckdb.sql(f"SELECT * FROM read_parquet({quote_literal(path)}, schema={mapping})")
    assert rows.fetchall() == [({"x": 1, "y": ["a", "b"]}, {"k": 5})]


def test_the_schema_map_leaves_out_what_duckdb_cannot_read_only_when_asked():
    schema = _with_ids([("d", pa.duration("s"), 1), ("n", pa.int64(), 2)])
    assert schema_map(schema) is None
    partial = schema_map(schema, partial=True)
    assert partial is not None and "'n'" in partial and "'d'" not in partial
    only_duration = _with_ids([("d", pa.duration("s"), 1)])
    assert schema_map(only_duration, partial=True) is None
    no_ids = pa.schema([("n", pa.int64())])
    assert schema_map(no_ids) is None


def test_decimals_keep_precision_and_scale_through_the_map(tmp_path):
    schema = _with_ids([("p", pa.decimal128(12, 3), 1)])
    path = _stored(tmp_path, pa.table({"p": [decimal.Decimal("1.234")]}, schema=schema))
    mapping = schema_map(schema)
    rel = duckdb.sql(f"SELECT p FROM read_parquet({quote_literal(path)}, schema={mapping})")
    assert str(rel.types[0]) == "DECIMAL(12,3)"
    assert rel.fetchall() == [(decimal.Decimal("1.234"),)]


def test_sql_and_update_keep_the_nanoseconds_of_zoned_timestamps(location):
    # TIMESTAMPTZ holds microseconds: a zoned ns column read or set through it lost digits.
    ts = pa.array([1_000_000_001, 2_000_000_002], pa.timestamp("ns", tz="UTC"))
    ds = lv.create_dataset(location, pa.table({"ts": ts}))
    assert ds.sql("SELECT ts FROM self ORDER BY ts").to_arrow_table()["ts"] == pa.chunked_array(
        [ts]
    )
    ds = ds.update(set={"ts": "ts + INTERVAL 1 second"}, where="ts > '1970-01-01 00:00:01.5+00'")
    assert sorted(v.value for v in ds.to_arrow()["ts"]) == [1_000_000_001, 3_000_000_002]


def test_the_schema_map_reads_renamed_nested_fields_by_field_id(tmp_path):
    # Written as s{x}, l[{y}]; the current schema renamed both children (same field ids).
    def struct(name: str, fid: int) -> pa.DataType:
        return pa.struct([pa.field(name, pa.int32(), metadata={FIELD_ID_KEY: str(fid).encode()})])

    def schema(x: str, y: str) -> pa.Schema:
        element = pa.field("element", struct(y, 5), metadata={FIELD_ID_KEY: b"4"})
        return _with_ids([("s", struct(x, 2), 1), ("l", pa.list_(element), 3)])

    stored = schema("x", "y")
    path = _stored(
        tmp_path, pa.table({"s": [{"x": 1}], "l": [[{"y": 2}, {"y": 3}]]}, schema=stored)
    )
    mapping = schema_map(schema("x2", "y2"))
    rel = duckdb.sql(f"SELECT * FROM read_parquet({quote_literal(path)}, schema={mapping})")
    assert rel.fetchall() == [({"x2": 1}, [{"y2": 2}, {"y2": 3}])]


def test_a_file_changed_under_a_held_relation_is_a_storage_error_naming_it(tmp_path):
    # Fragments are verified when the relation is made; one damaged before it runs is
    # read by DuckDB itself. Run under translate_errors (as the CLI does), the failure
    # is a StorageError naming the file, not the query's fault (InvalidArgument).
    from lakever.errors import StorageError
    from lakever.sql import translate_errors

    ds = lv.create_dataset(
        str(tmp_path / "ds"),
        pa.table({"a": list(range(50_000)), "b": [str(i) for i in range(50_000)]}),
    )
    relation = ds.sql("SELECT sum(a), count(b) FROM self")
    (fragment,) = (tmp_path / "ds" / "data").rglob("*.parquet")
    with open(fragment, "r+b") as f:
        f.seek(fragment.stat().st_size // 2)
        f.write(b"\xff" * 4096)
    with pytest.raises(StorageError) as info, translate_errors("query", "q", None):
        relation.to_arrow_table()
    assert info.value.path == str(fragment)
    assert "lakever verify" in str(info.value)


def test_half_float_columns_filter_on_every_path(tmp_path):
    # DuckDB cannot take Arrow's float16: filters over one raised InvalidArgument ("Unsupported
    # Internal Arrow Type e") on the Arrow paths while SQL answered. Widened exactly to float32,
    # every path agrees, NaN sorting above every number as in DuckDB.
    import numpy as np

    half = pa.array(np.array([0.5, 1.5, np.nan, -0.0], np.float16))
    t = pa.table({"id": [0, 1, 2, 3], "h": half, "s": pa.StructArray.from_arrays([half], ["h"])})
    ds = lv.create_dataset(str(tmp_path / "d"), t)
    cases = {
        "h > 1": [1, 2],
        "s.h > 1": [1, 2],
        "isnan(h)": [2],
        "h = 0": [3],
        "h IN (0.5, 1.5)": [0, 1],
    }
    plain = duckdb.connect()  # the reference: DuckDB over the rows, floats widened
    plain.register("t", t.cast(pa.schema([f.with_type(importable(f.type)) for f in t.schema])))
    for where, want in cases.items():
        assert [
            r[0] for r in plain.sql(f"SELECT id FROM t WHERE {where} ORDER BY id").fetchall()
        ] == want
        assert ds.to_arrow(filter=where)["id"].to_pylist() == want, where
        assert ds.to_polars(filter=where)["id"].to_list() == want, where
        assert [i for b in ds.to_batches(filter=where) for i in b["id"].to_pylist()] == want
        assert [
            r[0] for r in ds.sql(f"SELECT id FROM self WHERE {where} ORDER BY id").fetchall()
        ] == want
    assert (
        ds.to_arrow(filter="h > 1").schema.field("h").type == pa.float16()
    )  # values keep their type
    assert ds.delete(where="h > 1").to_arrow()["id"].to_pylist() == [0, 3]


@pytest.mark.parametrize("name", ["file_row_number", "File_Row_Number"])
def test_a_column_named_like_duckdbs_row_number_reads_with_deleted_rows(tmp_path, name):
    # Rows of a fragment with deletions are read by DuckDB with file_row_number=true, which
    # refused a column of that name (a raw BinderException from sql and to_duckdb).
    ds = lv.create_dataset(str(tmp_path / "d"), pa.table({"id": [0, 1, 2], name: [9, 8, 7]}))
    ds = ds.delete(where="id = 0")
    want = [(1, 8), (2, 7)]
    assert ds.sql("SELECT * FROM self ORDER BY id").fetchall() == want
    assert ds.to_duckdb().order("id").fetchall() == want
    lake = lv.connect(str(tmp_path))
    assert lake.sql("SELECT * FROM d ORDER BY id").fetchall() == want
    assert ds.to_arrow(filter=f'"{name}" < 9').to_pylist() == [
        {"id": 1, name: 8},
        {"id": 2, name: 7},
    ]


def test_decimals_wider_than_duckdb_and_polars_are_named_errors(tmp_path):
    # decimal256 of more than 38 digits: DuckDB raised a raw NotImplementedException from
    # sql, to_duckdb and update, and polars panicked (PanicException, a BaseException).
    # Reads that need neither keep working.
    t = pa.table(
        {
            "id": [1, 2],
            "d": pa.array([decimal.Decimal("1.50"), decimal.Decimal("2.25")], pa.decimal256(40, 2)),
        }
    )
    ds = lv.create_dataset(str(tmp_path / "d"), t)
    assert ds.to_arrow().equals(t)
    assert ds.to_arrow(filter="id > 1")["id"].to_pylist() == [2]
    assert ds.to_polars(["id"])["id"].to_list() == [1, 2]
    with pytest.raises(lv.InvalidArgument, match="Decimal d:40,2"):  # refused when bound
        ds.to_arrow(filter="d > 2")
    duck = "DuckDB cannot read column\\(s\\) \\['d'\\]: decimals of more than 38 digits"
    for call in (
        lambda: ds.sql("SELECT * FROM self"),
        lambda: ds.to_duckdb(),
        lambda: ds.update(set={"id": "id + 1"}, where="id = 1"),
    ):
        with pytest.raises(lv.InvalidArgument, match=duck):
            call()
    for call in (ds.to_polars, ds.scan):
        with pytest.raises(lv.InvalidArgument, match="polars cannot hold column\\(s\\) \\['d'\\]"):
            call()
    assert ds.delete(where="id = 1").to_arrow()["id"].to_pylist() == [2]


def test_decimal256_of_38_digits_or_fewer_reads_everywhere(tmp_path):
    # decimal128 holds these exactly: DuckDB and polars read them widened (polars panicked
    # on any 256-bit decimal, however few its digits).
    d = pa.array([decimal.Decimal("1.50"), None, decimal.Decimal("-2.25")], pa.decimal256(20, 2))
    t = pa.table({"id": [1, 2, 3], "d": d, "s": pa.StructArray.from_arrays([d], ["x"])})
    ds = lv.create_dataset(str(tmp_path / "d"), t)
    want = [1, 3]
    assert ds.to_arrow(filter="d IS NOT NULL")["id"].to_pylist() == want
    assert ds.to_polars(filter="s.x IS NOT NULL")["id"].to_list() == want
    assert ds.to_polars()["d"].to_list() == d.to_pylist()
    assert [r[0] for r in ds.sql("SELECT id FROM self WHERE d < 2 ORDER BY id").fetchall()] == want

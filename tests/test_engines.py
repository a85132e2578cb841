"""Reading and writing through Ray Data and Dask (docs/engines.md).

One local Ray instance and one local Dask cluster (2 worker processes) serve the whole
module. Every read through an engine must equal `to_arrow` (same rows, order and Arrow
types) at every version of a dataset with history; every distributed write must be one
commit, written by the same writer as a local write, and leave nothing visible when it
fails. Ray and Dask are in the ``dev`` extra: they are never skipped.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import ray
import ray.data
from distributed import Client, LocalCluster
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv
import lakever.fragments as fragments
from lakever.errors import LakeverError
from tests._engine_fns import boom, die

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning",
    "ignore::FutureWarning",
    "ignore::ResourceWarning",
    "ignore::pytest.PytestUnraisableExceptionWarning",
    "ignore::UserWarning",
)

ENGINES = ["ray", "dask"]


# ----------------------------------------------------------------------------- clusters


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        configure_logging=False,
    )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Client]:
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    request.getfixturevalue("ray_cluster" if request.param == "ray" else "dask_client")
    return str(request.param)


def read(engine: str, view: Any, **kwargs: Any) -> pa.Table:
    """Read ``view`` through ``engine`` back into one Arrow table (in the engine's order)."""
    if engine == "ray":
        ds = view.to_ray(**kwargs)
        return pa.concat_tables(ray.get(ds.to_arrow_refs()))
    df = view.to_dask(**kwargs)
    return pa.Table.from_pandas(df.compute(), preserve_index=False).replace_schema_metadata()


def distribute(engine: str, table: pa.Table, parts: int) -> Any:
    """``table`` as a Ray Dataset or Dask DataFrame of ``parts`` parts, in order."""
    if engine == "ray":
        size = -(-table.num_rows // parts)
        return ray.data.from_arrow([table.slice(i * size, size) for i in range(parts)])
    size = -(-table.num_rows // parts)
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    out = dd.from_pandas(frame, npartitions=parts, sort=False)
    assert out.npartitions == parts
    return out


def rows(start: int, n: int, *, bad: int | None = None) -> pa.Table:
    ids = pa.array(range(start, start + n), pa.int64())
    value = [float(i % 97) for i in range(start, start + n)]
    if bad is not None:
        value[bad] = -1.0
    return pa.table(
        {
            "id": ids,
            "part": pa.array([f"p{i % 3}" for i in range(start, start + n)]),
            "value": pa.array(value, pa.float64()),
        }
    )


def data_files(uri: str) -> set[str]:
    root = Path(uri) / "data"
    return {str(p.relative_to(uri)) for p in root.rglob("*.parquet")}


# ----------------------------------------------------------------------------- history


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """A dataset whose versions cover appends, schema evolution (add, widen int32 ->
    int64, rename), deletion vectors, an update, partitioning and multi-row-group files."""
    uri = str(tmp_path_factory.mktemp("engines") / "hist")
    base = pa.table(
        {
            "id": pa.array(range(400), pa.int64()),
            "n": pa.array([i % 50 for i in range(400)], pa.int32()),
            "tag": pa.array([f"t{i % 4}" for i in range(400)]),
            "ts": pa.array(range(400), pa.timestamp("us", tz="UTC")),
        }
    )
    ds = lv.create_dataset(uri, base, partition_by=["tag"], max_rows_per_fragment=60)
    ds = ds.append(base.set_column(0, "id", pa.array(range(400, 800), pa.int64())))
    ds = ds.evolve(add={"score": pa.float64()})
    ds = ds.evolve(widen={"n": pa.int64()})
    ds = ds.evolve(rename={"n": "count"})
    ds = ds.delete("id % 5 = 0")
    ds = ds.update({"score": "id * 0.5"}, where="id % 7 = 1")
    more = pa.table(
        {
            "id": pa.array(range(800, 2800), pa.int64()),
            "count": pa.array([i % 9 for i in range(2000)], pa.int64()),
            "tag": pa.array(["big"] * 2000),
            "ts": pa.array(range(2000), pa.timestamp("us", tz="UTC")),
            "score": pa.array([i / 3 for i in range(2000)], pa.float64()),
        }
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fragments, "ROW_GROUP_ROWS", 300)  # several row groups per file
        ds = ds.append(more, max_rows_per_fragment=2000)
    ds = ds.delete("id BETWEEN 1000 AND 1100")
    return uri, ds.version


# ----------------------------------------------------------------------------- reading


@pytest.mark.slow
def test_round_trip_at_every_version(engine: str, history: tuple[str, int]) -> None:
    uri, last = history
    for version in range(last + 1):
        view = lv.open_dataset(uri, version=version)
        got = read(engine, view)
        assert got.equals(view.to_arrow()), f"version {version}"
        assert got.schema == view.schema


def test_one_engine_task_per_plan_task(engine: str, history: tuple[str, int]) -> None:
    view = lv.open_dataset(history[0])
    plan = view.plan().split(400)
    assert len(plan.tasks) > len(view.plan().tasks)  # some files are cut into row groups
    if engine == "dask":
        assert view.to_dask(max_rows_per_task=400).npartitions == len(plan.tasks)
    else:
        blocks = view.to_ray(max_rows_per_task=400).materialize().num_blocks()
        assert blocks == len(plan.tasks)
    assert read(engine, view, max_rows_per_task=400).equals(view.to_arrow())


FILTERS = [
    "id > 900",
    "tag = 't1' AND count < 10",
    "score IS NULL",
    "ts >= TIMESTAMP '1970-01-01 00:00:00.0001+00' OR id < 30",
    "tag IN ('big', 't3') AND id % 3 = 0",
    "id < 0",
]


@pytest.mark.slow
@settings(max_examples=8)
@given(
    where=st.sampled_from(FILTERS),
    columns=st.sampled_from([None, ["id"], ["score", "id", "tag"], ["count", "id"]]),
    split=st.sampled_from([None, 250]),
)
def test_filter_and_projection_agree_with_to_arrow_and_duckdb(
    engine: str, history: tuple[str, int], where: str, columns: list[str] | None, split: int | None
) -> None:
    view = lv.open_dataset(history[0])
    got = read(engine, view, filter=where, columns=columns, max_rows_per_task=split)
    assert got.equals(view.to_arrow(columns, filter=where))
    everything = view.to_arrow()  # unpruned, unfiltered
    cols = ", ".join(f'"{c}"' for c in (columns or everything.column_names))
    expected = duckdb.sql(f"SELECT {cols} FROM everything WHERE {where}").to_arrow_table()
    expected = expected.cast(got.schema)  # DuckDB names the UTC zone "Etc/UTC"
    order = [("id", "ascending")] if "id" in got.column_names else None
    if order:
        assert got.sort_by(order).equals(expected.sort_by(order))
    else:
        assert got.num_rows == expected.num_rows


def test_empty_snapshot_has_the_schema(engine: str, tmp_path: Path) -> None:
    view = lv.create_dataset(str(tmp_path / "e"), rows(0, 0))
    got = read(engine, view)
    assert got.num_rows == 0 and got.schema == view.schema
    assert read(engine, lv.open_dataset(str(tmp_path / "e")), columns=["value"]).num_rows == 0


def test_dask_dtypes_are_arrow_types(dask_client: Client, history: tuple[str, int]) -> None:
    view = lv.open_dataset(history[0])
    df = view.to_dask()
    assert [str(t) for t in df.dtypes] == [str(pd.ArrowDtype(f.type)) for f in view.schema]
    assert df.divisions == (None,) * (df.npartitions + 1)


def test_memory_datasets_are_refused(engine: str) -> None:
    uri = f"memory://engines/{uuid.uuid4().hex}"
    ds = lv.create_dataset(uri, rows(0, 5))
    with pytest.raises(lv.InvalidArgument, match="memory://"):
        read(engine, ds)
    with pytest.raises(lv.InvalidArgument, match="memory://"):
        ds.append(distribute(engine, rows(5, 5), 1))
    assert lv.open_dataset(uri).version == 0


@pytest.mark.parametrize(
    ("module", "method"), [("ray.data", "to_ray"), ("dask.dataframe", "to_dask")]
)
def test_missing_engine_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: str, method: str
) -> None:
    ds = lv.create_dataset(str(tmp_path / "m"), rows(0, 5))
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(lv.MissingDependency) as info:
        getattr(ds, method)()
    assert info.value.extra == module.split(".")[0]
    assert f"lakever[{info.value.extra}]" in str(info.value)


def test_import_lakever_loads_no_engine() -> None:
    import subprocess

    code = (
        "import sys, lakever; "
        "print([m for m in sys.modules if m.split('.')[0] in ('ray', 'dask', 'distributed')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- writing


def test_write_reads_back_equal_in_one_commit(engine: str, tmp_path: Path) -> None:
    uri = str(tmp_path / "w")
    table = rows(0, 3000)
    ds = lv.write_dataset(uri, distribute(engine, table, 4), partition_by=["part"], sort_by="id")
    assert ds.version == 0 and len(ds.history()) == 1
    got = ds.to_arrow()
    assert got.sort_by("id").equals(table)
    # The local writer's layout: one partition per fragment (under its directory), rows
    # sorted by id within it, statistics recorded, the content hash of the bytes.
    frags = ds.fragments()
    assert len(frags) >= 3
    for f in frags:
        data = pq.read_table(f.uri)
        assert len(set(data.column("part").to_pylist())) == 1
        assert f"part={data.column('part')[0]}" in f.path
        assert data.column("id").to_pylist() == sorted(data.column("id").to_pylist())
        assert f.stats["id"]["min"] == pc.min(data.column("id")).as_py()
        assert data.schema.field("id").metadata  # field ids written
    assert ds.verify().ok
    # Appending the same rows distributed, then overwriting: one commit each.
    ds = ds.append(distribute(engine, rows(3000, 500), 2))
    assert ds.version == 1 and ds.num_rows == 3500
    ds = lv.write_dataset(uri, distribute(engine, rows(0, 10), 2), mode="overwrite")
    assert ds.version == 2 and ds.to_arrow().sort_by("id").equals(rows(0, 10))


def test_dask_write_keeps_partition_order(dask_client: Client, tmp_path: Path) -> None:
    table = rows(0, 1000)
    ds = lv.write_dataset(str(tmp_path / "o"), distribute("dask", table, 5))
    assert ds.to_arrow().equals(table)


def test_write_round_trips_through_the_engine(
    engine: str, history: tuple[str, int], tmp_path: Path
) -> None:
    view = lv.open_dataset(history[0])
    copy = view.to_ray() if engine == "ray" else view.to_dask()
    ds = lv.write_dataset(str(tmp_path / "copy"), copy)
    assert ds.to_arrow().equals(view.to_arrow())


def test_schema_evolution_through_a_distributed_write(engine: str, tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    lv.write_dataset(uri, rows(0, 10))
    wider = rows(10, 10).append_column("extra", pa.array(["x"] * 10))
    with pytest.raises(lv.SchemaMismatch):
        lv.write_dataset(uri, distribute(engine, wider, 2), mode="append")
    ds = lv.write_dataset(uri, distribute(engine, wider, 2), mode="append", schema_mode="add")
    assert ds.version == 1 and ds.schema.names == ["id", "part", "value", "extra"]
    assert ds.to_arrow(filter="extra IS NULL").num_rows == 10


def _contract() -> Any:
    import pandera.pandas as pdr

    return pdr.DataFrameSchema({"value": pdr.Column(float, pdr.Check.ge(0))})


def test_contract_violation_in_one_part_commits_nothing(engine: str, tmp_path: Path) -> None:
    uri = str(tmp_path / "c")
    ds = lv.create_dataset(uri, rows(0, 10), contract=_contract())
    before = data_files(uri)
    bad = rows(10, 400, bad=350)  # in the last of 4 parts
    with pytest.raises(lv.ContractViolation) as info:
        ds.append(distribute(engine, bad, 4))
    assert info.value.failure_cases.num_rows >= 1
    assert type(info.value) is lv.ContractViolation
    now = lv.open_dataset(uri)
    assert now.version == 0 and now.to_arrow().equals(rows(0, 10))
    orphans = data_files(uri) - before
    _vacuum_collects(now, orphans)


def _vacuum_collects(ds: lv.Dataset, orphans: set[str]) -> None:
    """Orphans of a failed write: kept while young, deleted once past the grace."""
    young = ds.vacuum(dry_run=False)
    assert not {f.path for f in young.files} & orphans
    old = ds.vacuum(dry_run=False, grace=timedelta(0), allow_short_grace=True)
    assert orphans <= {f.path for f in old.files}
    assert not data_files(ds.uri) & orphans
    assert ds.verify().ok and lv.open_dataset(ds.uri).verify().ok


def test_primary_key_is_checked_over_all_parts(engine: str, tmp_path: Path) -> None:
    uri = str(tmp_path / "k")
    lv.create_dataset(uri, rows(0, 10), primary_key=["id"])
    dup = pa.concat_tables([rows(100, 50), rows(120, 5)])  # repeats ids across parts
    with pytest.raises(lv.PrimaryKeyViolation):
        lv.write_dataset(uri, distribute(engine, dup, 3), mode="append")
    with pytest.raises(lv.PrimaryKeyViolation):
        lv.write_dataset(uri, distribute(engine, rows(5, 10), 2), mode="append")
    assert lv.open_dataset(uri).version == 0


def test_failed_input_commits_nothing_and_vacuum_collects(engine: str, tmp_path: Path) -> None:
    uri = str(tmp_path / "f")
    ds = lv.create_dataset(uri, rows(0, 10))
    before = data_files(uri)
    source = distribute(engine, rows(0, 400), 4)
    if engine == "ray":
        failing = source.map_batches(boom, batch_format="pyarrow", max_retries=0)
    else:
        failing = source.map_partitions(boom, meta=source._meta)
    with pytest.raises(lv.EngineError) as info:
        ds.append(failing)
    assert info.value.engine == engine and "the input pipeline failed" in str(info.value)
    assert lv.open_dataset(uri).version == 0
    _vacuum_collects(lv.open_dataset(uri), data_files(uri) - before)


@pytest.mark.slow
def test_killed_dask_worker_commits_nothing(dask_client: Client, tmp_path: Path) -> None:
    uri = str(tmp_path / "d")
    ds = lv.create_dataset(uri, rows(0, 10))
    source = distribute("dask", rows(0, 400), 4)
    with pytest.raises(lv.EngineError, match="KilledWorker"):
        ds.append(source.map_partitions(die, meta=source._meta))
    assert lv.open_dataset(uri).version == 0 and lv.open_dataset(uri).verify().ok
    dask_client.wait_for_workers(2, timeout=60)


def test_distributed_write_interleaved_with_local_appends(engine: str, tmp_path: Path) -> None:
    uri = str(tmp_path / "i")
    lv.create_dataset(uri, rows(0, 10))
    errors: list[BaseException] = []

    def local(k: int) -> None:
        try:
            for j in range(4):
                lv.open_dataset(uri).append(rows(10_000 + 100 * (4 * k + j), 10))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=local, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    lv.open_dataset(uri).append(distribute(engine, rows(50_000, 600), 3))
    for t in threads:
        t.join()
    assert not errors
    ds = lv.open_dataset(uri)
    assert ds.version == 1 + 12 + 0 and ds.num_rows == 10 + 12 * 10 + 600
    ids = set(ds.to_arrow(columns=["id"]).column("id").to_pylist())
    assert set(range(50_000, 50_600)) <= ids and len(ids) == ds.num_rows
    assert sum(c.operation == "append" for c in ds.history()) == 13


def test_bad_input_is_refused_before_anything_is_written(engine: str, tmp_path: Path) -> None:
    uri = str(tmp_path / "b")
    lv.create_dataset(uri, rows(0, 10))
    before = data_files(uri)
    if engine == "dask":
        vague = pd.DataFrame({"id": [1], "x": [[1, 2]]}, dtype=object)
        with dask.config.set({"dataframe.convert-string": False}):
            frame = dd.from_pandas(vague, npartitions=1)
            with pytest.raises(lv.InvalidArgument, match="object"):
                lv.write_dataset(uri, frame, mode="append", schema_mode="add")
        with pytest.raises(lv.InvalidArgument, match="Series"):
            lv.write_dataset(uri, distribute(engine, rows(0, 4), 1)["id"], mode="append")
    else:
        with pytest.raises(lv.SchemaMismatch):
            lv.write_dataset(uri, ray.data.from_items([{"id": 1, "other": "x"}]), mode="append")
    assert data_files(uri) == before and lv.open_dataset(uri).version == 0


# ----------------------------------------------------------------------------- errors


def _all_errors() -> list[type[LakeverError]]:
    out: list[type[LakeverError]] = []
    todo: list[type[LakeverError]] = [LakeverError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return out


_LIST_FIELDS = ("columns", "examples", "features", "conflicts", "differences")


def _field(name: str) -> Any:
    if name == "failure_cases":
        return pa.table({"a": [1]})
    return [name] if name in _LIST_FIELDS else name


@pytest.mark.parametrize("cls", _all_errors(), ids=lambda c: c.__name__)
def test_every_error_pickles_with_its_fields(cls: type[LakeverError]) -> None:
    """A worker's error reaches the driver pickled: same class, message and fields."""
    import inspect
    import pickle  # noqa: TID251 - errors cross process boundaries pickled

    params = inspect.signature(cls.__init__).parameters
    kwargs = {
        n: _field(n)
        for n, p in params.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    }
    error = cls("what went wrong", **kwargs)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is cls and str(back) == "what went wrong"
    assert vars(back).keys() == vars(error).keys()
    for name, value in vars(error).items():
        if isinstance(value, pa.Table):
            assert getattr(back, name).equals(value)
        else:
            assert getattr(back, name) == value, name

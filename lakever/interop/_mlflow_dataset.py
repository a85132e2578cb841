"""The MLflow classes for lakever: a `mlflow.data.Dataset` and its `DatasetSource`.

Imported only by `lakever.interop.mlflow`, at call time, because it imports MLflow at
module level (the classes subclass MLflow's). Importing it registers
`LakeverDatasetSource` with MLflow, so ``mlflow.data.get_source(run_input).load()``
reopens the logged snapshot.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from mlflow.data.dataset import Dataset as MlflowDataset
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import register_dataset_source
from mlflow.types.schema import Array, ColSpec, DataType, Map, Object, Property, Schema

from lakever._resolve import PIN_PREFIX, pin_parts
from lakever.errors import InvalidArgument

if TYPE_CHECKING:
    from lakever.dataset import Dataset
    from lakever.ml.splits import Subset

__all__ = [
    "SOURCE_TYPE",
    "LakeverDataset",
    "LakeverDatasetSource",
    "colspec",
    "split_of",
    "subset_of",
]

#: The ``source_type`` MLflow records for a lakever input.
SOURCE_TYPE = "lakever"

_Spec = DataType | Array | Object | Map


def _spec(t: pa.DataType) -> _Spec | None:
    """The MLflow type of an Arrow type, or None when MLflow has none that holds it."""
    if pa.types.is_boolean(t):
        return DataType.boolean
    if pa.types.is_integer(t):
        narrow = t.bit_width < 32 or (t.bit_width == 32 and pa.types.is_signed_integer(t))
        return DataType.integer if narrow else DataType.long
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return DataType.float
    if pa.types.is_float64(t):
        return DataType.double
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return DataType.string
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return DataType.binary
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return DataType.datetime
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _spec(t.value_type)
        return None if inner is None else Array(inner)
    if pa.types.is_struct(t):
        props = []
        for f in t:
            inner = _spec(f.type)
            if inner is None:
                return None
            props.append(Property(f.name, inner, required=not f.nullable))
        return Object(props) if props else None
    if pa.types.is_map(t) and pa.types.is_string(t.key_type):
        inner = _spec(t.item_type)
        return None if inner is None else Map(inner)
    return None  # decimals, durations, times, unions, dictionaries: no MLflow type


def colspec(schema: pa.Schema) -> Schema | None:
    """The MLflow column spec of ``schema``, or None if a column has no MLflow type."""
    cols = []
    for f in schema:
        spec = _spec(f.type)
        if spec is None:
            return None
        cols.append(ColSpec(spec, f.name, required=not f.nullable))
    return Schema(cols) if cols else None  # type: ignore[arg-type]


class LakeverDatasetSource(DatasetSource):
    """Where a lakever input lives: its pin (``lakever:URI?...``) and, for a split or a
    sample, its definition (``split``); `load` reopens it."""

    def __init__(self, pin: str, split: dict[str, Any] | None = None) -> None:
        if not isinstance(pin, str) or not pin.startswith(PIN_PREFIX):
            raise InvalidArgument(f"a lakever source needs a pin ('lakever:URI?...'), got {pin!r}")
        self._pin = pin
        self._split = split

    @property
    def split(self) -> dict[str, Any] | None:
        """The split's definition: ``name``, ``key``, ``seed``, ``lo``, ``hi`` (or None)."""
        return self._split

    @property
    def pin(self) -> str:
        """The pin naming the snapshot (``lakever.open_dataset(pin)`` reopens it)."""
        return self._pin

    @staticmethod
    def _get_source_type() -> str:
        return SOURCE_TYPE

    def load(self) -> Dataset | Subset:
        """Reopen exactly the logged snapshot (read-only), or the logged split of it."""
        from lakever.api import open_dataset

        view = open_dataset(self._pin)
        return view if self._split is None else subset_of(view, self._split)

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return isinstance(raw_source, str) and raw_source.startswith(PIN_PREFIX)

    @classmethod
    def _resolve(cls, raw_source: Any) -> LakeverDatasetSource:
        return cls(raw_source)

    def to_dict(self) -> dict[str, Any]:
        uri, params = pin_parts(self._pin)
        split = {} if self._split is None else {"split": self._split}
        return {"pin": self._pin, "uri": uri, **params, **split}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> LakeverDatasetSource:
        pin = source_dict.get("pin") if isinstance(source_dict, dict) else None
        if not isinstance(pin, str):
            raise InvalidArgument(f"a lakever source record needs a 'pin', got {source_dict!r}")
        split = source_dict.get("split")
        return cls(pin, split if isinstance(split, dict) else None)


def split_of(subset: Subset) -> dict[str, Any]:
    """The definition of a split or sample, as JSON (bounds as decimal strings: they
    reach 2**64, beyond what JSON readers in other languages hold exactly)."""
    return {
        "name": subset.name,
        "key": list(subset.key),
        "seed": subset.seed,
        "lo": str(subset.lo),
        "hi": str(subset.hi),
    }


def subset_of(view: Dataset, split: dict[str, Any]) -> Subset:
    """The split ``split`` (from `split_of`) of the snapshot ``view`` shows."""
    from lakever.ml.splits import BUCKETS, Subset, bucket_sql

    # A run record is outside lakever's control: take exactly what `split_of` writes,
    # so a crafted or damaged record is refused instead of reopening other rows.
    key, seed, name = split.get("key"), split.get("seed"), split.get("name")
    lo, hi = (_bound(split.get(b)) for b in ("lo", "hi"))
    if (
        not isinstance(key, list)
        or not key
        or not all(isinstance(k, str) for k in key)
        or not isinstance(seed, int)
        or isinstance(seed, bool)
        or not isinstance(name, str)
        or lo is None
        or hi is None
        or not lo <= hi <= BUCKETS
    ):
        raise InvalidArgument(
            f"malformed lakever split record {split!r}: expected name (text), key (a list of "
            "column names), seed (an int) and lo <= hi (decimal strings in [0, 2**64]) as "
            "lakever logs them; the run's record was not written by lakever or was altered"
        )
    return Subset(view, name, tuple(key), seed, lo, hi, bucket_sql(view.schema, key, seed))


def _bound(text: Any) -> int | None:
    """A split bound as `split_of` writes it (decimal digits, at most 20), else None."""
    ok = isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 20
    return int(text) if ok else None


class LakeverDataset(MlflowDataset):
    """One lakever snapshot (or a split of it) as an MLflow dataset: source = the pin.

    The digest is the snapshot id (32 hex digits; MLflow stores up to 36); for a split,
    the first 32 hex digits of the SHA-256 of the snapshot id and the split's definition,
    since MLflow keeps one dataset per name and digest in an experiment.
    """

    def __init__(
        self,
        record: dict[str, Any],
        arrow_schema: pa.Schema,
        name: str,
        split: dict[str, Any] | None = None,
    ) -> None:
        self._record = record
        self._arrow_schema = arrow_schema
        self._split = split
        source = LakeverDatasetSource(record["pin"], split)
        super().__init__(source, name=name, digest=self._compute_digest())

    def _compute_digest(self) -> str:
        snapshot_id = str(self._record["snapshot_id"])
        if self._split is None:
            return snapshot_id
        text = json.dumps([snapshot_id, self._split], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def source(self) -> LakeverDatasetSource:
        assert isinstance(self._source, LakeverDatasetSource)
        return self._source

    @property
    def profile(self) -> dict[str, Any]:
        """Totals and identity of the snapshot (reads no data)."""
        r = self._record
        keys = ("num_rows", "num_fragments", "size_bytes", "branch", "version", "snapshot_id")
        more = ("timestamp", "tags", "merkle_root", "contract_digest", "lakever_version")
        out = {k: r[k] for k in keys + more}
        if self._split is not None:
            out["split"] = self._split
        return out

    @property
    def schema(self) -> Schema | None:
        """The MLflow column spec (None when a column has no MLflow type)."""
        return colspec(self._arrow_schema)

    def to_dict(self) -> dict[str, str]:
        config = super().to_dict()
        spec = self.schema
        schema: dict[str, Any] = {"lakever_columns": self._record["columns"]}
        if spec is not None:
            schema["mlflow_colspec"] = spec.to_dict()
        config["schema"] = json.dumps(schema)
        config["profile"] = json.dumps(self.profile)
        return config


register_dataset_source(LakeverDatasetSource)  # type: ignore[arg-type]

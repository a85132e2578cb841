"""The MLflow classes for lakever: a `mlflow.data.Dataset` and its `DatasetSource`.

Imported only by `lakever.interop.mlflow`, at call time, because it imports MLflow at
module level (the classes subclass MLflow's). Importing it registers
`LakeverDatasetSource` with MLflow, so ``mlflow.data.get_source(run_input).load()``
reopens the logged snapshot.
"""

from __future__ import annotations

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

__all__ = ["SOURCE_TYPE", "LakeverDataset", "LakeverDatasetSource", "colspec"]

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
    """Where a lakever input lives: its pin (``lakever:URI?...``); `load` reopens it."""

    def __init__(self, pin: str) -> None:
        if not isinstance(pin, str) or not pin.startswith(PIN_PREFIX):
            raise InvalidArgument(f"a lakever source needs a pin ('lakever:URI?...'), got {pin!r}")
        self._pin = pin

    @property
    def pin(self) -> str:
        """The pin naming the snapshot (``lakever.open_dataset(pin)`` reopens it)."""
        return self._pin

    @staticmethod
    def _get_source_type() -> str:
        return SOURCE_TYPE

    def load(self) -> Dataset:
        """Reopen exactly the logged snapshot (read-only)."""
        from lakever.api import open_dataset

        return open_dataset(self._pin)

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return isinstance(raw_source, str) and raw_source.startswith(PIN_PREFIX)

    @classmethod
    def _resolve(cls, raw_source: Any) -> LakeverDatasetSource:
        return cls(raw_source)

    def to_dict(self) -> dict[str, Any]:
        uri, params = pin_parts(self._pin)
        return {"pin": self._pin, "uri": uri, **params}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> LakeverDatasetSource:
        pin = source_dict.get("pin") if isinstance(source_dict, dict) else None
        if not isinstance(pin, str):
            raise InvalidArgument(f"a lakever source record needs a 'pin', got {source_dict!r}")
        return cls(pin)


class LakeverDataset(MlflowDataset):
    """One lakever snapshot as an MLflow dataset: digest = snapshot id, source = pin."""

    def __init__(self, record: dict[str, Any], arrow_schema: pa.Schema, name: str) -> None:
        self._record = record
        self._arrow_schema = arrow_schema
        # Snapshot ids are 32 hex digits; MLflow stores digests of up to 36 characters.
        super().__init__(
            LakeverDatasetSource(record["pin"]), name=name, digest=record["snapshot_id"]
        )

    def _compute_digest(self) -> str:
        return str(self._record["snapshot_id"])

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
        return {k: r[k] for k in keys + more}

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

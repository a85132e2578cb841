"""MLflow: log a snapshot as a run's dataset input, and reopen what a run trained on.

`log_input` records a `lakever.Dataset` (the snapshot it shows) as an MLflow dataset
input of a run: name (the dataset's last path segment), digest (the snapshot id: 32
hex digits, within MLflow's 36), source type ``"lakever"`` with the pin as source,
the column spec and the lakever columns with field ids as schema, and row count,
fragments, bytes, tags and Merkle root as profile. The input's own tags carry the
context (``mlflow.data.context``) and the pin (``lakever.pin``), so `open_input`
reopens exactly that snapshot, even after the dataset moved on.

MLflow is imported when one of these runs (``pip install 'lakever[mlflow]'``); the
public import path is ``lakever.integrations.mlflow``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lakever._resolve import PIN_PREFIX
from lakever.errors import InvalidArgument, TrackingError
from lakever.interop import require
from lakever.ml.lineage import dataset_name

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput, Run
    from mlflow.tracking import MlflowClient

    from lakever.dataset import Dataset
    from lakever.view import SnapshotView

__all__ = ["PIN_TAG", "SNAPSHOT_TAG", "input_pins", "load_inputs", "log_input", "open_input"]

#: Input tag holding the full pin of the logged snapshot.
PIN_TAG = "lakever.pin"
#: Input tag holding the full snapshot id.
SNAPSHOT_TAG = "lakever.snapshot_id"
_CONTEXT_TAG = "mlflow.data.context"  # mlflow.utils.mlflow_tags.MLFLOW_DATASET_CONTEXT
_MAX_TAG_VALUE = 500  # MLflow's limit on an input tag's value (mlflow.utils.validation)


def _client() -> MlflowClient:
    require("mlflow", "mlflow")
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _fail(what: str, exc: Exception, run_id: str | None) -> TrackingError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TrackingError(
        f"MLflow could not {what}: {first} (tracking URI: {_tracking_uri()}); check the run id "
        "and that the tracking server is reachable",
        run_id=run_id,
    )


def _tracking_uri() -> str:
    import mlflow

    return str(mlflow.get_tracking_uri())


def _get_run(client: MlflowClient, run: Any) -> Run:
    from mlflow.entities import Run
    from mlflow.exceptions import MlflowException

    if isinstance(run, Run):
        return run
    if not isinstance(run, str) or not run:
        raise InvalidArgument(
            f"run must be an MLflow run id (str) or mlflow.entities.Run, got {run!r}"
        )
    try:
        return client.get_run(run)
    except MlflowException as exc:
        raise _fail(f"fetch run {run!r}", exc, run) from exc


def log_input(
    ds: SnapshotView,
    context: str = "training",
    *,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> str:
    """Log ``ds``'s snapshot as a dataset input of the active MLflow run (or ``run_id``).

    Args:
        ds: the `lakever.Dataset` whose snapshot the run reads (a branch head, a tag, a
            version: whatever it shows is what is logged).
        context: what the run used it for ("training", "evaluation", ...).
        name: the dataset name MLflow shows (default: the dataset's last path segment).
        tags: more input tags (str -> str).
        run_id: log to this run instead of the active one.

    Returns:
        The pin that was logged (``lakever.open_dataset(pin)`` reopens the snapshot).

    Raises:
        InvalidArgument: no active run and no ``run_id``; a bad name, context or tag; the
            run already has this snapshot under this name in another context (MLflow keeps
            one input per name and digest per run: pass another ``name``).
        TrackingError: MLflow refused the input or could not be reached.
        MissingDependency: MLflow is not installed.
    """
    from lakever.view import SnapshotView

    if not isinstance(ds, SnapshotView):
        raise InvalidArgument(f"log_input needs a lakever.Dataset, got {type(ds).__name__}")
    if not isinstance(context, str) or not context:
        raise InvalidArgument(f"context must be a non-empty string, got {context!r}")
    extra = dict(tags or {})
    bad = {k: v for k, v in extra.items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad or (tags is not None and not isinstance(tags, Mapping)):
        raise InvalidArgument(f"tags must map str to str, got {bad or tags!r}")
    reserved = sorted(k for k in extra if k in (PIN_TAG, SNAPSHOT_TAG, _CONTEXT_TAG))
    if reserved:
        raise InvalidArgument(f"tags {reserved} are set by log_input; use other keys")
    if name is None:
        name = dataset_name(ds.uri)
    if not isinstance(name, str) or not name or len(name) > 500:
        raise InvalidArgument(
            f"name must be a non-empty string of at most 500 characters: {name!r}"
        )
    client = _client()
    import mlflow
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    from lakever.interop._mlflow_dataset import LakeverDataset

    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise InvalidArgument(
                "no active MLflow run: call log_input inside 'with mlflow.start_run():' "
                "or pass run_id="
            )
        run_id = active.info.run_id
    record = ds.lineage_record()
    dataset = LakeverDataset(record, ds.schema, name)
    run = _get_run(client, run_id)
    for old in run.inputs.dataset_inputs if run.inputs else []:
        same = old.dataset.name == name and old.dataset.digest == dataset.digest
        old_context = _tags(old).get(_CONTEXT_TAG)
        if same and old_context != context:
            raise InvalidArgument(
                f"run {run_id} already has snapshot {ds.snapshot_id[:12]} as {name!r} in context "
                f"{old_context!r}; MLflow keeps one input per name and snapshot per run, so "
                f"pass another name, e.g. name={name + '-' + context!r}"
            )
    pin: str = record["pin"]
    input_tags = {_CONTEXT_TAG: context, SNAPSHOT_TAG: ds.snapshot_id, **extra}
    if len(pin) <= _MAX_TAG_VALUE:  # else the dataset's source still holds it
        input_tags[PIN_TAG] = pin
    entity = dataset._to_mlflow_entity()
    item = DatasetInput(entity, [InputTag(k, v) for k, v in input_tags.items()])
    try:
        client.log_inputs(run_id, datasets=[item])
    except MlflowException as exc:
        raise _fail(f"log the input {name!r} to run {run_id!r}", exc, run_id) from exc
    return pin


def _tags(item: DatasetInput) -> dict[str, str]:
    return {t.key: t.value for t in item.tags}


def _pin_of(item: DatasetInput) -> str | None:
    """The pin of a lakever input (None for other inputs)."""
    if item.dataset.source_type != "lakever":
        return None
    pin = _tags(item).get(PIN_TAG)
    if pin is None:
        try:
            pin = json.loads(item.dataset.source).get("pin")
        except (ValueError, AttributeError):
            pin = None
    if not isinstance(pin, str) or not pin.startswith(PIN_PREFIX):
        raise TrackingError(
            f"the lakever input {item.dataset.name!r} has no readable pin in its tags or "
            f"source ({item.dataset.source[:200]!r}); it was not logged by lakever",
            run_id=None,
        )
    return pin


def input_pins(run: str | Run, context: str | None = None) -> list[tuple[str, str, str]]:
    """The lakever inputs of ``run`` as ``(name, context, pin)``, in MLflow's order;
    only those logged in ``context`` if given."""
    r = _get_run(_client(), run)
    out = []
    for item in r.inputs.dataset_inputs if r.inputs else []:
        pin = _pin_of(item)
        ctx = _tags(item).get(_CONTEXT_TAG, "")
        if pin is not None and (context is None or ctx == context):
            out.append((item.dataset.name, ctx, pin))
    return out


def load_inputs(run: str | Run, context: str | None = None) -> list[Dataset]:
    """Reopen every lakever snapshot ``run`` logged (in ``context`` if given), read-only.

    Raises:
        TrackingError: the run cannot be fetched.
        VersionNotFound, DatasetNotFound: a logged snapshot is gone (expired or deleted).
    """
    from lakever.api import open_dataset

    return [open_dataset(pin) for _, _, pin in input_pins(run, context)]


def open_input(run: str | Run, context: str = "training", *, name: str | None = None) -> Dataset:
    """Reopen exactly the snapshot ``run`` logged in ``context`` (and ``name``), read-only.

    Raises:
        InvalidArgument: the run has no lakever input there, or several (pass ``name``).
        TrackingError: the run cannot be fetched.
        VersionNotFound, DatasetNotFound: the logged snapshot is gone (expired or deleted).
    """
    from lakever.api import open_dataset

    everything = input_pins(run, None)
    found = [p for p in everything if p[1] == context and (name is None or p[0] == name)]
    run_id = run if isinstance(run, str) else run.info.run_id
    if len(found) != 1:
        logged = [f"{n!r} ({c})" for n, c, _ in everything] or ["none"]
        wanted = f"context {context!r}" + (f" and name {name!r}" if name is not None else "")
        advice = "pass name= to choose one" if found else "check context= and name="
        raise InvalidArgument(
            f"run {run_id} has {len(found) or 'no'} lakever input(s) in {wanted}; lakever "
            f"inputs logged: {', '.join(logged)}; {advice}"
        )
    return open_dataset(found[0][2])

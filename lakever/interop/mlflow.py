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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakever._resolve import PIN_PREFIX
from lakever.errors import InvalidArgument, TrackingError
from lakever.interop import require
from lakever.ml.lineage import dataset_name

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput, Run
    from mlflow.tracking import MlflowClient

    from lakever.dataset import Dataset
    from lakever.ml.splits import Subset
    from lakever.view import SnapshotView

__all__ = [
    "PIN_TAG",
    "SNAPSHOT_TAG",
    "SPLIT_TAG",
    "input_pins",
    "load_inputs",
    "log_input",
    "open_input",
]

#: Input tag holding the full pin of the logged snapshot.
PIN_TAG = "lakever.pin"
#: Input tag holding the full snapshot id.
SNAPSHOT_TAG = "lakever.snapshot_id"
#: Input tag holding a split's definition (JSON: name, key, seed, lo, hi), for subsets.
SPLIT_TAG = "lakever.split"
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
    ds: SnapshotView | Subset,
    context: str = "training",
    *,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> str:
    """Log ``ds``'s snapshot as a dataset input of the active MLflow run (or ``run_id``).

    Args:
        ds: the `lakever.Dataset` whose snapshot the run reads (a branch head, a tag, a
            version: whatever it shows is what is logged), or a `lakever.Subset` of one
            (``ds.split(...)["train"]``, ``ds.sample(...)``): its definition is logged too.
        context: what the run used it for ("training", "evaluation", ...).
        name: the dataset name MLflow shows (default: the dataset's last path segment,
            then ``.`` and the split's name for a subset, e.g. ``"events.train"``).
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
    from lakever.ml.splits import Subset
    from lakever.view import SnapshotView

    subset = ds if isinstance(ds, Subset) else None
    view = subset.view if subset is not None else ds
    if not isinstance(view, SnapshotView):
        raise InvalidArgument(
            f"log_input needs a lakever.Dataset or Subset, got {type(ds).__name__}"
        )
    if not isinstance(context, str) or not context:
        raise InvalidArgument(f"context must be a non-empty string, got {context!r}")
    extra = dict(tags or {})
    bad = {k: v for k, v in extra.items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad or (tags is not None and not isinstance(tags, Mapping)):
        raise InvalidArgument(f"tags must map str to str, got {bad or tags!r}")
    reserved = sorted(k for k in extra if k in (PIN_TAG, SNAPSHOT_TAG, SPLIT_TAG, _CONTEXT_TAG))
    if reserved:
        raise InvalidArgument(f"tags {reserved} are set by log_input; use other keys")
    if name is None:
        name = dataset_name(view.uri) + ("" if subset is None else f".{subset.name}")
    if not isinstance(name, str) or not name or len(name) > 500:
        raise InvalidArgument(
            f"name must be a non-empty string of at most 500 characters: {name!r}"
        )
    client = _client()
    import mlflow
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    from lakever.interop._mlflow_dataset import LakeverDataset, split_of

    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise InvalidArgument(
                "no active MLflow run: call log_input inside 'with mlflow.start_run():' "
                "or pass run_id="
            )
        run_id = active.info.run_id
    record = view.lineage_record()
    split = None if subset is None else split_of(subset)
    if subset is not None:
        record["num_rows"] = subset.count()
    dataset = LakeverDataset(record, view.schema, name, split)
    run = _get_run(client, run_id)
    for old in run.inputs.dataset_inputs if run.inputs else []:
        same = old.dataset.name == name and old.dataset.digest == dataset.digest
        old_context = _tags(old).get(_CONTEXT_TAG)
        if same and old_context != context:
            raise InvalidArgument(
                f"run {run_id} already has snapshot {view.snapshot_id[:12]} as {name!r} in context "
                f"{old_context!r}; MLflow keeps one input per name and snapshot per run, so "
                f"pass another name, e.g. name={name + '-' + context!r}"
            )
    pin: str = record["pin"]
    input_tags = {_CONTEXT_TAG: context, SNAPSHOT_TAG: view.snapshot_id, **extra}
    if split is not None:
        input_tags[SPLIT_TAG] = json.dumps(split, separators=(",", ":"))
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


@dataclass(frozen=True)
class _Logged:
    name: str
    context: str
    pin: str
    split: dict[str, Any] | None

    def open(self) -> Dataset | Subset:
        from lakever.api import open_dataset
        from lakever.interop._mlflow_dataset import subset_of

        view = open_dataset(self.pin)
        return view if self.split is None else subset_of(view, self.split)


def _logged(item: DatasetInput) -> _Logged | None:
    """A lakever input's name, context, pin and split (None for other inputs)."""
    if item.dataset.source_type != "lakever":
        return None
    tags = _tags(item)
    try:
        source = json.loads(item.dataset.source)
    except ValueError:
        source = None
    source = source if isinstance(source, dict) else {}
    pin = tags.get(PIN_TAG, source.get("pin"))
    if not isinstance(pin, str) or not pin.startswith(PIN_PREFIX):
        raise TrackingError(
            f"the lakever input {item.dataset.name!r} has no readable pin in its tags or "
            f"source ({item.dataset.source[:200]!r}); it was not logged by lakever",
            run_id=None,
        )
    split = source.get("split")
    if split is None and SPLIT_TAG in tags:
        try:
            split = json.loads(tags[SPLIT_TAG])
        except ValueError:
            split = None
    split = split if isinstance(split, dict) else None
    return _Logged(item.dataset.name, tags.get(_CONTEXT_TAG, ""), pin, split)


def _inputs(run: str | Run) -> list[_Logged]:
    r = _get_run(_client(), run)
    found = (_logged(item) for item in (r.inputs.dataset_inputs if r.inputs else []))
    return [x for x in found if x is not None]


def input_pins(run: str | Run, context: str | None = None) -> list[tuple[str, str, str]]:
    """The lakever inputs of ``run`` as ``(name, context, pin)``, in MLflow's order;
    only those logged in ``context`` if given."""
    return [(x.name, x.context, x.pin) for x in _inputs(run) if context in (None, x.context)]


def load_inputs(run: str | Run, context: str | None = None) -> list[Dataset | Subset]:
    """Reopen every lakever input ``run`` logged (in ``context`` if given), read-only: a
    snapshot as a `lakever.Dataset`, a split or sample as the same `lakever.Subset`.

    Raises:
        TrackingError: the run cannot be fetched.
        VersionNotFound, DatasetNotFound: a logged snapshot is gone (expired or deleted).
    """
    return [x.open() for x in _inputs(run) if context in (None, x.context)]


def open_input(
    run: str | Run, context: str = "training", *, name: str | None = None
) -> Dataset | Subset:
    """Reopen exactly what ``run`` logged in ``context`` (and ``name``), read-only: the
    snapshot as a `lakever.Dataset`, or, for a logged split or sample, the same
    `lakever.Subset` of it.

    Raises:
        InvalidArgument: the run has no lakever input there, or several (pass ``name``).
        TrackingError: the run cannot be fetched.
        VersionNotFound, DatasetNotFound: the logged snapshot is gone (expired or deleted).
    """
    everything = _inputs(run)
    found = [x for x in everything if x.context == context and name in (None, x.name)]
    run_id = run if isinstance(run, str) else run.info.run_id
    if len(found) != 1:
        logged = [f"{x.name!r} ({x.context})" for x in everything] or ["none"]
        wanted = f"context {context!r}" + (f" and name {name!r}" if name is not None else "")
        advice = "pass name= to choose one" if found else "check context= and name="
        raise InvalidArgument(
            f"run {run_id} has {len(found) or 'no'} lakever input(s) in {wanted}; lakever "
            f"inputs logged: {', '.join(logged)}; {advice}"
        )
    return found[0].open()

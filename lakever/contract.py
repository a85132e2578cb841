"""Everything pandera: contracts to and from JSON, validation, failure cases.

A contract is a pandera schema. The polars API (``pandera.polars``) is the
primary form: it validates Arrow data through polars, without pandas. pandas-API
schemas are accepted too; they validate the rows as `Dataset.to_pandas` would
return them. A contract is stored as pandera's own JSON (never pickle), and one
that pandera cannot serialize faithfully is refused when it is attached.

pandera is imported lazily (it costs most of a second), only when a contract is
attached, loaded or checked. This module reports failures (`ContractViolation`
with the failure cases); whether a commit proceeds is decided by its caller.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterable
from typing import Any, Literal

import pyarrow as pa

from lakever._convert import arrow_to_pandas, arrow_to_polars
from lakever.errors import ContractViolation, InvalidArgument

__all__ = [
    "Api",
    "check",
    "failures",
    "from_json",
    "load_contract",
    "to_json",
    "validate_batches",
    "violation",
]

Api = Literal["polars", "pandas"]

#: Failure cases shown in a message; the full list is in ``ContractViolation.failure_cases``.
_SHOWN = 8
_FAILURE_SCHEMA = pa.schema(
    [  # type: ignore[arg-type]  # pyarrow-stubs: Field[...] of differing types is list[object]
        pa.field("column", pa.string()),
        pa.field("check", pa.string()),
        pa.field("failure_case", pa.string()),
        pa.field("count", pa.int64()),
    ]
)
_lock = threading.Lock()
_loaded: dict[tuple[str, str], Any] = {}


def _api_of(contract: Any) -> Api | None:
    classes = contract.__mro__ if isinstance(contract, type) else type(contract).__mro__
    modules = {c.__module__ for c in classes}
    if any(m.startswith("pandera.api.polars") for m in modules):
        return "polars"
    if any(m.startswith("pandera.api.pandas") for m in modules):
        return "pandas"
    return None


def _schema(contract: Any) -> tuple[Any, Api]:
    api = _api_of(contract)
    if api is None:
        raise InvalidArgument(
            "contract must be a pandera DataFrameSchema or DataFrameModel (polars API: "
            f"`import pandera.polars as pa`; or the pandas API), got {contract!r}"
        )
    if isinstance(contract, type):
        model: Any = contract  # a DataFrameModel subclass
        return model.to_schema(), api
    if not hasattr(contract, "to_json") or not hasattr(contract, "columns"):
        raise InvalidArgument(
            f"contract must be a pandera DataFrameSchema or DataFrameModel, got {contract!r}"
        )
    return contract, api


def _fingerprint(schema: Any) -> Any:
    """What must survive a JSON round trip for the stored contract to mean the same."""

    def checks(cs: Iterable[Any] | None) -> list[str]:
        return sorted(str(getattr(c, "name", c)) for c in cs or ())

    columns = {
        name: (
            str(col.dtype),
            col.nullable,
            col.unique,
            col.required,
            col.coerce,
            col.regex,
            checks(col.checks),
        )
        for name, col in schema.columns.items()
    }
    index = getattr(schema, "index", None)
    return (
        columns,
        checks(schema.checks),
        checks(getattr(index, "checks", None)),
        schema.strict,
        schema.coerce,
        schema.unique,
    )


def to_json(contract: Any) -> tuple[Api, str]:
    """Serialize a pandera schema or DataFrameModel class as pandera's JSON; return (api, text).

    Raises:
        InvalidArgument: not a pandera schema, or one pandera cannot serialize
            faithfully (custom checks such as lambdas are silently dropped by pandera).
    """
    schema, api = _schema(contract)
    with warnings.catch_warnings(record=True) as caught:
        # pandera reports a check it cannot serialize with a UserWarning and drops it:
        # record it here and refuse the contract instead of storing a weaker one.
        warnings.simplefilter("always")
        text = schema.to_json()
    lost = [w for w in caught if "registered checks" in str(w.message)]
    for w in caught:
        if w not in lost:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if lost or _fingerprint(schema) != _fingerprint(from_json(api, text)):
        detail = str(lost[0].message) if lost else "the JSON form differs from the schema"
        raise InvalidArgument(
            "the contract cannot be stored faithfully: pandera serializes only built-in and "
            f"registered checks ({detail}). Use built-in checks (e.g. Check.ge, "
            "Check.in_range, Check.isin, Check.str_matches, nullable=False, unique=True) or "
            "register the check with pandera.extensions.register_check_method"
        )
    return api, text


def from_json(api: str, text: str) -> Any:
    """Load a stored contract (a pandera DataFrameSchema of ``api``), cached per process."""
    key = (api, text)
    with _lock:
        hit = _loaded.get(key)
    if hit is not None:
        return hit
    schema: Any
    if api == "polars":
        from pandera.api.polars.container import DataFrameSchema as PolarsSchema

        schema = PolarsSchema.from_json(text)
    else:
        from pandera.api.pandas.container import DataFrameSchema as PandasSchema

        schema = PandasSchema.from_json(text)
    if schema.to_json() != text:
        raise InvalidArgument(
            "the dataset's contract cannot be loaded faithfully in this process: pandera "
            f"dropped the checks {_lost_checks(text, schema.to_json())}, which are not "
            "registered here. Import the module that registers them "
            "(pandera.extensions.register_check_method) before using this dataset"
        )
    with _lock:
        _loaded[key] = schema
    return schema


#: Column properties pandera's JSON may omit when they hold their default value.
_PROPERTIES = frozenset(
    {
        "checks",
        "coerce",
        "default",
        "description",
        "drop_invalid_rows",
        "dtype",
        "metadata",
        "name",
        "nullable",
        "regex",
        "report_duplicates",
        "required",
        "title",
        "unique",
    }
)


def load_contract(text: str) -> Any:
    """Load a contract from pandera's JSON or YAML text.

    The text is what pandera's ``schema.to_json()`` / ``to_yaml()`` writes (and what
    ``lakever schema --json`` prints under ``"contract"``). ``schema_type`` chooses
    the API: ``polars_dataframe`` (the default when absent) or ``dataframe`` (pandas).

    Example:
        ``ds.set_contract(lv.load_contract(Path("orders.yaml").read_text()))``

    Raises:
        InvalidArgument: the text is not a pandera contract, or names checks that
            pandera does not know in this process (it would silently drop them).
    """
    import yaml
    from pandera.errors import SchemaDefinitionError

    if not isinstance(text, str):
        raise InvalidArgument(f"load_contract needs the contract's text, got {text!r}")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError:
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "cannot be parsed"
            raise InvalidArgument(
                f"the contract is neither JSON nor YAML: {problem}{where}"
            ) from None
    if (
        not isinstance(spec, dict)
        or "columns" not in spec
        or not isinstance(spec["columns"] or {}, dict)
    ):
        raise InvalidArgument(
            "the contract must be a pandera schema: a mapping with 'columns' (see pandera's "
            f"schema.to_json()), got {text[:80]!r}"
        )
    spec.setdefault("schema_type", "polars_dataframe")
    api: Api = "pandas" if spec["schema_type"] == "dataframe" else "polars"
    schema: Any
    try:
        if api == "polars":
            from pandera.api.polars.container import DataFrameSchema as PolarsSchema

            schema = PolarsSchema.from_json(json.dumps(spec))
        else:
            from pandera.api.pandas.container import DataFrameSchema as PandasSchema

            schema = PandasSchema.from_json(json.dumps(spec))
    except (SchemaDefinitionError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidArgument(f"the contract is not a valid pandera schema: {exc}") from exc
    kept = json.loads(schema.to_json()).get("columns") or {}
    lost = sorted(
        f"{name}.{key}"
        for name, props in (spec.get("columns") or {}).items()
        for key in props or {}
        if key not in _PROPERTIES and key not in (kept.get(name) or {})
    )
    if lost:
        raise InvalidArgument(
            f"the contract names checks pandera does not know: {', '.join(lost)}; use built-in "
            "checks (greater_than_or_equal_to, in_range, isin, str_matches, ...) or register "
            "them (pandera.extensions.register_check_method) before loading the contract"
        )
    return schema


def _lost_checks(stored: str, loaded: str) -> list[str]:
    """Names of column properties or checks present in ``stored`` but not in ``loaded``."""
    a, b = json.loads(stored), json.loads(loaded)
    lost = {
        key
        for name, spec in (a.get("columns") or {}).items()
        for key in spec or {}
        if key not in ((b.get("columns") or {}).get(name) or {})
    }
    lost |= {key for key in a if key not in b}
    return sorted(lost)


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)


def _summarize(rows: Iterable[dict[str, Any]]) -> pa.Table:
    counts: dict[tuple[str | None, str | None, str | None], int] = {}
    for r in rows:
        check = _text(r.get("check"))
        value = _text(r.get("failure_case"))
        column = _text(r.get("column"))
        if check in ("column_in_dataframe", "column_in_schema"):
            column = value  # schema-level failures name the column in failure_case
        key = (column, check, value)
        counts[key] = counts.get(key, 0) + int(r.get("count", 1))
    return pa.Table.from_pylist(
        [
            {"column": c, "check": k, "failure_case": v, "count": n}
            for (c, k, v), n in counts.items()
        ],
        schema=_FAILURE_SCHEMA,
    )


def failures(api: str, text: str, table: pa.Table) -> pa.Table | None:
    """Validate ``table`` against the contract; return the failure cases (None: it passes)."""
    from pandera.errors import SchemaError, SchemaErrors

    schema = from_json(api, text)
    frame = arrow_to_polars(table) if api == "polars" else arrow_to_pandas(table)
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        fc = exc.failure_cases
        rows = fc.to_dicts() if api == "polars" else fc.to_dict("records")
        return _summarize(rows)
    except SchemaError as exc:  # raised by some checks even in lazy mode
        check = getattr(exc, "check", None)
        return _summarize([{"column": None, "check": str(check), "failure_case": str(exc)}])
    return None


#: What to do about a violation found while committing.
COMMIT_ADVICE = (
    "Nothing was committed. Fix the data, or change the contract (Dataset.set_contract); "
    "validate='skip' bypasses the check in an emergency and is recorded in the commit"
)


def violation(what: str, cases: pa.Table, *, advice: str = COMMIT_ADVICE) -> ContractViolation:
    """Build the error for failure cases: the first few in the message, all in the field."""
    rows = cases.to_pylist()
    total = sum(r["count"] for r in rows)
    shown = [
        f"column {r['column']!r} failed {r['check']} for "
        f"{'null' if r['failure_case'] is None else repr(r['failure_case'])} ({r['count']} row(s))"
        for r in rows[:_SHOWN]
    ]
    more = f"; and {len(rows) - _SHOWN} more (see .failure_cases)" if len(rows) > _SHOWN else ""
    return ContractViolation(
        f"{what} violates the dataset's contract ({total} failure(s)): "
        + "; ".join(shown)
        + more
        + ". "
        + advice,
        failure_cases=cases,
    )


def check(api: str, text: str, table: pa.Table, *, what: str) -> None:
    """Raise `ContractViolation` if ``table`` breaks the contract."""
    cases = failures(api, text, table)
    if cases is not None:
        raise violation(what, cases)


def validate_batches(
    api: str, text: str, batches: Iterable[pa.Table], *, what: str, advice: str
) -> int:
    """Validate every batch; raise one `ContractViolation` for all failures, else return rows."""
    rows = 0
    found: list[dict[str, Any]] = []
    for batch in batches:
        rows += batch.num_rows
        cases = failures(api, text, batch)
        if cases is not None:
            found.extend(cases.to_pylist())
    if found:
        raise violation(what, _summarize(found), advice=advice)
    return rows

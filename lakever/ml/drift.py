"""Drift between two snapshots: per-column profiles and distribution shift, in DuckDB.

`profile` describes the columns of one snapshot; `drift` compares two snapshots of
one dataset column by column, matched by field id (a renamed column is still the
same column). Both read the snapshots through lakever's own read path
(`lakever.SnapshotView.to_duckdb`: live rows only, deletes applied, fragments
verified) and aggregate in DuckDB; only aggregates come back to Python.

Decisions (docs/drift.md explains each):

- Kinds, from the Arrow type: booleans, strings and dictionaries are categorical;
  integers, floats, decimals, dates and timestamps numeric (dates and timestamps as
  seconds since the epoch); anything else (binary, nested, durations...) "other",
  compared on row counts and null rates only. ``categorical=`` treats integer
  columns (codes, ids) as categorical.
- Missing values: null, and NaN in float columns. ``null_rate`` counts both; they
  are left out of every distribution. ±inf are values: they are binned (in the
  outer bins) but left out of min/max/mean/std.
- Numeric bins come from the reference snapshot ``a``: cut points at ``a``'s
  minimum, its quantiles 1/bins ... (bins-1)/bins (``quantile_disc``: values ``a``
  has) and just above its maximum, plus two open-ended outer bins, so values of
  ``b`` below or above ``a``'s range fall in bins of their own, where ``a`` has none.
- PSI = sum((q - p) * ln(q / p)) over those bins, each proportion raised to at
  least `EPSILON` (an empty bin would make it infinite). KS = the largest gap
  between the two cumulative distributions at the bin edges (the binned statistic:
  a lower bound of the exact one). JS = the Jensen-Shannon distance, base 2 (0 =
  same frequencies, 1 = no category in common), over the categories of both sides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lakever.errors import InvalidArgument
from lakever.ml._drift_sql import compare_categories
from lakever.ml._profile import ColumnProfile, profile, profile_on, session

if TYPE_CHECKING:
    import duckdb

    from lakever.view import SnapshotView

__all__ = [
    "EPSILON",
    "ColumnDrift",
    "ColumnProfile",
    "DriftReport",
    "DriftThresholds",
    "drift",
    "drift_between",
    "ks_statistic",
    "profile",
    "psi",
]

#: Smallest proportion a bin counts with in PSI (an empty bin would make it infinite).
EPSILON = 1e-4
#: At most this many new and vanished categories are listed per column (the most frequent).
LISTED = 50


@dataclass(frozen=True)
class DriftThresholds:
    """When a column counts as drifted: a statistic strictly above its threshold.

    Args:
        psi: population stability index of a numeric column (0.1-0.25 is usually read
            as a moderate shift, above 0.25 as a major one).
        ks: binned Kolmogorov-Smirnov statistic of a numeric column (0 to 1).
        js: Jensen-Shannon distance of a categorical column (0 to 1).
        null_rate: absolute change of a column's null rate (0 to 1).
        schema: flag columns added, removed, renamed or retyped.
        rows: relative change of the row count, ``|rows_b - rows_a| / rows_a``,
            that flags the report (None: never).
    """

    psi: float = 0.2
    ks: float = 0.1
    js: float = 0.1
    null_rate: float = 0.05
    schema: bool = True
    rows: float | None = None

    def __post_init__(self) -> None:
        for name in ("psi", "ks", "js", "null_rate", "rows"):
            value = getattr(self, name)
            if name == "rows" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidArgument(
                    f"DriftThresholds {name} must be a number >= 0, got {value!r}"
                )
        if not isinstance(self.schema, bool):
            raise InvalidArgument(f"DriftThresholds schema must be a bool, got {self.schema!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ColumnDrift:
    """One column compared between two snapshots, matched by field id.

    ``name`` is the column's name in ``b`` (in ``a`` when it was removed); ``change``
    is "same", "added", "removed", "renamed" (``a.name`` is the old name; a rename
    wins over a type change) or "type_changed". ``a`` and ``b`` are the two profiles,
    ``b``'s histogram on ``a``'s edges. ``psi``/``ks`` (numeric) and ``js``
    (categorical) are None when a side has no value to compare. ``new_categories``/
    ``vanished_categories`` list at most `LISTED` of them, most frequent first; the
    ``*_count`` fields count them all.
    """

    name: str
    field_id: int | None
    kind: str
    change: str
    a: ColumnProfile | None
    b: ColumnProfile | None
    psi: float | None
    ks: float | None
    js: float | None
    null_rate_delta: float | None
    new_categories: list[str]
    vanished_categories: list[str]
    flagged: bool
    reasons: list[str]
    new_category_count: int = 0
    vanished_category_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["a"] = None if self.a is None else self.a.to_dict()
        out["b"] = None if self.b is None else self.b.to_dict()
        return out


@dataclass(frozen=True)
class DriftReport:
    """Drift from snapshot ``a`` (the reference) to ``b``, identified by their pins.

    ``reasons`` holds what flags the report as a whole (the row count); `flagged` is
    true when it or any column is flagged.
    """

    a: str
    b: str
    rows_a: int
    rows_b: int
    schema_changes: list[str]
    columns: list[ColumnDrift]
    thresholds: DriftThresholds
    reasons: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """Whether any column, or the row count, drifted past its threshold."""
        return bool(self.reasons) or any(c.flagged for c in self.columns)

    @property
    def flagged_columns(self) -> list[str]:
        """Names of the flagged columns."""
        return [c.name for c in self.columns if c.flagged]

    def column(self, name: str) -> ColumnDrift:
        """The comparison of column ``name`` (its name in ``b``, or in ``a`` if removed)."""
        for c in self.columns:
            if c.name == name:
                return c
        known = [c.name for c in self.columns]
        raise InvalidArgument(f"no column {name!r} in this drift report; columns: {known}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "a": self.a,
            "b": self.b,
            "rows_a": self.rows_a,
            "rows_b": self.rows_b,
            "flagged": self.flagged,
            "flagged_columns": self.flagged_columns,
            "reasons": list(self.reasons),
            "schema_changes": list(self.schema_changes),
            "thresholds": self.thresholds.to_dict(),
            "columns": [c.to_dict() for c in self.columns],
        }


# ----------------------------------------------------------------------------- statistics


def _proportions(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts]


def psi(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Population stability index of counts ``b`` against ``a`` on the same bins (None
    when a side is empty); proportions below `EPSILON` count as `EPSILON`."""
    if len(a) != len(b) or not sum(a) or not sum(b):
        return None
    p = [max(x, EPSILON) for x in _proportions(a)]
    q = [max(x, EPSILON) for x in _proportions(b)]
    return math.fsum((y - x) * math.log(y / x) for x, y in zip(p, q, strict=True))


def ks_statistic(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Largest gap between the cumulative distributions of counts ``a`` and ``b`` on the
    same bins (None when a side is empty)."""
    if len(a) != len(b) or not sum(a) or not sum(b):
        return None
    gap, ca, cb = 0.0, 0, 0
    ta, tb = sum(a), sum(b)
    for x, y in zip(a, b, strict=True):
        ca, cb = ca + x, cb + y
        gap = max(gap, abs(ca / ta - cb / tb))
    return gap


# ----------------------------------------------------------------------------- drift


@dataclass(frozen=True)
class _Pair:
    """One column matched across two snapshots by field id."""

    field_id: int
    a: str | None
    b: str | None


def _pairs(
    a: SnapshotView, b: SnapshotView, columns: Sequence[str] | None, what: str = "columns"
) -> list[_Pair]:
    ids_a, ids_b = a.field_ids, b.field_ids
    name_a = {fid: n for n, fid in ids_a.items()}
    pairs = [_Pair(ids_b[n], name_a.get(ids_b[n]), n) for n in b.schema.names]
    kept = set(ids_b.values())
    pairs += [_Pair(ids_a[n], n, None) for n in a.schema.names if ids_a[n] not in kept]
    if columns is None:
        return pairs
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise InvalidArgument(f"{what} must be a list of column names, got {columns!r}")
    known = {n for p in pairs for n in (p.a, p.b) if n is not None}
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise InvalidArgument(f"{what} {unknown} are in neither snapshot; columns: {sorted(known)}")
    return [p for p in pairs if p.a in columns or p.b in columns]


def drift(
    a: SnapshotView,
    b: SnapshotView,
    *,
    columns: Sequence[str] | None = None,
    bins: int = 10,
    thresholds: DriftThresholds | None = None,
    top_k: int = 20,
    categorical: Sequence[str] | None = None,
) -> DriftReport:
    """Compare snapshot ``b`` with the reference ``a`` (same dataset), column by column.

    Columns are matched by field id; ``b``'s numeric values are counted on ``a``'s bins
    (module docstring). Only aggregates leave DuckDB.

    Args:
        columns: only these columns (names in either snapshot).
        bins: quantile bins of ``a``'s range per numeric column.
        thresholds: when a column is flagged (default `DriftThresholds()`).
        top_k: most frequent values listed in each categorical profile.
        categorical: integer columns to compare as categories (names in either).

    Raises:
        InvalidArgument: snapshots of two datasets, an unknown column, bad arguments.
        CorruptData: a fragment is damaged.
    """
    from lakever.view import SnapshotView

    if not isinstance(a, SnapshotView) or not isinstance(b, SnapshotView):
        raise InvalidArgument(f"drift compares two Dataset snapshots, got {a!r} and {b!r}")
    if a.uri != b.uri:
        raise InvalidArgument(f"drift compares snapshots of one dataset, got {a.uri} and {b.uri}")
    limits = DriftThresholds() if thresholds is None else thresholds
    if not isinstance(limits, DriftThresholds):
        raise InvalidArgument(f"thresholds must be a DriftThresholds, got {thresholds!r}")
    pairs = _pairs(a, b, columns)
    forced = set(_pairs(a, b, categorical, "categorical") if categorical is not None else [])
    cat_a = [p.a for p in forced if p.a is not None]
    cat_b = [p.b for p in forced if p.b is not None]
    names_a = [p.a for p in pairs if p.a is not None]
    names_b = [p.b for p in pairs if p.b is not None]
    with session(a, b) as (con, (va, vb)):
        rows_a, prof_a = profile_on(con, va, a, names_a, bins, None, top_k, cat_a)
        edges = {
            p.b: e
            for p in pairs
            if p.a is not None and p.b is not None and (e := prof_a[p.a].edges) is not None
        }
        rows_b, prof_b = profile_on(con, vb, b, names_b, bins, edges, top_k, cat_b)
        compared = [
            _column(con, (va, vb), p, prof_a.get(p.a or ""), prof_b.get(p.b or ""), limits)
            for p in pairs
        ]
    reasons = []
    if limits.rows is not None and rows_a != rows_b:
        change = (rows_b - rows_a) / rows_a if rows_a else math.inf
        if abs(change) > limits.rows:
            reasons.append(f"rows {rows_a} -> {rows_b} ({change:+.1%} > {limits.rows:.1%})")
    return DriftReport(
        a=a.pin(),
        b=b.pin(),
        rows_a=rows_a,
        rows_b=rows_b,
        schema_changes=[c.describe() for c in a.schema_diff(b)],
        columns=compared,
        thresholds=limits,
        reasons=reasons,
    )


def _column(
    con: duckdb.DuckDBPyConnection,
    views: tuple[str, str],
    pair: _Pair,
    pa_: ColumnProfile | None,
    pb: ColumnProfile | None,
    limits: DriftThresholds,
) -> ColumnDrift:
    """Compare one column's two profiles; flag it against ``limits``."""
    reasons: list[str] = []
    kind = (pb or pa_).kind if (pb or pa_) is not None else "other"  # type: ignore[union-attr]
    values: dict[str, Any] = {"psi": None, "ks": None, "js": None, "null_rate_delta": None}
    cats = None
    if pa_ is None or pb is None:
        change = "added" if pa_ is None else "removed"
        if limits.schema:
            reasons.append(f"column {change}")
    else:
        change = "same"
        if pa_.name != pb.name:
            change = "renamed"
            if limits.schema:
                reasons.append(f"renamed {pa_.name!r} -> {pb.name!r}")
        if pa_.type != pb.type:
            change = "type_changed" if change == "same" else change
            if limits.schema:
                reasons.append(f"type {pa_.type} -> {pb.type}")
        if pa_.rows and pb.rows:
            delta = pb.null_rate - pa_.null_rate
            values["null_rate_delta"] = delta
            if abs(delta) > limits.null_rate:
                reasons.append(
                    f"null rate {pa_.null_rate:.4f} -> {pb.null_rate:.4f} "
                    f"(change {delta:+.4f} > {limits.null_rate})"
                )
        if pa_.kind != pb.kind:
            kind = "other"
        elif kind == "numeric" and pa_.counts is not None and pb.counts is not None:
            values["psi"] = psi(pa_.counts, pb.counts)
            values["ks"] = ks_statistic(pa_.counts, pb.counts)
        elif kind == "categorical":
            cats = compare_categories(con, (views[0], pa_.name), (views[1], pb.name), listed=LISTED)
            values["js"] = cats.js
        for stat in ("psi", "ks", "js"):
            value, limit = values[stat], getattr(limits, stat)
            if value is not None and value > limit:
                reasons.append(f"{stat} {value:.4f} > {limit}")
    return ColumnDrift(
        name=(pb or pa_).name,  # type: ignore[union-attr]
        field_id=pair.field_id,
        kind=kind,
        change=change,
        a=pa_,
        b=pb,
        psi=values["psi"],
        ks=values["ks"],
        js=values["js"],
        null_rate_delta=values["null_rate_delta"],
        new_categories=cats.new if cats else [],
        vanished_categories=cats.vanished if cats else [],
        flagged=bool(reasons),
        reasons=reasons,
        new_category_count=cats.new_count if cats else 0,
        vanished_category_count=cats.vanished_count if cats else 0,
    )


def drift_between(
    uri: str,
    a: int | str | datetime | SnapshotView,
    b: int | str | datetime | SnapshotView,
    *,
    columns: Sequence[str] | None = None,
    bins: int = 10,
    thresholds: DriftThresholds | None = None,
    top_k: int = 20,
    categorical: Sequence[str] | None = None,
    branch: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> DriftReport:
    """Drift of a dataset from snapshot ``a`` (the reference) to ``b``: published as
    ``lakever.drift``.

    Per column, matched by field id: row counts, null rates, numeric shift (PSI and
    KS on bins of ``a``), categorical shift (Jensen-Shannon distance, new and vanished
    categories) and schema changes, computed in DuckDB over live rows
    (docs/drift.md).

    Args:
        a: the reference: an int version (on ``branch``, default main), an aware
            datetime, a tag, a branch, a snapshot id or a pin.
        b: the snapshot compared with it, likewise.
        columns, bins, thresholds, top_k, categorical: as in `lakever.ml.drift.drift`.

    Example:
        ``report = lv.drift("lake/events", "train-v1", "main"); report.flagged``

    Raises:
        DatasetNotFound, VersionNotFound: no such dataset or version.
        InvalidArgument: an unknown column or a bad argument.
        CorruptData: a fragment is damaged.
    """
    from lakever.api import open_dataset
    from lakever.view import SnapshotView

    def side(ref: Any) -> SnapshotView:
        if isinstance(ref, SnapshotView):
            return ref
        if isinstance(ref, str) and ref.startswith("lakever:"):
            return open_dataset(ref, location=uri, storage_options=storage_options)
        on = None if isinstance(ref, str) else branch
        return open_dataset(uri, version=ref, branch=on, storage_options=storage_options)

    return drift(
        side(a),
        side(b),
        columns=columns,
        bins=bins,
        thresholds=thresholds,
        top_k=top_k,
        categorical=categorical,
    )

"""Dataset cards: one self-contained page that says what a snapshot of a dataset holds.

`card` gathers, for one snapshot (REF): its identity (dataset, ref, version, branch,
snapshot id, pin), its size (rows, fragments, bytes), its schema with field ids and the
contract's rules per column, its lineage (commits back to the creation, with the tags on
them), a summary of every column (`lakever.ml.drift.profile`) and the drift against an
earlier snapshot (`lakever.ml.drift.drift`): by default the previous tag, the newest tag
on REF's own history (REF's ancestors, REF itself excluded).

The page is HTML (`lakever.ml._card_html`: inline CSS and inline SVG charts, no script, no
request of any kind; every dataset-controlled string escaped) or Markdown (tables, numbers
and unicode sparklines, for a README). Statistics are never computed here: they are the
drift module's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from lakever._resolve import PIN_PREFIX, locate, locate_pin
from lakever.api import open_dataset
from lakever.dataset import Dataset
from lakever.errors import InvalidArgument
from lakever.ml._card_data import CardData, SchemaRow
from lakever.ml.drift import ColumnProfile, drift, profile
from lakever.refs import Tag
from lakever.view import SnapshotView

__all__ = ["card", "previous_tag"]

Format = Literal["html", "markdown"]
RefLike = int | str | datetime

#: Commits listed in the lineage section (older ones are counted, not listed).
LINEAGE_LIMIT = 30


def card(
    source: str | SnapshotView,
    ref: RefLike | None = None,
    *,
    format: Format = "html",
    against: RefLike | None = None,
    bins: int = 10,
    branch: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Render a dataset card for one snapshot as a self-contained HTML page or Markdown.

    Args:
        source: a dataset URI, a pin, or an open `Dataset`.
        ref: the snapshot to describe: an int version (on ``branch``), an aware datetime, a
            tag, branch, snapshot id or pin of this dataset (default: the head of
            ``branch``, or the Dataset given as ``source``).
        format: ``"html"`` (inline CSS and SVG charts; nothing fetched, no script) or
            ``"markdown"`` (tables, numbers and sparklines).
        against: the snapshot to measure drift against, a ref like ``ref`` (default: the
            previous tag, the newest tag on REF's history before REF; without one the
            drift section says so).
        bins: histogram bins per numeric column.

    Returns:
        The page as text; write it to a ``.html`` or ``.md`` file.

    Raises:
        DatasetNotFound, VersionNotFound: no such dataset, REF or ``against``.
        InvalidArgument: an unknown ``format``, a bad ``bins``, or a ref of the wrong type.

    Example:
        ``Path("card.html").write_text(lv.card("lake/events", "v3"))``
    """
    if format not in ("html", "markdown"):
        raise InvalidArgument(f"format must be 'html' or 'markdown', got {format!r}")
    if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 100:
        raise InvalidArgument(f"bins must be an int from 1 to 100, got {bins!r}")
    view = _open(source, ref, branch, storage_options)
    data = gather(view, _ref_text(ref, view), against=against, bins=bins)
    # The renderers are imported here: `import lakever` does not pay for them.
    if format == "markdown":
        from lakever.ml._card_md import markdown

        return markdown(data)
    from lakever.ml._card_html import html

    return html(data)


def _open(
    source: str | SnapshotView,
    ref: RefLike | None,
    branch: str | None,
    storage_options: dict[str, Any] | None,
) -> SnapshotView:
    if isinstance(source, SnapshotView):
        if storage_options is not None:
            raise InvalidArgument("storage_options= is for a URI source, not an open Dataset")
        if ref is None and branch is None:
            return source
        return _at(source, ref, branch)
    if not isinstance(source, str):
        raise InvalidArgument(f"source must be a dataset URI or a Dataset, got {source!r}")
    if isinstance(ref, str) and ref.startswith(PIN_PREFIX):
        return _at(open_dataset(source, storage_options=storage_options), ref, branch)
    return open_dataset(source, version=ref, branch=branch, storage_options=storage_options)


def _at(view: SnapshotView, ref: RefLike | None, branch: str | None = None) -> SnapshotView:
    """``ref`` on ``view``'s dataset; an int or datetime is on ``branch`` (default: the
    view's); a pin names its snapshot, looked up (and verified by id) in this dataset."""
    if isinstance(ref, str) and ref.startswith(PIN_PREFIX):
        if branch is not None:
            raise InvalidArgument("a pin names one snapshot already; do not also pass branch=")
        storage = view._storage
        return Dataset._at(storage, locate_pin(ref, lambda _uri: storage)[1])
    if isinstance(ref, str):
        branch = None
    elif branch is None:
        branch = view.branch_name
    return Dataset._at(view._storage, locate(view._storage, version=ref, branch=branch))


def _ref_text(ref: RefLike | None, view: SnapshotView) -> str:
    if ref is None:
        return view.branch_name
    if isinstance(ref, datetime):
        return ref.astimezone(UTC).isoformat()
    return str(ref)


def previous_tag(view: SnapshotView) -> Tag | None:
    """The newest tag on ``view``'s history before it: the tag on its nearest ancestor
    (tags on ``view``'s own snapshot excluded; several on one snapshot: the newest)."""
    by_snapshot: dict[str, list[Tag]] = {}
    for tag in view.tags():
        by_snapshot.setdefault(tag.snapshot_id, []).append(tag)
    if not by_snapshot:
        return None
    for commit in view.history()[1:]:
        found = by_snapshot.get(commit.snapshot_id)
        if found:
            return max(found, key=lambda t: (t.created, t.name))
    return None


def gather(view: SnapshotView, ref: str, *, against: RefLike | None, bins: int) -> CardData:
    """Collect what the card of ``view`` shows (see the module docstring)."""
    tags = view.tags()
    tags_by_snapshot: dict[str, list[str]] = {}
    for tag in tags:
        tags_by_snapshot.setdefault(tag.snapshot_id, []).append(tag.name)
    commits = view.history(LINEAGE_LIMIT)  # a version's history holds version + 1 commits
    other, against_text, note = _against(view, against)
    report = None if other is None else drift(other, view, bins=bins)
    contract_name, rules, per_column = _contract(view.contract)
    ids = view.field_ids
    schema = [
        SchemaRow(ids.get(f.name), f.name, str(f.type), f.nullable, per_column.get(f.name, []))
        for f in view.schema
    ]
    name = view.uri.rstrip("/").rsplit("/", 1)[-1] or view.uri
    return CardData(
        uri=view.uri,
        name=name,
        ref=ref,
        version=view.version,
        branch=view.branch_name,
        snapshot_id=view.snapshot_id,
        timestamp=view.timestamp,
        pin=view.pin(),
        commit=view.commit,
        schema=schema,
        contract_name=contract_name,
        contract_rules=rules,
        primary_key=view.primary_key,
        commits=commits,
        older_commits=max(view.version + 1 - LINEAGE_LIMIT, 0),
        tags=tags,
        tags_by_snapshot=tags_by_snapshot,
        profiles=_profiles(view, bins),
        against=against_text,
        against_note=note,
        report=report,
    )


def _profiles(view: SnapshotView, bins: int) -> dict[str, ColumnProfile]:
    """Every column's profile; numeric histograms on ``bins`` equal-width bins from the
    column's minimum to its maximum (what people expect of a histogram; drift's own
    edges are quantiles). Two scans: the first finds the ranges."""
    first = profile(view, bins=1)  # 1: no quantiles (a sort per column) just for ranges
    edges = {n: e for n, p in first.items() if (e := even_edges(p, bins)) is not None}
    if not edges:
        return first
    second = profile(view, columns=list(edges), edges=edges)
    return {n: second.get(n, p) for n, p in first.items()}


def even_edges(p: ColumnProfile, bins: int) -> list[float] | None:
    """``bins`` equal-width edges over ``p``'s range (an integer column with fewer values
    than bins: one bin per integer; a constant column: one bin around it)."""
    if p.kind != "numeric" or p.min is None or p.max is None:
        return None
    lo, hi = p.min, p.max
    if p.type.startswith(("int", "uint")) and hi - lo + 1 <= bins:
        return [lo + i for i in range(int(hi - lo) + 2)]
    # lo*(1-t) + hi*t, not lo + (hi-lo)*t: hi - lo may overflow (-1e308 .. 1e308).
    if hi <= lo:
        pad = max(abs(lo) * 1e-9, 0.5)
        return [lo - pad, lo + pad]
    return sorted({lo * (1 - i / bins) + hi * (i / bins) for i in range(bins)} | {hi})


def _against(
    view: SnapshotView, against: RefLike | None
) -> tuple[SnapshotView | None, str | None, str]:
    """The snapshot to compare with, its name, and a sentence saying how it was chosen."""
    if against is not None:
        other = _at(view, against)
        return other, _ref_text(against, other), "chosen with against="
    tag = previous_tag(view)
    if tag is None:
        note = (
            "No earlier tag on this snapshot's history, so there is nothing to compare with; "
            "tag a snapshot, or choose one with against= (lakever card --against REF)."
        )
        return None, None, note
    other = _at(view, f"tag:{tag.name}")
    return other, tag.name, f"the previous tag ({tag.name!r}, version {tag.version})"


def _check_text(check: Any) -> str:
    """A pandera check as ``name(arg=value, ...)``."""
    name = str(getattr(check, "name", None) or type(check).__name__)
    stats = getattr(check, "statistics", None) or {}
    args = ", ".join(f"{k}={v!r}" for k, v in stats.items())
    return f"{name}({args})"


def _contract(contract: Any) -> tuple[str | None, list[str], dict[str, list[str]]]:
    """The contract's name, its table-wide rules, and its rules per column, as text."""
    if contract is None:
        return None, [], {}
    per_column: dict[str, list[str]] = {}
    for name, column in (getattr(contract, "columns", None) or {}).items():
        rules = []
        dtype = getattr(column, "dtype", None)
        if dtype is not None:
            rules.append(f"dtype {dtype}")
        rules.append("nullable" if getattr(column, "nullable", True) else "not null")
        if getattr(column, "unique", False):
            rules.append("unique")
        rules += [_check_text(c) for c in getattr(column, "checks", None) or []]
        per_column[str(name)] = rules
    table_rules = [_check_text(c) for c in getattr(contract, "checks", None) or []]
    unique = getattr(contract, "unique", None)
    if unique:
        table_rules.append(f"unique({', '.join(map(str, unique))})")
    if getattr(contract, "strict", False):
        table_rules.append("strict (no other columns)")
    return str(getattr(contract, "name", None) or "unnamed contract"), table_rules, per_column

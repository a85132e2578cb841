"""Lakehouse time-travel SQL: find dataset references and rewrite them to snapshot views.

Understood (parsed with sqlglot, never by string pasting)::

    t VERSION AS OF 3            t FOR VERSION AS OF 3          t AT (VERSION => 3)
    t TIMESTAMP AS OF '...'      t FOR TIMESTAMP AS OF '...'    t AT (TIMESTAMP => '...')
    t FOR VERSION AS OF 'train-v3'   (a tag, branch or snapshot id)

A query without any time-travel clause runs verbatim (the dataset names are
registered as views); otherwise each reference is replaced by a quoted view name
for exactly that snapshot and the query is emitted again in DuckDB's dialect.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lakever.errors import InvalidArgument

__all__ = ["Reference", "rewrite"]

_TRAVEL = re.compile(r"\b(AS\s+OF|AT\s*\()", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Reference:
    """A table reference in a query: its name and the snapshot it asks for."""

    name: str
    #: None (latest), an int version, a str (tag / branch / snapshot id), or an aware datetime.
    version: int | str | datetime | None
    #: Conjuncts of the WHERE clause that only this reference's columns appear in: fragments
    #: that cannot match them may be skipped (the query still applies the full WHERE).
    prune: str | None = None


def _literal(node: Any, what: str) -> Any:
    import sqlglot.expressions as exp

    while isinstance(node, exp.Cast | exp.Paren):
        node = node.this
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        raise InvalidArgument(f"{what} must not be negative")
    if not isinstance(node, exp.Literal):
        got = node.sql("duckdb") if isinstance(node, exp.Expression) else "nothing"
        raise InvalidArgument(f"{what} must be a literal number or string, got {got!r}")
    return node.this if node.is_string else int(node.this)


def _parse_time(text: Any, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        raise InvalidArgument(
            f"TIMESTAMP AS OF {text!r} on {name!r} is not an ISO 8601 time"
        ) from None
    # SQL timestamps without an offset are taken as UTC (DuckDB's TIMESTAMP is UTC-naive).
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _spec(table: Any) -> int | str | datetime | None:
    version, when = table.args.get("version"), table.args.get("when")
    name = table.name
    if version is not None:
        kind = str(version.this).upper()
        value = _literal(version.expression, f"{kind} AS OF on {name!r}")
    elif when is not None:
        kind = str(when.args.get("kind")).upper()
        value = _literal(when.expression, f"AT ({kind} => ...) on {name!r}")
    else:
        return None
    if kind == "TIMESTAMP":
        return _parse_time(value, name)
    if kind == "VERSION":
        assert isinstance(value, int | str)
        return value  # int version, or a tag / branch / snapshot id string
    raise InvalidArgument(f"time travel kind {kind!r} on {name!r} is not supported")


def rewrite(
    query: str,
    *,
    is_dataset: Callable[[str], bool],
    view_for: Callable[[Reference], str],
    all_datasets: Callable[[], Iterable[str]],
) -> str:
    """Return ``query`` with dataset references replaced by snapshot views.

    Args:
        query: DuckDB SQL, optionally with time-travel clauses on dataset references.
        is_dataset: whether an unqualified table name is a dataset (CTE names never are).
        view_for: registers the view for a reference and returns its name.
        all_datasets: every dataset name, for queries the parser cannot read.
    """
    import sqlglot
    import sqlglot.expressions as exp
    from sqlglot.errors import ParseError, TokenError

    try:
        tree = sqlglot.parse_one(query, read="duckdb")
    except (ParseError, TokenError) as exc:
        if _TRAVEL.search(query):
            first = str(exc).strip().splitlines()[0]
            raise InvalidArgument(f"cannot parse SQL with time travel: {first}") from exc
        # DuckDB knows syntax sqlglot does not: without time travel, let DuckDB parse it
        # against the latest snapshot of every dataset (and report its own errors).
        for name in all_datasets():
            view_for(Reference(name, None))
        return query
    if tree is None:
        raise InvalidArgument("empty SQL query")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    tables = [
        t
        for t in tree.find_all(exp.Table)
        if isinstance(t.this, exp.Identifier) and not t.args.get("db") and not t.args.get("catalog")
    ]
    travel = any(
        t.args.get("version") is not None or t.args.get("when") is not None for t in tables
    )
    refs = []
    for t in tables:
        spec = _spec(t)
        if spec is None and t.name in ctes:
            continue
        if spec is None and not is_dataset(t.name):
            continue  # not ours: a table or view the connection already has
        # Time travel on an unknown name reaches view_for, which reports it by name.
        refs.append((t, Reference(t.name, spec, _prunable_where(t))))
    if not travel and not any(ref.prune for _, ref in refs):
        for _, ref in refs:
            view_for(ref)  # registers the dataset's latest snapshot under its own name
        return query
    for t, ref in refs:
        view = view_for(ref)
        alias = t.alias
        t.set("version", None)
        t.set("when", None)
        t.set("this", exp.to_identifier(view, quoted=True))
        if not alias:
            t.set("alias", exp.TableAlias(this=exp.to_identifier(ref.name, quoted=True)))
    return tree.sql(dialect="duckdb")


def _prunable_where(table: Any) -> str | None:
    """The WHERE conjuncts of ``table``'s SELECT that only read ``table``'s columns.

    Only for a SELECT whose sources are joined with inner or cross joins: on the
    null-supplying side of an outer join, skipping rows could change the result.
    """
    import sqlglot.expressions as exp

    select = table.parent_select
    if not isinstance(select, exp.Select):
        return None
    where = select.args.get("where")
    if where is None:
        return None
    sources = [
        select.args.get("from_") or select.args.get("from"),
        *(select.args.get("joins") or []),
    ]
    tables_here = [s.this for s in sources if s is not None]
    if any(not isinstance(src, exp.Table) for src in tables_here):
        return None  # subqueries or functions as sources: keep it simple and safe
    for join in select.args.get("joins") or []:
        if join.side or (join.kind and join.kind.upper() not in ("INNER", "CROSS")):
            return None
    if table not in tables_here:
        return None
    qualifier = table.alias_or_name
    single = len(tables_here) == 1
    kept = []
    for conjunct in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        columns = list(conjunct.find_all(exp.Column))
        if not columns or conjunct.find(exp.Subquery, exp.Select) is not None:
            continue
        if all(c.table == qualifier or (single and not c.table) for c in columns):
            stripped = conjunct.copy()
            for c in stripped.find_all(exp.Column):
                c.set("table", None)
            kept.append(stripped.sql(dialect="duckdb"))
    return " AND ".join(f"({k})" for k in kept) or None

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
    if node.is_string:
        return node.this
    try:
        return int(node.this)
    except ValueError:
        raise InvalidArgument(
            f"{what} must be a whole number or a string, got {node.this}"
        ) from None


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


#: Table functions a query may call without ``trusted=True``: they read no file.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {"range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree"}
)


def _parse(query: str, *, trusted: bool) -> Any:
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    try:
        trees = [t for t in sqlglot.parse(query, read="duckdb") if t is not None]
    except (ParseError, TokenError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if trusted and not _TRAVEL.search(query):
            return None
        if _TRAVEL.search(query):
            raise InvalidArgument(f"cannot parse SQL with time travel: {first}") from exc
        raise InvalidArgument(
            f"cannot parse this SQL ({first}); lakever runs only read-only queries it can "
            "check. Rewrite the query, or run it with trusted=True (full DuckDB, including "
            "file access)"
        ) from exc
    if not trees:
        raise InvalidArgument("empty SQL query")
    if len(trees) > 1:
        raise InvalidArgument("one SQL query at a time: the text holds several statements")
    return trees[0]


def _check_closed(
    tree: Any, is_known: Callable[[str], bool], not_found: Callable[[str], Exception] | None
) -> None:
    """Refuse what a read-only query over the lake's datasets has no use for."""
    import sqlglot.expressions as exp

    from lakever.errors import DatasetNotFound
    from lakever.expr import _STATEFUL, _function_name

    if not isinstance(tree, exp.Query):
        kind = type(tree).__name__.upper()
        raise InvalidArgument(
            f"only read-only queries (SELECT, WITH, UNION, ...) are allowed, got a {kind} "
            "statement; pass trusted=True to run any DuckDB statement"
        )
    statements = tuple(
        getattr(exp, n)
        for n in ("DDL", "DML", "Command", "Set", "Pragma", "Use", "Copy", "Attach", "Detach")
        if hasattr(exp, n)
    )
    for node in tree.walk():
        if isinstance(node, statements):
            raise InvalidArgument(
                "only read-only queries are allowed: the query contains a "
                f"{type(node).__name__.upper()} statement; pass trusted=True to run it"
            )
        if isinstance(node, exp.Table):
            target = node.this
            if isinstance(target, exp.Identifier):
                if node.args.get("db") or node.args.get("catalog"):
                    raise InvalidArgument(
                        f"table {node.sql(dialect='duckdb')!r} is qualified; name the lake's "
                        "datasets directly"
                    )
                if not is_known(node.name):
                    if not_found is not None:
                        raise not_found(node.name)
                    raise DatasetNotFound(
                        f"{node.name!r} is not a dataset here; queries read the lake's "
                        "datasets (and their own CTEs) only",
                        uri=node.name,
                    )
            elif isinstance(target, exp.Func):
                name = _function_name(target)
                if name not in ALLOWED_TABLE_FUNCTIONS:
                    raise InvalidArgument(
                        f"the table function {name}() is not allowed: queries read the lake's "
                        f"datasets only (allowed: {sorted(ALLOWED_TABLE_FUNCTIONS)}); pass "
                        "trusted=True to use it"
                    )
        elif isinstance(node, exp.Func) and _function_name(node) in _STATEFUL:
            raise InvalidArgument(
                f"{_function_name(node)}() changes state and is not allowed in a query"
            )


def rewrite(
    query: str,
    *,
    is_dataset: Callable[[str], bool],
    view_for: Callable[[Reference], str],
    all_datasets: Callable[[], Iterable[str]],
    trusted: bool = False,
    not_found: Callable[[str], Exception] | None = None,
) -> str:
    """Return ``query`` with dataset references replaced by snapshot views.

    Args:
        query: DuckDB SQL, optionally with time-travel clauses on dataset references.
        is_dataset: whether an unqualified table name is a dataset (CTE names never are).
        view_for: registers the view for a reference and returns its name.
        all_datasets: every dataset name, for queries the parser cannot read.
        trusted: skip the checks of a closed query (see `lakever.query`).
        not_found: the error for a table name that is neither a dataset nor a CTE.
    """
    import sqlglot.expressions as exp

    tree = _parse(query, trusted=trusted)
    if tree is None:
        # Trusted only: DuckDB knows syntax sqlglot does not; without time travel, let
        # DuckDB parse it against the latest snapshot of every dataset.
        for name in all_datasets():
            view_for(Reference(name, None))
        return query
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    if not trusted:
        _check_closed(tree, lambda n: n in ctes or is_dataset(n), not_found)
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
    return str(tree.sql(dialect="duckdb"))


def _prunable_where(table: Any) -> str | None:
    """The WHERE conjuncts of ``table``'s SELECT that only read ``table``'s columns.

    Only for a SELECT whose sources are tables joined with plain inner or cross joins,
    none sampled or pivoted: on the null-supplying side of an outer join, in an ASOF
    (nearest row) or POSITIONAL (row order) join, in a sample (drawn before WHERE) or a
    pivot, skipping rows could change the result.
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
    if select.args.get("sample") is not None or any(
        src.args.get("sample") is not None or src.args.get("pivots") for src in tables_here
    ):
        return None
    for join in select.args.get("joins") or []:
        if join.method or join.side or (join.kind and join.kind.upper() not in ("INNER", "CROSS")):
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

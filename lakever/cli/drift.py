"""The drift command: how the columns of one snapshot moved away from a reference."""

from __future__ import annotations

from datetime import datetime

import typer

import lakever as lv
from lakever.cli._output import print_json, print_lines, print_styled_table
from lakever.cli.data import BRANCH_OPT, JSON_OPT, PATH_ARG, parse_version

_DEFAULT = lv.DriftThresholds()
_REF_HELP = "version number, ISO time, tag, branch, snapshot id or pin"


#: The exit code of a comparison that flagged drift: distinct from an error's 1, so a
#: retraining trigger never fires on a typo or an unreadable file.
DRIFTED = 3


def drift(
    path: str = PATH_ARG,
    a: str = typer.Argument(..., help=f"The reference snapshot: {_REF_HELP}."),
    b: str = typer.Argument(..., help=f"The snapshot compared with it: {_REF_HELP}."),
    column: list[str] | None = typer.Option(
        None, "--column", "-c", help="Compare only this column (repeat for more)."
    ),
    categorical: list[str] | None = typer.Option(
        None, "--categorical", help="Compare this integer column as categories (repeatable)."
    ),
    bins: int = typer.Option(10, "--bins", min=1, help="Quantile bins of A per numeric column."),
    psi: float = typer.Option(_DEFAULT.psi, "--psi", min=0, help="Flag a numeric PSI above this."),
    ks: float = typer.Option(_DEFAULT.ks, "--ks", min=0, help="Flag a numeric KS above this."),
    js: float = typer.Option(
        _DEFAULT.js, "--js", min=0, help="Flag a categorical Jensen-Shannon distance above this."
    ),
    null_rate: float = typer.Option(
        _DEFAULT.null_rate, "--null-rate", min=0, help="Flag a null-rate change above this."
    ),
    rows: float | None = typer.Option(
        None, "--rows", min=0, help="Flag a relative row-count change above this (e.g. 0.5)."
    ),
    ignore_schema: bool = typer.Option(
        False, "--ignore-schema", help="Do not flag added, removed, renamed or retyped columns."
    ),
    branch: str | None = BRANCH_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Compare the columns of snapshot B with the reference A (PSI, KS, JS, null rates).

    Exit code 0 when nothing drifted, 3 when a column or the row count drifted past
    its threshold, 1 on an error (one line on stderr), 2 on a usage error.
    """
    limits = lv.DriftThresholds(
        psi=psi, ks=ks, js=js, null_rate=null_rate, schema=not ignore_schema, rows=rows
    )
    report = lv.drift(
        path,
        _ref(a),
        _ref(b),
        columns=column or None,
        bins=bins,
        thresholds=limits,
        categorical=categorical or None,
        branch=branch,
    )
    if as_json:
        print_json(report.to_dict())
    else:
        _print(report)
    if report.flagged:
        raise typer.Exit(DRIFTED)


def _ref(text: str) -> int | str | datetime:
    ref = parse_version(text)
    return text if ref is None else ref


def _number(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def _print(report: lv.DriftReport) -> None:
    print_lines([f"a: {report.a}", f"b: {report.b}", f"rows: {report.rows_a} -> {report.rows_b}"])
    print_lines([f"schema: {line}" for line in report.schema_changes])
    rows = []
    for c in report.columns:
        style = "bold red" if c.flagged else None
        nulls = "" if c.a is None or c.b is None else f"{c.a.null_rate:.4f} -> {c.b.null_rate:.4f}"
        cats = []
        if c.new_category_count:
            cats.append(f"new: {', '.join(c.new_categories)}")
        if c.vanished_category_count:
            cats.append(f"vanished: {', '.join(c.vanished_categories)}")
        rows.append(
            [
                (c.name, style),
                (c.kind, None),
                (c.change, None),
                (nulls, None),
                (_number(c.psi), None),
                (_number(c.ks), None),
                (_number(c.js), None),
                ("; ".join(cats), None),
                ("; ".join(c.reasons), style),
            ]
        )
    columns = ["column", "kind", "change", "null rate", "psi", "ks", "js", "categories", "flagged"]
    print_styled_table(None, columns, rows)
    if report.flagged:
        what = ", ".join(report.flagged_columns) or "none"
        extra = f"; {'; '.join(report.reasons)}" if report.reasons else ""
        print_lines([f"drift: {len(report.flagged_columns)} column(s) flagged: {what}{extra}"])
    else:
        print_lines(["no drift"])


def register(app: typer.Typer) -> None:
    """Add the drift command to ``app``."""
    app.command()(drift)

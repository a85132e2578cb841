"""A dataset card as Markdown (for a README): tables, the numbers, unicode sparklines.

Dataset-controlled text is escaped for Markdown and never passes raw HTML through.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lakever.ml._card_data import CardData
from lakever.ml._svg import formatter, num, sparkline
from lakever.ml.drift import ColumnProfile

__all__ = ["markdown"]


def _md(text: object) -> str:
    """Text for Markdown (also a table cell): one line, ``& < >`` as entities so no raw
    HTML reaches a README renderer (which would pass it through), markup escaped."""
    out = " ".join(str(text).split())
    out = out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|#":
        out = out.replace(ch, "\\" + ch)
    return out


def _code(text: object) -> str:
    """``text`` as a code span (escapes do not work inside one: backticks are replaced)."""
    return "`" + " ".join(str(text).replace("`", "'").split()).replace("|", "\\|") + "`"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _profile_cell(p: ColumnProfile) -> str:
    if p.kind == "numeric" and p.counts is not None:
        return f"`{sparkline(p.counts)}`"
    if p.top:
        return ", ".join(f"{_md(v)} ({num(c)})" for v, c in p.top[:5])
    return ""


def _value(p: ColumnProfile, value: float | None) -> str:
    return "-" if value is None else _md(formatter(p.type)(value))


def _when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def markdown(data: CardData) -> str:
    """The card as Markdown: identity, size, schema, columns, drift, lineage, tags."""
    c = data.commit
    out = [
        f"# Dataset card: {_md(data.name)}",
        "",
        f"{_code(data.uri)} at **{_md(data.ref)}**: version {data.version} of branch "
        f"{_md(data.branch)}, snapshot `{data.snapshot_id}`, committed {_when(data.timestamp)} "
        "UTC.",
        "",
        f"Pin: {_code(data.pin)}",
        "",
        "## Size",
        "",
        *_table(
            ["rows", "fragments", "bytes"],
            [[num(c.total_rows), num(c.total_fragments), num(c.total_bytes)]],
        ),
        "",
        "## Schema",
        "",
        *_table(
            ["field id", "column", "type", "nullable", "contract"],
            [
                [
                    str(r.field_id),
                    _md(r.name),
                    _md(r.type),
                    "yes" if r.nullable else "no",
                    _md("; ".join(r.contract)),
                ]
                for r in data.schema
            ],
        ),
        "",
    ]
    if data.contract_name is not None:
        rules = "; ".join(data.contract_rules) or "none beyond the columns'"
        out += [f"Contract: {_md(data.contract_name)}; table-wide rules: {_md(rules)}.", ""]
    else:
        out += ["No contract is attached to this snapshot.", ""]
    out += ["## Columns", ""]
    out += _table(
        ["column", "kind", "nulls", "distinct", "min", "mean", "max", "distribution"],
        [
            [
                _md(p.name),
                p.kind,
                f"{num(p.nulls)} ({p.null_rate:.1%})",
                num(p.distinct),
                _value(p, p.min),
                _value(p, p.mean),
                _value(p, p.max),
                _profile_cell(p),
            ]
            for p in data.profiles.values()
        ],
    )
    out += ["", "## Drift", ""]
    out += _md_drift(data)
    out += ["", "## Lineage", ""]
    out += _table(
        ["version", "time (UTC)", "author", "operation", "message", "rows ±", "tags"],
        [
            [
                str(k.version),
                _when(k.timestamp),
                _md(k.author),
                _md(k.operation),
                _md(k.message) + (" (expired)" if k.expired else ""),
                f"+{num(k.rows_added)} / -{num(k.rows_removed)}",
                _md(", ".join(data.tags_by_snapshot.get(k.snapshot_id, []))),
            ]
            for k in data.commits
        ],
    )
    if data.older_commits:
        out += ["", f"{data.older_commits} older commits not listed."]
    out += ["", "## Tags", ""]
    if data.tags:
        out += _table(
            ["tag", "version", "snapshot", "author", "message"],
            [
                [
                    _md(t.name),
                    str(t.version),
                    f"`{t.snapshot_id[:12]}`",
                    _md(t.author),
                    _md(t.message),
                ]
                for t in data.tags
            ],
        )
    else:
        out += ["The dataset has no tags."]
    return "\n".join(out) + "\n"


def _metric(value: float | None) -> str:
    return "-" if value is None else num(value, 3)


def _md_drift(data: CardData) -> list[str]:
    report = data.report
    if report is None:
        return [_md(data.against_note)]
    t = report.thresholds
    verdict = "**drift flagged**" if report.flagged else "no column flagged"
    out = [
        f"Against {_md(data.against)} ({_md(data.against_note)}): {verdict}. Rows "
        f"{num(report.rows_a)} → {num(report.rows_b)}. Thresholds: PSI {num(t.psi)}, "
        f"KS {num(t.ks)}, JS {num(t.js)}, null rate ± {num(t.null_rate)}.",
        "",
    ]
    out += [f"- {_md(line)}" for line in [*report.reasons, *report.schema_changes]]
    if report.reasons or report.schema_changes:
        out.append("")
    sides = [_md(data.against), _md(data.label)]
    out += _table(
        ["column", "change", "PSI", "KS", "JS", "Δ null rate", "flagged", *sides],
        [
            [
                _md(d.name),
                d.change,
                _metric(d.psi),
                _metric(d.ks),
                _metric(d.js),
                _metric(d.null_rate_delta),
                "**yes**: " + _md("; ".join(d.reasons)) if d.flagged else "no",
                "" if d.a is None else _profile_cell(d.a),
                "" if d.b is None else _profile_cell(d.b),
            ]
            for d in report.columns
        ],
    )
    return out

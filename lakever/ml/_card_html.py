"""The HTML page of a dataset card (`lakever.ml.card`): one file, readable offline.

Inline CSS and inline SVG only: no script, stylesheet, font or image is referenced, and a
Content-Security-Policy meta tag forbids loading any, so the page stays inert even if a
string slipped through unescaped. Every dataset-controlled string goes through `esc`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from lakever.ml._card_data import CardData
from lakever.ml._svg import (
    BLUE,
    ORANGE,
    Metric,
    Series,
    category_bars,
    esc,
    formatter,
    histogram,
    metric_bars,
    num,
)
from lakever.ml.drift import ColumnDrift, ColumnProfile, DriftThresholds

__all__ = ["html"]

_CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f7f8fa; --card:#fff;
  --blue:#0072b2; --orange:#e69f00; --flag:#d55e00; --flagbg:#fff1e8; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; }
header { background:#102a43; color:#fff; padding:28px 40px 22px; }
header h1 { margin:0 0 4px; font-size:28px; font-weight:650; letter-spacing:-.01em; }
header .kicker { text-transform:uppercase; letter-spacing:.12em; font-size:12px; color:#9fb3c8; }
header dl { display:grid; grid-template-columns:max-content 1fr; gap:2px 16px; margin:14px 0 0;
  font-size:14px; }
header dt { color:#9fb3c8; } header dd { margin:0; overflow-wrap:anywhere; }
header code { color:#fff; background:rgba(255,255,255,.08); }
nav { background:#fff; border-bottom:1px solid var(--line); padding:8px 40px; font-size:14px; }
nav a { color:var(--blue); margin-right:18px; text-decoration:none; }
main { max-width:1120px; margin:0 auto; padding:8px 40px 48px; }
section { margin-top:28px; }
h2 { font-size:20px; margin:0 0 12px; padding-bottom:6px; border-bottom:2px solid var(--line); }
h3 { font-size:16px; margin:0; overflow-wrap:anywhere; }
code { font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; background:#eef1f4;
  padding:1px 4px; border-radius:4px; overflow-wrap:anywhere; }
table { border-collapse:collapse; width:100%; background:var(--card); font-size:14px; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line);
  vertical-align:top; overflow-wrap:anywhere; }
th { background:#eef1f4; font-weight:600; white-space:nowrap; }
td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
.stats { display:flex; gap:16px; flex-wrap:wrap; }
.stat { background:var(--card); border:1px solid var(--line); border-radius:8px;
  padding:12px 18px; min-width:150px; }
.stat b { display:block; font-size:24px; font-variant-numeric:tabular-nums; }
.stat span { color:var(--muted); font-size:13px; }
.grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(360px,1fr)); gap:16px; }
.col { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px; }
.col.flagged { border:2px solid var(--flag); background:var(--flagbg); }
.col .meta { color:var(--muted); font-size:13px; margin:2px 0 8px; }
.badge { display:inline-block; font-size:12px; font-weight:600; padding:0 7px;
  border-radius:10px; background:#e4e7eb; color:var(--ink); margin-left:6px; }
.badge.flag { background:var(--flag); color:#fff; }
.badge.tag { background:#d9eaf7; color:#0b4f7c; }
tr.flagged td { background:var(--flagbg); } tr.flagged td:first-child { font-weight:600;
  border-left:4px solid var(--flag); }
.note { color:var(--muted); }
.verdict { font-size:16px; font-weight:600; margin:0 0 10px; }
.verdict.flag { color:var(--flag); }
ul.rules { margin:0; padding-left:18px; }
svg.chart { display:block; width:100%; height:auto; }
.col svg.chart { max-width:560px; }
table.schema td:first-child, table.schema th:first-child { width:80px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:24px; }
"""


def _when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _td(value: object, *, numeric: bool = False) -> str:
    return f'<td class="n">{esc(value)}</td>' if numeric else f"<td>{esc(value)}</td>"


def _thead(*names: str, numeric: tuple[int, ...] = ()) -> str:
    cells = "".join(
        f'<th class="n">{esc(n)}</th>' if i in numeric else f"<th>{esc(n)}</th>"
        for i, n in enumerate(names)
    )
    return f"<thead><tr>{cells}</tr></thead>"


def _header(d: CardData) -> str:
    pairs = [
        ("dataset", f"<code>{esc(d.uri)}</code>"),
        ("ref", f"<b>{esc(d.ref)}</b> · version {d.version} of branch {esc(d.branch)}"),
        ("snapshot", f"<code>{esc(d.snapshot_id)}</code>"),
        ("committed", f"{esc(_when(d.timestamp))} by {esc(d.commit.author)}"),
        ("pin", f'<code class="pin">{esc(d.pin)}</code>'),
    ]
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in pairs)
    return (
        f'<header><div class="kicker">Dataset card</div><h1>{esc(d.name)}</h1>'
        f"<dl>{rows}</dl></header>"
        '<nav><a href="#size">Size</a><a href="#schema">Schema</a><a href="#columns">Columns</a>'
        '<a href="#drift">Drift</a><a href="#lineage">Lineage</a><a href="#tags">Tags</a></nav>'
    )


def _size(d: CardData) -> str:
    c = d.commit
    stats = [
        (num(c.total_rows), "rows"),
        (num(c.total_fragments), "fragments"),
        (_bytes(c.total_bytes), "on disk"),
        (num(len(d.schema)), "columns"),
        (num(len(d.commits) + d.older_commits), "commits in its history"),
    ]
    cells = "".join(
        f'<div class="stat" data-stat="{esc(label)}"><b>{esc(value)}</b>'
        f"<span>{esc(label)}</span></div>"
        for value, label in stats
    )
    return f'<section id="size"><h2>Size</h2><div class="stats">{cells}</div></section>'


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def _schema(d: CardData) -> str:
    rows = []
    for r in d.schema:
        rules = "".join(f"<li>{esc(rule)}</li>" for rule in r.contract)
        key = ' <span class="badge">key</span>' if r.name in (d.primary_key or []) else ""
        rows.append(
            f'<tr class="field" data-field-id="{esc(r.field_id)}" data-name="{esc(r.name)}">'
            f"{_td(r.field_id, numeric=True)}<td><code>{esc(r.name)}</code>{key}</td>"
            f"{_td(r.type)}{_td('yes' if r.nullable else 'no')}"
            f'<td><ul class="rules">{rules}</ul></td></tr>'
        )
    if d.contract_name is None:
        contract = '<p class="note">No contract is attached to this snapshot.</p>'
    else:
        table_rules = "; ".join(d.contract_rules) or "none beyond the columns'"
        contract = (
            f'<p class="contract">Contract <b>{esc(d.contract_name)}</b> is checked on every '
            f"commit; table-wide rules: {esc(table_rules)}.</p>"
        )
    head = _thead("field id", "column", "type", "nullable", "contract", numeric=(0,))
    return (
        f'<section id="schema"><h2>Schema</h2>{contract}<table class="schema">{head}'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _fmt(p: ColumnProfile) -> Callable[[float], str]:
    return formatter(p.type)


def _opt(fmt: Callable[[float], str], value: float | None) -> str:
    return "-" if value is None else fmt(value)


def _profile_meta(p: ColumnProfile) -> str:
    parts = [f"{num(p.nulls)} nulls"]
    if p.nans:
        parts.append(f"{num(p.nans)} NaN")
    parts[-1] += f" ({p.null_rate:.1%} missing)"
    if p.distinct is not None:
        parts.append(f"{num(p.distinct)} distinct")
    if p.kind == "numeric":
        fmt = _fmt(p)
        parts.append(f"min {_opt(fmt, p.min)} · mean {_opt(fmt, p.mean)} · max {_opt(fmt, p.max)}")
        if p.std is not None and fmt is num:
            parts.append(f"std {num(p.std)}")
    return " · ".join(parts)


def _present(p: ColumnProfile) -> int:
    """Rows with a value (neither null nor NaN): what category shares are of."""
    return p.rows - p.nulls - p.nans


def _chart(p: ColumnProfile, label: str) -> str:
    if p.kind == "numeric" and p.edges is not None and p.counts is not None:
        series = [Series(label, p.counts, BLUE)]
        return histogram(p.edges, series, label=f"{p.name}: histogram", fmt=_fmt(p))
    if p.top is not None and p.top:
        values = [v for v, _ in p.top]
        series = [Series(label, [c for _, c in p.top], BLUE, total=_present(p))]
        return category_bars(values, series, label=f"{p.name}: most frequent values")
    if p.kind in ("numeric", "categorical"):
        return '<p class="note">No values to chart.</p>'
    return '<p class="note">No chart for this type (row and null counts only).</p>'


def _columns(d: CardData) -> str:
    cards = [
        f'<article class="col" data-column="{esc(p.name)}"><h3><code>{esc(p.name)}</code>'
        f'<span class="badge">{esc(p.type)}</span></h3><div class="meta">{esc(_profile_meta(p))}'
        f"</div>{_chart(p, d.label)}</article>"
        for p in d.profiles.values()
    ]
    return (
        f'<section id="columns"><h2>Columns</h2><div class="grid">{"".join(cards)}</div></section>'
    )


def _metric(value: float | None) -> str:
    return "-" if value is None else num(value, 3)


def _known(p: ColumnProfile, value: str) -> int | None:
    """``value``'s count in ``p``: from its top values, 0 when they list every value,
    else unknown (it may be just below the listed ones)."""
    top = dict(p.top or [])
    if value in top:
        return top[value]
    complete = p.distinct is not None and len(top) >= p.distinct
    return 0 if complete else None


def _drift_chart(c: ColumnDrift, a: str, b: str) -> str:
    pa, pb = c.a, c.b
    if pa is None or pb is None:
        side = "only in " + (b if pa is None else a)
        return f'<p class="note">{esc(c.change)}: {esc(side)}; not compared.</p>'
    if pa.edges is not None and pa.counts is not None and pb.counts is not None:
        # Outer bins (values outside a's range) are drawn only when they hold something;
        # the bins kept are contiguous (the inner ones always are).
        n = len(pa.counts)
        keep = [i for i in range(n) if pa.counts[i] or pb.counts[i] or 0 < i < n - 1]
        keep = keep or list(range(n))
        edges = [pa.edges[i] for i in keep] + [pa.edges[keep[-1] + 1]]
        series = [
            Series(a, [pa.counts[i] for i in keep], BLUE),
            Series(b, [pb.counts[i] for i in keep], ORANGE),
        ]
        chart = histogram(edges, series, label=f"{c.name}: {a} vs {b}", fmt=_fmt(pa))
        return chart + f'<p class="note">Bins: quantiles of {esc(a)}; bars: share of rows.</p>'
    if pa.top is not None and pb.top is not None:
        values = list(dict.fromkeys([v for v, _ in pb.top] + [v for v, _ in pa.top]))
        series = [
            Series(a, [_known(pa, v) for v in values], BLUE, total=_present(pa)),
            Series(b, [_known(pb, v) for v in values], ORANGE, total=_present(pb)),
        ]
        return category_bars(values, series, label=f"{c.name}: {a} vs {b}", limit=8)
    if c.kind in ("numeric", "categorical"):
        return f'<p class="note">{esc(a)} has no values in this column to compare with.</p>'
    return '<p class="note">No chart for this type (row and null counts only).</p>'


def _metric_row(c: ColumnDrift, t: DriftThresholds) -> Metric:
    """The statistic that speaks for a column in the chart: the one furthest past (or
    closest to) its threshold among those its kind has."""
    options = [
        Metric(c.name, "PSI", c.psi, t.psi, c.flagged),
        Metric(c.name, "KS", c.ks, t.ks, c.flagged),
        Metric(c.name, "JS", c.js, t.js, c.flagged),
    ]
    measured = [m for m in options if m.ratio is not None]
    if measured:
        return max(measured, key=lambda m: m.ratio or 0.0)
    value = None if c.null_rate_delta is None else abs(c.null_rate_delta)
    return Metric(c.name, "Δ null rate", value, t.null_rate, c.flagged)


def _drift(d: CardData) -> str:
    r = d.report
    if r is None:
        note = esc(d.against_note)
        return f'<section id="drift"><h2>Drift</h2><p class="note">{note}</p></section>'
    a, b = str(d.against), d.label
    t = r.thresholds
    flagged = [c for c in r.columns if c.flagged]
    if flagged or r.reasons:
        names = ", ".join([c.name for c in flagged] + r.reasons)
        verdict = (
            f'<p class="verdict flag">Drift flagged in {len(flagged)} of {len(r.columns)} '
            f"columns: {esc(names)}</p>"
        )
    else:
        verdict = (
            f'<p class="verdict">No column drifted past the thresholds ({len(r.columns)} '
            "compared).</p>"
        )
    intro = (
        f"<p>Compared with <b>{esc(a)}</b> ({esc(d.against_note)}), pin "
        f"<code>{esc(r.a)}</code>. Rows {num(r.rows_a)} → {num(r.rows_b)}. Thresholds: PSI "
        f"{num(t.psi)}, KS {num(t.ks)}, JS {num(t.js)}, null rate ± {num(t.null_rate)}.</p>"
    )
    changes = "".join(f"<li>{esc(line)}</li>" for line in r.schema_changes)
    changes = f"<p>Schema changes:</p><ul>{changes}</ul>" if changes else ""
    chart = metric_bars([_metric_row(c, t) for c in r.columns])
    rows = []
    for c in r.columns:
        cats = []
        if c.new_categories:
            cats.append(f"new ({c.new_category_count}): " + ", ".join(c.new_categories))
        if c.vanished_categories:
            gone = ", ".join(c.vanished_categories)
            cats.append(f"vanished ({c.vanished_category_count}): {gone}")
        mark = '<span class="badge flag">drift</span>' if c.flagged else ""
        rows.append(
            f'<tr class="drift{" flagged" if c.flagged else ""}" data-column="{esc(c.name)}">'
            f"<td><code>{esc(c.name)}</code>{mark}</td>{_td(c.change)}"
            f"{_td(_metric(c.psi), numeric=True)}{_td(_metric(c.ks), numeric=True)}"
            f"{_td(_metric(c.js), numeric=True)}{_td(_metric(c.null_rate_delta), numeric=True)}"
            f"{_td('; '.join(cats))}{_td('; '.join(c.reasons))}</tr>"
        )
    head = _thead(
        "column", "change", "PSI", "KS", "JS", "Δ null rate", "categories", "why",
        numeric=(2, 3, 4, 5),
    )  # fmt: skip
    cards = []
    for c in sorted(r.columns, key=lambda c: not c.flagged):  # flagged first
        mark = '<span class="badge flag">drift</span>' if c.flagged else ""
        cards.append(
            f'<article class="col drift{" flagged" if c.flagged else ""}" '
            f'data-column="{esc(c.name)}"><h3><code>{esc(c.name)}</code>{mark}</h3>'
            f'<div class="meta">{esc(_metric_text(c))}</div>{_drift_chart(c, a, b)}</article>'
        )
    return (
        f'<section id="drift"><h2>Drift</h2>{verdict}{intro}{changes}{chart}'
        f'<table class="drift">{head}<tbody>{"".join(rows)}</tbody></table>'
        f'<h3 style="margin:18px 0 8px">Distributions, {esc(a)} vs {esc(b)}</h3>'
        f'<div class="grid">{"".join(cards)}</div></section>'
    )


def _metric_text(c: ColumnDrift) -> str:
    parts = [f"{name} {_metric(v)}" for name, v in (("PSI", c.psi), ("KS", c.ks), ("JS", c.js))]
    parts = [p for p in parts if not p.endswith(" -")] or [c.change]
    return " · ".join(parts + (["why: " + "; ".join(c.reasons)] if c.reasons else []))


def _lineage(d: CardData) -> str:
    rows = []
    for k in d.commits:
        tags = "".join(
            f'<span class="badge tag">{esc(t)}</span>'
            for t in d.tags_by_snapshot.get(k.snapshot_id, [])
        )
        if k.expired:  # listed in the history, its rows no longer readable
            tags += '<span class="badge">expired</span>'
        rows.append(
            f'<tr class="commit" data-version="{k.version}" data-snapshot="{esc(k.snapshot_id)}">'
            f"{_td(k.version, numeric=True)}{_td(_when(k.timestamp))}{_td(k.author)}"
            f"{_td(k.operation)}<td>{esc(k.message)}{tags}</td>"
            f"{_td(f'+{num(k.rows_added)} / -{num(k.rows_removed)}', numeric=True)}"
            f"{_td(num(k.total_rows), numeric=True)}</tr>"
        )
    older = (
        f'<p class="note">{d.older_commits} older commits not listed.</p>'
        if d.older_commits
        else ""
    )
    head = _thead(
        "version", "time", "author", "operation", "message", "rows ±", "rows", numeric=(0, 5, 6)
    )
    return (
        f'<section id="lineage"><h2>Lineage</h2><table class="lineage">{head}'
        f"<tbody>{''.join(rows)}</tbody></table>{older}</section>"
    )


def _tags(d: CardData) -> str:
    if not d.tags:
        return (
            '<section id="tags"><h2>Tags</h2><p class="note">The dataset has no tags.</p></section>'
        )
    rows = "".join(
        f'<tr class="tag" data-tag="{esc(t.name)}"><td><span class="badge tag">{esc(t.name)}'
        f"</span></td>{_td(t.version, numeric=True)}<td><code>{esc(t.snapshot_id[:12])}</code>"
        f"</td>{_td(_when(t.created))}{_td(t.author)}{_td(t.message)}</tr>"
        for t in d.tags
    )
    head = _thead("tag", "version", "snapshot", "created", "author", "message", numeric=(1,))
    return (
        f'<section id="tags"><h2>Tags</h2><table class="tags">{head}<tbody>{rows}</tbody>'
        "</table></section>"
    )


def html(d: CardData) -> str:
    """The card as one HTML page."""
    body = "".join(
        [
            _header(d),
            "<main>",
            _size(d),
            _schema(d),
            _columns(d),
            _drift(d),
            _lineage(d),
            _tags(d),
            "</main>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Dataset card: {esc(d.name)} @ {esc(d.ref)}</title><style>{_CSS}</style></head>"
        f"<body>{body}<footer>Generated by lakever; no script and nothing loaded from the "
        "network.</footer></body></html>\n"
    )

"""Inline SVG charts for dataset cards: histograms, category bars, metric bars.

Pure functions from numbers to SVG text: no JavaScript, no fonts or images fetched, no
plotting library. Every piece of text that comes from a dataset (a category value, a column
name) goes through `esc`. Bars carry their numbers as ``data-*`` attributes (``data-count``,
``data-share``, ``data-lo``/``data-hi``, ``data-value``) so a reader of the HTML, or a test,
can check a drawing against the figures it shows.

Colours are from the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies): blue for the snapshot a card describes or for the older side of a drift,
orange for the newer side, vermillion for what is flagged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

__all__ = [
    "BLUE",
    "FLAG",
    "GREY",
    "ORANGE",
    "Metric",
    "Series",
    "category_bars",
    "esc",
    "formatter",
    "histogram",
    "metric_bars",
    "num",
    "sparkline",
]

BLUE = "#0072B2"
ORANGE = "#E69F00"
FLAG = "#D55E00"
GREY = "#8A94A6"
INK = "#1F2933"
MUTED = "#616E7C"

_FONT = 'font-family="system-ui, sans-serif"'


def esc(text: object) -> str:
    """``text`` made safe for HTML text and attribute values (quotes escaped too)."""
    return escape(str(text), quote=True)


def num(value: float | int | None, digits: int = 4) -> str:
    """A number for people: thousands separated for ints, ``digits`` significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    text = f"{value:.{digits}g}"
    return text.replace("e+", "e")


def formatter(arrow_type: str) -> Callable[[float], str]:
    """How values of a numeric column read: dates and times as such (profiles hold them as
    seconds since the epoch, UTC), other numbers with `num`."""
    if arrow_type.startswith("date"):
        return lambda x: _epoch(x, "%Y-%m-%d")
    if arrow_type.startswith("timestamp"):
        return lambda x: _epoch(x, "%Y-%m-%d %H:%M:%S")
    return num


def _epoch(seconds: float, pattern: str) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime(pattern)
    except (OverflowError, OSError, ValueError):
        return num(seconds)


def _f(x: float) -> str:
    """A coordinate, short."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Series:
    """One set of counts to draw: a label for the legend, the counts, a colour.

    A count of None is unknown (a category outside a side's listed top values): no bar.
    ``total`` is what shares are of (default: the sum of the counts).
    """

    label: str
    counts: Sequence[int | None]
    color: str
    total: int | None = None

    def shares(self) -> list[float | None]:
        """Each count as a share of ``total``."""
        total = self.total if self.total is not None else sum(c or 0 for c in self.counts)
        return [None if c is None else (c / total if total else 0.0) for c in self.counts]


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{esc(label)}">' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 11) -> str:
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{MUTED}" {_FONT}>{esc(text)}</text>'
    )


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    out = []
    for s in series:
        out.append(f'<rect x="{_f(x)}" y="{_f(y - 9)}" width="10" height="10" fill="{s.color}"/>')
        out.append(_text(x + 14, y, s.label))
        x += 22 + 7 * len(s.label)
    return out


def histogram(
    edges: Sequence[float],
    series: Sequence[Series],
    *,
    label: str,
    width: int = 340,
    height: int = 150,
    fmt: Callable[[float], str] = num,
) -> str:
    """A histogram over ``edges`` (len = bins + 1) of one or more series.

    One series: bar heights follow the counts (the tallest bar fills the plot). Several
    (a drift, a vs b): bars side by side in each bin, heights follow each series' share of
    its own rows, so snapshots of different sizes compare.
    """
    bins = len(edges) - 1
    if bins <= 0 or any(len(s.counts) != bins for s in series):
        raise ValueError(f"histogram needs len(counts) == len(edges) - 1, got {bins} bins")
    legend = len(series) > 1
    top, bottom, left, right = (18 if legend else 6), 20, 4, 4
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [_values(s, shares=legend) for s in series]
    peak = max((v for vs in values for v in vs if v is not None), default=0.0) or 1.0
    slot = plot_w / bins
    bar_w = (slot - 2) / len(series)
    body = [f"<title>{esc(label)}</title>"]
    if legend:
        body += _legend(series, left, 11)
    base = top + plot_h
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        for j, s in enumerate(series):
            count, share = s.counts[i] or 0, s.shares()[i] or 0.0
            h = plot_h * (values[j][i] or 0.0) / peak
            x = left + i * slot + 1 + j * bar_w
            tip = f"{s.label}: [{fmt(lo)}, {fmt(hi)}) {num(count)} rows ({share:.1%})"
            body.append(
                f'<rect class="bar" x="{_f(x)}" y="{_f(base - h)}" width="{_f(bar_w)}" '
                f'height="{_f(h)}" fill="{s.color}" data-series="{esc(s.label)}" '
                f'data-lo="{lo!r}" data-hi="{hi!r}" data-count="{count}" '
                f'data-share="{share:.6f}"><title>{esc(tip)}</title></rect>'
            )
    body.append(
        f'<line x1="{left}" y1="{_f(base)}" x2="{width - right}" y2="{_f(base)}" '
        f'stroke="{GREY}" stroke-width="1"/>'
    )
    finite = [e for e in edges if math.isfinite(e)]
    if finite:
        body.append(_text(left, height - 5, fmt(finite[0])))
        body.append(_text(width - right, height - 5, fmt(finite[-1]), anchor="end"))
    return _svg(width, height, label, body)


def category_bars(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    label: str,
    width: int = 340,
    limit: int = 10,
) -> str:
    """Horizontal bars, one row per category (at most ``limit``), one bar per series.

    Widths follow counts for one series and shares of each series' rows for several.
    """
    shown = list(categories[:limit])
    legend = len(series) > 1
    row_h = 8 + 10 * len(series)
    top = 18 if legend else 4
    height = top + row_h * max(len(shown), 1) + 4
    label_w, count_w = 110, 56
    plot_w = width - label_w - count_w
    values = [_values(s, shares=legend) for s in series]
    peak = max((v for vs in values for v in vs[: len(shown)] if v is not None), default=0.0)
    peak = peak or 1.0
    body = [f"<title>{esc(label)}</title>"]
    if legend:
        body += _legend(series, 4, 11)
    for i, value in enumerate(shown):
        y = top + i * row_h
        body.append(_text(label_w - 6, y + row_h / 2 + 3, _short(value, 16), anchor="end"))
        for j, s in enumerate(series):
            count, share, value_j = s.counts[i], s.shares()[i], values[j][i]
            by = y + 4 + j * 10
            if count is None or share is None or value_j is None:
                note = f"{s.label}: not among its most frequent values"
                body.append(_text(label_w + 4, by + 8, note, size=10))
                continue
            w = plot_w * value_j / peak
            tip = f"{s.label}: {value!r}: {num(count)} rows ({share:.1%})"
            body.append(
                f'<rect class="bar" x="{label_w}" y="{_f(by)}" width="{_f(w)}" height="9" '
                f'fill="{s.color}" data-series="{esc(s.label)}" data-value="{esc(value)}" '
                f'data-count="{count}" data-share="{share:.6f}"><title>{esc(tip)}</title></rect>'
            )
            shown_num = num(count) if not legend else f"{share:.0%}"
            body.append(_text(label_w + w + 4, by + 8, shown_num, size=10))
    if not shown:
        body.append(_text(4, top + 12, "no values"))
    return _svg(width, height, label, body)


@dataclass(frozen=True, slots=True)
class Metric:
    """One column's row in `metric_bars`: its statistic, the statistic's threshold."""

    column: str
    metric: str
    value: float | None
    threshold: float
    flagged: bool

    @property
    def ratio(self) -> float | None:
        """The value as a multiple of the threshold (inf for any value over a 0 threshold)."""
        if self.value is None:
            return None
        if self.threshold > 0:
            return self.value / self.threshold
        return math.inf if self.value > 0 else 0.0


def metric_bars(rows: Sequence[Metric], *, width: int = 760) -> str:
    """One horizontal bar per column: its statistic as a multiple of its threshold, a
    dashed line at the threshold, flagged columns in vermillion; a None value (nothing
    to compare) gets a note instead of a bar."""
    row_h, top, label_w, value_w = 22, 24, 180, 190
    height = top + row_h * max(len(rows), 1) + 8
    plot_w = width - label_w - value_w
    finite = [r.ratio for r in rows if r.ratio is not None and math.isfinite(r.ratio)]
    peak = max([1.25, *finite])
    tx = label_w + plot_w / peak
    body = [
        "<title>drift statistic per column, as a multiple of its threshold</title>",
        _text(label_w, 12, "statistic ÷ threshold (dashed line: the threshold)"),
    ]
    for i, r in enumerate(rows):
        y = top + i * row_h
        body.append(_text(label_w - 8, y + 14, _short(r.column, 26), anchor="end"))
        ratio = r.ratio
        if ratio is None or r.value is None:
            body.append(_text(label_w + 4, y + 14, "not compared"))
            continue
        w = max(plot_w * min(ratio, peak) / peak, 1.0)
        color = FLAG if r.flagged else BLUE
        caption = f"{r.metric} {num(r.value, 3)} (threshold {num(r.threshold)})"
        flag = " flagged" if r.flagged else ""
        body.append(
            f'<rect class="metric{flag}" x="{label_w}" y="{_f(y + 3)}" width="{_f(w)}" '
            f'height="15" fill="{color}" data-column="{esc(r.column)}" '
            f'data-metric="{esc(r.metric)}" data-value="{r.value!r}">'
            f"<title>{esc(f'{r.column}: {caption}{flag}')}</title></rect>"
        )
        # Right of both the bar and the threshold line, so the line never crosses it.
        body.append(_text(label_w + max(w, tx - label_w) + 5, y + 14, caption))
    body.append(
        f'<line x1="{_f(tx)}" y1="{top - 4}" x2="{_f(tx)}" y2="{height - 4}" stroke="{INK}" '
        'stroke-width="1" stroke-dasharray="4 3"/>'
    )
    return _svg(width, height, "drift statistic per column", body)


def _values(s: Series, *, shares: bool) -> list[float | None]:
    """What bar sizes follow: counts, or (comparing series) shares."""
    return s.shares() if shares else [None if c is None else float(c) for c in s.counts]


_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(counts: Sequence[int | float]) -> str:
    """Counts as unicode block characters (for Markdown): ``▁▃█▅``; empty bins are ``▁``."""
    peak = max(counts, default=0) or 1
    return "".join(_BLOCKS[min(int(c / peak * (len(_BLOCKS) - 1) + 0.5), 7)] for c in counts)

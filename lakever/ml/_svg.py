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
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = [
    "BLUE",
    "FLAG",
    "GREY",
    "ORANGE",
    "Series",
    "category_bars",
    "esc",
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


def _f(x: float) -> str:
    """A coordinate, short."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Series:
    """One set of counts to draw: a label for the legend, the counts, a colour."""

    label: str
    counts: Sequence[int]
    color: str


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


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def histogram(
    edges: Sequence[float],
    series: Sequence[Series],
    *,
    label: str,
    width: int = 340,
    height: int = 150,
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
    values = [list(map(float, s.counts)) if not legend else _shares(s.counts) for s in series]
    peak = max((v for vs in values for v in vs), default=0.0) or 1.0
    slot = plot_w / bins
    bar_w = (slot - 2) / len(series)
    body = [f"<title>{esc(label)}</title>"]
    if legend:
        body += _legend(series, left, 11)
    base = top + plot_h
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        for j, s in enumerate(series):
            count = s.counts[i]
            share = _shares(s.counts)[i]
            h = plot_h * values[j][i] / peak
            x = left + i * slot + 1 + j * bar_w
            closing = "]" if i == bins - 1 else ")"
            tip = f"{s.label}: [{num(lo)}, {num(hi)}{closing} {num(count)} rows ({share:.1%})"
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
    body.append(_text(left, height - 5, num(edges[0])))
    body.append(_text(width - right, height - 5, num(edges[-1]), anchor="end"))
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
    values = [list(map(float, s.counts)) if not legend else _shares(s.counts) for s in series]
    peak = max((v for vs in values for v in vs[: len(shown)]), default=0.0) or 1.0
    body = [f"<title>{esc(label)}</title>"]
    if legend:
        body += _legend(series, 4, 11)
    for i, value in enumerate(shown):
        y = top + i * row_h
        body.append(_text(label_w - 6, y + row_h / 2 + 3, _short(value, 16), anchor="end"))
        for j, s in enumerate(series):
            count = s.counts[i]
            share = _shares(s.counts)[i]
            w = plot_w * values[j][i] / peak
            by = y + 4 + j * 10
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


def metric_bars(
    rows: Sequence[tuple[str, float | None, bool]],
    *,
    threshold: float,
    metric: str,
    width: int = 720,
) -> str:
    """One horizontal bar per column: ``(name, value, flagged)``; a dashed line at
    ``threshold``; flagged columns in vermillion. A None value (not comparable) is a gap."""
    row_h, top, label_w, value_w = 22, 22, 180, 70
    height = top + row_h * max(len(rows), 1) + 8
    plot_w = width - label_w - value_w
    peak = max([threshold * 1.25] + [v for _, v, _ in rows if v is not None and math.isfinite(v)])
    body = [f"<title>{esc(metric)} per column</title>"]
    tx = label_w + plot_w * threshold / peak
    body.append(_text(label_w, 12, f"{metric} (dashed line: threshold {num(threshold)})"))
    for i, (name, value, flagged) in enumerate(rows):
        y = top + i * row_h
        body.append(_text(label_w - 8, y + 14, _short(name, 26), anchor="end"))
        if value is None:
            body.append(_text(label_w + 4, y + 14, "not compared"))
            continue
        shown = min(value, peak) if math.isfinite(value) else peak
        w = max(plot_w * shown / peak, 1.0)
        color = FLAG if flagged else BLUE
        mark = " (flagged)" if flagged else ""
        body.append(
            f'<rect class="metric{" flagged" if flagged else ""}" x="{label_w}" y="{_f(y + 3)}" '
            f'width="{_f(w)}" height="15" fill="{color}" data-column="{esc(name)}" '
            f'data-value="{value!r}"><title>{esc(f"{name}: {metric} {num(value)}{mark}")}'
            "</title></rect>"
        )
        # The value right of both the bar and the threshold line, so the line never crosses it.
        body.append(_text(label_w + max(w, tx - label_w) + 5, y + 14, num(value, 3)))
    body.append(
        f'<line x1="{_f(tx)}" y1="{top - 4}" x2="{_f(tx)}" y2="{height - 4}" stroke="{INK}" '
        'stroke-width="1" stroke-dasharray="4 3"/>'
    )
    return _svg(width, height, f"{metric} per column", body)


_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(counts: Sequence[int | float]) -> str:
    """Counts as unicode block characters (for Markdown): ``▁▃█▅``; empty bins are ``▁``."""
    peak = max(counts, default=0) or 1
    return "".join(_BLOCKS[min(int(c / peak * (len(_BLOCKS) - 1) + 0.5), 7)] for c in counts)

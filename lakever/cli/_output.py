"""Rendering for the CLI: rich tables for people, JSON for programs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

_console = Console()
if not _console.is_terminal:
    # Piped output is read by programs and people alike: never truncate it to 80 columns.
    _console = Console(width=200)


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    _console.out(json.dumps(obj, indent=2, default=str), highlight=False)


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as a rich table; a value too wide for its column wraps, never gets cut."""
    print_styled_table(title, columns, [[(v, None) for v in r] for r in rows])


def print_styled_table(
    title: str | None, columns: Sequence[str], rows: Sequence[Sequence[tuple[Any, str | None]]]
) -> None:
    """Print rows of (value, rich style or None) cells as a table.

    Every column wraps (``fold``) instead of cutting values. When the columns do not
    fit the width even at a few characters each, rows are printed one field per line
    instead (like psql's expanded display), so that still no value is cut.
    """
    if title:
        _console.print(Text(title, style="bold"))
    cells = [[(_text(v), style) for v, style in r] for r in rows]
    widths = [max([_width(c), *(_width(r[i][0]) for r in cells)]) for i, c in enumerate(columns)]
    # Each column costs its text plus 3 characters of border and padding.
    needed = sum(min(w, _MIN_COLUMN) for w in widths) + 3 * len(columns) + 1
    if needed > _console.width:
        _print_expanded(columns, cells)
        return
    table = Table(show_lines=False)
    for c, w in zip(columns, widths, strict=True):
        table.add_column(c, overflow="fold", min_width=min(w, _MIN_COLUMN))
    for r in cells:
        table.add_row(*(Text(v, style=style or "") for v, style in r))
    _console.print(table)


#: Narrowest a column is squeezed to before rows are printed one field per line.
_MIN_COLUMN = 8


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _print_expanded(
    columns: Sequence[str], cells: Sequence[Sequence[tuple[str, str | None]]]
) -> None:
    for n, r in enumerate(cells, 1):
        _console.print(Text(f"-[ row {n} ]-", style="dim"))
        table = Table(show_header=False, box=None, padding=(0, 1, 0, 0))
        table.add_column("column", style="bold", overflow="fold")
        table.add_column("value", overflow="fold")
        for c, (v, style) in zip(columns, r, strict=True):
            table.add_row(Text(c), Text(v, style=style or ""))
        _console.print(table)


def print_pairs(title: str, pairs: Sequence[tuple[str, Any]]) -> None:
    """Print key/value pairs as a two-column table."""
    _console.print(title, style="bold", highlight=False)
    table = Table(show_header=False)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for k, v in pairs:
        table.add_row(Text(k), Text("" if v is None else str(v)))
    _console.print(table)


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def print_lines(lines: Sequence[str]) -> None:
    """Print plain lines (no markup interpretation)."""
    for line in lines:
        _console.out(line, highlight=False)

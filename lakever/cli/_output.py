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
    """Print rows as a rich table."""
    if title:
        _console.print(title, style="bold", highlight=False)
    table = Table(show_lines=False)
    for i, c in enumerate(columns):
        last = i == len(columns) - 1
        table.add_column(c, overflow="fold", no_wrap=not last)
    for r in rows:
        # Text, not markup: values such as "timestamp[us]" must print as they are.
        table.add_row(*(Text("" if v is None else str(v)) for v in r))
    _console.print(table)


def print_styled_table(
    title: str | None, columns: Sequence[str], rows: Sequence[Sequence[tuple[Any, str | None]]]
) -> None:
    """Print rows of (value, rich style or None) cells as a table."""
    if title:
        _console.print(title, style="bold", highlight=False)
    table = Table(show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*(Text("" if v is None else str(v), style=style or "") for v, style in r))
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

"""The card command: a dataset card as a self-contained HTML page or Markdown."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

import lakever as lv
from lakever.cli.data import BRANCH_OPT, PATH_ARG, parse_version


class CardFormat(StrEnum):
    """What the card is written as."""

    html = "html"
    markdown = "markdown"


def card(
    path: str = PATH_ARG,
    ref: str | None = typer.Argument(
        None, help="Snapshot to describe: version, time, tag, branch, id or pin (default: head)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the card to this file (default: standard output)."
    ),
    format: CardFormat | None = typer.Option(
        None, "--format", "-f", help="html or markdown (default: from -o's suffix .md, else html)."
    ),
    against: str | None = typer.Option(
        None,
        "--against",
        help="Measure drift against this snapshot (default: the previous tag on REF's history).",
    ),
    bins: int = typer.Option(
        10, "--bins", min=1, max=100, help="Histogram bins per numeric column."
    ),
    branch: str | None = BRANCH_OPT,
) -> None:
    """Render a dataset card: schema, contract, lineage, size, column summaries, drift."""
    if format is None:
        suffix = output.suffix.lower() if output is not None else ""
        format = CardFormat.markdown if suffix in (".md", ".markdown") else CardFormat.html
    text = lv.card(
        path,
        parse_version(ref),
        format="markdown" if format is CardFormat.markdown else "html",
        against=parse_version(against),
        bins=bins,
        branch=branch,
    )
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise lv.InvalidArgument(
            f"--output {str(output)!r}: cannot write the card ({exc.strerror or exc}); "
            "choose a path in an existing, writable directory"
        ) from exc
    typer.echo(f"wrote the {format.value} card of {path} to {output}")


def register(app: typer.Typer) -> None:
    """Add the card command to ``app``."""
    app.command()(card)

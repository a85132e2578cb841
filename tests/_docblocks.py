"""Run the ```python blocks of a Markdown page, as tests/test_docs_site.py does.

The convention (docs/testing.md, "Executable docs"): the blocks of one page run in
order, top to bottom, in one shared namespace, in a fresh empty working directory; a
block whose fence is immediately preceded by ``<!-- skip: reason -->`` is not run (the
reason is mandatory).

``python -m tests._docblocks PAGE.md`` runs one page in the current directory and exits
with status 1 at the first failing block, naming the page and the block's first line;
tracebacks point at the Markdown file's own line numbers.
"""

from __future__ import annotations

import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

# A fence (CommonMark): 3+ backticks or tildes; a backtick fence's info string has no
# backtick (so a line starting with an inline code span such as ```` ```x ```` is text).
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,}(?=[^`]*$)|~{3,})\s*(?P<info>[^\s`]*)")
_SKIP = re.compile(r"^\s*<!--\s*skip\b\s*:?(?P<reason>.*?)-->\s*$")
PYTHON = {"python", "py", "python3"}


@dataclass(frozen=True)
class Block:
    """One fenced ```python block of a page."""

    line: int  # 1-based line number of the block's first code line
    code: str
    skip: str | None  # the reason given by ``<!-- skip: reason -->``, if any


class MalformedSkip(ValueError):
    """A skip marker without a reason, or one not followed by a python block."""


def blocks(text: str) -> list[Block]:
    """The python blocks of a Markdown text, in order."""
    lines = text.splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, info = m["indent"], m["ticks"], m["info"].lower()
        start = i + 1
        j = start
        while j < len(lines) and not _closes(lines[j], ticks):
            j += 1
        if info in PYTHON:
            body = [ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[start:j]]
            skip = None
            prev = lines[i - 1] if i > 0 else ""
            s = _SKIP.match(prev)
            if s:
                skip = s["reason"].strip()
                if not skip:
                    raise MalformedSkip(f"line {i}: a skip marker needs a reason: {prev.strip()}")
            found.append(Block(line=start + 1, code="".join(f"{b}\n" for b in body), skip=skip))
        i = j + 1
    for n, ln in enumerate(lines):
        if _SKIP.match(ln) and not (n + 1 < len(lines) and _is_python_fence(lines[n + 1])):
            raise MalformedSkip(
                f"line {n + 1}: a skip marker must be the line right before a ```python fence"
            )
    return found


def _closes(line: str, ticks: str) -> bool:
    """Whether ``line`` closes a fence opened with ``ticks``: the same character, as many."""
    text = line.strip()
    return len(text) >= len(ticks) and set(text) == {ticks[0]}


def _is_python_fence(line: str) -> bool:
    m = _FENCE.match(line)
    return bool(m and m["info"].lower() in PYTHON)


def run_page(page: Path) -> int:
    """Run a page's blocks in one namespace in the current directory; 0 if all pass."""
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in blocks(page.read_text()):
        if block.skip is not None:
            print(f"{page}:{block.line}: skipped: {block.skip}")
            continue
        # Pad so that line numbers in tracebacks are the Markdown file's own.
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        try:
            exec(code, namespace)
        except BaseException:
            print(f"{page}:{block.line}: the block starting at line {block.line} failed")
            traceback.print_exc()
            return 1
        print(f"{page}:{block.line}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(run_page(Path(sys.argv[1]).resolve()))

"""The docs run and build: every ```python block of README.md and docs/ executes, and the
mkdocs site builds with --strict, offline, with the API and CLI references in it.

The convention for code in docs is in docs/testing.md ("Executable docs"); the runner
is tests/_docblocks.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests._docblocks import Block, MalformedSkip, blocks

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "tests" / "_docblocks.py"
DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def _blocks_of(page: Path) -> list[Block]:
    try:
        return blocks(page.read_text())
    except MalformedSkip:
        return []  # test_skip_markers_are_well_formed names the page


RUNNABLE = [p for p in DOC_PAGES if any(b.skip is None for b in _blocks_of(p))]
SKIPPED = [(p, b) for p in DOC_PAGES for b in _blocks_of(p) if b.skip is not None]


def run_page(page: Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run one page's blocks in a fresh interpreter whose working directory is ``cwd``."""
    return subprocess.run(
        [sys.executable, str(RUNNER), str(page)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


# -- every python block of the docs runs ----------------------------------------------


@pytest.mark.parametrize("page", RUNNABLE, ids=[_rel(p) for p in RUNNABLE])
def test_page_code_runs(page, tmp_path):
    """The page's blocks run in order, in one namespace, in a fresh empty directory."""
    proc = run_page(page, tmp_path)
    assert proc.returncode == 0, (
        f"a python block of {_rel(page)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
    ran = [ln for ln in proc.stdout.splitlines() if ln.endswith(": ok")]
    assert len(ran) == sum(b.skip is None for b in blocks(page.read_text()))


@pytest.mark.parametrize(
    ("page", "block"), SKIPPED, ids=[f"{_rel(p)}:{b.line}" for p, b in SKIPPED]
)
def test_skipped_block(page, block):
    """Each block marked <!-- skip: reason --> is listed in the test report with its reason."""
    pytest.skip(f"{_rel(page)}:{block.line}: {block.skip}")


def test_skip_markers_are_well_formed():
    bad = []
    for page in DOC_PAGES:
        try:
            blocks(page.read_text())
        except MalformedSkip as e:
            bad.append(f"{_rel(page)}: {e}")
    assert not bad, "\n".join(bad)


def test_readme_and_guide_have_code_that_runs():
    """The runner finds the pages it must run (a parser that found nothing would pass)."""
    names = {_rel(p) for p in RUNNABLE}
    assert {"README.md", "docs/index.md", "docs/maintenance.md", "docs/sql.md"} <= names
    assert sum(len(_blocks_of(p)) for p in DOC_PAGES) >= 30


# -- the runner itself ----------------------------------------------------------------


def test_blocks_share_a_namespace_and_run_in_order(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\nx = 1\nopen('made.txt', 'w').write('a')\n```\n\ntext\n\n"
        "```console\n$ not python\n```\n\n<!-- skip: needs a GPU -->\n```python\n"
        "raise SystemExit(3)\n```\n\n```python\nassert x == 1\nx += 1\nprint('x is', x)\n```\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    proc = run_page(page, work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "x is 2" in proc.stdout
    assert f"{page}:16: skipped: needs a GPU" in proc.stdout
    assert (work / "made.txt").read_text() == "a"  # relative paths land in the given cwd


def test_a_failing_block_is_named_by_page_and_line(tmp_path):
    page = tmp_path / "guide.md"
    page.write_text("```python\ny = 2\n```\n\n```python\nz = 3\nundefined_name\nw = 4\n```\n")
    proc = run_page(page, tmp_path)
    assert proc.returncode == 1
    assert f"{page}:6: the block starting at line 6 failed" in proc.stdout
    # The traceback points at the Markdown file's own line, with the name that failed.
    assert f'File "{page}", line 7' in proc.stderr
    assert "NameError: name 'undefined_name' is not defined" in proc.stderr
    assert "w = 4" not in proc.stdout


def test_pages_do_not_share_state(tmp_path):
    first, second = tmp_path / "a.md", tmp_path / "b.md"
    first.write_text("```python\nimport os\nleaked = 1\nos.environ['LEAK'] = '1'\n```\n")
    second.write_text(
        "```python\nimport os\nassert 'leaked' not in dir()\nassert 'LEAK' not in os.environ\n```\n"
    )
    assert run_page(first, tmp_path).returncode == 0
    proc = run_page(second, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_a_skip_marker_needs_a_reason_and_a_python_block():
    with pytest.raises(MalformedSkip, match="needs a reason"):
        blocks("<!-- skip -->\n```python\nx = 1\n```\n")
    with pytest.raises(MalformedSkip, match="needs a reason"):
        blocks("<!-- skip: -->\n```python\nx = 1\n```\n")
    with pytest.raises(MalformedSkip, match="right before"):
        blocks("<!-- skip: no -->\n\n```python\nx = 1\n```\n")
    with pytest.raises(MalformedSkip, match="right before"):
        blocks("<!-- skip: no -->\n```bash\nls\n```\n")


def test_inline_code_at_a_line_start_is_not_a_fence():
    text = "```` ```bash ```` is not run:\n\n```python\nx = 1\n```\n\n```` ```python ````\n"
    assert blocks(text) == [Block(line=4, code="x = 1\n", skip=None)]


def test_a_longer_fence_holds_a_shorter_one():
    text = '````python\ns = """\n```\n"""\n````\n'
    assert blocks(text) == [Block(line=2, code='s = """\n```\n"""\n', skip=None)]


def test_an_indented_block_in_a_list_is_dedented():
    text = "- item:\n\n  ```python\n  if True:\n      x = 1\n  ```\n"
    assert blocks(text) == [Block(line=4, code="if True:\n    x = 1\n", skip=None)]


_code_line = st.text(alphabet=st.sampled_from("abcxyz =+1'()#:"), min_size=0, max_size=20).filter(
    lambda s: not s.lstrip().startswith(("`", "~"))
)
_chunk = st.one_of(
    st.tuples(st.just("prose"), st.lists(st.sampled_from(["text", "", "| a | b |"]), max_size=3)),
    st.tuples(
        st.sampled_from(["python", "py", "bash", "console", "json", ""]),
        st.lists(_code_line, max_size=4),
    ),
    st.tuples(st.just("skip"), st.lists(_code_line, max_size=3)),
)


@given(st.lists(_chunk, max_size=8))
def test_blocks_finds_exactly_the_python_blocks(chunks):
    """Parsing a generated page gives back each python block, its first line and its skip."""
    lines: list[str] = []
    expected: list[Block] = []
    for kind, body in chunks:
        if kind == "prose":
            lines += ["", *[b for b in body if b.strip()], ""]
            continue
        skip = None
        if kind == "skip":
            skip, kind = "needs a cluster", "python"
            lines.append(f"<!-- skip: {skip} -->")
        lines.append(f"```{kind}")
        if kind in ("python", "py"):
            code = "".join(f"{line}\n" for line in body)
            expected.append(Block(line=len(lines) + 1, code=code, skip=skip))
        lines += [*body, "```", ""]
    found = blocks("\n".join(lines))
    assert found == expected
    for b in found:  # line numbers point into the page: the fence, then the code
        assert lines[b.line - 2].startswith(("```python", "```py"))
        n = len(b.code.splitlines())
        assert "".join(f"{line}\n" for line in lines[b.line - 1 : b.line - 1 + n]) == b.code


# -- the mkdocs site ------------------------------------------------------------------


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for v in nav.values() for p in _nav_pages(v)]
    if isinstance(nav, list):
        return [p for v in nav for p in _nav_pages(v)]
    return []


class _Loader(yaml.SafeLoader):
    """mkdocs.yml may hold !ENV / !relative tags; the tests only read its nav."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


NAV = _nav_pages(yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)["nav"])


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """One `mkdocs build --strict` per test session (it takes 15-60 s)."""
    out = tmp_path_factory.mktemp("site")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith(("WARNING", "ERROR"))]
    assert proc.returncode == 0, "mkdocs build --strict failed:\n" + (
        "\n".join(warnings) or proc.stderr[-5000:]
    )
    print(f"mkdocs build --strict: {time.monotonic() - started:.1f} s")
    return out


def test_every_nav_page_is_built(site):
    missing = [p for p in NAV if not (site / p).with_suffix(".html").exists()]
    assert not missing
    for page in [
        "index",
        "format",
        "cli",
        "benchmarks",
        "api/index",
        "api/dataset",
        "errors",
        "coming-from/dvc",
        "coming-from/delta",
        "coming-from/iceberg",
    ]:
        assert f"{page}.md" in NAV, page


def test_every_page_under_docs_is_in_the_nav():
    pages = {_rel(p)[len("docs/") :] for p in (ROOT / "docs").rglob("*.md")}
    assert pages <= set(NAV), sorted(pages - set(NAV))


def test_api_reference_is_rendered_from_docstrings(site):
    api = (site / "api" / "index.html").read_text()
    assert 'id="lakever.open_dataset"' in api
    # The summary line and a Raises entry of open_dataset's Google-style docstring.
    assert "Open a dataset at a branch head, a version, a point in time, a tag, or a pin." in api
    assert "VersionNotFound" in api and "a naive datetime" in api
    dataset = (site / "api" / "dataset.html").read_text()
    for method in ["to_arrow", "to_batches", "append", "tag", "merge", "pin", "compact"]:
        assert f'id="lakever.Dataset.{method}"' in dataset, method
    assert 'id="lakever.ScanPlan"' in dataset
    errors = (site / "api" / "errors.html").read_text()
    assert 'id="lakever.errors.LakeverError"' in errors
    assert 'id="lakever.errors.CommitConflict"' in errors


def test_every_public_name_is_in_the_api_reference():
    import lakever

    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: lakever\.(\w+)", page.read_text(), re.M))
    errors = {
        n
        for n in lakever.__all__
        if isinstance(getattr(lakever, n), type)
        and issubclass(getattr(lakever, n), lakever.LakeverError)
    }
    missing = sorted(set(lakever.__all__) - documented - errors - {"FORMAT_VERSION"})
    assert not missing, f"add '::: lakever.NAME' for {missing} to a page under docs/api/"


def test_cli_reference_is_in_the_site(site):
    cli = (site / "cli.html").read_text()
    commands = re.findall(r"^## `lakever ([a-z -]+)`", (ROOT / "docs" / "cli.md").read_text(), re.M)
    assert len(commands) >= 30
    for command in commands:
        assert f"<code>lakever {command}</code>" in cli, command


_EXTERNAL_FETCH = re.compile(
    r"<(?:script|link|img|iframe|source|video|audio)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//",
    re.I,
)


def test_the_site_fetches_nothing_from_the_network(site):
    """Built HTML and CSS load no font, script, style or image from another host."""
    offenders = []
    for f in site.rglob("*"):
        if f.suffix == ".html":
            text = f.read_text()
            offenders += [f"{f.name}: {m.group(0)}" for m in _EXTERNAL_FETCH.finditer(text)]
        if f.suffix in (".html", ".css", ".js"):
            text = f.read_text(errors="replace")
            offenders += [f"{f.name}: google fonts" for _ in re.finditer("fonts.googleapis", text)]
            if f.suffix == ".css":
                offenders += [f"{f.name}: {u}" for u in re.findall(r"url\([\"']?https?://", text)]
    assert not offenders, offenders[:20]
    assert list(site.rglob("*.js")) and list(site.rglob("*.css"))  # assets are local files

"""Dataset cards (lakever.card, `lakever card`): what the page says, checked against plain
engines; that it is inert and offline; and that a browser actually draws it.

The HTML is parsed with html.parser into a small tree and every figure the card shows
(field ids, commits, tags, histogram bars, category bars, drift flags) is compared with
what pyarrow computes over `Dataset.to_arrow()`, or with the history the dataset reports.
Chromium (headless) renders one card per session: the screenshot is decoded here (a tiny
PNG reader; Pillow is not a dependency) and must show the charts' colours.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandera.polars as pa_pl
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import lakever as lv
from lakever.cli import app
from lakever.ml import drift as drifts
from lakever.ml.card import previous_tag
from tests._page import Node, parse, read_png

# ------------------------------------------------------------------ data

HOSTILE_MESSAGE = "<script>document.body.setAttribute('data-pwned','1')</script> batch 2"
HOSTILE_COLUMN = "\"><img src=x onerror=\"document.body.setAttribute('data-pwned','2')\">"
HOSTILE_CATEGORY = "<script>alert(1)</script>"
HOSTILE_AUTHOR = "'><svg onload=alert(3)>"
HOSTILE_TAG = '"><svg/onload=alert(4)>'
HOSTILE = [HOSTILE_MESSAGE, HOSTILE_COLUMN, HOSTILE_CATEGORY, HOSTILE_AUTHOR, HOSTILE_TAG]


def _batch(n: int, seed: int, shift: float, cities: list[str]) -> pa.Table:
    import random

    rnd = random.Random(seed)
    return pa.table(
        {
            "user_id": pa.array(range(seed * 10_000, seed * 10_000 + n), pa.int64()),
            "age": pa.array(
                [None if i % 17 == 0 else int(rnd.gauss(35 + shift, 8)) for i in range(n)],
                pa.int64(),
            ),
            "score": pa.array([rnd.random() for _ in range(n)], pa.float64()),
            HOSTILE_COLUMN: pa.array([rnd.choice(cities) for _ in range(n)], pa.string()),
        }
    )


CONTRACT = pa_pl.DataFrameSchema(
    {
        "user_id": pa_pl.Column(pl.Int64, pa_pl.Check.ge(0), nullable=False, unique=True),
        "score": pa_pl.Column(pl.Float64, pa_pl.Check.in_range(0, 1)),
    },
    name="users",
)


@dataclass
class Demo:
    uri: str
    ds: lv.Dataset
    html: str
    doc: Node
    path: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Demo:
    """v1 (tag) -> a hostile commit, tagged with a hostile name -> a commit that shifts age
    and adds cities -> v2 (tag, REF; its previous tag is the hostile one)."""
    root = tmp_path_factory.mktemp("card")
    uri = str(root / "lake" / "users")
    ds = lv.create_dataset(
        uri, _batch(400, 1, 0, ["Paris", "Lyon"]), contract=CONTRACT, message="first", author="ana"
    )
    ds.tag("v1", message="training set v1")
    ds = ds.append(
        _batch(300, 2, 0, ["Paris", "Lyon"]), message=HOSTILE_MESSAGE, author=HOSTILE_AUTHOR
    )
    ds.tag(HOSTILE_TAG, message=HOSTILE_MESSAGE)
    ds = ds.append(
        _batch(400, 3, 25, ["Paris", "Lille", HOSTILE_CATEGORY]), message="third", author="ana"
    )
    ds.tag("v2")
    html = lv.card(uri, "v2")
    path = root / "card.html"
    path.write_text(html, encoding="utf-8")
    return Demo(uri, ds, html, parse(html), path)


def _section(doc: Node, name: str) -> Node:
    return doc.by_id(name)


# ------------------------------------------------------------------ content


def test_header_names_the_snapshot(demo):
    header = demo.doc.find_all("header")[0].text()
    assert demo.ds.snapshot_id in header
    assert demo.ds.pin() in header
    assert "v2" in header and "version 2" in header
    assert demo.doc.find_all("title")[0].text() == "Dataset card: users @ v2"


def test_size_matches_the_commit(demo):
    stats = {
        n.attrs["data-stat"]: n.find_all("b")[0].text() for n in demo.doc.find_all("div", "stat")
    }
    c = demo.ds.commit
    assert stats["rows"] == f"{c.total_rows:,}" == "1,100"
    assert stats["fragments"] == str(c.total_fragments) == "3"
    assert stats["columns"] == "4"
    assert stats["commits in its history"] == "3"


def test_schema_rows_carry_field_ids_types_and_the_contract(demo):
    rows = _section(demo.doc, "schema").find_all("tr", "field")
    assert [r.attrs["data-name"] for r in rows] == demo.ds.schema.names
    for row in rows:
        name = row.attrs["data-name"]
        cells = [td.text() for td in row.find_all("td")]
        assert int(row.attrs["data-field-id"]) == demo.ds.field_ids[name] == int(cells[0])
        assert cells[2] == str(demo.ds.schema.field(name).type)
    rules = {r.attrs["data-name"]: [li.text() for li in r.find_all("li")] for r in rows}
    assert "not null" in rules["user_id"] and "unique" in rules["user_id"]
    assert any(r.startswith("greater_than_or_equal_to(") for r in rules["user_id"])
    assert any(r.startswith("in_range(") and "max_value=1" in r for r in rules["score"])
    assert rules["age"] == []
    assert "users" in _section(demo.doc, "schema").find_all("p", "contract")[0].text()


def test_lineage_lists_every_commit_with_its_tags(demo):
    rows = _section(demo.doc, "lineage").find_all("tr", "commit")
    history = demo.ds.history()
    assert [int(r.attrs["data-version"]) for r in rows] == [c.version for c in history]
    assert [r.attrs["data-snapshot"] for r in rows] == [c.snapshot_id for c in history]
    by_version = {int(r.attrs["data-version"]): r for r in rows}
    badges = {v: [b.text() for b in r.find_all("span", "tag")] for v, r in by_version.items()}
    assert badges == {0: ["v1"], 1: [HOSTILE_TAG], 2: ["v2"]}
    cells = [td.text() for td in by_version[1].find_all("td")]
    assert cells[2] == HOSTILE_AUTHOR and HOSTILE_MESSAGE in cells[4]
    assert cells[5] == "+300 / -0"


def test_a_long_history_lists_the_newest_commits_and_counts_the_rest(tmp_path):
    from lakever.ml.card import LINEAGE_LIMIT

    ds = lv.create_dataset(str(tmp_path / "long"), pa.table({"id": [0]}))
    for i in range(1, LINEAGE_LIMIT + 5):
        ds = ds.append(pa.table({"id": [i]}), message=f"batch {i}")
    text = lv.card(str(tmp_path / "long"), format="markdown")
    listed = [v for v in range(1, LINEAGE_LIMIT + 5) if f"| batch {v} |" in text]
    assert listed == list(range(5, LINEAGE_LIMIT + 5))  # the newest 30: versions 5..34
    assert "5 older commits not listed." in text
    assert len(ds.history()) == ds.version + 1 == LINEAGE_LIMIT + 5


def test_tags_section_lists_every_tag(demo):
    rows = _section(demo.doc, "tags").find_all("tr", "tag")
    assert {r.attrs["data-tag"] for r in rows} == {t.name for t in demo.ds.tags()}


def _plain_counts(values: pa.ChunkedArray, edges: list[float]) -> list[int]:
    """Histogram by plain comparisons: bin i holds edges[i] <= v < edges[i+1], the outer
    bins open-ended (the first holds everything below edges[1], the last everything at or
    above edges[-2]); NaN and null in none."""
    n = len(edges) - 1
    counts = []
    for i in range(n):
        parts = []
        if i > 0:
            parts.append(pc.greater_equal(values, edges[i]))
        if i < n - 1:
            parts.append(pc.less(values, edges[i + 1]))
        if not parts:  # one bin: every value that is a number
            floating = pa.types.is_floating(values.type)
            mask = pc.invert(pc.is_nan(values)) if floating else pc.is_valid(values)
        else:
            mask = parts[0] if len(parts) == 1 else pc.and_(*parts)
        counts.append(pc.sum(pc.cast(pc.fill_null(mask, False), pa.int64())).as_py() or 0)
    return counts


def _check_histogram(svg: Node, series: str, values: pa.ChunkedArray) -> list[int]:
    """The bars of ``series`` in ``svg`` count what plain comparisons count."""
    bars = [b for b in svg.find_all("rect", "bar") if b.attrs["data-series"] == series]
    assert bars, f"no bars for {series!r}"
    edges = [float(b.attrs["data-lo"]) for b in bars] + [float(bars[-1].attrs["data-hi"])]
    counts = [int(b.attrs["data-count"]) for b in bars]
    assert counts == _plain_counts(values, edges)
    nans = pc.sum(pc.is_nan(values)).as_py() if pa.types.is_floating(values.type) else 0
    assert sum(counts) == len(values) - values.null_count - (nans or 0)
    return counts


def _check_heights(svg: Node, counts: list[int] | list[float]) -> None:
    heights = [float(b.attrs["height"]) for b in svg.find_all("rect", "bar")]
    peak, top = max(counts), max(heights)
    assert top > 0
    for h, c in zip(heights, counts, strict=True):
        assert h == pytest.approx(top * c / peak, abs=0.02)


def _check_categories(svg: Node, series: str, values: pa.ChunkedArray) -> None:
    bars = [b for b in svg.find_all("rect", "bar") if b.attrs["data-series"] == series]
    truth = Counter(v for v in pc.cast(values, pa.string()).to_pylist() if v is not None)
    shown = {b.attrs["data-value"]: int(b.attrs["data-count"]) for b in bars}
    assert shown, "no category bars"
    for value, count in shown.items():
        assert truth[value] == count, value
    # The shown values are the most frequent ones.
    assert (
        sorted(shown.values(), reverse=True) == sorted(truth.values(), reverse=True)[: len(shown)]
    )


def test_column_charts_match_plain_counts(demo):
    table = demo.ds.to_arrow()
    articles = _section(demo.doc, "columns").find_all("article", "col")
    assert [a.attrs["data-column"] for a in articles] == table.column_names
    for article in articles:
        name = article.attrs["data-column"]
        (svg,) = article.find_all("svg")
        if name == HOSTILE_COLUMN:
            _check_categories(svg, "v2", table[name])
            widths = [float(b.attrs["width"]) for b in svg.find_all("rect", "bar")]
            counts = [int(b.attrs["data-count"]) for b in svg.find_all("rect", "bar")]
            assert widths == sorted(widths, reverse=True) and counts == sorted(counts, reverse=True)
        else:
            _check_heights(svg, _check_histogram(svg, "v2", table[name]))
        meta = article.find_all("div", "meta")[0].text()
        assert meta.startswith(f"{table[name].null_count:,} nulls")


def _check_drift_section(
    doc: Node, a: lv.Dataset, b: lv.Dataset, names: tuple[str, str], bins: int = 10
) -> None:
    """The drift section of a card of ``b`` against ``a``: flags as `drift` reports them,
    every bar of both sides as plain pyarrow counts them."""
    report = drifts.drift(a, b, bins=bins)
    section = _section(doc, "drift")
    flagged = {c.name for c in report.columns if c.flagged}
    rows = section.find_all("tr", "drift")
    assert {r.attrs["data-column"] for r in rows} == {c.name for c in report.columns}
    assert {r.attrs["data-column"] for r in rows if "flagged" in r.classes} == flagged
    articles = section.find_all("article", "drift")
    assert {x.attrs["data-column"] for x in articles if "flagged" in x.classes} == flagged
    metrics = section.find_all("rect", "metric")
    assert {m.attrs["data-column"] for m in metrics if "flagged" in m.classes} == flagged
    if flagged:
        assert "Drift flagged" in section.find_all("p", "verdict")[0].text()
    ta, tb = a.to_arrow(), b.to_arrow()
    checked: Counter[str] = Counter()
    for article in articles:
        name = article.attrs["data-column"]
        svgs = article.find_all("svg")
        if not svgs or name not in ta.column_names or name not in tb.column_names:
            continue
        (svg,) = svgs
        if article.find_all("p", "note") and "quantiles" in article.text():
            for side, table in zip(names, (ta, tb), strict=True):
                counts = _check_histogram(svg, side, table[name])
                shares = [float(r.attrs["data-share"]) for r in svg.find_all("rect", "bar")
                          if r.attrs["data-series"] == side]  # fmt: skip
                total = sum(counts)
                assert shares == pytest.approx([c / total for c in counts], abs=1e-6)
            checked["numeric"] += 1
        else:
            for side, table in zip(names, (ta, tb), strict=True):
                truth = Counter(pc.cast(table[name], pa.string()).to_pylist())
                bars = [r for r in svg.find_all("rect", "bar") if r.attrs["data-series"] == side]
                for bar in bars:
                    assert int(bar.attrs["data-count"]) == truth[bar.attrs["data-value"]]
            checked["categorical"] += 1
    # Every compared column with values on the reference side has its chart, checked above.
    charted = Counter(
        c.kind
        for c in report.columns
        if c.a is not None
        and c.b is not None
        and c.a.kind == c.b.kind
        and (c.a.edges is not None or c.a.top is not None)
    )
    assert checked == +Counter({k: charted[k] for k in ("numeric", "categorical")})


def test_drift_section_matches_drift_and_plain_counts(demo):
    previous = lv.open_dataset(demo.uri, version=1)
    _check_drift_section(demo.doc, previous, demo.ds, (HOSTILE_TAG, "v2"))
    section = _section(demo.doc, "drift")
    # The shifted age and the new cities are flagged; the card says what it compared.
    assert {"age", HOSTILE_COLUMN} <= {
        r.attrs["data-column"] for r in section.find_all("tr", "flagged")
    }
    assert f"the previous tag ({HOSTILE_TAG!r}, version 1)" in section.text()
    assert HOSTILE_CATEGORY in section.text()  # listed as a new category, literally


_TEXT = st.sampled_from(["a", "b", "<b>", "x&y", '"q"', "ü", ""])


@st.composite
def tables(draw: st.DrawFn, rows: int | None = None) -> pa.Table:
    n = draw(st.integers(0, 40)) if rows is None else rows
    ints = st.one_of(st.none(), st.integers(-(2**53), 2**53))
    small = st.one_of(st.none(), st.integers(-3, 3))
    floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
    f = draw(st.lists(floats, min_size=n, max_size=n))
    return pa.table(
        {
            "i": pa.array(draw(st.lists(ints, min_size=n, max_size=n)), pa.int64()),
            "k": pa.array(draw(st.lists(small, min_size=n, max_size=n)), pa.int32()),
            "f": pa.array(f, pa.float64()),
            "s": pa.array(draw(st.lists(st.none() | _TEXT, min_size=n, max_size=n)), pa.string()),
            "b": pa.array(
                draw(st.lists(st.none() | st.booleans(), min_size=n, max_size=n)), pa.bool_()
            ),
        }
    )


@settings(max_examples=20)
@given(first=tables(), second=tables(), bins=st.integers(1, 12))
def test_random_cards_match_plain_counts(tmp_path, first, second, bins):
    uri = str(tmp_path / uuid.uuid4().hex)
    base = lv.create_dataset(uri, first)
    base.tag("base")
    head = base.append(second)
    doc = parse(lv.card(uri, bins=bins))
    table = head.to_arrow()
    for article in _section(doc, "columns").find_all("article", "col"):
        name = article.attrs["data-column"]
        values = table[name]
        svgs = article.find_all("svg")
        present = len(values) - values.null_count
        if name == "f":
            present -= pc.sum(pc.is_nan(values)).as_py() or 0
        assert bool(svgs) == (present > 0), name
        if not svgs:
            continue
        if name in ("s", "b"):
            _check_categories(svgs[0], "main", values)
        else:
            counts = _check_histogram(svgs[0], "main", values)
            assert len(counts) <= max(bins, 1) + (name == "k")
            _check_heights(svgs[0], counts)
    base = lv.open_dataset(uri, version="base")
    _check_drift_section(doc, base, head, ("base", "main"), bins)


# ------------------------------------------------------------------ safety


def test_hostile_strings_are_shown_literally_and_never_become_markup(demo):
    doc = demo.doc
    assert not doc.find_all("script") and not doc.find_all("img") and not doc.find_all("iframe")
    for node in doc.iter():
        handlers = [k for k in node.attrs if k.startswith("on")]
        assert not handlers, (node.tag, node.attrs)
    # Only the charts are SVG: every <svg> is a chart, none comes from a tag name.
    assert all("chart" in s.classes for s in doc.find_all("svg"))
    text = doc.text()
    for hostile in HOSTILE:
        assert hostile in text, hostile
    # Attribute values too: the hostile column name survives as an attribute value.
    assert HOSTILE_COLUMN in {n.attrs.get("data-column") for n in doc.iter()}
    assert HOSTILE_TAG in {n.attrs.get("data-tag") for n in doc.iter()}


def test_the_page_loads_nothing(demo):
    doc = demo.doc
    for node in doc.iter():
        for name in ("src", "href", "xlink:href", "action", "formaction", "poster", "data"):
            value = node.attrs.get(name)
            if value is not None:
                assert value.startswith("#"), (node.tag, name, value)
    assert not doc.find_all("link") and not doc.find_all("object") and not doc.find_all("embed")
    style = "".join(s.text() for s in doc.find_all("style"))
    assert "@import" not in style and "url(" not in style
    for marker in ("http://", "https://", "//fonts", "url("):
        assert marker not in demo.html
    (csp,) = [
        m for m in doc.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"
    ]
    assert "default-src 'none'" in csp.attrs["content"]


# ------------------------------------------------------------------ markdown


def test_markdown_card_has_the_tables_and_no_raw_html(demo):
    md = lv.card(demo.uri, "v2", format="markdown")
    lines = md.splitlines()
    assert lines[0] == "# Dataset card: users"
    for heading in ("## Size", "## Schema", "## Columns", "## Drift", "## Lineage", "## Tags"):
        assert heading in lines
    schema = [line for line in lines if line.startswith("| ") and "| int64 |" in line]
    assert {row.split(" | ")[0].strip("| ") for row in schema} == {
        str(demo.ds.field_ids["user_id"]),
        str(demo.ds.field_ids["age"]),
    }
    assert "| 1,100 | 3 |" in md
    # Sparklines for the numeric columns; every commit listed.
    assert sum(1 for line in lines if line.startswith("| age | numeric") and "`" in line) == 1
    assert all(f"| {c.version} | " in md for c in demo.ds.history())
    # Drift: the table names both sides and marks the flagged columns.
    header = next(line for line in lines if line.startswith("| column | change | PSI"))
    assert header.endswith("| v2 |") and "&quot;" not in header
    (age,) = [line for line in lines if line.startswith("| age | same |")]
    assert "**yes**: " in age and age.count("`") == 4  # flagged; a sparkline per side
    (score,) = [line for line in lines if line.startswith("| score | same |")]
    assert "| no |" in score
    # Markup characters are escaped: no tag a README renderer would pass through.
    assert "<script" not in md and "<svg" not in md and "<img" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert all(line.count("|") == lines[lines.index("## Size") + 2].count("|") for line in
               lines[lines.index("## Size") + 2 : lines.index("## Size") + 5])  # fmt: skip


# ------------------------------------------------------------------ the comparison


def test_previous_tag_is_the_newest_tag_on_the_history(tmp_path):
    uri = str(tmp_path / "d")
    ds = lv.create_dataset(uri, _batch(10, 1, 0, ["a"]))
    assert previous_tag(ds) is None
    ds.tag("t0")
    assert previous_tag(ds) is None  # a tag on the snapshot itself is not "previous"
    ds = ds.append(_batch(10, 2, 0, ["a"]))
    side = ds.branch("side").append(_batch(10, 3, 0, ["b"]))
    side.tag("side-tag")  # not on main's history
    ds = ds.append(_batch(10, 4, 0, ["a"]))
    assert previous_tag(ds).name == "t0"
    lv.open_dataset(uri, version=1).tag("t1")
    assert previous_tag(ds).name == "t1"
    assert previous_tag(lv.open_dataset(uri, version="side")).name == "t1"  # branched at v1
    assert previous_tag(side.append(_batch(1, 5, 0, ["b"]))).name == "side-tag"


def test_without_a_previous_tag_the_drift_section_says_so(tmp_path):
    uri = str(tmp_path / "d")
    lv.create_dataset(uri, _batch(20, 1, 0, ["a"])).append(_batch(20, 2, 0, ["a"]))
    doc = parse(lv.card(uri))
    drift = _section(doc, "drift")
    assert "No earlier tag" in drift.text() and "--against" in drift.text()
    assert not drift.find_all("svg") and not drift.find_all("table")
    # against= chooses a snapshot instead.
    drift = _section(parse(lv.card(uri, against=0)), "drift")
    assert drift.find_all("table", "drift") and "chosen with against=" in drift.text()


def test_expired_versions_are_marked_and_refused_as_against(tmp_path):
    uri = str(tmp_path / "d")
    ds = lv.create_dataset(uri, _batch(10, 1, 0, ["a"]))
    for i in range(3):
        ds = ds.append(_batch(10, i + 2, 0, ["a"]))
    ds.expire(keep_last=2, dry_run=False)
    rows = _section(parse(lv.card(uri)), "lineage").find_all("tr", "commit")
    expired = {int(r.attrs["data-version"]) for r in rows if "expired" in r.text()}
    assert expired == {c.version for c in ds.history() if c.expired} == {0, 1}
    assert "| 0 | " in (md := lv.card(uri, format="markdown")) and md.count("(expired)") == 2
    with pytest.raises(lv.VersionExpired):
        lv.card(uri, against=0)


def test_bad_arguments_are_lakever_errors(demo):
    with pytest.raises(lv.VersionNotFound):
        lv.card(demo.uri, "no-such-tag")
    with pytest.raises(lv.VersionNotFound):
        lv.card(demo.uri, "v2", against=99)
    with pytest.raises(lv.DatasetNotFound):
        lv.card(demo.uri + "-missing")
    with pytest.raises(lv.InvalidArgument, match="format must be 'html' or 'markdown'"):
        lv.card(demo.uri, format="pdf")  # type: ignore[arg-type]
    with pytest.raises(lv.InvalidArgument, match="bins must be an int from 1 to 100"):
        lv.card(demo.uri, bins=0)
    with pytest.raises(lv.InvalidArgument, match="source must be a dataset URI or a Dataset"):
        lv.card(42)  # type: ignore[arg-type]


def test_a_dataset_object_is_accepted_as_source(demo):
    by_uri = lv.card(demo.uri, format="markdown")  # the head of main: the same snapshot
    assert lv.card(demo.ds, format="markdown") == by_uri
    assert (
        lv.card(demo.ds, 0, format="markdown")
        .splitlines()[2]
        .startswith(f"`{demo.uri}` at **0**: version 0 of branch main")
    )


# ------------------------------------------------------------------ CLI

runner = CliRunner()


def test_cli_writes_html_and_markdown_files(demo, tmp_path):
    out = tmp_path / "card.html"
    result = runner.invoke(app, ["card", demo.uri, "v2", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote the html card of {demo.uri} to {out}\n"
    doc = parse(out.read_text(encoding="utf-8"))
    assert doc.find_all("title")[0].text() == "Dataset card: users @ v2"
    md = tmp_path / "README.md"
    result = runner.invoke(app, ["card", demo.uri, "1", "-o", str(md), "--against", "v1"])
    assert result.exit_code == 0, result.output
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Dataset card: users\n") and "at **1**: version 1" in text
    assert "Against v1 (chosen with against=)" in text
    result = runner.invoke(app, ["card", demo.uri, "--format", "markdown", "--bins", "4"])
    assert result.exit_code == 0 and result.stdout.startswith("# Dataset card: users\n")
    assert "at **main**" in result.stdout


def _lakever(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakever", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["v9"], "error: no tag, branch or snapshot id 'v9' in "),
        (["v2", "--against", "nope"], "error: no tag, branch or snapshot id 'nope' in "),
        (
            ["v2", "-o", "/nonexistent-dir/card.html"],
            "error: --output '/nonexistent-dir/card.html': ",
        ),
    ],
)
def test_cli_errors_are_one_line(demo, args, message):
    proc = _lakever("card", demo.uri, *args)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(message), proc.stderr


@pytest.mark.parametrize(
    ("args", "word"), [(["--format", "pdf"], "pdf"), (["--bins", "0"], "--bins")]
)
def test_cli_usage_errors_exit_2(demo, args, word):
    proc = _lakever("card", demo.uri, *args)
    assert proc.returncode == 2 and word in proc.stderr, proc.stderr


# ------------------------------------------------------------------ a real browser


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; CI installs it (scripts/test.sh)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    return found


def _run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([binary, *flags, *args], capture_output=True, timeout=120, check=False)


#: Tall enough for the drift section of the demo card.
WIDTH, HEIGHT = 1200, 3200


@dataclass
class Rendered:
    width: int
    height: int
    pixels: list[bytes]  # one row of RGB triples per line
    dom: Node


@pytest.fixture(scope="module")
def rendered(demo, tmp_path_factory) -> Rendered:
    """The demo card drawn by headless Chromium: a screenshot and the DOM after loading."""
    binary = _chromium()
    work = tmp_path_factory.mktemp("chromium")
    png = work / "card.png"
    url = demo.path.as_uri()
    proc = _run_chromium(
        binary, work / "p1", f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", url
    )
    assert png.exists(), proc.stderr.decode(errors="replace")[-2000:]
    width, height, pixels = read_png(png.read_bytes())
    proc = _run_chromium(binary, work / "p2", "--dump-dom", url)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return Rendered(width, height, pixels, parse(proc.stdout.decode()))


def _near(pixel: tuple[int, int, int], color: str, tolerance: int = 12) -> bool:
    target = (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, target, strict=True))


def test_chromium_draws_the_charts(rendered):
    from lakever.ml._svg import BLUE, FLAG, ORANGE

    assert (rendered.width, rendered.height) == (WIDTH, HEIGHT)
    colours: Counter[tuple[int, int, int]] = Counter()
    for row in rendered.pixels[::2]:
        colours.update(zip(row[0::6], row[1::6], row[2::6], strict=True))
    assert len(colours) > 200, "the page is (nearly) blank"
    top = colours.most_common(1)[0][1]
    assert top < 0.8 * sum(colours.values()), "one colour covers the page"
    painted = {c: sum(n for p, n in colours.items() if _near(p, c)) for c in (BLUE, ORANGE, FLAG)}
    # Histogram bars in blue, the newer side of the drift in orange, flags in vermillion.
    assert painted[BLUE] > 2000 and painted[ORANGE] > 300 and painted[FLAG] > 300, painted


def test_chromium_dom_keeps_every_chart_and_runs_nothing(demo, rendered):
    dom = rendered.dom
    body = dom.find_all("body")[0]
    assert "data-pwned" not in body.attrs
    assert not dom.find_all("script") and not dom.find_all("img")
    svgs = dom.find_all("svg")
    assert len(svgs) == len(demo.doc.find_all("svg")) > 4
    bars = [r for r in dom.find_all("rect") if "bar" in r.classes]
    assert bars and sum(float(r.attrs["height"]) > 0 for r in bars) > len(bars) // 2
    assert all(float(s.attrs["width"]) > 0 and float(s.attrs["height"]) > 0 for s in svgs)
    assert HOSTILE_MESSAGE in dom.text()

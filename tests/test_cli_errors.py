"""The CLI never shows a traceback for a user error: one ``error:`` line, exit 1.

Each class of user error is provoked for real (a path that is a file, a directory
that cannot be written, an output file that cannot be written, a damaged dataset,
a missing or unreadable input file) through a real ``lakever`` process; flags are
named as flags; ``--debug`` shows the traceback; a real bug keeps its traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

import lakever as lv
import lakever.cli as cli
from tests._data import events


def lakever(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakever", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(message), proc.stderr


@pytest.fixture
def csv(tmp_path) -> Path:
    path = tmp_path / "rows.csv"
    pacsv.write_csv(events(0, 3), path)
    return path


@pytest.fixture
def lake(tmp_path) -> Path:
    path = tmp_path / "lake" / "events"
    lv.create_dataset(str(path), events(0, 3)).append(events(3, 2))
    return path


# ------------------------------------------------------------------ locations


def test_path_that_is_a_file(tmp_path, csv):
    assert_one_line(lakever("log", str(csv)), f"error: no lakever dataset at {csv};")
    proc = lakever("init", str(csv), "--from", str(csv))
    assert_one_line(proc, f"error: cannot create directory {csv}/")
    assert proc.stderr.rstrip().endswith(f"{csv} is a file, not a directory")
    proc = lakever("init", str(csv / "sub"), "--from", str(csv))
    assert proc.stderr.rstrip().endswith(f"{csv} is a file, not a directory")
    assert_one_line(proc, "error: cannot create directory")


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A directory this process cannot create anything in (root ignores permissions)."""
    if os.geteuid() == 0:
        path = Path("/sys/lakever-tests")  # sysfs refuses new entries, even to root
    else:
        path = tmp_path / "readonly"
        path.mkdir()
        path.chmod(0o555)
    try:
        os.makedirs(path / "probe")
    except OSError:
        return path
    pytest.skip(f"{path} is writable here")


def test_parent_that_cannot_be_written(unwritable, csv):
    target = unwritable / "events"
    proc = lakever("init", str(target), "--from", str(csv))
    assert_one_line(proc, f"error: cannot create directory {target}/_lakever/")
    assert proc.stderr.rstrip().endswith("permission denied")


def test_disk_failures_on_write_are_one_line(tmp_path, lake, csv):
    # A file where the data directory should be: the append cannot write its fragment.
    (lake / "data").rename(tmp_path / "moved")
    (lake / "data").write_text("not a directory")
    proc = lakever("append", str(lake), str(csv))
    assert_one_line(proc, f"error: cannot create directory {lake}/data: ")
    assert proc.stderr.rstrip().endswith(f"{lake}/data is a file, not a directory")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "csv", "-o", "{missing}/out.csv"], "directory '{missing}' does not exist"),
        (["-f", "json", "-o", "{missing}/out.json"], "directory '{missing}' does not exist"),
        (["-f", "parquet", "-o", "{missing}/out.parquet"], "directory '{missing}' does not exist"),
        (["-f", "csv", "-o", "{dir}"], "it is a directory"),
        (["-f", "parquet", "-o", "{dir}"], "it is a directory"),
        (["-f", "csv", "-o", "{file}/out.csv"], "'{file}' is a file, not a directory"),
    ],
)
def test_output_file_that_cannot_be_written(tmp_path, lake, args, message):
    subst = {
        "missing": str(tmp_path / "missing"),
        "dir": str(tmp_path),
        "file": str(tmp_path / "plain"),
    }
    (tmp_path / "plain").write_text("x")
    args = [a.format(**subst) for a in args]
    proc = lakever("sql", "SELECT count(*) AS n FROM events", "--lake", str(lake.parent), *args)
    assert_one_line(proc, f"error: cannot write --output {args[-1]!r}: {message.format(**subst)}")


# ------------------------------------------------------------------ damaged datasets


def _log_entry(lake: Path, version: int) -> Path:
    return lake / "_lakever" / "log" / "main" / f"{version:020d}.json"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:50])


def _replace_by_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize("command", [["log"], ["cat"], ["tag", "t"]], ids=lambda c: c[0])
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda lake: _truncate(_log_entry(lake, 1)), "error: metadata file {entry} is truncated"),
        (
            lambda lake: _replace_by_directory(_log_entry(lake, 1)),
            "error: cannot read {entry}: it is a directory, not a file",
        ),
        (
            lambda lake: _replace_by_directory(lake / "_lakever" / "log" / "main" / "LATEST"),
            "error: cannot read {latest}: it is a directory, not a file",
        ),
    ],
    ids=["truncated-entry", "entry-is-a-directory", "hint-is-a-directory"],
)
def test_damaged_metadata(lake, command, damage, message):
    damage(lake)
    proc = lakever(command[0], str(lake), *command[1:])
    latest = lake / "_lakever" / "log" / "main" / "LATEST"
    assert_one_line(proc, message.format(entry=_log_entry(lake, 1), latest=latest))


def _fragments(lake: Path) -> list[Path]:
    return sorted((lake / "data").rglob("*.parquet"))


@pytest.mark.parametrize(
    "command",
    [
        ["cat", "{lake}"],
        ["diff", "{lake}", "0", "1"],
        ["changes", "{lake}", "--since", "0"],
        ["delete", "{lake}", "--where", "id = 1"],
        ["sql", "SELECT count(*) FROM events", "--lake", "{lakes}"],
    ],
    ids=lambda c: c[0],
)
@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_damaged_fragment(lake, command, damage):
    fragments = _fragments(lake)
    for f in fragments:
        if damage == "missing":
            f.unlink()
        else:
            _truncate(f)
    proc = lakever(*(a.format(lake=lake, lakes=lake.parent) for a in command))
    assert_one_line(proc, "error: ")
    # Named as damage to a stored file, not blamed on the arguments.
    assert any(f.name in proc.stderr for f in fragments), proc.stderr
    assert "failed in DuckDB" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT CAST(category AS INT) FROM events", "Conversion Error: Could not convert"),
        ("SELECT id // 0 FROM events", "Division by zero"),
    ],
    ids=["cast", "division-by-zero"],
)
def test_sql_that_fails_while_it_runs(lake, query, message):
    # DuckDB binds the query when the relation is made and raises these only when it
    # runs: they are the query's fault, one line like any other.
    proc = lakever("sql", query, "--lake", str(lake.parent))
    assert_one_line(proc, f"error: query {query!r} failed in DuckDB: ")
    assert message in proc.stderr, proc.stderr


# ------------------------------------------------------------------ input files


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (None, "nope.csv", "error: input file '{path}' does not exist"),
        (b"id,value,category\n1,2\n", "short.csv", "error: cannot read '{path}': CSV parse error"),
        (b"", "empty.csv", "error: cannot read '{path}': Empty CSV file"),
        (b"PAR1 not parquet", "bad.parquet", "error: cannot read '{path}': Could not open"),
        (b"x", "rows.json", "error: input file '{path}' has an unsupported extension '.json'"),
        ("dir", "folder.csv", "error: input file '{path}' is a directory"),
    ],
    ids=["missing", "unparsable", "empty", "not-parquet", "extension", "directory"],
)
def test_input_files(tmp_path, lake, content, name, message):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    assert_one_line(lakever("append", str(lake), str(path)), message.format(path=path))


# ------------------------------------------------------------------ the boundary


def test_debug_shows_the_traceback(tmp_path):
    missing = str(tmp_path / "missing")
    quiet = lakever("log", missing)
    assert_one_line(quiet, "error: no lakever dataset at")
    loud = lakever("--debug", "log", missing)
    assert loud.returncode == 1
    assert loud.stderr.startswith("Traceback (most recent call last):")
    assert "lakever.errors.DatasetNotFound" in loud.stderr
    assert loud.stderr.splitlines()[-1] == quiet.stderr.rstrip("\n")


def _main(monkeypatch, *args: str) -> int:
    """Run ``lakever.cli.main`` in this process; return its exit code."""
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)

    monkeypatch.setattr(cli, "_exit", fake_exit)
    monkeypatch.setattr(sys, "argv", ["lakever", *args])
    cli.main()
    return codes[0]


def test_a_real_bug_keeps_its_traceback(monkeypatch, lake):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(lv, "open_dataset", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        _main(monkeypatch, "log", str(lake))


def test_multi_line_messages_print_as_one_line(monkeypatch, capsys, lake):
    def failing(*args, **kwargs):
        raise lv.InvalidArgument("first line\n  LINE 1: SELECT\n  ^")

    monkeypatch.setattr(lv, "open_dataset", failing)
    assert _main(monkeypatch, "log", str(lake)) == 1
    assert capsys.readouterr().err == "error: first line LINE 1: SELECT ^\n"


def test_exit_codes_through_main(monkeypatch, capsys, lake):
    assert _main(monkeypatch, "log", str(lake), "--json") == 0
    assert _main(monkeypatch, "log", str(lake), "--limit", "-1") == 2
    assert _main(monkeypatch, "--version") == 0
    assert capsys.readouterr().out.endswith(f"lakever {lv.__version__}\n")


# ------------------------------------------------------------------ the language of flags


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["log", "{lake}", "--limit", "-1"], "'--limit'"),
        (["sql", "SELECT 1", "--lake", "{lakes}", "--limit", "-1"], "'--limit'"),
        (["cat", "{lake}", "--limit", "-1"], "'--limit'"),
        (["merge", "{lake}", "b", "--strategy", "mine"], "'--strategy'"),
        (["append", "{lake}", "{csv}", "--schema-mode", "loose"], "'--schema-mode'"),
        (["validate", "{lake}", "--limit", "-3"], "'--limit'"),
    ],
)
def test_bad_flags_are_usage_errors_naming_the_flag(lake, csv, args, flag):
    proc = lakever(*(a.format(lake=lake, lakes=lake.parent, csv=csv) for a in args))
    assert proc.returncode == 2, proc.stderr
    assert flag in proc.stderr and "=" not in proc.stderr.split(flag)[0][-8:]
    assert "limit=" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["diff", "{lake}", "0", "1", "--key", "nope"],
            "error: --key 'nope' is not a column of version 0 or version 1 "
            "(columns: id, value, category)",
        ),
        (
            ["changes", "{lake}", "--since", "0", "--key", "nope"],
            "error: --key 'nope' is not a column of {lake} (columns: id, value, category)",
        ),
        (
            ["validate", "{lake}"],
            "error: version 1 of {lake} has no contract to validate against; set one with "
            "'lakever contract set {lake} FILE'",
        ),
        (
            ["evolve", "{lake}", "--add", "score"],
            "error: --add 'score' must be NAME:TYPE",
        ),
        (
            ["evolve", "{lake}", "--widen", "id:int65"],
            "error: --widen: unknown type 'int65'; use a type name as 'lakever schema' prints it",
        ),
        (["evolve", "{lake}"], "error: give at least one of --add, --rename, --drop or --widen"),
        (
            ["init", "{new}", "--from", "{csv}", "--primary-key", "nope"],
            "error: --primary-key 'nope' is not a column of '{csv}' (columns: id, value, category)",
        ),
        (
            ["init", "{new}", "--from", "{csv}", "--partition-by", "week(id)"],
            "error: --partition-by 'week(id)': unknown transform 'week'; use a column, or",
        ),
    ],
)
def test_errors_name_flags_not_parameters(tmp_path, lake, csv, args, message):
    subst = {"lake": lake, "csv": csv, "new": tmp_path / "new"}
    proc = lakever(*(a.format(**subst) for a in args))
    assert_one_line(proc, message.format(**subst))
    assert "on=" not in proc.stderr and "Dataset." not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["delete", "{ds}", "--where", "id > (SELECT 1)"], "error: --where 'id > (SELECT 1)'"),
        (["update", "{ds}", "--set", "id=1", "--where", ""], "error: --where must be"),
        (["update", "{ds}", "--set", "nope=1"], "error: --set names unknown column 'nope'"),
        (["upsert", "{ds}", "{csv}", "--key", "nope"], "error: --key ['nope'] must name"),
    ],
)
def test_api_errors_name_the_flag_that_set_the_parameter(lake, csv, args, message):
    proc = lakever(*(a.format(ds=lake, csv=csv) for a in args))
    assert_one_line(proc, message)


def test_only_a_leading_parameter_name_becomes_a_flag():
    assert cli.as_flags("where 'set x' is bad", "delete") == "--where 'set x' is bad"
    assert cli.as_flags("primary_key ['a'] is bad", "init") == "--primary-key ['a'] is bad"
    assert cli.as_flags("primary_key ['a'] is bad", "upsert") == "--key ['a'] is bad"
    assert cli.as_flags("version 3 where x", "show") == "version 3 where x"
    assert cli.as_flags("where", "delete") == "where"

"""What the CLI reads from the command line: input files, type names, partition specs."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

import lakever as lv

if TYPE_CHECKING:
    import pyarrow.csv as pacsv

_CSV_ERROR = re.compile(r"In CSV column #(\d+): (.*)", re.DOTALL)
_QUOTED_VALUE = re.compile(r"'(.*)'\s*$", re.DOTALL)


def read_input(file: Path, schema: pa.Schema | None = None) -> pa.Table:
    """Read a Parquet, CSV or TSV file given on the command line.

    A CSV/TSV file is read with ``schema``'s types for the columns it shares with
    it (the dataset's schema, for a write to an existing dataset); other columns
    are inferred. A value that does not fit is reported with its line and column.
    """
    if not file.exists():
        raise lv.InvalidArgument(f"input file {str(file)!r} does not exist")
    if file.is_dir() and file.suffix.lower() not in (".parquet", ".pq"):
        raise lv.InvalidArgument(f"input file {str(file)!r} is a directory")
    suffix = file.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(file)
        if suffix in (".csv", ".tsv"):
            return _read_csv(file, "\t" if suffix == ".tsv" else ",", schema)
    except (pa.ArrowInvalid, OSError) as exc:
        raise lv.InvalidArgument(f"cannot read {str(file)!r}: {exc}") from exc
    raise lv.InvalidArgument(
        f"input file {str(file)!r} has an unsupported extension {suffix!r}; "
        "use .parquet, .csv or .tsv"
    )


def _read_csv(file: Path, delimiter: str, schema: pa.Schema | None) -> pa.Table:
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter=delimiter)
    # CSV cannot hold nested values: those columns (if any) are left to inference.
    types = {f.name: f.type for f in schema or () if not pa.types.is_nested(f.type)}
    try:
        return pacsv.read_csv(
            file, parse_options=parse, convert_options=pacsv.ConvertOptions(column_types=types)
        )
    except pa.ArrowInvalid as exc:
        raise _locate(file, parse, types, exc) from exc


def _locate(
    file: Path, parse: pacsv.ParseOptions, types: dict[str, pa.DataType], exc: pa.ArrowInvalid
) -> lv.InvalidArgument:
    """The error for a value that does not convert, naming its line and column."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    failed = _CSV_ERROR.match(str(exc))
    if failed is None:
        return lv.InvalidArgument(f"cannot read {str(file)!r}: {exc}")
    # Threads convert blocks out of order: read once more in file order, so the
    # error names the first value that does not fit.
    try:
        pacsv.read_csv(
            file,
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(column_types=types),
        )
    except pa.ArrowInvalid as first:
        failed = _CSV_ERROR.match(str(first)) or failed
    # Drop pyarrow's own row number: it counts neither the header nor line breaks in values.
    index, detail = int(failed[1]), re.sub(r"^Row #\d+: ", "", failed[2])
    names = pacsv.open_csv(file, parse_options=parse).schema.names
    column = names[index]
    what = (
        f"the type of column {column!r} in the dataset"
        if column in types
        else "the type inferred from the first rows"
    )
    quoted = _QUOTED_VALUE.search(detail)
    if quoted is None:
        return lv.InvalidArgument(f"cannot read {str(file)!r}: column {column!r}: {detail}")
    value = quoted[1]
    text = pacsv.read_csv(
        file,
        parse_options=parse,
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
    )
    row = pc.index(text.column(index), value).as_py()
    if row < 0:  # pragma: no cover - the converter reported a value the file does not hold
        return lv.InvalidArgument(f"cannot read {str(file)!r}: column {column!r}: {detail}")
    # "CSV conversion error to double: invalid value 'x'" says nothing the message does
    # not; other reasons ("expected no zone offset in ...") are kept.
    reason = re.sub(r"^CSV conversion error to .+?: ", "", detail, flags=re.DOTALL)
    why = "" if reason.startswith("invalid value") else f" ({reason})"
    return lv.InvalidArgument(
        f"cannot read {str(file)!r}: line {_line_of(file, parse.delimiter, row, index)}, column "
        f"{column!r}: value {value!r} does not fit {types.get(column) or _type_in(detail)}, "
        f"{what}{why}"
    )


def _line_of(file: Path, delimiter: str, row: int, column: int) -> int:
    """The line of the file where data row ``row`` (0-based) has its ``column``-th value.

    Counts what the Arrow reader does not report: the header, empty lines (not rows)
    and line breaks inside quoted values.
    """
    import csv

    with file.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, delimiter=delimiter)
        seen = -1  # the header is record -1
        start = 1
        for record in reader:
            if record:
                if seen == row:
                    return start + sum(cell.count("\n") for cell in record[:column])
                seen += 1
            start = reader.line_num + 1
    return start  # pragma: no cover - the row was found by the Arrow reader


def _type_in(detail: str) -> str:
    found = re.match(r"CSV conversion error to (.+?): ", detail)
    return found[1] if found else "its type"


def read_contract(file: Path) -> Any:
    """The contract in a JSON or YAML file given on the command line."""
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise lv.InvalidArgument(f"cannot read contract file {str(file)!r}: {reason}") from exc
    try:
        return lv.load_contract(text)
    except lv.InvalidArgument as exc:
        raise lv.InvalidArgument(f"contract file {str(file)!r}: {exc}") from exc


# ----------------------------------------------------------------- type names

_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:,\s*tz=([^\]]+))?\]")
_DECIMAL = re.compile(r"decimal(128|256)?\((\d+),\s*(-?\d+)\)")


def parse_type(text: str, *, flag: str) -> pa.DataType:
    """An Arrow type from its name as ``lakever schema`` prints it (``int64``, ``string``,
    ``timestamp[us, tz=UTC]``, ``decimal128(10, 2)``, ...)."""
    name = text.strip()
    if m := _TIMESTAMP.fullmatch(name):
        unit: Any = m[1]  # one of s, ms, us, ns (the pattern allows nothing else)
        return pa.timestamp(unit, tz=m[2].strip() if m[2] else None)
    if m := _DECIMAL.fullmatch(name):
        make = pa.decimal256 if m[1] == "256" else pa.decimal128
        try:
            return make(int(m[2]), int(m[3]))
        except ValueError as exc:
            raise lv.InvalidArgument(f"{flag}: invalid type {text!r}: {exc}") from None
    try:
        found: pa.DataType = pa.type_for_alias(name)  # type: ignore[call-overload]
        return found
    except ValueError:
        raise lv.InvalidArgument(
            f"{flag}: unknown type {text!r}; use a type name as 'lakever schema' prints it, "
            "e.g. int64, double, string, bool, date32[day], timestamp[us], "
            "timestamp[us, tz=UTC], decimal128(10, 2) (nested types: use the Python API)"
        ) from None


def split_pair(item: str, sep: str, *, flag: str, form: str) -> tuple[str, str]:
    """``"a:b"`` -> ``("a", "b")`` for options such as ``--add NAME:TYPE``."""
    left, found, right = item.partition(sep)
    if not found or not left.strip() or not right.strip():
        raise lv.InvalidArgument(f"{flag} {item!r} must be {form}")
    return left.strip(), right.strip()


_TRANSFORM = re.compile(r"(\w+)\((.+)\)")
_TRANSFORMS = {
    "identity": lv.identity,
    "year": lv.year,
    "month": lv.month,
    "day": lv.day,
    "hour": lv.hour,
}


def parse_partition(spec: str) -> str | lv.Transform:
    """``--partition-by`` values: a column, or ``day(ts)``, ``hour(ts)``, ``month(ts)``, ..."""
    m = _TRANSFORM.fullmatch(spec.strip())
    if m is None:
        return spec
    if m[1] not in _TRANSFORMS:
        raise lv.InvalidArgument(
            f"--partition-by {spec!r}: unknown transform {m[1]!r}; use a column, or "
            "identity(COL), year(COL), month(COL), day(COL) or hour(COL)"
        )
    return _TRANSFORMS[m[1]](m[2].strip())


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, *, flag: str) -> timedelta:
    """A duration such as ``90s``, ``30m``, ``12h``, ``7d`` or ``2w``."""
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        raise lv.InvalidArgument(
            f"{flag} {text!r} is not a duration: use a number and a unit, s, m, h, d or w "
            "(e.g. 30d, 12h)"
        )
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])

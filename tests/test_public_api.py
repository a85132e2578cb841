"""The public surface: exactly __all__, and no heavy import at `import lakever`."""

from __future__ import annotations

import subprocess
import sys

import lakever


def test_all_is_exact():
    public = sorted(n for n in dir(lakever) if not n.startswith("_"))
    modules = {
        "cli",
        "contract",
        "dataset",
        "errors",
        "evolution",
        "format",
        "fragments",
        "log",
        "projection",
        "scan",
        "schema",
        "sql",
        "storage",
    }
    assert sorted(lakever.__all__) == sorted(n for n in public if n not in modules)


def test_import_is_light():
    code = (
        "import sys, lakever; "
        "heavy = [m for m in ('duckdb', 'polars', 'pandas', 'pandera', 'typer', 'rich') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_library_never_imports_cli_or_pickle():
    from pathlib import Path

    root = Path(lakever.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text, path
        if "cli" not in path.parts and path.name != "__main__.py":
            assert "lakever.cli" not in text, path

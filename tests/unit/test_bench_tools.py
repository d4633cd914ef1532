"""The inference benchmark's measuring tools: a cold start "without bytecode caches" must really
compile the packages from source, and the README table is printed from the saved JSON."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def bench() -> object:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module("bench_inference")
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_stdlib_prefix_keeps_only_the_standard_librarys_bytecode(bench, tmp_path: Path) -> None:
    code = "import json, email.parser, numpy"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    prefix = bench._stdlib_bytecode(code, env, tmp_path)
    kept = sorted(prefix.rglob("*.pyc"))
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert any(p.name.startswith("decoder.") and p.parent.name == "json" for p in kept)
    assert all(str(p).startswith(f"{prefix}{stdlib}/") and "-packages" not in str(p) for p in kept), kept[:5]
    # numpy imported in that first run, yet none of its bytecode stays: a measured run compiles it.
    result = subprocess.run(
        [sys.executable, "-v", "-X", f"pycache_prefix={prefix}", "-c", code], capture_output=True, text=True,
        env=env, timeout=120, check=True,
    )
    numpy_init = Path(importlib.util.find_spec("numpy").origin)
    assert f"code object from '{prefix}{stdlib}/json/" in result.stderr
    assert f"# code object from {numpy_init}\n" in result.stderr  # compiled from its source (no quotes)
    assert not any(".pyc" in line and "numpy" in line for line in result.stderr.splitlines()
                   if line.startswith("# code object from"))


def test_markdown_table_has_a_row_per_measure_and_both_handlers(bench) -> None:
    keys = {key for _, mine, theirs, _ in bench.TABLE_ROWS for key in (mine, theirs)}
    row = {key: 1.5 for key in keys} | {"speedup_p50": 99.0}
    text = bench.markdown({"datasets": {"adult": row, "california": row}})
    lines = text.splitlines()
    assert lines[0] == "| measure | adult: stepml | adult: seed A | california: stepml | california: seed A |"
    assert len(lines) == 2 + len(bench.TABLE_ROWS) + 1
    assert lines[-1].startswith("| p50 speed-up | 99.0x |")
    assert json.dumps(text)  # plain text, no rich markup objects

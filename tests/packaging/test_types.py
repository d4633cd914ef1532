"""mypy passes on src/ and the web UI (configured in pyproject.toml's [tool.mypy]): the typed
contracts between stages, the registry, the API and the UI hold. ``make lint`` runs the same check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_mypy_finds_no_type_errors_in_src_and_ui() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 0, f"mypy found type errors:\n{result.stdout[-6000:]}{result.stderr[-2000:]}"

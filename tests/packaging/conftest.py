"""Fixtures of the packaging tier: the sam CLI, its environment, and the python3.12 Lambda runs.

Nothing here needs AWS or Docker. The sam commands run as subprocesses with python3.12 first on
PATH (``sam build`` looks for it), fake AWS credentials and telemetry off.

Deliberately no ``__init__.py`` in this folder: as a package it would be named ``packaging`` and
could shadow the PyPI package of that name.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAMBDA_PYTHON = (3, 12)

_summary_lines: list[str] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    # On an xdist worker, hand the lines to the controller (tests/conftest.py prints them there).
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None and _summary_lines:
        workeroutput.setdefault("stepml_summaries", {})["stepml packaging"] = list(_summary_lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _summary_lines and not hasattr(terminalreporter.config, "workerinput"):
        terminalreporter.section("stepml packaging")
        for line in _summary_lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def report() -> Callable[[str], None]:
    """Print a line now and again in pytest's terminal summary, where it is seen without -s."""

    def _report(line: str) -> None:
        print(line)
        _summary_lines.append(line)

    return _report


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


def _bin_dir() -> Path:
    return Path(sys.executable).parent


@pytest.fixture(scope="session")
def sam_exe() -> str:
    """The sam CLI of the environment running the tests (a dev dependency)."""
    candidate = _bin_dir() / "sam"
    found = str(candidate) if candidate.exists() else shutil.which("sam")
    if not found:
        pytest.fail("the sam CLI is not installed: pip install -c constraints.txt -e '.[dev]'")
    return found


@pytest.fixture(scope="session")
def tool_env() -> dict[str, str]:
    """Environment for sam/statelint: this venv's bin first, fake credentials, no telemetry."""
    env = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        env.pop(name, None)
    env.update(
        PATH=os.pathsep.join([str(_bin_dir()), env.get("PATH", "")]),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        SAM_CLI_TELEMETRY="0",
    )
    return env


RunTool = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def run_tool(tool_env: dict[str, str]) -> RunTool:
    """Run a command in ``tool_env`` (from the project root unless ``cwd=``), returning its result.

    The output is printed, so pytest shows it when an assertion on the result fails.
    """

    def _run(
        args: Sequence[str], *, cwd: Path = PROJECT_ROOT, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(arg) for arg in args],
            cwd=cwd,
            env=tool_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        print(f"$ {' '.join(map(str, args))}  (exit {result.returncode})")
        print(result.stdout, result.stderr, sep="\n")
        return result

    return _run


def _python_version(exe: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [exe, "-S", "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return (int(out[0]), int(out[1])) if len(out) == 2 else None


def _base_interpreter_candidates() -> Iterator[str]:
    # The interpreter behind this venv first (the Makefile makes .venv with python3.12), then
    # pyenv's 3.12 installs, then whatever python3.12 is on PATH.
    major, minor = LAMBDA_PYTHON
    yield str(Path(sys.base_prefix) / "bin" / f"python{major}.{minor}")
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    yield from sorted(
        glob.glob(f"{pyenv_root}/versions/{major}.{minor}.*/bin/python{major}.{minor}")
    )
    found = shutil.which(f"python{major}.{minor}")
    if found:
        yield found


@pytest.fixture(scope="session")
def lambda_python() -> str:
    """A base python3.12 (no venv): run with -S it sees only the stdlib, as Lambda's runtime."""
    for exe in _base_interpreter_candidates():
        if Path(exe).exists() and _python_version(exe) == LAMBDA_PYTHON:
            return exe
    pytest.fail("no python3.12 found: Lambda runs python3.12 and `sam build` needs it on PATH")


class Pins:
    """Exact ``name==version`` pins, keyed by PEP 503 normalised name (``PyYAML`` -> ``pyyaml``)."""

    PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9,._ -]*\])?\s*==\s*([^\s;#]+)")

    @staticmethod
    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    @classmethod
    def read(cls, path: Path) -> dict[str, str]:
        """The pins of a requirements/constraints file; any other kind of line is an error."""
        pins: dict[str, str] = {}
        for number, raw in enumerate(path.read_text().splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            match = cls.PIN.match(line)
            assert match, f"{path.name}:{number}: {raw!r} is not an exact `name==version` pin"
            pins[cls.canonical(match.group(1))] = match.group(2)
        return pins


@pytest.fixture(scope="session")
def pins() -> type[Pins]:
    return Pins


@pytest.fixture(scope="session")
def layer_pins() -> dict[str, str]:
    """layer/requirements*.txt: what the MLLayer build installs (with and without dependencies)."""
    layer = PROJECT_ROOT / "layer"
    return {**Pins.read(layer / "requirements.txt"), **Pins.read(layer / "requirements-no-deps.txt")}

"""Shared fixtures: fake AWS credentials, the seed datasets (through STEPML_DATA_DIR)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach real AWS: fake credentials and a fixed region."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture(autouse=True)
def local_state_outside_home(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`stepml local up` keeps its state in the user's state directory by default: never in tests."""
    monkeypatch.setenv("STEPML_LOCAL_DATA_DIR", str(tmp_path_factory.getbasetemp() / "stepml-local-state"))


@contextlib.contextmanager
def fresh_mock_aws() -> Iterator[None]:
    """moto's ``mock_aws()`` as a process that never started a LocalStack has it.

    A LocalStack turns on moto's AWS managed policies in its process while it runs
    (``MOTO_IAM_LOAD_MANAGED_POLICIES``; the last one to stop turns them off), and the
    session-scoped stacks of tests/e2e and tests/browser run until the session ends. With it on, every ``mock_aws()`` loads the ~1,000
    policies again when moto first looks up the caller's account: seconds per test, for tests that
    use none of them (and pass without them when run alone). Usable as a decorator too.
    """
    from moto import mock_aws

    kept = os.environ.pop("MOTO_IAM_LOAD_MANAGED_POLICIES", None)
    try:
        with mock_aws():
            yield
    finally:
        if kept is not None:
            os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = kept


def seed_dataset(name: str) -> Path:
    """A seed dataset from the mirror folder; tests that need one skip loudly without it."""
    folder = os.environ.get("STEPML_DATA_DIR")
    if folder and (Path(folder) / f"{name}.csv").is_file():
        return Path(folder) / f"{name}.csv"
    pytest.skip(f"{name}.csv not found: set STEPML_DATA_DIR to the shared datasets folder")


@pytest.fixture(scope="session")
def adult_csv() -> Path:
    return seed_dataset("adult")


@pytest.fixture(scope="session")
def california_csv() -> Path:
    return seed_dataset("california_housing")


def head_bytes(path: Path, rows: int) -> bytes:
    """The header and the first ``rows`` data rows of a CSV file."""
    with path.open("rb") as handle:
        lines = [next(handle) for _ in range(rows + 1)]
    return b"".join(lines)


# -- pytest-xdist: `make test` runs the suite on two workers (`-n 2`, addopts `--dist loadfile`) ---
#
# A test file is one unit of work, so its module-scoped fixtures (an offline stack, the SAM build,
# a moto server) are made once, on one worker. The files of one SHARED_UNITS entry are one unit
# together: the session fixture they share is made once, and they run in their usual order. Units
# are handed out in collection order (browser, e2e, functional, hostile, packaging, unit: the long
# ones first).

#: Files (or folders) that share an expensive session fixture → their unit's name.
SHARED_UNITS = {
    # the browser tier's trained stack, `stepml ui` and Chromium
    "tests/browser/": "browser",
    # tests/e2e's `local_stack` (the offline stack named "stepml"), started once per worker that
    # runs these files
    **dict.fromkeys(
        [f"tests/e2e/test_{name}.py" for name in
         ("cli", "monitor", "notifications", "pipeline", "real_datasets", "smoke", "strict_stack")],
        "local_stack",
    ),
}

#: Lines the workers' tests report for the terminal summary (tests/packaging: sizes, scans),
#: gathered by the controller as each worker finishes.
_worker_summaries: dict[str, list[str]] = {}


def xdist_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its SHARED_UNITS entry, else its file."""
    path = nodeid.split("::", 1)[0]
    return next((unit for prefix, unit in SHARED_UNITS.items() if path.startswith(prefix)), path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, with each SHARED_UNITS group of files as one unit."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_unit(nodeid)

    return SharedFixtureScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    for title, lines in getattr(node, "workeroutput", {}).get("stepml_summaries", {}).items():
        _worker_summaries.setdefault(title, []).extend(lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for title, lines in _worker_summaries.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)

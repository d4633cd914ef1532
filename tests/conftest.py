"""Shared fixtures: fake AWS credentials, the seed datasets (through STEPML_DATA_DIR)."""

from __future__ import annotations

import os
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


# -- pytest-xdist: `make test` runs the suite on two workers (`-n 2`, addopts `--dist loadgroup`) --
#
# A test file is one unit of work, so its module-scoped fixtures (an offline stack, the SAM build,
# a moto server) are made once, on one worker. Tests that use one of SHARED_FIXTURES form one unit
# across files (xdist_group): the session fixture is made once, and those tests run in the order
# they run without workers. Units are handed out in collection order (browser, e2e, functional,
# hostile, packaging, unit: the long ones first).

#: Expensive session fixtures → the group of the tests that use them.
SHARED_FIXTURES = {
    "local_stack": "local_stack",  # tests/e2e: the offline stack named "stepml"
    "offline_stack": "browser",  # tests/browser: the trained stack, `stepml ui` and Chromium
    "ui_url": "browser",
    "browser": "browser",
}

#: Lines the workers' tests report for the terminal summary (tests/packaging: sizes, scans),
#: gathered by the controller as each worker finishes.
_worker_summaries: dict[str, list[str]] = {}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the mark into "@group"
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        groups = {SHARED_FIXTURES[name] for name in getattr(item, "fixturenames", ()) if name in SHARED_FIXTURES}
        if groups:
            item.add_marker(pytest.mark.xdist_group("+".join(sorted(groups))))


def xdist_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its group (xdist's ``@group`` suffix), else its file."""
    if "@" in nodeid:
        return nodeid.rsplit("@", 1)[1]
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with files, not single tests, as the units of tests without a group."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileOrGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_unit(nodeid)

    return FileOrGroupScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    for title, lines in getattr(node, "workeroutput", {}).get("stepml_summaries", {}).items():
        _worker_summaries.setdefault(title, []).extend(lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for title, lines in _worker_summaries.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)

"""Shared fixtures: fake AWS credentials, the seed datasets (through STEPML_DATA_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

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

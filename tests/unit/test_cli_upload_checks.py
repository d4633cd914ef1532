"""`stepml upload`: every check this machine can make (the file, the dataset name, the flags) comes
before anything is written, so a refusal leaves nothing in the bucket; a followed run prints its
validation warnings before the line saying how it ended."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from stepml import keys
from stepml.cli.commands import upload
from tests.unit.test_cli_history import FolderStack as RegistryFolderStack
from tests.unit.test_cli_run_report import a_run, write_report


class FolderStack(RegistryFolderStack):
    """A stack whose bucket is a folder and whose run is given: what `upload` writes, without AWS."""

    @property
    def bucket(self) -> str:
        return "bucket"

    def upload(self, path: Path, dataset: str) -> dict[str, Any]:
        key = keys.upload_key(dataset, path.name)
        self.store.put_bytes(key, path.read_bytes())
        return {"bucket": self.bucket, "key": key}

    def wait_for_run(self, key: str, since: datetime, timeout: float = 900, on_progress: Any = None) -> dict[str, Any]:
        return a_run("doctor-1")


def written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != ".lock")


def upload_with(folder: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(upload, list(args), obj=FolderStack(folder))
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "fgl.csv"
    path.write_text("RI,Na,type\n1.5,13.6,WinF\n1.6,13.9,Head\n")
    return path


def test_a_bad_dataset_name_is_refused_before_the_config_is_written(tmp_path: Path, csv_file: Path) -> None:
    # Given a valid CSV and a dataset name that is not a slug
    bucket = tmp_path / "bucket"
    # When it is uploaded with a --target (which writes config/<dataset>.yaml)
    code, out = upload_with(bucket, str(csv_file), "--dataset", "Bad_Name", "--target", "type")
    # Then it is refused as a usage error naming --dataset, and nothing was written
    assert code == 2, out
    assert "Invalid value for --dataset: dataset name 'Bad_Name' is not a simple slug" in out
    assert written(bucket) == []


def test_an_empty_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    bucket = tmp_path / "bucket"
    code, out = upload_with(bucket, str(empty), "--dataset", "shop", "--target", "type")
    assert code == 2 and f"{empty} is empty: nothing to train on" in out
    assert written(bucket) == []


def test_an_unreadable_file_is_refused_before_anything_is_written(tmp_path: Path, csv_file: Path) -> None:
    csv_file.chmod(0)
    if os.access(csv_file, os.R_OK):  # root reads any file: nothing to refuse
        pytest.skip("the tests run as a user who may read a file without read permission")
    bucket = tmp_path / "bucket"
    code, out = upload_with(bucket, str(csv_file), "--dataset", "shop", "--target", "type")
    assert code == 2 and "is not readable" in out
    assert written(bucket) == []


def test_a_valid_upload_writes_the_config_and_prints_the_runs_warnings(tmp_path: Path, csv_file: Path) -> None:
    bucket = tmp_path / "bucket"
    write_report(bucket, "doctor-1", ["target 'type' looks like counts"], {})
    code, out = upload_with(bucket, str(csv_file), "--dataset", "shop", "--target", "type")
    assert code == 0, out
    assert written(bucket) == ["config/shop.yaml", "raw/shop/fgl.csv", "runs/doctor/doctor-1/validation.json"]
    assert "validation warnings (1): - target 'type' looks like counts champion:" in out

"""`stepml models history`: the champion's changes newest first, a page at a time (as the registry
API pages them), and how many older entries the page leaves out."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from stepml.cli.commands import models_history
from stepml.registry import ModelRegistry
from stepml.stack import Stack
from stepml.storage import DirectoryStore


class FolderStack(Stack):
    """A stack whose registry is a folder: what the history command reads, without AWS."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    @property
    def store(self) -> DirectoryStore:  # type: ignore[override]
        return DirectoryStore(self.folder)


def stack_with_changes(folder: Path, changes: int) -> FolderStack:
    models = ModelRegistry(DirectoryStore(folder))
    for run in range(2):
        models.register_version("demo", f"run-{run}", {"model.onnx": b"m"}, {})
    for n in range(changes):
        models.set_alias("demo", "champion", 1 + n % 2, f"change {n + 1}", actor="tester")
    return FolderStack(folder)


def history(stack: Stack, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(models_history, ["demo", *args], obj=stack)
    return result.exit_code, result.output


def test_the_newest_twenty_come_first_and_the_older_ones_are_counted(tmp_path: Path) -> None:
    # Given 25 champion changes (the oldest already archived out of the alias object)
    stack = stack_with_changes(tmp_path, 25)
    # When the history is shown with the default limit
    code, out = history(stack)
    # Then changes 25 down to 6 are listed, newest first, and the 5 older ones are pointed at
    assert code == 0, out
    assert [int(n) for n in re.findall(r"change (\d+)", out)] == list(range(25, 5, -1)), out
    assert "(20 of 25)" in out
    assert "5 older entries: stepml models history demo --before 6" in out


def test_the_next_page_reaches_the_archived_entries(tmp_path: Path) -> None:
    stack = stack_with_changes(tmp_path, 25)
    code, out = history(stack, "--before", "6", "--json")
    assert code == 0, out
    page = json.loads(out)
    assert [entry["seq"] for entry in page["history"]] == [5, 4, 3, 2, 1]
    assert [entry["reason"] for entry in page["history"]] == [f"change {n}" for n in (5, 4, 3, 2, 1)]
    assert (page["name"], page["total"], page["next_before"]) == ("demo", 25, None)
    code, out = history(stack, "--before", "6")
    assert code == 0 and "change 1" in out and "older" not in out, out


def test_limit_pages_as_the_api_does(tmp_path: Path) -> None:
    stack = stack_with_changes(tmp_path, 3)
    code, out = history(stack, "--limit", "2", "--json")
    page = json.loads(out)
    assert code == 0 and [e["to"] for e in page["history"]] == [1, 2] and page["next_before"] == 2
    code, out = history(stack, "--limit", "2")
    assert "1 older entry: stepml models history demo --before 2" in out, out


def test_a_limit_below_one_is_refused_by_name(tmp_path: Path) -> None:
    code, out = history(stack_with_changes(tmp_path, 1), "--limit", "0")
    assert code == 2 and "--limit" in out and "Traceback" not in out, out


def test_a_model_without_changes_says_so(tmp_path: Path) -> None:
    code, out = history(FolderStack(tmp_path))
    assert code == 0 and "no champion changes recorded for 'demo'" in out, out

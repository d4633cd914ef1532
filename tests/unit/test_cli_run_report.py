"""`stepml runs show` (and `stepml upload`, which prints the run it follows the same way): after the
run's states, the validation report's warnings and the columns left out of training, capped; the
whole lists under `validation` in --json; a rejected run, which has no report, as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from stepml import keys
from stepml.cli.commands import runs_show
from stepml.runs import run_outcome
from stepml.stack import Stack
from stepml.storage import DirectoryStore

COUNT_WARNING = ("target 'doctor' holds 17 whole numbers (0 to 48), read as 17 classes (at most 20 distinct whole "
                 "numbers are classes): if they are counts, amounts or a rating whose order matters, set task: "
                 "regression in the config")


class FolderStack(Stack):
    """A stack whose runs are given and whose bucket is a folder: what `runs show` reads, without AWS."""

    def __init__(self, folder: Path, run: dict[str, Any]) -> None:
        super().__init__()
        self.folder, self.given = folder, run

    @property
    def store(self) -> DirectoryStore:  # type: ignore[override]
        return DirectoryStore(self.folder)

    def run(self, run: str) -> dict[str, Any]:
        return self.given


def a_run(name: str, *, rejected: bool = False) -> dict[str, Any]:
    state = {"name": "Validate dataset", "type": "Task", "status": "FAILED" if rejected else "SUCCEEDED",
             "duration_s": 1.5, "retries": 0, "error": None, "cause": None, "started": "2026-01-01T00:00:00"}
    run: dict[str, Any] = {"name": name, "arn": f"arn:aws:states:::execution:pipeline:{name}", "started": "",
                           "duration_s": 3.0, "key": "raw/doctor/doctor.csv", "states": [state]}
    if rejected:
        state.update(error="DataError", cause="s3://b/raw/doctor/doctor.csv has no target column 'Doctor'")
        run["states"].append({**state, "name": "Dataset rejected", "type": "Fail", "status": "FAILED", "error": None,
                              "cause": None})
        run.update(status="FAILED", error="DataError", cause=state["cause"], output=None)
    else:
        run.update(status="SUCCEEDED", error=None, cause=None,
                   output={"dataset": "doctor", "version": 1, "promoted": True, "decision": "first version"})
    run["outcome"] = run_outcome(run)
    return run


def write_report(folder: Path, run: str, warnings: list[str], dropped: dict[str, str]) -> None:
    DirectoryStore(folder).put_json(keys.validation_report("doctor", run),
                                    {"rows": 5190, "warnings": warnings, "dropped_columns": dropped})


def show(stack: Stack, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(runs_show, [stack.run("")["name"], *args], obj=stack)
    return result.exit_code, " ".join(result.output.split())  # Rich's line wrapping undone


def test_the_count_target_warning_and_the_left_out_columns_follow_the_states(tmp_path: Path) -> None:
    # Given a run whose report warns that the target looks like counts, and left out an id column
    write_report(tmp_path, "doctor-1", [COUNT_WARNING], {"patient": "id", "notes": "drop_columns"})
    # When the run is shown
    code, out = show(FolderStack(tmp_path, a_run("doctor-1")))
    # Then the warning is printed in full after the states, before the outcome line (still the last)
    assert code == 0, out
    assert "validation warnings (1): - " + " ".join(COUNT_WARNING.split()) in out
    assert out.index("Validate dataset") < out.index("validation warnings") < out.index("champion:")
    assert "left out of training: notes (drop_columns in the config), patient (unique per row: an identifier)" in out


def test_many_warnings_are_capped_with_how_many_more_and_where(tmp_path: Path) -> None:
    write_report(tmp_path, "doctor-2", [f"warning number {n}" for n in range(1, 13)], {})
    code, out = show(FolderStack(tmp_path, a_run("doctor-2")))
    assert code == 0, out
    assert "validation warnings (12):" in out
    assert "warning number 5" in out and "warning number 6" not in out
    assert "… and 7 more: stepml runs show doctor-2 --json" in out
    assert "left out of training" not in out


def test_json_holds_every_warning_and_left_out_column(tmp_path: Path) -> None:
    warnings = ["file read as cp1252 (not UTF-8)", COUNT_WARNING, *(f"w{n}" for n in range(10))]
    write_report(tmp_path, "doctor-3", warnings, {"patient": "id"})
    code, out = show(FolderStack(tmp_path, a_run("doctor-3")), "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["validation"] == {"warnings": warnings, "dropped_columns": {"patient": "id"}}
    assert shown["states"][0]["name"] == "Validate dataset"


def test_a_rejected_run_without_a_report_prints_its_readable_error(tmp_path: Path) -> None:
    stack = FolderStack(tmp_path, a_run("doctor-4", rejected=True))
    code, out = show(stack)
    assert code == 0, out
    assert "validation warnings" not in out
    assert out.endswith("rejected: Dataset rejected: DataError: s3://b/raw/doctor/doctor.csv has no target "
                        "column 'Doctor'")
    code, out = show(stack, "--json")
    assert json.loads(out)["validation"] is None


class VersionStack(FolderStack):
    """... and one registered version, trained by that run."""

    def version(self, name: str, version: int) -> dict[str, Any]:
        return {"aliases": ["champion"], "task": "classification", "target": "doctor", "recipe": "auto",
                "evaluation": {"metrics": {"accuracy": 0.5}, "baseline": {"accuracy": 0.4}},
                "schema": [{"name": "age", "kind": "numeric", "min": 1, "max": 9}],
                "lineage": {"bucket": "b", "key": "raw/doctor/doctor.csv", "run_id": "doctor-1"},
                "train_rows": 40, "test_rows": 10, "train_seconds": 0.1}


def test_models_show_says_what_validation_warned_of_in_the_run_that_trained_the_version(tmp_path: Path) -> None:
    from stepml.cli.commands import models_show

    write_report(tmp_path, "doctor-1", [COUNT_WARNING], {"id": "id"})
    result = CliRunner().invoke(models_show, ["doctor", "1"], obj=VersionStack(tmp_path, a_run("doctor-1")))
    output = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "validation warnings (1)" in output and "set task: regression" in output
    assert "left out of training: id (unique per row: an identifier)" in output
    # a version whose run left no report (or one the caller may not read) shows the rest as before
    empty = tmp_path / "none"
    result = CliRunner().invoke(models_show, ["doctor", "1"], obj=VersionStack(empty, a_run("doctor-1")))
    assert result.exit_code == 0 and "validation warnings" not in result.output

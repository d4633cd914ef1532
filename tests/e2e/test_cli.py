"""The `stepml` command against the offline stack, as a user types it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from stepml.cli import main
from tests.e2e.test_pipeline import synthetic_csv


def stepml(local_stack, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["--endpoint-url", local_stack.endpoint_url, *args],
        env=local_stack.client_environment(),
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def test_upload_runs_models_predict(local_stack, tmp_path) -> None:
    data = tmp_path / "shop.csv"
    data.write_bytes(synthetic_csv(300, 42))

    code, out = stepml(local_stack, "info", "--json")
    assert code == 0 and json.loads(out)["bucket"] == local_stack.bucket

    code, out = stepml(local_stack, "upload", str(data), "--dataset", "shop", "--target", "label", "--recipe", "seed-a")
    assert code == 0, out
    assert "SUCCEEDED" in out and "Train model" in out and "version 1" in out

    code, out = stepml(local_stack, "config", "show", "shop")
    assert "target: label" in out and "recipe: seed-a" in out and "split:" in out

    code, out = stepml(local_stack, "runs", "--json")
    runs = json.loads(out)
    shop = [r for r in runs if r["name"].startswith("shop")]
    assert shop and shop[0]["status"] == "SUCCEEDED"
    code, out = stepml(local_stack, "runs", "show", shop[0]["name"], "--json")
    assert [s["status"] for s in json.loads(out)["states"]][-1] == "SUCCEEDED"

    code, out = stepml(local_stack, "models", "shop", "--json")
    assert json.loads(out)[0]["aliases"] == ["champion"]
    code, out = stepml(local_stack, "models", "shop")
    assert code == 0 and "champion" in out and "accuracy" in out

    code, out = stepml(local_stack, "predict", "shop", "--json", '{"x": 1.2, "colour": "red", "z": 0}')
    assert code == 0 and json.loads(out)["predictions"] == ["yes"]
    code, out = stepml(local_stack, "predict", "shop", "--json", '{"x": "high", "colour": "red", "z": 0}')
    assert code == 1 and "expected a number" in out

    code, out = stepml(local_stack, "models", "history", "shop", "--json")
    assert [h["to"] for h in json.loads(out)] == [1]


def test_errors_are_one_readable_line(local_stack, tmp_path) -> None:
    code, out = stepml(local_stack, "models", "no-such-model")
    assert code == 1 and "no registered versions of 'no-such-model'" in out and "Traceback" not in out
    code, out = stepml(local_stack, "models", "rollback", "no-such-model")
    assert code == 1 and "no earlier champion" in out
    notcsv = tmp_path / "data.xlsx"
    notcsv.write_bytes(b"PK")
    code, out = stepml(local_stack, "upload", str(notcsv), "--dataset", "x")
    assert code == 2 and "not a .csv file" in out

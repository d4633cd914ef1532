"""The `stepml` command against the offline stack, as a user types it."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
from click.testing import CliRunner

from stepml.cli import main
from tests.e2e.test_pipeline import client_stack, synthetic_csv


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
    page = json.loads(out)  # newest first, paged as GET /models/{name}/history
    assert [h["to"] for h in page["history"]] == [1] and page["total"] == 1 and page["next_before"] is None


def test_errors_are_one_readable_line(local_stack, tmp_path) -> None:
    code, out = stepml(local_stack, "models", "no-such-model")
    assert code == 1 and "no registered versions of 'no-such-model'" in out and "Traceback" not in out
    code, out = stepml(local_stack, "models", "rollback", "no-such-model")
    assert code == 1 and "no earlier champion" in out
    notcsv = tmp_path / "data.xlsx"
    notcsv.write_bytes(b"PK")
    code, out = stepml(local_stack, "upload", str(notcsv), "--dataset", "x")
    assert code == 2 and "is a spreadsheet: export it as CSV" in out


def readable(out: str) -> str:
    """The CLI's output with Rich's line wrapping undone."""
    return " ".join(out.split())


def imbalanced_csv(rows: int, seed: int) -> bytes:
    """5 % 'fraud' rows, overlapping the 'ok' ones: accuracy would reward predicting 'ok' always."""
    rng = np.random.default_rng(seed)
    fraud = rng.random(rows) < 0.05
    frame = pd.DataFrame({"amount": (rng.normal(size=rows) + fraud * 1.5).round(4),
                          "channel": np.where(rng.random(rows) < 0.4 + fraud * 0.4, "online", "shop"),
                          "label": np.where(fraud, "fraud", "ok")})
    return frame.to_csv(index=False).encode()


def test_upload_shows_champion_and_candidate_without_a_traceback(local_stack, tmp_path) -> None:
    good, noisy = tmp_path / "good.csv", tmp_path / "noisy.csv"
    good.write_bytes(synthetic_csv(600, 5))
    noisy.write_bytes(synthetic_csv(600, 6, noise=0.3))

    code, out = stepml(local_stack, "upload", str(good), "--dataset", "outcome", "--target", "label")
    assert code == 0 and "Traceback" not in out, out
    assert "champion: model outcome version 1 is the champion: first version: accuracy" in readable(out)

    code, out = stepml(local_stack, "upload", str(noisy), "--dataset", "outcome")
    assert code == 0 and "Traceback" not in out, out
    text = readable(out)
    assert "candidate: model outcome version 2 is registered as a candidate, not promoted" in text
    assert "is worse than champion v1's" in text and "Keep as candidate" in text

    code, out = stepml(local_stack, "models", "show", "outcome", "2")
    assert code == 0 and "not passed (kept as a candidate): accuracy" in readable(out)
    assert "auto recipe's choice on" in readable(out) and "(validation accuracy: trees 0." in readable(out)

    # A promotion by hand passes the same gate: refused, it says why and how to force it
    code, out = stepml(local_stack, "models", "promote", "outcome", "2")
    text = readable(out)
    assert code == 1 and "the quality gate refuses version 2 of 'outcome': accuracy" in text, out
    assert "is worse than champion v1's" in text and "--force --reason" in text and "Traceback" not in out
    code, out = stepml(local_stack, "models", "promote", "outcome", "2", "--force")
    assert code == 2 and "--force needs --reason" in readable(out)
    assert client_stack(local_stack).history("outcome")["entries"][0]["to"] == 1  # newest first
    code, out = stepml(local_stack, "models", "promote", "outcome", "2", "--force", "--reason", "the noisy labels are right")
    assert code == 0 and "v1 → v2" in out and "forced past the quality gate: accuracy" in readable(out), out
    entry = client_stack(local_stack).history("outcome")["entries"][0]
    assert (entry["to"], entry["forced"], entry["reason"]) == (2, True, "the noisy labels are right")
    code, out = stepml(local_stack, "models", "history", "outcome")
    assert "refused, forced" in readable(out)


def test_upload_of_an_imbalanced_target_is_judged_by_balanced_accuracy(local_stack, tmp_path) -> None:
    from stepml.config import DatasetConfig

    data = tmp_path / "fraud.csv"
    data.write_bytes(imbalanced_csv(2000, 11))
    client_stack(local_stack).write_config("outcome-fraud", DatasetConfig(target="label", min_primary_metric=0.99))

    code, out = stepml(local_stack, "upload", str(data), "--dataset", "outcome-fraud")

    assert code == 0 and "Traceback" not in out, out
    assert ("candidate: model outcome-fraud version 1 is registered as a candidate, not promoted: "
            "balanced_accuracy") in readable(out)
    assert "is below the required 0.99 (min_primary_metric)" in readable(out)
    meta = client_stack(local_stack).version("outcome-fraud", 1)
    assert meta["evaluation"]["primary_metric"] == "balanced_accuracy" and meta["aliases"] == []


def test_upload_of_a_redelivered_event_says_it_was_skipped(local_stack, tmp_path, monkeypatch) -> None:
    from stepml.local import events

    sfn = local_stack.client("stepfunctions")
    deliver = events.start_execution

    def deliver_twice(state_machine_arn: str, name: str, execution_input: str) -> str:
        """EventBridge is at-least-once: this upload's event arrives again after its run ended."""
        if "raw/outcome-twice/" not in execution_input:
            return deliver(state_machine_arn, name, execution_input)
        first = deliver(state_machine_arn, f"{name}-1st", execution_input)
        deadline = time.monotonic() + 300
        while sfn.describe_execution(executionArn=first)["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.5)
        return deliver(state_machine_arn, name, execution_input)

    monkeypatch.setattr(events, "start_execution", deliver_twice)
    data = tmp_path / "twice.csv"
    data.write_bytes(synthetic_csv(300, 8))

    code, out = stepml(local_stack, "upload", str(data), "--dataset", "outcome-twice", "--target", "label")

    assert code == 0 and "Traceback" not in out, out
    text = readable(out)
    assert "duplicate: skipped duplicate delivery: this exact upload of outcome-twice was already handled by run" in text
    assert "nothing was trained or registered" in text and "Skip duplicate delivery" in text
    assert [v["version"] for v in client_stack(local_stack).models("outcome-twice")] == [1]


def test_upload_of_a_rejected_dataset_says_why(local_stack, tmp_path) -> None:
    data = tmp_path / "no-target.csv"
    data.write_bytes(synthetic_csv(100, 9))

    code, out = stepml(local_stack, "upload", str(data), "--dataset", "outcome-rejected", "--target", "salary")

    assert code == 1 and "Traceback" not in out, out
    text = readable(out)
    assert "rejected: Dataset rejected: DataError:" in text and "has no target column 'salary'" in text
    assert "Dataset rejected" in text.split("rejected: Dataset rejected")[0]  # the state table shows it too

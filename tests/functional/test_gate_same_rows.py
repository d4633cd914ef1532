"""The quality gate compares the candidate with the champion on the same test rows (real small
models, the pipeline's stages on moto S3), and says so; when it cannot, it says why."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest

from stepml import comparison, keys, stages
from stepml.registry import CHAMPION, ModelRegistry
from stepml.settings import Settings
from stepml.storage import S3Store
from tests.conftest import fresh_mock_aws

BUCKET = "gate-same-rows-bucket"
DATASET = "noisy"
# A forest of stumps learns the one threshold that matters (in a gap of x: any two fits predict
# alike), while a fifth of the labels are flipped at random, so two test splits of one table
# score differently on their own.
CONFIG = "target: label\nrecipe: seed-a\nparams:\n  n_estimators: 10\n  max_depth: 1\n  max_features: 1.0\n"


def table(rows: int = 2_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.choice([-1, 1], rows) * rng.uniform(0.5, 2.0, rows)
    flipped = rng.random(rows) < 0.2
    label = np.where((x > 0) != flipped, "yes", "no")
    return pd.DataFrame({"x": x.round(4), "noise": rng.normal(size=rows).round(4),
                         "colour": rng.choice(["red", "green", "blue"], rows), "label": label})


@pytest.fixture
def settings() -> Iterator[Settings]:
    with fresh_mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket=BUCKET, Key=keys.config(DATASET), Body=CONFIG.encode())
        yield Settings(bucket=BUCKET)


def run(settings: Settings, frame: pd.DataFrame, run_id: str) -> dict[str, Any]:
    """Upload ``frame`` and run Validate → Preprocess → Train → Evaluate (and Promote when the gate
    passed), as the state machine does; the Evaluate output, with ``promoted``."""
    key = keys.raw(DATASET, f"{run_id}.csv")
    S3Store(settings).put_bytes(key, frame.to_csv(index=False).encode())
    event = {"detail": {"bucket": {"name": BUCKET}, "object": {"key": key}}}
    state: Any = stages.validate_upload({"event": event, "run_id": run_id}, settings)
    state = stages.train(stages.preprocess(state, settings), settings)
    registered: Any = stages.evaluate_and_register(state, settings)
    if registered["gate"]["passed"]:
        registered = stages.promote(registered, settings)
    return dict(registered)


def champion(settings: Settings) -> int | None:
    return ModelRegistry(S3Store(settings)).alias_version(DATASET, CHAMPION)


def test_the_same_table_shuffled_is_compared_on_the_same_rows_and_keeps_passing(settings: Settings) -> None:
    # Given a champion trained on a table
    data = table()
    assert run(settings, data, "first")["promoted"]
    # When the same rows are uploaded again in other orders
    own_split_says_worse = []
    for seed in (1, 2, 3):
        shuffled = run(settings, data.sample(frac=1, random_state=seed), f"shuffled-{seed}")
        gate = shuffled["gate"]
        # Then the champion is scored on the candidate's test rows, those it never trained on
        same = gate["same_rows"]
        assert gate["compared_on"] == "candidate test rows"
        assert same["unseen_only"] and same["champion_trained_on"] > 0
        assert same["rows"] == 400 - same["champion_trained_on"] >= comparison.MIN_UNSEEN_ROWS
        assert f"on the same {same['rows']} test rows (none of which either model trained on)" in gate["reason"]
        # and two fits of one table predict alike there: the gate passes every time
        assert gate["champion_value"] == same["champion_value"] == same["candidate_value"]
        assert gate["passed"] and shuffled["promoted"], gate["reason"]
        own_split_says_worse.append(gate["champion_registered_value"] > gate["value"])
    # while the values registered on each version's own test split - what the gate compared
    # before - called one of these re-uploads of the same rows worse than its champion
    assert any(own_split_says_worse)


def test_a_champion_feature_missing_from_the_new_upload_falls_back_to_its_registered_value(
        settings: Settings) -> None:
    # Given a champion that reads the column 'noise'
    data = table()
    run(settings, data, "first")
    # When the next upload has no such column
    gate = run(settings, data.drop(columns="noise").sample(frac=1, random_state=4), "narrower")["gate"]
    # Then the champion cannot be scored on its rows: its registered value is used, and said to be
    assert gate["compared_on"] == "champion's own test split"
    assert gate["champion_value"] == gate["champion_registered_value"]
    assert "(as registered, on its own test split)" in gate["reason"]
    assert "not compared on the same rows: champion v1 needs 'noise', not in this upload's test split" in gate["reason"]


def test_a_champion_that_cannot_be_loaded_here_falls_back_and_evaluate_still_registers(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a champion whose pipeline needs a library this function lacks (a Spark-trained
    # XGBoost pipeline on the Lambda layer)
    data = table()
    run(settings, data, "first")

    def needs_xgboost(registry: Any, meta: Any) -> Any:
        raise ModuleNotFoundError("No module named 'xgboost'")

    monkeypatch.setattr(comparison, "_load_pipeline", needs_xgboost)
    # When a candidate is evaluated
    registered = run(settings, data.sample(frac=1, random_state=5), "after")
    # Then it is registered and judged against the champion's registered value, and says why
    gate = registered["gate"]
    assert registered["version"] == 2 and gate["compared_on"] == "champion's own test split"
    assert ("not compared on the same rows: champion v1 could not be loaded here "
            "(ModuleNotFoundError: No module named 'xgboost')") in gate["reason"]


def test_a_tampered_champion_artifact_is_not_scored(settings: Settings) -> None:
    # Given a champion whose model.joblib no longer matches the SHA-256 in its meta.json
    data = table()
    run(settings, data, "first")
    store = S3Store(settings)
    store.put_bytes(keys.version_file(DATASET, 1, "model.joblib"), b"not the model")
    # Then Evaluate does not unpickle it, and the gate says so
    gate = run(settings, data.sample(frac=1, random_state=6), "after")["gate"]
    assert gate["compared_on"] == "champion's own test split"
    assert "does not match its recorded SHA-256" in gate["reason"]


def test_promote_rechecks_on_the_same_rows_unless_the_champion_changed_meanwhile(settings: Settings) -> None:
    # Given v2, judged on the same rows as champion v1, and v3 evaluated while v1 is champion
    data = table()
    run(settings, data, "first")
    store = S3Store(settings)
    registry = ModelRegistry(store)
    evaluated: dict[str, Any] = {}
    for seed, run_id in ((7, "second"), (8, "third")):
        key = keys.raw(DATASET, f"{run_id}.csv")
        store.put_bytes(key, data.sample(frac=1, random_state=seed).to_csv(index=False).encode())
        event = {"detail": {"bucket": {"name": BUCKET}, "object": {"key": key}}}
        state: Any = stages.validate_upload({"event": event, "run_id": run_id}, settings)
        state = stages.train(stages.preprocess(state, settings), settings)
        evaluated[run_id] = stages.evaluate_and_register(state, settings)
    second, third = evaluated["second"], evaluated["third"]
    assert second["gate"]["same_rows"]["version"] == third["gate"]["same_rows"]["version"] == 1
    # When Promote re-checks v2 with v1 still champion: the same-rows comparison decides again
    promoted = stages.promote(second, settings)
    assert promoted["promoted"] and promoted["gate"]["compared_on"] == "candidate test rows"
    assert promoted["gate"]["champion_value"] == second["gate"]["same_rows"]["champion_value"]
    assert "on the same" in promoted["decision"]
    # And when v3's Promote finds v2 champion instead: registered values, and the reason says so
    rechecked = stages.promote(third, settings)["gate"]
    assert rechecked["champion_version"] == 2 and rechecked["compared_on"] == "champion's own test split"
    assert "champion v2 became champion after Evaluate compared with v1 on the same rows" in rechecked["reason"]
    # A promotion by hand of v2 (v3 is champion now) compares registered values, and says so
    assert registry.alias_version(DATASET, CHAMPION) == 3
    by_hand = registry.promote_by_hand(DATASET, 2, "back to v2", actor="me", force=True)["gate"]
    assert by_hand["compared_on"] == "champion's own test split"
    assert "champion v3's" in by_hand["reason"] and "(as registered, on its own test split)" in by_hand["reason"]


def test_a_small_table_uploaded_again_is_compared_on_all_its_test_rows_and_the_reason_says_it_favours_the_champion(
        settings: Settings) -> None:
    # Given a champion trained on 200 rows
    data = table(rows=200)
    run(settings, data, "first")
    # When they come again: the champion trained on most of the candidate's 40 test rows, and too
    # few are left that neither saw
    gate = run(settings, data.sample(frac=1, random_state=9), "again")["gate"]
    same = gate["same_rows"]
    assert gate["compared_on"] == "candidate test rows" and not same["unseen_only"] and same["rows"] == 40
    assert f"champion v1 trained on {same['champion_trained_on']} of these 40 rows" in gate["reason"]
    assert "the comparison favours the champion" in gate["reason"]

"""Real datasets through the whole offline stack: Given a dataset as its package ships it, When it is
uploaded with only its target (and its held-out file) configured, Then Step Functions trains it
and the local HTTP API answers every held-out row sent as it stands in the CSV."""

from __future__ import annotations

import importlib
import sys

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import upload, wait_for_execution
from tests.e2e.test_pipeline import post

sys.path.insert(0, str(ROOT / "bench"))
try:
    real_datasets = importlib.import_module("real_datasets")
finally:
    sys.path.remove(str(ROOT / "bench"))


@pytest.mark.parametrize("name", ["penguins", "penguins_raw"])
def test_every_held_out_row_is_answered_over_http(local_stack, name: str) -> None:
    dataset = real_datasets.BY_NAME[name]
    training, held_out = real_datasets.hold_out(dataset.read())
    s3 = local_stack.client("s3")
    test_key = f"data/{name}-e2e/held_out.csv"
    s3.put_object(Bucket=local_stack.bucket, Key=test_key, Body=held_out.to_csv(index=False).encode())
    config = f'target: "{dataset.target}"\nsplit: {{test_file: {test_key}}}\n'
    s3.put_object(Bucket=local_stack.bucket, Key=f"config/{name}-e2e.yaml", Body=config.encode())
    since = upload(local_stack, f"raw/{name}-e2e/{name}.csv", training)

    execution = wait_for_execution(local_stack, since=since, key=f"raw/{name}-e2e/{name}.csv")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    records = real_datasets.client_records(held_out)
    assert any(None in record.values() for record in records)  # rows with missing values are sent too
    status, body = post(local_stack, f"/models/{name}-e2e/predict", {"instances": records})
    assert status == 200, body
    assert len(body["predictions"]) == len(records) and None not in body["predictions"]

"""Real public datasets, as packages ship them, through the offline pipeline and the API.

Given a dataset exactly as its package ships it (missing values, dates, id columns and all), When it
trains through every stage handler with only its target set and every held-out row is sent to the
predict API as it stands in the CSV, Then every row gets a prediction and the model beats the
trivial baseline. This is the fast subset; ``make bench-models`` runs the whole catalogue
(bench/real_datasets.py). Adult's official test split (16,281 rows) scores >= 0.870 through the API.
"""

from __future__ import annotations

import importlib
import io
import socket
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
try:
    real_datasets: ModuleType = importlib.import_module("real_datasets")
finally:
    sys.path.remove(str(ROOT / "bench"))

FAST = [dataset.name for dataset in real_datasets.CATALOGUE if dataset.fast]


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Any]:
    with real_datasets.offline_pipeline() as offline:
        yield offline


@pytest.fixture(scope="module")
def ran(pipeline) -> Any:
    """Each dataset's result, trained once per module."""
    results: dict[str, dict[str, Any]] = {}

    def result(name: str) -> dict[str, Any]:
        if name not in results:
            results[name] = real_datasets.run(real_datasets.BY_NAME[name], pipeline)
        return results[name]

    return result


def test_the_catalogue_covers_every_shape_and_loads_with_the_network_off(monkeypatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a dataset loader reached for the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    shapes = {}
    for dataset in real_datasets.CATALOGUE:
        frame = pd.read_csv(io.BytesIO(dataset.read()))
        assert dataset.target in frame.columns, dataset.name
        shapes[dataset.name] = frame

    assert len(shapes) >= 12
    assert max(len(f) for f in shapes.values()) >= 300_000
    assert max(f.shape[1] for f in shapes.values()) >= 50
    targets = {d.name: shapes[d.name][d.target] for d in real_datasets.CATALOGUE}
    assert any(t.isna().any() for t in targets.values()), "a target with missing values"
    assert any(t.value_counts(normalize=True).min() < 0.05 for t in targets.values() if t.nunique() == 2)
    assert any(t.value_counts(normalize=True).min() < 0.05 for t in targets.values() if 2 < t.nunique() <= 20)
    assert any(f.drop(columns=d.target).isna().any().any() for d in real_datasets.CATALOGUE for f in [shapes[d.name]])
    assert shapes["fair_pt"]["identifier"].is_unique  # the index column
    assert pd.to_datetime(shapes["seattle_weather"]["date"]).notna().all()  # a date column


@pytest.mark.parametrize("name", FAST)
def test_every_held_out_row_gets_a_prediction(ran, name: str) -> None:
    row = ran(name)

    assert "failed" not in row, row.get("failed")
    assert row["refused"] == [] and row["predicted"] == row["held_out"] > 0
    assert real_datasets.beats_baseline(row), row
    # the API's answers are the model the evaluation scored (rows with a target; float32 ONNX)
    through_api = row["through_api"][row["primary_metric"]]
    assert through_api == pytest.approx(row["metric"], rel=0.01, abs=0.01)


def test_an_index_column_is_not_a_feature(ran) -> None:
    row = ran("fair_pt")

    assert "identifier" in row["ignored"] and row["ignored"]["identifier"] != "target"


def test_adults_official_test_split_through_the_api(pipeline, adult_csv) -> None:
    result = real_datasets.run_adult(adult_csv, pipeline)

    assert result["test_rows"] == result["held_out"] == result["predicted"] == 16_281, result["refused"]
    assert result["accuracy_through_api"] >= 0.870
    assert result["accuracy_through_api"] == pytest.approx(result["accuracy_evaluated"], abs=0.002)


@pytest.mark.parametrize(("text", "sent"), [("?", None), ("", None), (" NA", None), ("7", 7), ("2.5", 2.5),
                                            ("inf", "inf"), ("2013-01-01 05:00:00", "2013-01-01 05:00:00")])
def test_a_csv_cell_is_sent_as_a_client_would(text: str, sent: Any) -> None:
    assert real_datasets.client_value(text) == sent

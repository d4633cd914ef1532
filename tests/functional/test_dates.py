"""Dates are features: Given a daily weather table whose temperature follows the season, trained
through the pipeline's own stages (moto), Then the model beats the same table without its date,
the parts the model was fitted on equal, row for row, the parts serving derives from the same
strings, and the API's predictions for rows sent as they stand in the CSV are scikit-learn's."""

from __future__ import annotations

import io
from typing import Any

import joblib
import numpy as np
import pandas as pd

from stepml.inputs import check_records
from stepml.onnx_model import NUMERIC_INPUT
from stepml.preprocessing import to_model_frame
from stepml.registry import ModelRegistry
from stepml.serving import ModelServer
from stepml.settings import Settings
from stepml.storage import S3Store
from tests.functional.conftest import EVENT_BUCKET
from tests.functional.test_any_csv import upload
from tests.functional.test_prediction_contract import (  # noqa: F401 - call: the fixture
    DESCRIBE,
    PREDICT,
    call,
    conforms,
    train_through_stages,
)

FAST = "params: {max_iter: 60}\ntarget: temp_max\n"


def daily_weather(seed: int = 0) -> pd.DataFrame:
    """Four years of days: the maximum temperature follows the season (a cosine of the day of the
    year) plus weather noise; precipitation and wind carry little signal. Some dates are missing,
    three are unreadable."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2012-01-01", "2015-12-31", freq="D")
    season = -np.cos(2 * np.pi * (days.dayofyear.to_numpy() - 15) / 365.25)
    rain = np.round(rng.gamma(0.6, 4.0, len(days)) * (rng.random(len(days)) < 0.45), 1)
    frame = pd.DataFrame({
        "date": days.strftime("%Y-%m-%d"),
        "precipitation": rain,
        "wind": np.round(rng.gamma(4.0, 0.8, len(days)), 1),
        "temp_max": np.round(16 + 10 * season - 0.3 * rain + rng.normal(0, 2.5, len(days)), 1),
    })
    gaps = rng.choice(len(frame), 18, replace=False)
    frame.loc[gaps[:15], "date"] = np.nan
    frame.loc[gaps[15:], "date"] = "unknown"
    return frame


def run_stages(invoke: Any, event: dict[str, Any]) -> dict[str, Any]:
    """Every stage up to registration (a model that fails the gate stays a candidate)."""
    state = invoke("validate", event)
    for stage in ("preprocess", "train", "verify", "evaluate"):
        state = invoke(stage, state)
    return state


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a client sends them: every column (the target too), missing values as null."""
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def test_a_daily_table_trains_on_its_dates_and_serves_the_same_parts(s3, invoke, call) -> None:  # noqa: F811
    # Given the table with its date, and the same table told to drop the date
    body = daily_weather().to_csv(index=False).encode()
    version = train_through_stages(s3, invoke, "weather", body, FAST)
    blind_run = run_stages(invoke, upload(s3, "nodate", body, FAST + "drop_columns: [date]\n"))
    store = S3Store(Settings(bucket=EVENT_BUCKET))
    meta = ModelRegistry(store).get_version("weather", version)
    blind = ModelRegistry(store).get_version("nodate", blind_run["version"])

    # Then the date is a feature: read as ISO 8601, trained on as its parts, and it pays
    date = next(f for f in meta["schema"] if f["name"] == "date")
    assert date["kind"] == "date" and date["format"] == "iso8601" and date["nullable"] is True
    assert date["parts"] == ["year", "month", "day", "dayofweek", "dayofyear"]
    assert not any(c["name"] == "date" for c in meta["ignored_columns"])
    rmse, rmse_without = meta["evaluation"]["metrics"]["rmse"], blind["evaluation"]["metrics"]["rmse"]
    assert rmse < 0.5 * rmse_without, (rmse, rmse_without)  # the season explains most of the spread
    assert rmse < 3.5  # the noise is 2.5 degrees

    # And the parts the model was fitted on equal, row for row, those serving derives from the strings
    table = pd.read_csv(io.BytesIO(body), dtype={"date": str})
    unusual = table.index[table["date"].isna() | (table["date"] == "unknown")].tolist()
    test = table.loc[unusual + table.drop(index=unusual).sample(200, random_state=0).index.tolist()]
    loaded = ModelServer(store).model("weather", version)
    rows, warnings = check_records(records(test), loaded.contract)
    served = loaded.inputs(rows, loaded.schema)[NUMERIC_INPUT]
    fitted = to_model_frame(test, meta["schema"])
    assert [f["name"] for f in meta["schema"]] == ["date", "precipitation", "wind"]
    layout = [*(f"date.{part}" for part in date["parts"]), "precipitation", "wind"]
    assert sorted(layout) == sorted(fitted.columns)
    np.testing.assert_array_equal(served, fitted[layout].to_numpy())
    assert np.isnan(served[: len(unusual), :5]).all() and not np.isnan(served[len(unusual):]).any()
    assert all("ignored column(s) the model does not use: temp_max" in w for w in warnings)
    assert sum("date='unknown' is not a date" in " ".join(w) for w in warnings) == 3

    # And the API's predictions for those rows, sent as they stand, are scikit-learn's
    status, answer = call(PREDICT, "weather", {"instances": records(test)})
    assert status == 200, answer
    pipeline = joblib.load(io.BytesIO(ModelRegistry(store).load_artifact(meta, "model.joblib")))
    np.testing.assert_allclose(answer["predictions"], pipeline.predict(fitted), rtol=1e-5)

    # And the feature schema says how to send a date
    status, described = call(DESCRIBE, "weather")
    assert status == 200
    conforms(described, "ModelDescription")
    assert {"name": "date", "kind": "date", "format": "iso8601"}.items() <= described["features"][0].items()

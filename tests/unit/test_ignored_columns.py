"""The training CSV's columns that are not model inputs are recorded with why, for serving to accept
and ignore; every feature records whether training had it missing."""

from __future__ import annotations

import pandas as pd

from stepml.config import DatasetConfig
from stepml.preprocessing import clean, feature_schema, ignored_columns


def test_each_column_that_is_not_a_feature_is_recorded_with_its_reason() -> None:
    frame = pd.DataFrame({
        "id": [1, 2, 3, 4],
        "listed": ["2024-01-02", "2024-02-03", "2024-03-04", "2024-04-05"],
        "size": [50.0, None, 70.0, 80.0],
        "noise": [1, 2, 3, 4],
        "city": ["a", "b", None, "a"],
        "price": [1.0, 2.0, 3.0, 4.0],
    })
    config = DatasetConfig(target="price", drop_columns=("noise",), id_columns=("id",))
    schema = feature_schema(clean(frame, "price", config), "price")

    assert ignored_columns(frame, schema, "price", config) == [
        {"name": "id", "reason": "id_columns"},
        {"name": "noise", "reason": "drop_columns"},
        {"name": "price", "reason": "target"},
    ]
    assert {f["name"]: f["missing_in_training"] for f in schema} == {"listed": False, "size": True, "city": True}

"""Id-like columns - integers or text with a different value in every row - are left out of the
features by default, with the report saying why; ``keep_columns`` brings one back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stepml.columns import is_identifier
from stepml.config import DatasetConfig
from stepml.errors import ConfigError
from stepml.preprocessing import clean, feature_schema, ignored_columns, split
from stepml.validation import read_csv, validate

SOURCE = "s3://bucket/raw/demo/data.csv"
ROWS = 200


def table(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """A table sorted by its target, with a row number, shuffled keys, unique codes and floats."""
    rng = np.random.default_rng(seed)
    size = rng.normal(100, 20, rows).round(3)
    frame = pd.DataFrame({
        "row": np.arange(1, rows + 1),
        "customer": rng.permutation(np.arange(10_000, 10_000 + 7 * rows, 7)),
        "code": [f"C-{i:05d}" for i in rng.permutation(rows)],
        "size": size,  # a unique float: a measurement
        "rooms": rng.integers(1, 6, rows),  # integers that repeat, like Adult's fnlwgt
        "price": size * 3 + rng.normal(0, 5, rows),
    })
    frame = frame.sort_values("price").reset_index(drop=True)
    frame["row"] = np.arange(1, rows + 1)  # the row number follows the target: a leak
    return frame


def as_csv(frame: pd.DataFrame):
    return read_csv(frame.to_csv(index=False).encode(), SOURCE)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series(np.arange(1, ROWS + 1)), True),  # a row number
        (pd.Series(np.random.default_rng(1).permutation(np.arange(0, 50 * ROWS, 50))), True),  # keys
        (pd.Series([f"user-{i}" for i in range(ROWS)]), True),  # unique strings
        (pd.Series(np.random.default_rng(2).normal(size=ROWS)), False),  # unique floats stay
        (pd.Series(np.arange(1, 51)), False),  # a short table: distinct values say nothing
        (pd.Series([f"user-{i}" for i in range(50)]), False),
        (pd.Series(np.arange(ROWS) // 2), False),  # integers that repeat
        (pd.Series([True, False] * (ROWS // 2)), False),
        (pd.Series([*range(ROWS // 2), *[None] * (ROWS // 2)], dtype="Int64"), False),  # mostly missing
    ],
    ids=["row-number", "shuffled-keys", "unique-strings", "unique-floats", "50-integers", "50-strings",
         "repeating-integers", "booleans", "mostly-missing"],
)
def test_the_identifier_rule(values: pd.Series, expected: bool) -> None:
    assert is_identifier(values) is expected


def test_id_columns_are_not_features_and_the_report_says_why() -> None:
    frame = as_csv(table())
    report = validate(frame, DatasetConfig(target="price"), SOURCE)

    roles = {c["name"]: c["role"] for c in report["columns"]}
    assert roles == {"row": "id", "customer": "id", "code": "id", "size": "feature", "rooms": "feature",
                     "price": "target"}
    assert report["dropped_columns"] == {"row": "id", "customer": "id", "code": "id"}
    row = next(w for w in report["warnings"] if "'row'" in w)
    assert row == (
        f"column 'row' is unique per row (integers, a different value in each of {ROWS} rows): an "
        "identifier, not a feature, so it is left out of training (list it in keep_columns to train on it)"
    )
    assert any("'code' is unique per row (text" in w for w in report["warnings"])

    train, test = split(frame, "price", "regression", DatasetConfig(target="price"))
    assert list(train.columns) == list(test.columns) == ["size", "rooms", "price"]


def test_a_short_test_split_leaves_out_the_same_ids_as_the_upload() -> None:
    frame = as_csv(table())
    config = DatasetConfig(target="price", split={"test_rows": 20})  # 20 rows alone are too few to tell
    train, test = split(frame, "price", "regression", config)
    assert list(test.columns) == list(train.columns) == ["size", "rooms", "price"]


def test_keep_columns_brings_an_id_back_as_a_feature() -> None:
    frame = as_csv(table())
    config = DatasetConfig(target="price", keep_columns=("customer",))
    report = validate(frame, config, SOURCE)

    assert {c["name"]: c["role"] for c in report["columns"]}["customer"] == "feature"
    assert "customer" not in report["dropped_columns"]
    assert any("'customer' is unique per row (it looks like an identifier) but is trained on" in w
               for w in report["warnings"])
    schema = feature_schema(clean(frame, "price", config), "price")
    assert [f["name"] for f in schema] == ["customer", "size", "rooms"]


def test_an_unknown_keep_columns_name_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="config keep_columns names column\\(s\\) not in .*: customer_id"):
        validate(as_csv(table()), DatasetConfig(target="price", keep_columns=("customer_id",)), SOURCE)


def test_short_tables_keep_every_column() -> None:
    frame = as_csv(table(rows=40))
    report = validate(frame, DatasetConfig(target="price"), SOURCE)
    assert report["dropped_columns"] == {}
    assert [f["name"] for f in feature_schema(clean(frame, "price", DatasetConfig(target="price")), "price")] == [
        "row", "customer", "code", "size", "rooms"]


def test_an_id_column_is_recorded_as_ignored_with_reason_id() -> None:
    frame = as_csv(table())
    config = DatasetConfig(target="price", id_columns=("customer",), keep_columns=("code",))
    schema = feature_schema(clean(frame, "price", config), "price")
    assert ignored_columns(frame, schema, "price", config) == [
        {"name": "row", "reason": "id"},
        {"name": "customer", "reason": "id_columns"},
        {"name": "price", "reason": "target"},
    ]


def test_the_row_names_r_writes_before_the_data_are_an_index_at_any_size() -> None:
    # Given a 30-row table as R writes it (a blank header over the row names), sorted by its target
    # and split, so its row names are distinct but neither consecutive nor in order
    rng = np.random.default_rng(1)
    names = rng.permutation(np.arange(1, 41))[:30]
    body = '"","dose","y"\n' + "".join(f'"{n}",{rng.normal():.3f},{n % 2}\n' for n in names)
    frame = read_csv(body.encode(), SOURCE)
    assert frame.columns[0] == "Unnamed: 0"
    # Then that column is an identifier, where a named column of unique integers that small is not
    assert is_identifier(frame["Unnamed: 0"])
    assert not is_identifier(frame["Unnamed: 0"].rename("batch"))
    # And neither is a blank-headed column with a repeated value, or of fractions
    repeated = frame["Unnamed: 0"].copy()
    repeated.iloc[1] = repeated.iloc[0]
    assert not is_identifier(repeated)
    assert not is_identifier((frame["Unnamed: 0"] + 0.5).rename("Unnamed: 0"))

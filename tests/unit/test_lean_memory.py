"""The lean Lambda path's memory savings keep every answer: the same parsed table, validation
report, split, profile and model as the straightforward code they replaced."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from stepml import onnx_export, validation
from stepml.columns import MISSING_MARKERS
from stepml.config import DatasetConfig
from stepml.preprocessing import clean, feature_schema, split
from stepml.profile import build_profile
from stepml.recipes import build_pipeline

MIXED = (
    "id,kind,flag,when,amount,note\n"
    "1,x,True,2020-01-02,1.5,\n"
    "2,y,False,2020-01-03,,\n"
    "3,?,True,,2,z\n"
    "4,x,,2021-05-06,3,\n"
    "5,12,False,2020-01-01,4,\n"
    "6,y,True,2020-02-01,5.5,w\n"
)


def _one_read(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), na_values=MISSING_MARKERS, keep_default_na=False,
                       skipinitialspace=True, encoding="utf-8", index_col=False)


def _as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({c: object for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})


def _adult_like(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(17, 90, rows),
        "workclass": rng.choice(["Private", "State-gov", None], rows),
        "hours": np.where(rng.random(rows) < 0.1, np.nan, rng.integers(1, 99, rows).astype(float)),
        "joined": rng.choice(["2024-01-02", "2023-12-31", None], rows),
        "income": rng.choice(["<=50K", ">50K"], rows, p=[0.75, 0.25]),
    })


@pytest.mark.parametrize("chunk_rows", [1, 2, 4, 50_000])
def test_a_chunked_parse_gives_the_table_one_read_gives(monkeypatch: pytest.MonkeyPatch, chunk_rows: int) -> None:
    # Given a CSV with numbers, text, booleans, dates, missing markers and a column that is numbers
    # in its first rows and text later ("kind": x, y, 12)
    data = MIXED.encode()
    monkeypatch.setattr(validation, "CHUNK_ROWS", chunk_rows)
    # When it is parsed in chunks of any size
    parsed, _ = validation.read_table(data, "s3://b/raw/mixed/data.csv")
    # Then it is the table a single read_csv gives: dtypes, values and missing values alike, its
    # text held as categories of the same strings
    assert [c for c in parsed.columns if isinstance(parsed[c].dtype, pd.CategoricalDtype)] == ["kind", "when", "note"]
    pd.testing.assert_frame_equal(_as_objects(parsed), _one_read(data))
    assert parsed["kind"].tolist()[4] == "12"  # text as written, wherever the chunk boundary falls


def test_a_column_of_numbers_then_text_is_text_in_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a column with numbers in the first chunk and a word in the second
    monkeypatch.setattr(validation, "CHUNK_ROWS", 2)
    data = b"code,y\n1,a\n2,b\n3,a\nnine,b\n"
    # When parsed
    parsed, _ = validation.read_table(data, "s3://b/raw/codes/data.csv")
    # Then every value of it is its text (not the integers 1, 2 next to "3" and "nine")
    assert parsed["code"].tolist() == ["1", "2", "3", "nine"]


def test_the_validation_report_is_the_same_whatever_the_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an Adult-like upload with duplicate rows, missing values and a date column
    frame = _adult_like(400)
    data = pd.concat([frame, frame.head(30)]).to_csv(index=False).encode()
    config = DatasetConfig.from_dict({"target": "income"})
    reports = []
    for chunk_rows in (7, 50_000):
        monkeypatch.setattr(validation, "CHUNK_ROWS", chunk_rows)
        parsed, _notes = validation.read_table(data, "s3://b/raw/a/data.csv")
        reports.append(json.dumps(validation.validate(parsed, config, "s3://b/raw/a/data.csv"), sort_keys=True))
    # Then the reports are identical, and the duplicate rows are counted as pandas counts them
    assert reports[0] == reports[1]
    assert json.loads(reports[0])["duplicate_rows"] == int(_one_read(data).duplicated().sum()) >= 30


def test_duplicate_rows_counts_what_dataframe_duplicated_counts() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        rows = int(rng.integers(0, 40))
        frame = pd.DataFrame({"a": rng.integers(0, 3, rows).astype(float), "b": rng.choice(["x", "y", None], rows),
                              "c": rng.integers(0, 2, rows)})
        frame.loc[rng.random(rows) < 0.3, "a"] = np.nan  # missing values are equal to each other
        assert validation.duplicate_rows(frame) == int(frame.duplicated().sum())


@pytest.mark.parametrize("config", [{"target": "income"}, {"target": "income", "recipe": "seed-a"},
                                    {"target": "income", "split": {"stratify": False}}])
def test_the_split_is_the_split_of_a_cleaned_copy(config: dict) -> None:
    # Given an upload with rows lacking the target and an id column
    frame = _adult_like(600)
    frame.loc[::17, "income"] = None
    frame.insert(0, "row", range(600))
    settings = DatasetConfig.from_dict(config)
    # When it is split without copying the cleaned table first
    train, test = split(frame, "income", "classification", settings)
    # Then the sides are the rows (in order) and columns that splitting the cleaned copy gives
    from sklearn.model_selection import train_test_split

    cleaned = clean(frame, "income", settings)
    stratify = cleaned["income"] if settings.split.stratify else None
    want_train, want_test = train_test_split(cleaned, test_size=settings.split.test_size,
                                             random_state=settings.split.seed, stratify=stratify)
    pd.testing.assert_frame_equal(train, want_train.reset_index(drop=True))
    pd.testing.assert_frame_equal(test, want_test.reset_index(drop=True))
    assert "row" not in train.columns


def test_the_profile_of_columns_equals_the_profile_of_their_values() -> None:
    # Given a training split with numbers, text (blank and missing cells too) and dates
    frame = _adult_like(500)
    frame.loc[::9, "workclass"] = "  "
    schema = feature_schema(frame, "income")
    assert {f["kind"] for f in schema} == {"numeric", "categorical", "date"}
    # When profiled from the split's columns (vectorised) and from lists of their values
    from_columns = build_profile({f["name"]: frame[f["name"]] for f in schema}, schema, "classification",
                                 ["<=50K", ">50K"], {"accuracy": 0.8})
    from_lists = build_profile({f["name"]: frame[f["name"]].tolist() for f in schema}, schema, "classification",
                               ["<=50K", ">50K"], {"accuracy": 0.8})
    # Then both profiles are the same
    assert json.dumps(from_columns, sort_keys=True) == json.dumps(from_lists, sort_keys=True)


def test_parity_is_checked_on_a_seeded_sample_of_a_large_test_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_export, "PARITY_ROWS", 100)
    small, large = _adult_like(80), _adult_like(1000)
    # A split up to the cap is checked whole; a larger one on a seeded sample of the cap's size,
    # in the split's order, the same rows on every run
    assert onnx_export.parity_rows(small, 42) is small
    sample = onnx_export.parity_rows(large, 42)
    assert len(sample) == 100 and sample.index.is_monotonic_increasing
    assert sample.index.equals(onnx_export.parity_rows(large, 42).index)
    assert not sample.index.equals(onnx_export.parity_rows(large, 7).index)


TABLES = {
    "adult-like": (_adult_like(300).to_csv(index=False), {"target": "income"}),
    "mixed": (MIXED + "".join(f"{i},x,True,2020-01-0{i % 9 + 1},{i},w\n" for i in range(7, 80)), {"target": "amount"}),
    "ids and typos": ("key,n,label\n" + "".join(f"k{i},{i if i % 40 else 'oops'},{'ab'[i % 2]}\n"
                                                   for i in range(120)), {"target": "label"}),
}


@pytest.mark.parametrize("name", list(TABLES))
def test_text_held_as_categories_gives_the_report_text_as_objects_gives(name: str) -> None:
    # Given an upload as Validate parses it (text as categories) and the same table as objects
    csv, config = TABLES[name]
    parsed, _ = validation.read_table(csv.encode(), "s3://b/raw/t/data.csv")
    assert any(isinstance(parsed[c].dtype, pd.CategoricalDtype) for c in parsed.columns)
    settings = DatasetConfig.from_dict(config)
    # When each is validated, the reports (or the refusals) are the same, word for word
    outcomes = []
    for frame in (parsed, _as_objects(parsed)):
        try:
            outcomes.append(json.dumps(validation.validate(frame, settings, "s3://b/raw/t/data.csv"), sort_keys=True))
        except Exception as exc:  # noqa: BLE001 - the refusal is what is compared
            outcomes.append(f"{type(exc).__name__}: {exc}")
    assert outcomes[0] == outcomes[1]


def test_the_model_sees_the_same_features_and_the_profile_counts_the_same_from_categories() -> None:
    from stepml.preprocessing import to_model_frame

    # Given a split read back with text as categories (some categories unused by its rows)
    frame = _adult_like(500)
    frame.loc[::9, "workclass"] = "  "
    parsed, _ = validation.read_table(frame.to_csv(index=False).encode(), "s3://b/raw/a/data.csv")
    part = parsed.iloc[::3].reset_index(drop=True)
    schema = feature_schema(_as_objects(part), "income")
    # Then the model's input frame holds the values objects give (the missing marker too), text
    # still as categories (a code per cell), and the column transformer makes the same matrix of it
    lean, plain = to_model_frame(part, schema), to_model_frame(_as_objects(part), schema)
    pd.testing.assert_frame_equal(lean.astype(object), plain.astype(object))
    assert isinstance(lean["workclass"].dtype, pd.CategoricalDtype)
    columns = build_pipeline(schema, "classification", DatasetConfig.from_dict({"target": "income"}))
    matrices = [columns.named_steps["columns"].fit_transform(f) for f in (lean, plain)]
    np.testing.assert_array_equal(matrices[0], matrices[1])
    # and the reference profile is the same
    profiles = [json.dumps(build_profile({f["name"]: t[f["name"]] for f in schema}, schema, "classification",
                                         ["<=50K"], {"accuracy": 0.8}), sort_keys=True)
                for t in (part, _as_objects(part))]
    assert profiles[0] == profiles[1]
    # and the schema Preprocess records is the same
    assert feature_schema(part, "income") == schema


def test_duplicate_rows_of_categories_are_counted_as_of_objects() -> None:
    rng = np.random.default_rng(2)
    for _ in range(30):
        rows = int(rng.integers(0, 40))
        frame = pd.DataFrame({"b": pd.Categorical(rng.choice(["x", "y", None], rows)), "c": rng.integers(0, 2, rows)})
        assert validation.duplicate_rows(frame) == int(_as_objects(frame).duplicated().sum())


@pytest.mark.parametrize("config", [{"target": "income"}, {"target": "income", "split": {"stratify": False}}])
def test_a_text_target_held_as_categories_splits_into_the_same_rows(config: dict) -> None:
    # Given an upload whose text (the target too) is categories, classes in no sorted order
    frame = _adult_like(700)
    frame["income"] = np.random.default_rng(3).choice(["zeta", "<=50K", "Alpha", ">50K"], 700, p=[.1, .5, .1, .3])
    frame.loc[::13, "income"] = None
    parsed, _ = validation.read_table(frame.to_csv(index=False).encode(), "s3://b/raw/a/data.csv")
    # (categories in the order later chunks bring them, not sorted)
    parsed["income"] = parsed["income"].cat.reorder_categories(["zeta", ">50K", "Alpha", "<=50K"])
    settings = DatasetConfig.from_dict(config)
    # When it is split, stratified by the classes' codes
    train, test = split(parsed, "income", "classification", settings)
    # Then the sides hold the rows the labels as text put there
    want_train, want_test = split(_as_objects(parsed), "income", "classification", settings)
    pd.testing.assert_frame_equal(_as_objects(train), want_train)
    pd.testing.assert_frame_equal(_as_objects(test), want_test)


def test_each_side_of_a_split_counts_only_the_classes_its_rows_hold() -> None:
    # Given a text target with a class whose only rows are the first ones (the test rows)
    frame = _adult_like(200)
    frame.loc[:4, "income"] = "rare"
    parsed, _ = validation.read_table(frame.to_csv(index=False).encode(), "s3://b/raw/a/data.csv")
    for config in ({"target": "income", "split": {"test_rows": 5}}, {"target": "income"}):
        train, test = split(parsed, "income", "classification", DatasetConfig.from_dict(config))
        # Then a side's class counts are those of its own rows, as with text as objects
        for side in (train, test):
            assert side["income"].value_counts().to_dict() == _as_objects(side)["income"].value_counts().to_dict()
            assert side["income"].value_counts().min() >= 1

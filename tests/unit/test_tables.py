"""The Parquet handoff between stages: what Validate parsed is what the later stages read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stepml import tables
from stepml.errors import DataError
from stepml.validation import read_table


def _round_trip(frame: pd.DataFrame, text: str = "object") -> pd.DataFrame:
    return tables.read_parquet(tables.to_parquet(frame), "s3://bucket/runs/x/upload.parquet", text=text)


def test_dtypes_survive_categories_nullable_ints_dates_and_booleans() -> None:
    # Given a table with each kind of column a stage hands on
    frame = pd.DataFrame(
        {
            "workclass": np.array(["Private", None, "State-gov", "Private"], dtype=object),
            "grade": pd.Categorical(["low", None, "high", "low"], categories=["low", "high"]),
            "children": pd.array([1, None, 3, 0], dtype="Int64"),
            "age": np.array([25, 38, 28, 44], dtype="int64"),
            "hours": [40.0, np.nan, 50.5, 40.0],
            "member": [True, False, True, False],
            "joined": ["2024-01-02", None, "2024-03-04", "not a date"],
            "seen": pd.to_datetime(["2024-01-02 10:00", None, "2024-03-04 00:00", "2024-01-01 08:30"]),
        },
        index=[7, 3, 9, 1],  # a split's shuffled index is not kept
    )
    # When it goes through Parquet, read as the stages read it (text as categories)
    back = _round_trip(frame, text="category")
    # Then every column keeps its dtype and its values, missing ones included; text is categories
    # of its strings, whether it was written as objects or as categories
    assert back.dtypes.drop(["workclass", "joined"]).to_dict() == frame.dtypes.drop(["workclass", "joined"]).to_dict()
    assert back["workclass"].dtype == "category" and back["joined"].dtype == "category"
    assert list(back.index) == [0, 1, 2, 3]
    assert list(back["grade"].cat.categories) == ["low", "high"]
    assert back["children"].isna().tolist() == [False, True, False, False]
    assert back["children"].dropna().tolist() == [1, 3, 0]
    assert back["joined"].dropna().tolist() == ["2024-01-02", "2024-03-04", "not a date"]
    assert back["joined"].isna().tolist() == [False, True, False, False]
    pd.testing.assert_frame_equal(back.drop(columns=["workclass", "joined"]),
                                  frame.drop(columns=["workclass", "joined"]).reset_index(drop=True),
                                  check_categorical=True)
    assert back["workclass"].astype(object).equals(frame["workclass"].reset_index(drop=True))
    # read as objects (the UI's examples), text is the strings again
    assert _round_trip(frame)["grade"].tolist() == ["low", np.nan, "high", "low"]


def test_repeated_text_is_one_shared_string_per_distinct_value() -> None:
    # Given a text column of 10,000 rows and three values (as pandas' CSV parser shares them)
    frame = pd.DataFrame({"workclass": np.array(["Private", "State-gov", "Self-emp"] * 3333 + [None], dtype=object)})
    # When it goes through Parquet, it is still text, each distinct value one object in memory
    back = _round_trip(frame)["workclass"]
    assert back.dtype == object
    assert len({id(v) for v in back.dropna()}) == 3
    assert back.isna().sum() == 1


def test_text_column_mixing_kinds_is_written_as_its_text() -> None:
    # Given an object column holding a number and a boolean next to text (a mixed CSV column)
    frame = pd.DataFrame({"code": pd.Series(["A7", np.nan, 12, True, 1.5], dtype=object)})
    # Then it comes back as text, as a CSV round trip gave it, missing values missing
    back = _round_trip(frame)["code"]
    assert back.dropna().tolist() == ["A7", "12", "True", "1.5"]
    assert back.isna().tolist() == [False, True, False, False, False]


def test_an_uploaded_csv_reads_back_as_validate_parsed_it() -> None:
    # Given Adult-style text with '?' for missing values, as Validate parses it
    csv = (b"age,workclass,fnlwgt,member,income\n39,State-gov,77516,True,<=50K\n50,?,83311,False,>50K\n"
           b"38,Private,,True,<=50K\n")
    frame, _ = read_table(csv, "s3://bucket/raw/adult/a.csv")
    # When Preprocess reads it from Parquet instead of parsing the CSV again
    back = _round_trip(frame, text="category")
    # Then it is the same table: numbers as numbers, '?' missing, booleans as booleans
    assert back.dtypes.to_dict() == frame.dtypes.to_dict()
    assert back.isna().equals(frame.isna())
    assert back["workclass"].astype(object).fillna("missing").tolist() == ["State-gov", "missing", "Private"]
    assert back["fnlwgt"].tolist()[:2] == [77516.0, 83311.0]


@pytest.mark.parametrize(("data", "why"), [
    (b"age,income\n1,2\n", "it does not begin and end with Parquet's magic bytes PAR1"),
    (b"", "0 bytes, too few for a Parquet file"),
    (b"PAR1" + b"\x00" * 8 + (1_000).to_bytes(4, "little") + b"PAR1", "its footer claims 1,000 bytes of a 20-byte object"),
])
def test_what_is_not_parquet_is_a_data_error_naming_the_object(
        monkeypatch: pytest.MonkeyPatch, data: bytes, why: str) -> None:
    import fastparquet

    # Given fastparquet's reader out of reach: its compiled footer parser crashed the process on a
    # CSV's bytes (a segmentation fault, now and then), so these never reach it
    def unreachable(*args: object, **kwargs: object) -> None:
        raise AssertionError("fastparquet was handed bytes that are no Parquet file")

    monkeypatch.setattr(fastparquet, "ParquetFile", unreachable)
    with pytest.raises(DataError, match=rf"s3://bucket/runs/x/upload.parquet is not a readable Parquet table: {why}"):
        tables.read_parquet(data, "s3://bucket/runs/x/upload.parquet")


def test_a_damaged_parquet_footer_is_a_data_error_too() -> None:
    # Given a real table's file with its footer's bytes zeroed (the frame intact)
    data = bytearray(tables.to_parquet(pd.DataFrame({"a": [1, 2]})))
    footer = int.from_bytes(data[-8:-4], "little")
    data[-8 - footer:-8] = bytes(footer)
    with pytest.raises(DataError, match=r"t.parquet is not a readable Parquet table"):
        tables.read_parquet(bytes(data), "t.parquet")


def test_the_engine_is_fastparquet_even_where_pyarrow_is_installed() -> None:
    # Lambda's layer has fastparquet only: the local run must write and read the same way
    data = tables.to_parquet(pd.DataFrame({"a": [1, 2]}))
    assert data[:4] == b"PAR1"
    assert b"fastparquet" in data[-4096:]


def test_a_stage_can_read_only_the_columns_it_needs() -> None:
    frame = pd.DataFrame({"age": [39, 50], "workclass": ["State-gov", None], "income": ["<=50K", ">50K"]})
    back = tables.read_parquet(tables.to_parquet(frame), "s3://bucket/train.parquet", columns=["income"])
    assert list(back.columns) == ["income"]
    assert back["income"].tolist() == ["<=50K", ">50K"]

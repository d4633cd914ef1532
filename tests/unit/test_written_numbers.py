"""Numbers and missing values as users write them: a CSV from Excel or a finance system writes
``"$42,000.00"``, ``"5,850"``, ``"45.2%"``, ``n/a`` or ``#N/A``; training reads them as the numbers and
missing values they are, on the Lambda path and on the Spark path's executors alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stepml import cells
from stepml.config import DatasetConfig
from stepml.errors import DataError
from stepml.preprocessing import clean, feature_schema, to_model_frame
from stepml.spark_job import read_chunk
from stepml.validation import read_table, validate

SOURCE = "s3://bucket/raw/houses/data.csv"


def houses(rows: int = 60) -> str:
    """A finance system's export: a currency price (the target), a thousands-separated area, a
    percentage, a category and a decimal-comma column (a European spreadsheet's ``1,5``)."""
    lines = ["price,area,deposit,city,factor"]
    for i in range(rows):
        price = 95_000 + i * 3_517.25
        lines.append(f'"${price:,.2f}","{900 + (i % 30) * 41:,}",{(i % 20) + 0.5}%,{"ab"[i % 2]},"{i % 4},5"')
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "number", "how"),
    [
        ("$42,000.00", 42000.0, {"currency", "thousands"}),
        ("5,850", 5850.0, {"thousands"}),
        ("45.2%", 45.2, {"percent"}),
        ("-$6,306.49", -6306.49, {"currency", "thousands"}),
        ("€ 12", 12.0, {"currency"}),
        ("12 £", 12.0, {"currency"}),
        ("¥1,234,567", 1234567.0, {"currency", "thousands"}),
        (" 195 ", 195.0, set()),
        ("1e5", 100000.0, set()),
    ],
)
def test_a_number_as_a_spreadsheet_writes_it_is_that_number(text: str, number: float, how: set[str]) -> None:
    assert cells.number_format(text) == (number, frozenset(how))


@pytest.mark.parametrize("text", ["1,5", "12,34", "1,23,456", "$45%", "$$5", "--5", "1e400", "inf", "nan", "1_000",
                                  "abc", "$", "5 apples"])
def test_a_decimal_comma_or_text_is_not_a_number(text: str) -> None:
    assert cells.number(text) is None


@pytest.mark.parametrize("text", ["NA", "na", "n/a", "N/A", "NaN", "nan", "null", "NULL", "Null", "#N/A", "?", "",
                                  "  ", " n/a ", "None"])
def test_missing_markers_match_the_na_family_in_any_case_and_excels_na(text: str) -> None:
    assert cells.is_missing_marker(text)
    assert text.strip() in cells.MISSING_MARKERS


@pytest.mark.parametrize("text", ["-", "none", "unknown", "#N/A N/A", "0"])
def test_a_dash_or_other_words_stay_values(text: str) -> None:
    assert not cells.is_missing_marker(text)


def test_formatted_number_columns_are_numeric_and_the_report_says_how_they_were_read() -> None:
    # Given a finance export whose price, area and deposit are formatted numbers
    frame, notes = read_table(houses().encode(), SOURCE)

    # Then they are numbers, as written without the formatting; the decimal comma stays text
    assert frame["price"].iloc[1] == pytest.approx(98_517.25)
    assert frame["area"].tolist()[:2] == [900, 941] and frame["area"].dtype == np.int64
    assert frame["deposit"].iloc[0] == 0.5  # 0.5% is 0.5: kept as written
    assert isinstance(frame["factor"].dtype, pd.CategoricalDtype)
    assert notes == [
        "price: read as numbers ($ and thousands separators removed)",
        "area: read as numbers (thousands separators removed)",
        "deposit: read as numbers (% removed: a percentage is kept as written, 45.2% is 45.2)",
    ]

    # And the currency target is a regression; the area is a numeric feature, not an id or a category
    report = validate(frame, DatasetConfig(target="price"), SOURCE)
    assert report["task"] == "regression" and report["dropped_columns"] == {}
    kinds = {c["name"]: c["kind"] for c in report["columns"]}
    assert kinds == {"price": "numeric", "area": "numeric", "deposit": "numeric", "city": "categorical",
                     "factor": "categorical"}
    schema = {f["name"]: f for f in feature_schema(clean(frame, "price", DatasetConfig(target="price")), "price")}
    assert schema["area"]["kind"] == "numeric" and (schema["area"]["min"], schema["area"]["max"]) == (900, 2089)
    assert schema["deposit"]["kind"] == "numeric" and schema["factor"]["kind"] == "categorical"


def test_a_column_of_formatted_numbers_with_typos_is_refused_naming_the_typos() -> None:
    # Given a price column of formatted numbers and two cells of text (the share rule of a typo)
    text = "price,y\n" + "".join(f'"${1000 + i:,}",{i}.5\n' for i in range(38)) + "call us,1\nTBD,2\n"

    # Then the upload is refused, naming the typos and their lines, not the formatted numbers
    with pytest.raises(DataError, match=r"column 'price' mixes numbers and text: 2 of 40 values are not numbers "
                                        r"\(line 40: 'call us', line 41: 'TBD'\)"):
        validate(read_table(text.encode(), SOURCE)[0], DatasetConfig(), SOURCE)


def test_a_decimal_comma_column_stays_text() -> None:
    # "1,5" is one and a half in a European spreadsheet, or a list: it is not guessed
    frame, notes = read_table(("a,y\n" + "".join(f'"{i % 7},5",{i}\n' for i in range(40))).encode(), SOURCE)

    assert isinstance(frame["a"].dtype, pd.CategoricalDtype) and notes == []


def test_lower_case_na_and_excels_na_are_missing_not_a_class() -> None:
    text = "a,y\n" + "1,yes\n2,no\n" * 15 + "3,n/a\n4,#N/A\n5,Null\n"
    frame, _ = read_table(text.encode(), SOURCE)

    report = validate(frame, DatasetConfig(), SOURCE)

    assert report["target_distribution"] == {"yes": 15, "no": 15}
    assert "3 row(s) have no target value and will be dropped" in report["warnings"]


def spark_chunk(text: str) -> pd.DataFrame:
    """A chunk of rows as Spark's ``mapInPandas`` hands it to an executor: the CSV's text of every
    column (Spark's reader with inferSchema off), an empty cell None."""
    return pd.read_csv(pd.io.common.StringIO(text), dtype=str, keep_default_na=False).replace("", None)


def test_the_spark_executors_read_formatted_numbers_as_the_lambda_path_does() -> None:
    # Given the finance export, read as the Lambda path reads it, and its model frame
    config = DatasetConfig(target="price")
    text = houses() + '"$1,000.00",,n/a,#N/A,NA\n'
    lambda_frame = clean(read_table(text.encode(), SOURCE)[0], "price", config)
    schema = feature_schema(lambda_frame, "price")
    text_columns = [f["name"] for f in schema if f["kind"] in ("categorical", "date")]

    # When an executor reads the same rows as Spark gives them
    executor_frame = read_chunk(spark_chunk(text), text_columns)

    # Then the model sees the same numbers, categories and missing values, and the same target
    pd.testing.assert_frame_equal(to_model_frame(executor_frame, schema).astype(object),
                                  to_model_frame(lambda_frame, schema).astype(object))
    from stepml.columns import as_numbers

    np.testing.assert_array_equal(as_numbers(executor_frame["price"]).to_numpy(), lambda_frame["price"].to_numpy())


class _DistinctTexts:
    """A fake Spark DataFrame of one text column: what ``_class_codes`` asks of it."""

    def __init__(self, texts: list[str | None]) -> None:
        self.texts = texts

    def select(self, _name: str) -> _DistinctTexts:
        return self

    def distinct(self) -> _DistinctTexts:
        return _DistinctTexts(list(dict.fromkeys(self.texts)))

    def collect(self) -> list[tuple[str | None]]:
        return [(text,) for text in self.texts]


def test_the_spark_path_numbers_a_formatted_class_target_as_the_lambda_path_labels_it() -> None:
    # Given a class target written in dollars ("$1,000", "$2,500"), read by the Lambda path
    from stepml.preprocessing import class_labels
    from stepml.spark_job import _class_codes

    written = ["$1,000", "$2,500", " $1,000", "n/a", "$10,000"] * 8
    frame, _ = read_table(("x,y\n" + "".join(f'{i},"{v}"\n' for i, v in enumerate(written))).encode(), SOURCE)
    lambda_labels = sorted(set(class_labels(frame["y"].dropna())))

    # When the Spark path numbers the same texts
    codes = _class_codes(_DistinctTexts(written), "y")

    # Then its labels are the Lambda path's numbers, each spelling coded, the marker left out
    assert codes.labels.tolist() == lambda_labels == [1000, 2500, 10000]
    assert codes.index == {"$1,000": 0, " $1,000": 0, "$2,500": 1, "$10,000": 2}

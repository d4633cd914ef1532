"""Date columns: one format per column, the same parts at training time and at serving time."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stepml import dateparts
from stepml.dateparts import DATE_PARTS, ISO, TIME_PARTS
from stepml.inputs import InputContract, check_records
from stepml.onnx_model import NUMERIC_INPUT, TEXT_INPUT, feeds, feeds_from_rows
from stepml.preprocessing import feature_schema, to_model_frame

TUESDAY_5_JAN = (2021.0, 1.0, 5.0, 1.0, 5.0)


@pytest.mark.parametrize(
    ("values", "fmt", "first"),
    [
        (["2021-01-05", "2021-02-28"], ISO, TUESDAY_5_JAN),
        (["2021-01-05 13:45:00", "2021-02-28 00:00:00"], ISO, (*TUESDAY_5_JAN, 13.0, 45.0)),
        (["2021-01-05T13:45:00Z", "2021-02-28T00:00:00Z"], ISO, (*TUESDAY_5_JAN, 13.0, 45.0)),
        (["01/05/2021", "12/31/2021"], "%m/%d/%Y", TUESDAY_5_JAN),
        (["05/01/2021", "31/12/2021"], "%d/%m/%Y", TUESDAY_5_JAN),
        (["5 Jan 2021", "28 Feb 2021"], "%d %b %Y", TUESDAY_5_JAN),
        (["Jan 5, 2021 1:45 PM", "Feb 28, 2021 9:00 AM"], "%b %d, %Y %I:%M %p", (*TUESDAY_5_JAN, 13.0, 45.0)),
        (["2021-01", "2021-02"], "%Y-%m", (2021.0, 1.0)),
    ],
)
def test_each_common_way_of_writing_a_date_is_read_with_one_format(values, fmt, first) -> None:
    found = dateparts.detect(values)

    assert found is not None and found.format == fmt
    assert dateparts.parts(values[0], found.format, found.parts) == first
    assert len(found.parts) == len(first)


def test_a_utc_offset_gives_the_parts_of_the_values_own_local_time() -> None:
    names = DATE_PARTS + TIME_PARTS
    assert dateparts.parts("2021-01-05T23:30:00-05:00", ISO, names) == (2021.0, 1.0, 5.0, 1.0, 5.0, 23.0, 30.0)
    assert dateparts.parts("2021-01-05T23:30:00+09:00", ISO, names)[2:] == (5.0, 1.0, 5.0, 23.0, 30.0)


@pytest.mark.parametrize("value", [None, "", "   ", "not a date", "2021-13-45", float("nan"), 20210105])
def test_a_missing_or_unreadable_value_gives_nan_parts(value) -> None:
    assert all(math.isnan(v) for v in dateparts.parts(value, ISO, DATE_PARTS))


@pytest.mark.parametrize(
    "values",
    [["1", "2", "3"], ["2021", "2022"], ["a1", "b2"], ["13:45", "14:00"], ["1.2.3", "4.5.6"], [], [None, ""]],
)
def test_numbers_codes_and_times_of_day_are_not_dates(values) -> None:
    assert dateparts.detect(values) is None


def test_month_first_wins_a_tie_with_day_first_and_reports_it() -> None:
    found = dateparts.detect(["01/05/2021", "02/03/2021", "12/11/2021"])

    assert found is not None and found.format == "%m/%d/%Y" and found.alternatives == ("%d/%m/%Y",)
    assert dateparts.detect(["01/05/2021", "02/03/2021", "25/11/2021"]).format == "%d/%m/%Y"


def test_a_few_unreadable_values_leave_a_date_column_but_many_do_not() -> None:
    dates = [f"2021-01-{day:02d}" for day in range(1, 29)]
    assert dateparts.detect([*dates, "unknown", "n/a"]) is not None  # 28 of 30 read: over 90 %
    assert dateparts.detect([*dates[:10], *["unknown"] * 5]) is None


def test_column_parts_are_parts_of_each_value() -> None:
    values = ["2021-01-05", None, "2021-01-05", "junk", "2024-12-31"]

    derived = dateparts.column_parts(values, ISO, DATE_PARTS)

    assert derived.shape == (5, 5)
    for row, value in zip(derived, values, strict=True):
        np.testing.assert_array_equal(row, np.array(dateparts.parts(value, ISO, DATE_PARTS)))
    assert derived[4].tolist() == [2024.0, 12.0, 31.0, 1.0, 366.0]


def test_model_features_replace_a_date_column_by_its_parts_in_place() -> None:
    schema = [
        {"name": "size", "kind": "numeric"},
        {"name": "day", "kind": "date", "format": ISO, "parts": ["year", "month"]},
        {"name": "city", "kind": "categorical"},
    ]
    assert [f["name"] for f in dateparts.model_features(schema)] == ["size", "day.year", "day.month", "city"]


def table() -> pd.DataFrame:
    """A missing and an unreadable date among ten readable ones (over 90 % read: a date column)."""
    more = [f"2021-0{month}-1{month} 0{month}:0{month}:00" for month in range(2, 9)]
    return pd.DataFrame({
        "size": [1.0, None, 3.0, 4.0, 5.0, *range(7)],
        "when": ["2021-01-05 13:45:00", "2021-03-01 00:10:00", None, "2021-12-31 23:59:00", "garbage", *more],
        "city": ["a", "b", None, "a", "b", *"abababa"],
        "y": range(12),
    })


def test_training_and_serving_derive_the_same_values_row_for_row() -> None:
    """The pipeline's frame (training), the request path (check_records -> feeds_from_rows) and the
    export check's path (feeds, from the strings) give the model the same numbers."""
    frame = table()
    schema = feature_schema(frame, "y")
    date = next(f for f in schema if f["name"] == "when")
    assert date["kind"] == "date" and date["parts"] == list(DATE_PARTS + TIME_PARTS)
    assert date["missing_in_training"] is True  # a missing and an unreadable value
    assert (date["earliest"], date["latest"]) == ("2021-01-05 13:45:00", "2021-12-31 23:59:00")
    served = [{**f, "nullable": True} for f in schema]

    trained = to_model_frame(frame, schema)
    records = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]
    rows, warnings = check_records(records, InputContract.build(served, ignored=["y"]))
    from_requests = feeds_from_rows(rows, served)
    from_strings = feeds({f["name"]: frame[f["name"]].tolist() for f in schema}, served)

    numeric = ["size", *(f"when.{p}" for p in date["parts"])]
    expected = trained[numeric].to_numpy(dtype=np.float64)
    np.testing.assert_array_equal(from_requests[NUMERIC_INPUT], expected)
    np.testing.assert_array_equal(from_strings[NUMERIC_INPUT], expected)
    assert from_requests[TEXT_INPUT][:5].tolist() == [["a"], ["b"], [""], ["a"], ["b"]]
    assert expected[0, 1:].tolist() == [2021.0, 1.0, 5.0, 1.0, 5.0, 13.0, 45.0]
    assert any("when='garbage' is not a date" in w and "served as a missing date" in w for w in warnings[4])


def test_a_date_that_is_not_a_string_is_refused_naming_the_field_and_the_format() -> None:
    schema = [{"name": "when", "kind": "date", "format": "%d/%m/%Y", "parts": list(DATE_PARTS), "nullable": True}]

    from stepml.errors import RequestError

    with pytest.raises(RequestError) as refused:
        check_records([{"when": 20210105}], schema)
    assert refused.value.status == 422
    assert "field 'when'" in str(refused.value) and "%d/%m/%Y (e.g. 05/01/2021)" in str(refused.value)


def test_an_unreadable_date_the_model_cannot_serve_missing_is_refused() -> None:
    schema = [{"name": "when", "kind": "date", "format": ISO, "parts": list(DATE_PARTS), "nullable": False}]

    from stepml.errors import RequestError

    with pytest.raises(RequestError) as refused:
        check_records([{"when": "yesterday"}], schema)
    assert "'yesterday' is not a date in the format the model was trained on: ISO 8601" in str(refused.value)


def test_a_derived_part_may_not_clash_with_a_column() -> None:
    from stepml.errors import DataError

    frame = pd.DataFrame({"d": ["2021-01-05", "2021-01-06"], "d.year": [1.0, 2.0], "y": [0.0, 1.0]})
    with pytest.raises(DataError, match="'d.year' has the name of a part derived from date column 'd'"):
        feature_schema(frame, "y")


@pytest.mark.parametrize(
    ("recipe", "params"), [("auto", {"max_iter": 30}), ("seed-a", {"n_estimators": 10}), ("seed-b", {"n_estimators": 20})]
)
def test_the_exported_model_reads_date_strings_as_scikit_learn_was_fitted_on_them(recipe: str, params: dict) -> None:
    """Verify (ONNX export) and the request path both derive the parts from the strings; the
    graph then predicts what scikit-learn predicts, on rows with a missing and an unreadable date."""
    if recipe == "seed-b":
        pytest.importorskip("xgboost")
    import onnxruntime as ort

    from stepml.config import DatasetConfig
    from stepml.onnx_export import export, verify, with_nullable
    from stepml.onnx_model import PREDICTION
    from stepml.training import fit

    # Given a daily table whose target follows the month, with gaps, fitted by the recipe
    rng = np.random.default_rng(1)
    days = pd.date_range("2019-01-01", periods=400, freq="D")
    frame = pd.DataFrame({
        "day": days.strftime("%d/%m/%Y"),
        "noise": rng.normal(size=400),
        "y": np.asarray(days.month, dtype=float) * 10 + rng.normal(size=400),
    })
    frame.loc[[3, 50], "day"] = [None, "31/02/2019"]
    config = DatasetConfig(target="y", recipe=recipe, params=params)
    schema = feature_schema(frame, "y")
    assert schema[0]["format"] == "%d/%m/%Y"
    pipeline = fit(frame, "y", schema, "regression", config)
    # When it is exported, and rows are sent as a request would send them
    model = export(pipeline, schema, "regression")
    checked = verify(model, pipeline, frame, schema, "regression")
    served = with_nullable(schema, pipeline, recipe)
    records = [{"day": None if pd.isna(d) else d, "noise": n} for d, n in zip(frame["day"], frame["noise"], strict=True)]
    rows, warnings = check_records(records, served)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    got = session.run([PREDICTION], feeds_from_rows(rows, served))[0].reshape(-1)
    # Then ONNX agrees with scikit-learn on every row, and a missing date is served (imputed parts)
    assert checked.divergent_rows == 0 and checked.rows_with_missing == 1
    np.testing.assert_allclose(got, pipeline.predict(to_model_frame(frame, schema)), rtol=1e-6)
    assert served[0]["nullable"] is True
    assert any("'31/02/2019' is not a date" in w for w in warnings[50])


def test_deriving_parts_imports_no_pandas_the_inference_function_lacks() -> None:
    import subprocess
    import sys

    probe = ("import sys; from stepml import dateparts as d; f = d.detect(['01/05/2021 13:45', '12/31/2021 00:00']);"
             "print(d.parts('02/03/2021 10:30', f.format, f.parts), d.column_parts(['x'], f.format, f.parts).shape,"
             "sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'sklearn', 'dateutil', 'scipy'}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "(2021.0, 2.0, 3.0, 2.0, 34.0, 10.0, 30.0) (1, 7) []"


def test_the_report_says_how_dates_are_read_and_quotes_the_values_it_cannot_read() -> None:
    from stepml.config import DatasetConfig
    from stepml.validation import read_csv, validate

    lines = [f"{month:02d}/{day:02d}/2021,{day}" for month in range(1, 13) for day in range(1, 5)]
    lines[7] = "soon,1"
    report = validate(read_csv(("when,y\n" + "\n".join(lines) + "\n").encode(), "s3://b/raw/x/x.csv"),
                      DatasetConfig(), "s3://b/raw/x/x.csv")

    when = report["columns"][0]
    assert (when["role"], when["kind"], when["format"]) == ("date", "date", "%m/%d/%Y")
    text = " | ".join(report["warnings"])
    assert "column 'when': 1 value(s) are not dates in its format %m/%d/%Y (e.g. 01/05/2021) (line 9: 'soon')" in text
    assert "but %d/%m/%Y (e.g. 05/01/2021) reads its values too" in text
    assert "holds dates" not in text and "not used" not in text


@pytest.mark.parametrize("fmt", [f for f in dateparts.FORMATS if dateparts._numeric_pattern(f) is not None])
def test_numeric_formats_read_exactly_what_strptime_reads(fmt: str) -> None:
    from datetime import datetime, timedelta

    moments = [datetime(1969, 12, 31, 23, 59, 59) + timedelta(days=37 * i, minutes=611 * i) for i in range(60)]
    values = [m.strftime(fmt) for m in moments]
    values += [v.replace("0", "", 1) for v in values[:20]]  # unpadded numbers
    values += ["31/02/2021", "02/31/2021", "13/13/2021", "2021-13", "2021/00", "1/1/21 24:00", "01/05/2021 9:60",
               "01/05/2021  13:45", "01/05/2021x", "x01/05/2021", "1.2.2021", "2021-1", "01-05-2021 07:08:09"]

    for value in values:
        try:
            expected: datetime | None = datetime.strptime(value, fmt)
        except ValueError:
            expected = None
        assert dateparts.parse(value, fmt) == expected, value

"""Hostile-but-fair CSV uploads through the real stage handlers (moto S3, in-process handlers).

Given an upload a user could plausibly make (odd encodings, spreadsheet exports, broken shapes,
extreme values), When the pipeline's stages run, Then it either trains a model that reads the data
as the user meant it, or fails with a DataError naming the file, column or line — never library
text, never a cause over 256 KB, never anything under models/.
"""

# The functional tier's moto fixtures are imported by name below, so tests take them as arguments.
# ruff: noqa: F811
from __future__ import annotations

import codecs
import gzip
import re
from typing import Any

import pytest

from tests.functional.conftest import invoke, s3  # noqa: F401 - fixtures
from tests.hostile.data_runs import (
    FAST,
    assert_refused,
    assert_trained,
    csv_text,
    model_meta,
    run,
    stored_json,
    table,
    validation_report,
)

BASE = csv_text(table())
CAFE = BASE.replace("red", "café").replace("green", "crème")


def categories(s3: Any, name: str = "colour") -> list[str]:
    return next(f for f in model_meta(s3)["schema"] if f["name"] == name)["categories"]


def warnings(s3: Any) -> str:
    return " | ".join(validation_report(s3)["warnings"])


# -- decoded and trained as the user meant it ----------------------------------------------------

TRAINS: list[Any] = [
    pytest.param(BASE.encode(), None, id="utf8"),
    pytest.param(codecs.BOM_UTF8 + CAFE.encode(), "café", id="utf8-bom"),
    pytest.param(CAFE.encode("utf-16"), "café", id="utf16-bom"),
    pytest.param(codecs.BOM_UTF16_BE + CAFE.encode("utf-16-be"), "café", id="utf16-be-bom"),
    pytest.param(CAFE.encode("utf-32"), "café", id="utf32-bom"),
    pytest.param(CAFE.encode("latin-1"), "café", id="latin1"),
    pytest.param(BASE.replace("red", "“red”€").encode("cp1252"), "“red”€", id="windows-1252"),
    pytest.param(CAFE.replace("\n", "\r\n").encode(), "café", id="crlf"),
    pytest.param(BASE.replace("red", '"red, dark\nand deep"').encode(), "red, dark\nand deep", id="quoted-newline"),
    pytest.param(BASE.replace("red", "r" * 10_000).encode(), "r" * 10_000, id="very-long-string"),
    pytest.param(BASE.replace("red", "红色🚗").encode(), "红色🚗", id="emoji-and-cjk"),
    pytest.param(BASE.replace("red", "  red  ").encode(), None, id="padded-values"),
    pytest.param(BASE.replace("red", "r" * 200_000, 1).encode(), "r" * 200_000, id="200k-character-cell"),
]


@pytest.mark.parametrize(("body", "expected_category"), TRAINS)
def test_an_upload_in_any_common_encoding_is_read_with_its_text_intact(
    s3, invoke, body: bytes, expected_category: str | None
) -> None:
    state = run(s3, invoke, body, stages="preprocess")

    assert "error" not in state, state.get("error")
    schema = stored_json(s3, state["schema_key"])
    assert [f["name"] for f in schema] == ["size", "colour", "flag"]  # no BOM glued to a name
    colours = next(f for f in schema if f["name"] == "colour")["categories"]
    assert "blue" in colours and len(colours) <= 4  # every value read whole, no extra column or split
    if expected_category is not None:
        assert expected_category in colours


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_a_decoded_upload_trains_a_model_that_knows_its_categories(s3, invoke, encoding: str) -> None:
    outcome = run(s3, invoke, CAFE.encode(encoding))

    assert_trained(s3, outcome)
    assert categories(s3) == ["blue", "café", "crème"]


SPREADSHEET_QUIRKS = [
    pytest.param(BASE.replace("\n", ",\n").replace("label,\n", "label\n", 1).encode(),
                 "end with an empty field past the last column", id="trailing-comma-rows"),
    pytest.param(BASE.replace("\n", ",\n").encode(), "column\\(s\\) with no name and no values ignored",
                 id="trailing-comma-header-and-rows"),
    pytest.param(BASE.replace("\n", ",,,\n").encode(), "3 column\\(s\\) with no name", id="three-trailing-commas"),
    pytest.param(BASE.replace("size,colour", "size,size", 1).encode(),
                 "duplicate column name.*'size' \\(2 times\\).*'size.1'", id="duplicate-header"),
    pytest.param(CAFE.encode("latin-1"), "not UTF-8 .*decoded as Windows-1252", id="latin1-is-reported"),
    pytest.param(CAFE.encode("utf-16"), "is UTF-16", id="utf16-is-reported"),
]


@pytest.mark.parametrize(("body", "warning"), SPREADSHEET_QUIRKS)
def test_a_spreadsheet_quirk_is_read_as_meant_and_named_in_the_report(
    s3, invoke, body: bytes, warning: str
) -> None:
    state = run(s3, invoke, body, stages="preprocess")

    assert "error" not in state, state.get("error")
    assert validation_report(s3)["target"] == "label"
    features = [f["name"] for f in stored_json(s3, state["schema_key"])]
    assert features in (["size", "colour", "flag"], ["size", "size.1", "flag"])
    assert re.search(warning, warnings(s3)), warnings(s3)


def test_a_trailing_comma_export_trains(s3, invoke) -> None:
    outcome = run(s3, invoke, BASE.replace("\n", ",\n").encode())

    assert_trained(s3, outcome)
    assert [f["name"] for f in model_meta(s3)["schema"]] == ["size", "colour", "flag"]


VALUES_THAT_TRAIN = [
    pytest.param("size", ["NaN", "nan", "NA", "N/A", "null", "NULL", "None", "?", "", "n/a", "Null", "#N/A"],
                 id="missing-spellings"),
    pytest.param("size", ["1e300", "-1e300", "1.7976931348623157e308"], id="huge-finite-numbers"),
    pytest.param("size", ["0.000000000000000000001", "-0", "+5", "007"], id="odd-number-spellings"),
    pytest.param("colour", ["", "", ""], id="missing-categories"),
]


@pytest.mark.parametrize(("column", "values"), VALUES_THAT_TRAIN)
def test_unusual_but_valid_cells_train(s3, invoke, column: str, values: list[str]) -> None:
    frame = table().astype(str)
    for row, value in enumerate(values):
        frame.loc[row, column] = value
    outcome = run(s3, invoke, csv_text(frame).encode())

    assert_trained(s3, outcome)


EDGE_TABLES = [
    pytest.param("x,price\n" + "".join(f"{i % 9},1.5\n" for i in range(40)), "target: price\n", id="constant-float-target"),
    pytest.param("x,label\n" + "".join(f"{i % 9},{'true' if i % 2 else 'false'}\n" for i in range(40)), "",
                 id="boolean-target"),
    pytest.param("x,y,label\n" + "".join(f"{i % 9 * 1e39},{i % 5},{'a' if i % 2 else 'b'}\n" for i in range(40)), "",
                 id="feature-beyond-float32"),
    pytest.param("x,label\n" + "".join(f"{i % 9 * 1e-320},{'a' if i % 2 else 'b'}\n" for i in range(40)), "",
                 id="subnormal-numbers"),
    pytest.param("x,label\n" + "".join(f"{i % 7},{i % 15}\n" for i in range(60)), "", id="fifteen-classes-60-rows"),
    pytest.param("x,label\n" + "".join(f"{i % 7},{i % 15}\n" for i in range(30)), "min_rows: 10\n",
                 id="fifteen-classes-of-two-rows"),
    pytest.param("x,label\n" + "".join(f"{i % 7},{'a' if i % 2 else 'b'}\n" for i in range(60)) + "3,c\n", "",
                 id="a-class-of-one-row"),
]


@pytest.mark.parametrize(("text", "config"), EDGE_TABLES)
def test_an_edge_case_table_registers_a_version_even_if_the_gate_refuses_it(s3, invoke, text: str, config: str) -> None:
    outcome = run(s3, invoke, text.encode(), FAST + config)

    assert_trained(s3, outcome)
    assert isinstance(outcome["gate"]["passed"], bool)


def test_an_all_empty_feature_column_trains_with_a_warning(s3, invoke) -> None:
    frame = table()
    frame.insert(1, "notes", None)
    outcome = run(s3, invoke, csv_text(frame).encode())

    assert_trained(s3, outcome)
    assert "column 'notes' has 60 missing value(s)" in warnings(s3)


def test_a_currency_target_and_formatted_features_train_a_regression_on_their_numbers(s3, invoke) -> None:
    # Given a finance export: the target in dollars, a thousands-separated area, a percentage
    frame = table()
    frame["area"] = [f"{900 + (i % 25) * 47:,}" for i in range(len(frame))]
    frame["rate"] = [f"{(i % 10) / 2}%" for i in range(len(frame))]
    frame["label"] = [f"${95_000 + size * 3_517.25:,.2f}" for size in frame["size"]]
    outcome = run(s3, invoke, csv_text(frame).encode(), FAST + "target: label\n")

    # Then it trains a regression on the numbers, and the report says how they were read
    assert_trained(s3, outcome)
    meta = model_meta(s3)
    assert meta["task"] == "regression"
    kinds = {f["name"]: f["kind"] for f in meta["schema"]}
    assert kinds["area"] == "numeric" and kinds["rate"] == "numeric"
    assert "label: read as numbers ($ and thousands separators removed)" in warnings(s3)
    assert "area: read as numbers (thousands separators removed)" in warnings(s3)


def test_a_regression_upload_with_a_date_column_trains(s3, invoke) -> None:
    frame = table()
    frame["when"] = [f"2024-01-{1 + i % 28:02d}" for i in range(len(frame))]
    frame["label"] = frame["size"] * 3.5 + 1.25
    outcome = run(s3, invoke, csv_text(frame).encode(), FAST + "target: label\n")

    assert_trained(s3, outcome)
    assert validation_report(s3)["task"] == "regression"


# -- refused, naming what to fix -------------------------------------------------------------------

def _with(column: str, row: int, value: str, frame_text: str = BASE) -> bytes:
    import io

    import pandas as pd

    frame = pd.read_csv(io.StringIO(frame_text), dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    return csv_text(frame).encode()


WIDE = ",".join(f"c{i}" for i in range(12_000))
REFUSED: list[Any] = [
    # not text, or not decodable as one encoding
    pytest.param(CAFE.encode("utf-16-le"), None, "UTF-16 text without a byte-order mark.*iconv", id="utf16-no-bom"),
    pytest.param(BASE.encode()[:200] + "café".encode("latin-1") + "crème\n".encode(), None,
                 "mixes encodings.*line \\d+.*0xe9", id="mixed-utf8-latin1"),
    pytest.param(gzip.compress(BASE.encode()), None, "gzip-compressed", id="gzip"),
    pytest.param(b"PK\x03\x04" + b"\x00" * 100, None, "ZIP archive.*xlsx", id="xlsx"),
    pytest.param(b"%PDF-1.7\n" + b"x" * 50, None, "PDF document", id="pdf"),
    pytest.param(b"a,b\n\x00\x01\x02\x03" * 10, None, "binary data", id="binary"),
    # shapes
    pytest.param(b"", None, "is empty", id="empty"),
    pytest.param(b"\n \r\n\t\n", None, "is empty", id="whitespace-only"),
    pytest.param(codecs.BOM_UTF8 + b"\r\n", None, "is empty", id="bom-only"),
    pytest.param(b"size,colour,label\n", None, "header but no data rows", id="header-only"),
    pytest.param(b"size,colour,label\n1,red,high\n", None, "1 data rows; at least 20", id="one-row"),
    pytest.param(b"label\n" + b"x\n" * 30, None, "single column \\('label'\\)", id="one-column"),
    pytest.param(BASE.replace(",", ";").encode(), None, "semicolons", id="semicolons"),
    pytest.param(b"size;weight;label\n" + "".join(f"{i};{i},5;{'ab'[i % 2]}\n" for i in range(30)).encode(),
                 None, "looks delimited by semicolons", id="semicolons-decimal-commas"),
    pytest.param(BASE.replace(",", "\t").encode(), None, "tabs", id="tabs"),
    pytest.param(BASE.replace(",", "|").encode(), None, "pipes", id="pipes"),
    pytest.param(BASE.replace("\n", ",7\n", 3).replace("label,7\n", "label\n", 1).encode(), None,
                 "line \\d+ has 5 fields but the header names 4 columns", id="value-past-last-column"),
    pytest.param((BASE + "1,red,True,high,extra,more\n").encode(), None, "not a well-formed CSV.*line 62",
                 id="ragged-row"),
    pytest.param(BASE.replace("red", '"red', 1).encode(), None, "quoted field that starts on line \\d+ is never closed",
                 id="unclosed-quote"),
    pytest.param(("size,colour,label\n1,\"" + "x" * 200_000 + "\",high,7\n" + "2,blue,low\n" * 30).encode(), None,
                 "line 2 has 4 fields but the header names 3", id="200k-field-then-extra-value"),
    # targets
    pytest.param(BASE.encode(), "target: price\n", "no target column 'price'", id="missing-target"),
    pytest.param((WIDE + "\n" + ",".join("1" for _ in range(12_000)) + "\n") .encode(), "target: price\n",
                 "no target column 'price'; its 12,000 columns are: c0, c1.* and 11,980 more", id="12000-columns-no-target"),
    pytest.param(b"a,label\n" + b"1,same\n2,same\n" * 20, None, "single class \\('same'\\)", id="constant-target"),
    pytest.param(b"a,label\n" + b"1,\n2,?\n" * 20, None, "'label' has no values", id="all-missing-target"),
    pytest.param(("a,label\n" + "".join(f"{i % 7},class-{i}\n" for i in range(1000))).encode(), None,
                 "1,000 classes and 1,000 of them occur in a single row", id="one-row-per-class"),
    pytest.param(("a,label\n" + "".join(f"{i},{'high' if i % 2 else 'low'}\n" for i in range(40))).encode(),
                 "task: regression\n", "'label' is not numeric", id="text-target-regression"),
    # values
    pytest.param(_with("size", 3, "inf"), None, "column 'size' has 1 infinite value.*line 5: inf", id="inf"),
    pytest.param(_with("size", 4, "-inf"), None, "column 'size' has 1 infinite.*line 6: -inf", id="minus-inf"),
    pytest.param(_with("size", 5, "Infinity"), None, "column 'size' has 1 infinite", id="Infinity"),
    pytest.param(_with("size", 6, "1e400"), None, "column 'size' has 1 infinite.*1e400", id="overflowing-number"),
    pytest.param(("x,price\n" + "".join(f"{i},{i * 2.5}\n" for i in range(39)) + "40,inf\n").encode(),
                 "target: price\n", "column 'price' has 1 infinite value.*line 41", id="inf-regression-target"),
    pytest.param(("x,price\n" + "".join(f"{i},{i * 1e300}\n" for i in range(40))).encode(), "target: price\n",
                 "target column 'price' has 39 value\\(s\\) beyond ±3.4e\\+38 \\(line 3: 1e\\+300", id="target-beyond-float32"),
    pytest.param(_with("size", 7, "twelve"), None, "column 'size' mixes numbers and text.*line 9: 'twelve'",
                 id="number-typo"),
    pytest.param(("x,price,label\n" + "".join(f'{i % 9},"${1000 + i * 7:,}.50",{"ab"[i % 2]}\n' for i in range(38))
                  + '1,call us,a\n2,"1,5",b\n').encode(), None,
                 "column 'price' mixes numbers and text: 2 of 40 values are not numbers "
                 "\\(line 40: 'call us', line 41: '1,5'\\)", id="formatted-number-typos"),
]


@pytest.mark.parametrize(("body", "config", "message"), REFUSED)
def test_a_bad_upload_is_refused_with_a_readable_data_error(
    s3, invoke, body: bytes, config: str | None, message: str
) -> None:
    outcome = run(s3, invoke, body, FAST + (config or ""))

    assert_refused(s3, outcome, "DataError", message)


def test_a_12000_column_upload_missing_its_target_stays_far_under_the_state_limit(s3, invoke) -> None:
    header = ",".join(f"a_rather_long_column_name_number_{i}" for i in range(12_000))
    body = (header + "\n" + ",".join("1" for _ in range(12_000)) + "\n").encode()
    outcome = run(s3, invoke, body, "target: price\n")

    text = assert_refused(s3, outcome, "DataError", "no target column 'price'.*and 11,980 more")
    assert len(text) < 4000


# -- booleans round-trip -------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["true/false", "True/False", "TRUE/FALSE"])
def test_a_boolean_column_predicts_the_same_from_json_booleans_and_csv_spellings(s3, invoke, spelling: str) -> None:
    import json

    from stepml.api import handle
    from stepml.serving import ModelServer
    from stepml.settings import Settings
    from stepml.storage import S3Store
    from tests.functional.conftest import EVENT_BUCKET

    yes, no = spelling.split("/")
    frame = table(80)
    frame["label"] = ["kept" if flag else "sold" for flag in frame["flag"]]
    frame["flag"] = [yes if flag else no for flag in frame["flag"]]
    assert_trained(s3, run(s3, invoke, csv_text(frame).encode()))
    server = ModelServer(S3Store(Settings(bucket=EVENT_BUCKET)))

    def predict(value: Any) -> dict[str, Any]:
        event = {"version": "2.0", "routeKey": "POST /models/{name}/predict", "pathParameters": {"name": "hostile"},
                 "queryStringParameters": {"version": "1"},
                 "body": json.dumps({"size": 5.0, "colour": "red", "flag": value})}
        result = handle(event, server)
        assert result["statusCode"] == 200, result["body"]
        return json.loads(result["body"])

    answers = {value: predict(value) for value in (True, "true", "TRUE", "True", " true ", False, "false", "FALSE")}
    assert {answers[v]["predictions"][0] for v in (True, "true", "TRUE", "True", " true ")} == {"kept"}
    assert {answers[v]["predictions"][0] for v in (False, "false", "FALSE")} == {"sold"}
    assert not any(w for answer in answers.values() for row in answer.get("warnings", []) for w in row)


def test_a_table_that_slips_past_validation_still_fails_training_in_the_pipelines_words() -> None:
    """The last line of defence: training a recipe on data its estimator refuses (here an infinite
    target, which validation refuses first) is a DataError naming the recipe and target."""
    import pandas as pd

    from stepml.config import DatasetConfig
    from stepml.errors import DataError
    from stepml.preprocessing import feature_schema
    from stepml.training import fit
    from tests.hostile.data_runs import RAW

    frame = pd.DataFrame({"x": [float(i) for i in range(30)], "y": [1.0] * 29 + [float("inf")]})
    with pytest.raises(DataError, match="auto recipe's BoostedTreesRegressor could not be fitted on the 30 "
                                        "training rows \\(target 'y'\\)") as caught:
        fit(frame, "y", feature_schema(frame, "y"), "regression", DatasetConfig(params={"max_iter": 5}))
    assert not RAW.search(str(caught.value))

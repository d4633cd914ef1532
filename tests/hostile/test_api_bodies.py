"""Hostile bodies and parameters for the prediction API: Given registered models, When a request
is malformed, oversized, deeply nested or strangely typed, Then the answer is a 4xx naming the
problem in the usual shape (never a 5xx, never near Lambda's 6 MB response limit), and nothing
under ``models/`` changed."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from stepml.inputs import (
    MAX_BODY_BYTES,
    MAX_FIELDS,
    MAX_INSTANCES,
    MAX_LISTED_ERRORS,
    MAX_VALUE_CHARS,
)
from tests.functional.inference_models import record
from tests.hostile.conftest import registry_state

PREDICT = "POST /models/{name}/predict"
DESCRIBE = "GET /models/{name}"


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# (raw body, status, text the message must contain)
MALFORMED = [
    pytest.param(None, 400, "the request body is empty", id="no body"),
    pytest.param("", 400, "the request body is empty", id="empty string"),
    pytest.param(" \n\t ", 400, "the request body is empty", id="whitespace"),
    pytest.param("{not json", 400, "not valid JSON", id="not json"),
    pytest.param('{"age": 39,}', 400, "not valid JSON", id="trailing comma"),
    pytest.param("{'age': 39}", 400, "not valid JSON", id="single quotes"),
    pytest.param('{"age": 39} {"age": 40}', 400, "not valid JSON", id="two documents"),
    pytest.param("\ufeff" + json.dumps(record()), 400, "not valid JSON", id="byte order mark"),
    pytest.param('{"age": NaN}', 400, "NaN is not a number JSON allows", id="NaN"),
    pytest.param('{"age": Infinity}', 400, "Infinity is not a number JSON allows", id="Infinity"),
    pytest.param('{"age": -Infinity}', 400, "-Infinity is not a number JSON allows", id="-Infinity"),
    pytest.param('{"age": 1' + "0" * 5000 + "}", 400, "not valid JSON", id="5000-digit integer"),
    pytest.param(nested(10_000), 400, "nested too deeply", id="arrays 10000 deep"),
    pytest.param(nested(100_000, "{", "}"), 400, "not valid JSON", id="braces 100000 deep, no keys"),
    pytest.param(nested_objects(10_000), 400, "nested too deeply", id="objects 10000 deep"),
    pytest.param('{"instances": ' + nested(5000) + "}", 400, "nested too deeply", id="batch nested 5000 deep"),
    pytest.param("[" * 50_000, 400, "nested too deeply", id="unclosed arrays"),
    pytest.param("[]", 400, "the body must be a JSON object", id="empty array"),
    pytest.param("[1, 2]", 400, "the body must be a JSON object", id="array of numbers"),
    pytest.param(json.dumps([record()]), 400, "the body must be a JSON object", id="array of records"),
    pytest.param('"text"', 400, "the body must be a JSON object", id="a string"),
    pytest.param("42", 400, "the body must be a JSON object", id="a number"),
    pytest.param("null", 400, "the body must be a JSON object", id="null"),
    pytest.param("true", 400, "the body must be a JSON object", id="true"),
    pytest.param('{"instances": []}', 400, "'instances' is empty", id="empty batch"),
    pytest.param('{"age": 39, "age": "x", "job": "a"}', 400, "the key 'age' twice", id="duplicate key"),
    pytest.param('{"instances": [{"job": "a", "job": "b", "age": 1}]}', 400, "the key 'job' twice",
                 id="duplicate key in a batch record"),
    pytest.param('{"age" : 39, "job": "a", "job" : "b"}', 400, "the key 'job' twice",
                 id="duplicate key with spaces before the colon"),
    pytest.param(json.dumps({"instances": [record()] * (MAX_INSTANCES + 1)}), 413,
                 f"the limit is {MAX_INSTANCES} per request", id="too many instances"),
    pytest.param(" " * (MAX_BODY_BYTES + 1), 413, f"the limit is {MAX_BODY_BYTES}", id="body over 6 MB"),
    pytest.param(json.dumps({**record(), **{f"x{i}": 1 for i in range(100_000)}}), 413,
                 f"row 0 has 100004 fields; the limit is {MAX_FIELDS}", id="100000 unknown fields"),
    pytest.param(json.dumps({"instances": [record(), {f"x{i}": 1 for i in range(MAX_FIELDS + 1)}]}), 413,
                 f"row 1 has {MAX_FIELDS + 1} fields", id="a batch record with too many fields"),
]


@pytest.mark.parametrize(("raw", "status", "message"), MALFORMED)
def test_malformed_or_oversized_bodies_are_4xx_naming_the_problem(
    served_store, predict_call, raw: str | None, status: int, message: str
) -> None:
    before = registry_state(served_store)
    got, body, _ = predict_call(PREDICT, "adult", raw=raw)
    assert (got, body["errors"]) == (status, [])
    assert message in body["message"]
    assert registry_state(served_store) == before


# (records, status, the first listed error as (row, field, text it contains))
FIELD_PROBLEMS = [
    pytest.param([record(age="old")], (0, "age", "expected a number, got str 'old'"), id="string for a number"),
    pytest.param([record(age=True)], (0, "age", "expected a number, got bool"), id="bool for a number"),
    pytest.param([record(age=[1, [2, [3, [4]]]])], (0, "age", "expected a number, got list"), id="nested list"),
    pytest.param([record(age={"v": 1})], (0, "age", "expected a number, got dict"), id="object for a number"),
    pytest.param([record(age=10**400)], (0, "age", "must be a finite number"), id="400-digit integer"),
    pytest.param([record(age="x" * 3_000_000)], (0, "age", "expected a number, got str 'xxx"), id="3 MB string for a number"),
    pytest.param([record(job="x" * (MAX_VALUE_CHARS + 1))], (0, "job", f"the limit is {MAX_VALUE_CHARS}"),
                 id="string over the limit"),
    pytest.param([record(job="\ud800")], (0, "job", "not valid Unicode"), id="lone surrogate"),
    pytest.param([record(job="ok\udfff")], (0, "job", "not valid Unicode"), id="trailing lone surrogate"),
    pytest.param([record(job=["a"])], (0, "job", "expected a string, got list"), id="list for a category"),
    pytest.param([record(job=False)], (0, "job", "expected a string, got bool"), id="bool for a category"),
    pytest.param([record(**{"hours-per-week": "forty"})], (0, "hours-per-week", "expected a number, got str 'forty'"),
                 id="a number in words"),
    pytest.param([record(**{"hours-per-week": "4,0"})], (0, "hours-per-week", "expected a number, got str '4,0'"),
                 id="a decimal comma"),
    pytest.param([{**record(), "âge": 1}], (0, "âge", "unknown field"), id="unicode unknown field"),
    pytest.param([{**record(), "": 1}], (0, "", "unknown field"), id="empty field name"),
    pytest.param([{**record(), "z" * 10_000: 1}], (0, "z" * 80 + "... (10000 characters)", "unknown field"),
                 id="10000-character field name"),
    pytest.param([1, "a", None, [], True], (0, None, "a record must be a JSON object, got int"),
                 id="array of non-objects"),
    pytest.param([record(), []], (1, None, "a record must be a JSON object, got list"), id="a list among records"),
]


@pytest.mark.parametrize(("records", "first"), FIELD_PROBLEMS)
def test_field_problems_are_422_naming_the_row_and_field(served_store, predict_call, records, first) -> None:
    before = registry_state(served_store)
    got, body, raw = predict_call(PREDICT, "adult", {"instances": records})
    assert got == 422
    row, field, text = first
    listed = body["errors"][0]
    assert (listed["row"], listed["field"]) == (row, field) and text in listed["message"]
    assert body["message"].startswith("invalid input: row ")
    assert len(raw["body"]) < 20_000, "a value is quoted back shortened, not whole"
    assert registry_state(served_store) == before


@pytest.mark.parametrize(
    ("records", "count"),
    [
        pytest.param([{**record(), **{f"x{i}": 1 for i in range(MAX_FIELDS - 4)}}], MAX_FIELDS - 4,
                     id="one record with 996 unknown fields"),
        pytest.param([record(age="x", job=[1])] * MAX_INSTANCES, 2 * MAX_INSTANCES,
                     id="1000 records with two bad fields each"),
        pytest.param([{f"x{i}": 1 for i in range(MAX_FIELDS)}] * 100, 100 * MAX_FIELDS,
                     id="100 records with 1000 unknown fields each"),
    ],
)
def test_a_422_lists_the_first_problems_and_counts_them_all(predict_call, records, count) -> None:
    got, body, raw = predict_call(PREDICT, "adult", {"instances": records})
    assert got == 422
    assert len(body["errors"]) == MAX_LISTED_ERRORS
    assert body["error_count"] == count
    assert f"(and {count - 10} more)" in body["message"]
    assert len(raw["body"]) < 100_000


@pytest.mark.parametrize(
    ("overrides", "warning"),
    [
        pytest.param({"job": "astronaut 🚀"}, "job='astronaut 🚀' was not seen in training", id="emoji category"),
        pytest.param({"job": "ü" * MAX_VALUE_CHARS}, "was not seen in training", id="longest allowed string"),
        pytest.param({"job": "\u0000"}, "was not seen in training", id="NUL character"),
        pytest.param({"city": "ｘ"}, "city='ｘ' was not seen in training", id="fullwidth letter"),
        pytest.param({"age": 1e308}, "is outside the training range", id="largest double"),
        pytest.param({"age": -0.0}, "is outside the training range", id="negative zero"),
        pytest.param({"age": 10**300}, "is outside the training range", id="300-digit integer"),
    ],
)
def test_strange_but_valid_values_are_served_with_a_warning(predict_call, overrides, warning) -> None:
    got, body, _ = predict_call(PREDICT, "adult", record(**overrides))
    assert got == 200, body
    assert any(warning in w for w in body["warnings"][0])


def test_a_single_record_may_have_a_feature_that_looks_like_a_batch(predict_call) -> None:
    # {"instances": <not a list>, ...} is a record: here "instances" is not a feature, so the
    # answer says what a batch is instead of mistaking the record for one.
    got, body, _ = predict_call(PREDICT, "adult", {**record(), "instances": 3})
    assert got == 422
    assert body["errors"] == [{"row": 0, "field": "instances",
                               "message": 'unknown field (a batch is {"instances": [record, ...]} with no other key)'}]


@pytest.mark.parametrize(
    ("raw", "base64_encoded", "status", "message"),
    [
        pytest.param(base64.b64encode(json.dumps(record()).encode()).decode(), True, 200, None, id="JSON as base64"),
        pytest.param(base64.b64encode(b"age,job\n39,a\n").decode(), True, 400, "not valid JSON", id="a CSV body"),
        pytest.param(base64.b64encode(b"\xff\xfe{\x00}\x00").decode(), True, 400, "not valid JSON", id="UTF-16 bytes"),
        pytest.param(base64.b64encode(b'{"job": "\xe9"}').decode(), True, 400, "not valid JSON", id="Latin-1 bytes"),
        pytest.param("not base64!!", True, 400, "not valid base64", id="broken base64"),
        pytest.param(base64.b64encode(b"").decode(), True, 400, "the request body is empty", id="empty base64"),
        pytest.param("<xml/>", False, 400, "not valid JSON", id="XML"),
        pytest.param("age=39&job=a", False, 400, "not valid JSON", id="form encoded"),
    ],
)
def test_wrong_content_types_and_encodings(predict_call, raw, base64_encoded, status, message) -> None:
    got, body, _ = predict_call(PREDICT, "adult", raw=raw, base64=base64_encoded)
    assert got == status
    if message:
        assert message in body["message"] and body["errors"] == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param({"version": "²"}, "version must be a positive whole number, got '²'", id="superscript two"),
        pytest.param({"version": "١"}, "got '١'", id="arabic-indic one"),
        pytest.param({"version": "１"}, "got '１'", id="fullwidth one"),
        pytest.param({"version": "0"}, "got '0'", id="zero"),
        pytest.param({"version": "-1"}, "got '-1'", id="negative"),
        pytest.param({"version": "1.0"}, "got '1.0'", id="decimal"),
        pytest.param({"version": " 1"}, "got ' 1'", id="leading space"),
        pytest.param({"version": "1,2"}, "got '1,2'", id="given twice"),
        pytest.param({"version": "1" * 10}, "1 to 999999999", id="ten digits"),
        pytest.param({"version": "9" * 5000}, "1 to 999999999", id="5000 digits"),
        pytest.param({"alias": "Champion"}, "alias 'Champion' is not a valid alias name", id="capital alias"),
        pytest.param({"alias": "champion\n"}, "is not a valid alias name", id="alias with a newline"),
        pytest.param({"alias": "a" * 100_000}, "is not a valid alias name", id="100000-character alias"),
        pytest.param({"alias": "../x"}, "is not a valid alias name", id="alias path"),
        pytest.param({"version": "1", "alias": "champion"}, "give either version or alias, not both", id="both"),
    ],
)
@pytest.mark.parametrize("route", [PREDICT, DESCRIBE])
def test_bad_versions_and_aliases_are_400(predict_call, route, query, message) -> None:
    got, body, raw = predict_call(route, "adult", record(), query=query)
    assert got == 400 and message in body["message"]
    assert len(raw["body"]) < 2_000


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("ADULT", id="capitals"),
        pytest.param("adult\n", id="trailing newline"),
        pytest.param("../adult", id="path"),
        pytest.param("a" * 64, id="64 characters"),
        pytest.param("a" * 100_000, id="100000 characters"),
        pytest.param("ädult", id="non-ASCII"),
        pytest.param("", id="empty"),
    ],
)
def test_bad_model_names_are_404_and_quoted_short(predict_call, name) -> None:
    for route in (PREDICT, DESCRIBE):
        got, body, raw = predict_call(route, name, record())
        assert got == 404 and body["message"].startswith("no model named ")
        assert len(raw["body"]) < 500


def test_a_response_too_large_for_lambda_is_a_413(monkeypatch) -> None:
    from stepml import httpapi

    monkeypatch.setattr(httpapi, "MAX_RESPONSE_BYTES", 10_000)
    result = httpapi.response(200, {"predictions": ["x" * 9_000]})
    assert result["statusCode"] == 413
    assert "over Lambda's limit of 10000" in json.loads(result["body"])["message"]
    # Escaping the body into the payload counts: 3,000 quotes are 6,000 characters there, 12,000 once escaped
    assert httpapi.response(200, {"predictions": ['"' * 3_000]})["statusCode"] == 413
    assert httpapi.response(200, {"predictions": ["x" * 4_000]})["statusCode"] == 200
    # Text beyond ASCII is written escaped (6 characters each, 7 once escaped again), so the bound holds
    assert httpapi.response(200, {"predictions": ["é" * 1_300]})["statusCode"] == 413
    assert httpapi.response(200, {"predictions": ["é" * 1_100]})["statusCode"] == 200


def test_response_bodies_are_ascii_json_whichever_writer_wrote_them() -> None:
    import numpy as np

    from stepml import httpapi

    for body in ({"predictions": ["<=50K", 1.5e-07, 12345678901234567890123]}, {"labels": ["Ünïcode ✓"]},
                 {"numpy": np.float64(0.25)}):
        text = httpapi.response(200, body)["body"]
        assert text.isascii() and json.loads(text) == {k: [*v] if isinstance(v, list) else float(v)
                                                       for k, v in body.items()}


def _records(count: int) -> list[dict[str, Any]]:
    return [record(age=20 + i % 60) for i in range(count)]


def test_the_largest_batch_is_still_served(predict_call) -> None:
    got, body, _ = predict_call(PREDICT, "adult", {"instances": _records(MAX_INSTANCES)})
    assert got == 200 and len(body["predictions"]) == MAX_INSTANCES

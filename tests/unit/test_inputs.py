"""Prediction requests are checked field by field; every problem names its row and field."""

from __future__ import annotations

import json

import pytest

from stepml.errors import RequestError
from stepml.inputs import MAX_INSTANCES, check_records, parse_body, records_from

SCHEMA = [
    {"name": "age", "kind": "numeric", "required": True, "min": 17.0, "max": 90.0},
    {"name": "job", "kind": "categorical", "required": True, "categories": ["a", "b"]},
]


def test_a_good_record_passes_with_warnings_for_unseen_values() -> None:
    rows, warnings = check_records([{"age": 120, "job": "c"}], SCHEMA)
    assert rows == [{"age": 120.0, "job": "c"}]
    assert warnings == [["age=120 is outside the training range [17.0, 90.0]", "job='c' was not seen in training"]]


def test_every_bad_field_is_named() -> None:
    with pytest.raises(RequestError) as raised:
        check_records([{"age": "old", "zip": 1}, {"job": True}], SCHEMA)
    error = raised.value
    assert error.status == 422
    assert {(d["row"], d["field"], d["message"].split(",")[0]) for d in error.details} == {
        (0, "zip", "unknown field"),
        (0, "age", "expected a number"),
        (0, "job", "missing required field"),
        (1, "age", "missing required field"),
        (1, "job", "expected a string"),
    }


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("", 400, "empty"),
        ("{not json", 400, "not valid JSON"),
        ('{"age": NaN, "job": "a"}', 400, "NaN is not a number"),
        ('{"age": Infinity, "job": "a"}', 400, "Infinity"),
        ("[1, 2]", 400, "must be a JSON object"),
        ('{"instances": []}', 400, "empty"),
        ('{"instances": {}}', 400, "must be a list"),
        (json.dumps({"instances": [{}] * (MAX_INSTANCES + 1)}), 413, "limit"),
    ],
)
def test_malformed_bodies_are_refused(body: str, status: int, message: str) -> None:
    with pytest.raises(RequestError, match=message) as raised:
        records_from(parse_body(body))
    assert raised.value.status == status

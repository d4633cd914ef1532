"""Prediction requests are checked field by field; every problem names its row and field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepml.errors import RequestError
from stepml.inputs import (
    BATCH_HINT,
    MAX_INSTANCES,
    InputContract,
    check_records,
    is_batch,
    parse_body,
    records_from,
)

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


def test_a_nullable_feature_may_be_missing_with_a_warning_when_training_never_had_it_missing() -> None:
    schema = [
        {"name": "age", "kind": "numeric", "nullable": True, "missing_in_training": False},
        {"name": "job", "kind": "categorical", "nullable": True, "missing_in_training": True},
        {"name": "city", "kind": "categorical", "nullable": True},  # an older version: not recorded
    ]
    rows, warnings = check_records([{"age": None}], InputContract.build(schema))
    assert rows == [{"age": None, "job": None, "city": None}]
    assert warnings == [["age is missing and was never missing in training"]]


def test_a_feature_that_cannot_be_missing_is_refused_with_the_contracts_reason() -> None:
    contract = InputContract.build(
        [{"name": "job", "kind": "categorical", "nullable": False}], refusal="missing required field: why"
    )
    with pytest.raises(RequestError) as raised:
        check_records([{"job": None}], contract)
    assert raised.value.details == [{"row": 0, "field": "job", "message": "missing required field: why"}]


def test_columns_of_the_training_csv_are_ignored_once_and_others_are_unknown() -> None:
    contract = InputContract.build(SCHEMA, ignored=["income", "fnlwgt", "age"])
    assert contract.ignored == {"income", "fnlwgt"}  # a feature is never ignored
    rows, warnings = check_records([{"age": 30, "job": "a", "income": ">50K", "fnlwgt": 1}], contract)
    assert rows == [{"age": 30.0, "job": "a"}]
    assert warnings == [["ignored column(s) the model does not use: fnlwgt, income"]]
    with pytest.raises(RequestError) as raised:
        check_records([{"age": 30, "job": "a", "income": ">50K", "zip": 1}], contract)
    assert raised.value.details == [{"row": 0, "field": "zip", "message": "unknown field"}]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("", 400, "empty"),
        ("{not json", 400, "not valid JSON"),
        ('{"age": NaN, "job": "a"}', 400, "NaN is not a number"),
        ('{"age": Infinity, "job": "a"}', 400, "Infinity"),
        ("[1, 2]", 400, "must be a JSON object"),
        ('{"instances": []}', 400, "empty"),
        (json.dumps({"instances": [{}] * (MAX_INSTANCES + 1)}), 413, "limit"),
    ],
)
def test_malformed_bodies_are_refused(body: str, status: int, message: str) -> None:
    with pytest.raises(RequestError, match=message) as raised:
        records_from(parse_body(body))
    assert raised.value.status == status


@pytest.mark.parametrize(
    ("payload", "batch"),
    [
        ({"instances": [{"age": 1}]}, True),
        ({"instances": []}, True),
        ({"instances": {"age": 1}}, False),  # not a list: a record with a field named instances
        ({"instances": "a"}, False),
        ({"instances": [{"age": 1}], "age": 2}, False),  # another key: a record
        ({"age": 1}, False),
    ],
)
def test_a_batch_is_an_object_whose_only_key_is_instances_holding_a_list(payload, batch) -> None:
    assert is_batch(payload) is batch
    if batch and payload["instances"]:
        assert records_from(payload) == payload["instances"]
    elif not batch:
        assert records_from(payload) == [payload]


def test_a_feature_named_instances_can_be_sent_as_a_single_record() -> None:
    schema = [{"name": "instances", "kind": "categorical", "required": True, "categories": ["a"]},
              {"name": "age", "kind": "numeric", "required": True}]
    rows, warnings = check_records(records_from({"instances": "a", "age": 3}), schema)
    assert rows == [{"instances": "a", "age": 3.0}] and warnings == [[]]


def test_an_unknown_field_named_instances_says_what_a_batch_is() -> None:
    with pytest.raises(RequestError) as raised:
        check_records(records_from({"instances": {"age": 30, "job": "a"}}), SCHEMA)
    assert raised.value.details[0] == {"row": 0, "field": "instances", "message": BATCH_HINT}


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), _JSON_VALUES, min_size=1, max_size=6), st.booleans())
def test_a_body_parses_to_what_the_standard_parser_reads(record: dict[str, object], ascii_only: bool) -> None:
    # the duplicate-key check and the NaN refusal change nothing else: the values are exactly the
    # standard library's (a faster parser must pass this too: orjson reads 2**64 as a float)
    body = json.dumps(record, ensure_ascii=ascii_only)
    expected = repr(json.loads(body))  # repr: 2**70 == float(2**70), but a category's text differs
    assert repr(parse_body(body)) == expected
    assert repr(parse_body(body.encode("utf-8", "surrogatepass"))) == expected


@pytest.mark.parametrize("body", ['{"age": 123456789012345678901234567890}', '{"job": 18446744073709551616}',
                                  '{"job": -9223372036854775809}', '{"job": "\\ud800"}',
                                  '{"a": 1e400}', '{"a": -0.0, "b": 5e-324}'])
def test_numbers_and_text_that_other_parsers_read_differently_are_read_as_the_standard_parser_reads_them(body: str) -> None:
    assert repr(parse_body(body)) == repr(json.loads(body))


def test_a_key_sent_twice_is_still_refused() -> None:
    with pytest.raises(RequestError, match="twice|more than once|duplicate"):
        parse_body('{"age": 1, "job": "a", "age": 2}')


def test_text_is_served_without_the_spaces_around_it_and_an_older_models_padded_categories_still_match() -> None:
    # A model trained on trimmed text: what a client pads is the category it names
    rows, warnings = check_records([{"age": 30, "job": " a"}, {"age": 30, "job": "b  "}], SCHEMA)
    assert [row["job"] for row in rows] == ["a", "b"] and warnings == [[], []]
    # A model trained before uploads were trimmed knows "PAPUA N.GUINEA " with its space: sent
    # trimmed or as written, it is that category; a category that is not padded is trimmed as usual
    older = [SCHEMA[0], {"name": "country", "kind": "categorical", "required": True,
                         "categories": ["PAPUA N.GUINEA ", "PERU"]}]
    sent = ["PAPUA N.GUINEA", "PAPUA N.GUINEA ", " PAPUA N.GUINEA ", "PERU ", "CHAD"]
    rows, warnings = check_records([{"age": 30, "country": country} for country in sent], older)
    assert [row["country"] for row in rows] == ["PAPUA N.GUINEA "] * 3 + ["PERU", "CHAD"]
    assert warnings == [[], [], [], [], ["country='CHAD' was not seen in training"]]


# -- a row as it stands in the CSV: numbers written as text, missing markers, padded header names --

CSV_SCHEMA = [
    {"name": "Lot Size", "kind": "numeric", "nullable": True, "missing_in_training": True, "min": 0.0, "max": 1e6},
    {"name": "rate", "kind": "numeric", "nullable": True, "missing_in_training": False, "min": 0.0, "max": 100.0},
    {"name": "city", "kind": "categorical", "nullable": True, "missing_in_training": True, "categories": ["a", "b"]},
    {"name": "grade", "kind": "categorical", "required": True, "categories": ["n/a", "x"]},
]


def test_a_string_holding_a_number_is_that_number_as_training_read_the_csv() -> None:
    rows, warnings = check_records(
        [{"Lot Size": "13.14", "rate": "45.2%", "city": "a", "grade": "x"},
         {"Lot Size": "$1,234", "rate": " 7 ", "city": "b", "grade": "x"}], CSV_SCHEMA)

    assert [(r["Lot Size"], r["rate"]) for r in rows] == [(13.14, 45.2), (1234.0, 7.0)]
    assert warnings == [[], []]


@pytest.mark.parametrize("text", ["old", "1,5", "1e400", "$45%", "x" * 200])
def test_a_string_that_is_no_number_is_still_refused(text: str) -> None:
    with pytest.raises(RequestError) as raised:
        check_records([{"Lot Size": text, "city": "a", "grade": "x"}], CSV_SCHEMA)

    [detail] = raised.value.details
    assert detail["field"] == "Lot Size" and detail["message"].startswith("expected a number, got str")


@pytest.mark.parametrize("marker", ["NA", "n/a", "?", "", " ", "NULL", "#N/A", "nan"])
def test_trainings_missing_markers_are_missing_values_as_a_json_null_is(marker: str) -> None:
    as_marker = check_records([{"Lot Size": marker, "rate": marker, "city": marker, "grade": "x"}], CSV_SCHEMA)
    as_null = check_records([{"Lot Size": None, "rate": None, "city": None, "grade": "x"}], CSV_SCHEMA)

    assert as_marker == as_null
    assert as_marker[0] == [{"Lot Size": None, "rate": None, "city": None, "grade": "x"}]
    assert as_marker[1] == [["rate is missing and was never missing in training"]]


def test_a_marker_where_the_model_cannot_serve_a_missing_value_is_refused_as_null_is() -> None:
    with pytest.raises(RequestError) as raised:
        check_records([{"grade": "NA"}], CSV_SCHEMA)

    assert [(d["field"], d["message"]) for d in raised.value.details] == [("grade", "missing required field")]


def test_a_marker_that_an_older_version_knows_as_a_category_stays_that_category() -> None:
    # a version trained before 'n/a' was read as missing has it as a category
    rows, warnings = check_records([{"grade": " n/a", "rate": 5}], CSV_SCHEMA)

    assert rows[0]["grade"] == "n/a" and warnings == [[]]


def test_a_field_name_with_spaces_around_it_is_the_feature_it_names() -> None:
    rows, warnings = check_records([{" Lot Size ": "1,500", "grade": "x"}], CSV_SCHEMA)

    assert rows[0]["Lot Size"] == 1500.0 and warnings == [["rate is missing and was never missing in training"]]


def test_a_field_sent_twice_by_the_spaces_around_its_name_is_refused() -> None:
    with pytest.raises(RequestError) as raised:
        check_records([{"Lot Size": 1, "Lot Size ": 2, "grade": "x"}], CSV_SCHEMA)

    assert [(d["field"], d["message"]) for d in raised.value.details] == [
        ("Lot Size ", "field 'Lot Size' is sent twice (names are read without the spaces around them)")]

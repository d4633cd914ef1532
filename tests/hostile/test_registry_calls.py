"""Hostile calls to the registry API: Given a model with versions 1-3 (v2 champion, promoted after
v1), When a call names a bad model, version or alias, or carries a bad body, Then it is a 4xx naming
the problem and every key and alias object under ``models/`` is exactly as before; and rollback
goes back to the previous *different* champion."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stepml import registry
from stepml.inputs import MAX_BODY_BYTES
from stepml.registry import ModelRegistry
from stepml.storage import S3Store
from tests.hostile.conftest import add_versions, champion, registry_state

VERSIONS = "GET /models/{name}/versions"
VERSION = "GET /models/{name}/versions/{version}"
HISTORY = "GET /models/{name}/history"
DIFF = "GET /models/{name}/diff"
PROMOTE = "POST /models/{name}/promote"
ROLLBACK = "POST /models/{name}/rollback"


def refused(store: S3Store, call: Any, route: str, status: int, message: str, **request: Any) -> dict[str, Any]:
    """Make the call; check status, message and that nothing under models/ changed."""
    before = registry_state(store)
    got, body, _ = call(route, **request)
    assert (got, message in body["message"]) == (status, True), body
    assert registry_state(store) == before
    return body


@pytest.mark.parametrize(
    ("route", "request_args", "status", "message"),
    [
        pytest.param(VERSION, {"path": {"version": "²"}}, 400, "version must be a positive whole number, got '²'",
                     id="superscript version"),
        pytest.param(VERSION, {"path": {"version": "١"}}, 400, "ASCII digits", id="arabic-indic version"),
        pytest.param(VERSION, {"path": {"version": "0"}}, 400, "got '0'", id="version 0"),
        pytest.param(VERSION, {"path": {"version": "x"}}, 400, "got 'x'", id="version x"),
        pytest.param(VERSION, {"path": {"version": "9" * 5000}}, 400, "1 to 999999999", id="5000-digit version"),
        pytest.param(VERSION, {"path": {"version": "4"}}, 404, "model 'adult' has no version 4", id="missing version"),
        pytest.param(DIFF, {"query": {"a": "²", "b": "1"}}, 400, "a must be a positive whole number, got '²'",
                     id="diff superscript a"),
        pytest.param(DIFF, {"query": {"a": "1", "b": "1e3"}}, 400, "b must be a positive whole number", id="diff b 1e3"),
        pytest.param(DIFF, {"query": {"a": "1"}}, 400, "give the two versions", id="diff without b"),
        pytest.param(DIFF, {"query": {"a": "1", "b": ""}}, 400, "give the two versions", id="diff empty b"),
        pytest.param(DIFF, {"query": {"a": "1", "b": "7"}}, 404, "has no version 7", id="diff missing version"),
    ],
)
def test_bad_versions_on_read_routes(adult, registry_call, route, request_args, status, message) -> None:
    refused(adult, registry_call, route, status, message, name="adult", **request_args)


@pytest.mark.parametrize("name", ["ADULT", "adult\n", "../adult", "a" * 100_000, "ädult", ""])
@pytest.mark.parametrize("route", [VERSIONS, VERSION, HISTORY, DIFF, PROMOTE, ROLLBACK])
def test_bad_model_names_are_404_on_every_route(adult, registry_call, route, name) -> None:
    body = refused(adult, registry_call, route, 404, "no model named", name=name, path={"version": "1"},
                   query={"a": "1", "b": "2"}, body={"version": 1})
    assert len(body["message"]) < 200


def long(characters: int) -> str:
    return "why " * (characters // 4) + "w" * (characters % 4)


PROMOTE_BODIES = [
    pytest.param({"version": "two"}, 422, "'version' must be a positive whole number", id="version as a word"),
    pytest.param({"version": "2"}, 422, "'version' must be a positive whole number", id="version as a string"),
    pytest.param({"version": 2.0}, 422, "'version' must be a positive whole number", id="version as a float"),
    pytest.param({"version": True}, 422, "'version' must be a positive whole number", id="version true"),
    pytest.param({"version": -1}, 422, "'version' must be a positive whole number", id="negative version"),
    pytest.param({"version": 0}, 422, "'version' must be a positive whole number", id="version 0"),
    pytest.param({"version": 10**12}, 422, "1 to 999999999", id="huge version"),
    pytest.param({"version": None}, 422, "'version' must be a positive whole number", id="version null"),
    pytest.param({}, 422, "'version' must be a positive whole number", id="no version"),
    pytest.param({"version": 9}, 404, "model 'adult' has no version 9", id="missing version"),
    pytest.param({"version": 1, "reason": long(1001)}, 422, "'reason' is 1001 characters; the limit is 1000",
                 id="reason of 1001 characters"),
    pytest.param({"version": 1, "reason": long(5_000_000)}, 422, "the limit is 1000", id="5 MB reason"),
    pytest.param({"version": 1, "reason": {"text": "x"}}, 422, "'reason' must be a string, got dict", id="reason object"),
    pytest.param({"version": 1, "reason": ["x"]}, 422, "'reason' must be a string, got list", id="reason list"),
    pytest.param({"version": 1, "reason": 42}, 422, "'reason' must be a string, got int", id="reason number"),
    pytest.param({"version": 1, "reason": "\ud800"}, 422, "'reason' is not valid Unicode", id="reason lone surrogate"),
    pytest.param({"version": 1, "alias": "staging"}, 422, "unknown field(s) 'alias'", id="unknown field"),
    pytest.param({"version": 1, **{f"f{i}": 1 for i in range(100_000)}}, 422, "(and 99990 more)",
                 id="100000 unknown fields"),
    pytest.param({"version": 1}, 409, "the quality gate refuses version 1 of 'adult': accuracy 0.8 is worse",
                 id="worse than the champion"),
    pytest.param({"version": 1, "force": True}, 422, "'reason' is required when forcing", id="force without reason"),
    pytest.param({"version": 1, "force": True, "reason": " \n\t"}, 422, "'reason' is required when forcing",
                 id="force with a blank reason"),
    pytest.param({"version": 1, "force": "true", "reason": "x"}, 422, "'force' must be true or false, got 'true'",
                 id="force as a string"),
    pytest.param({"version": 1, "force": 1, "reason": "x"}, 422, "'force' must be true or false", id="force 1"),
    pytest.param({"version": 1, "force": None, "reason": "x"}, 422, "'force' must be true or false", id="force null"),
    pytest.param({"version": 1, "force": True, "reason": long(1001)}, 422, "the limit is 1000", id="forced, reason too long"),
    pytest.param([1], 400, "the body must be a JSON object", id="a list"),
    pytest.param("1", 400, "the body must be a JSON object", id="a bare number"),
]


@pytest.mark.parametrize(("body", "status", "message"), PROMOTE_BODIES)
def test_a_refused_promotion_writes_nothing(adult, registry_call, body, status, message) -> None:
    raw = body if isinstance(body, str) else json.dumps(body)
    refused(adult, registry_call, PROMOTE, status, message, name="adult", raw=raw)
    assert champion(adult) == 2


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        pytest.param(None, 400, "the request body is empty", id="no body"),
        pytest.param("{oops", 400, "not valid JSON", id="not JSON"),
        pytest.param('{"version": NaN}', 400, "NaN is not a number", id="NaN"),
        pytest.param('{"version": 1, "version": 3}', 400, "the key 'version' twice", id="version twice"),
        pytest.param("[" * 10_000 + "]" * 10_000, 400, "nested too deeply", id="nested 10000 deep"),
        pytest.param('{"version": 1, "reason": ' + "[" * 10_000 + "]" * 10_000 + "}", 400, "nested too deeply",
                     id="reason nested 10000 deep"),
        pytest.param(" " * (MAX_BODY_BYTES + 1), 413, f"the limit is {MAX_BODY_BYTES}", id="body over 6 MB"),
    ],
)
def test_a_malformed_promotion_body_writes_nothing(adult, registry_call, raw, status, message) -> None:
    refused(adult, registry_call, PROMOTE, status, message, name="adult", raw=raw)


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        pytest.param(json.dumps({"reason": long(1001)}), 422, "the limit is 1000", id="long reason"),
        pytest.param(json.dumps({"reason": long(5_000_000)}), 422, "the limit is 1000", id="5 MB reason"),
        pytest.param(json.dumps({"reason": 7}), 422, "'reason' must be a string", id="reason number"),
        pytest.param(json.dumps({"version": 1}), 422, "unknown field(s) 'version'", id="a version to roll back to"),
        pytest.param(json.dumps(["undo"]), 400, "the body must be a JSON object", id="a list"),
        pytest.param("null", 400, "the body must be a JSON object", id="null"),
        pytest.param("{oops", 400, "not valid JSON", id="not JSON"),
        pytest.param("[" * 10_000, 400, "nested too deeply", id="unclosed nesting"),
    ],
)
def test_a_refused_rollback_writes_nothing(adult, registry_call, raw, status, message) -> None:
    refused(adult, registry_call, ROLLBACK, status, message, name="adult", raw=raw)
    assert champion(adult) == 2


def test_a_rollback_with_no_history_is_a_conflict_and_creates_no_alias(api_store, registry_call) -> None:
    add_versions(api_store)
    refused(api_store, registry_call, ROLLBACK, 409, "model 'adult' has no earlier champion", name="adult")
    assert ModelRegistry(api_store).alias_record("adult", registry.CHAMPION) is None


def test_a_rollback_of_a_model_that_does_not_exist_writes_nothing(api_store, registry_call) -> None:
    refused(api_store, registry_call, ROLLBACK, 409, "model 'ghost' has no earlier champion", name="ghost")
    assert list(api_store.list_keys("models/")) == []


def test_a_promotion_of_a_model_that_does_not_exist_writes_nothing(api_store, registry_call) -> None:
    refused(api_store, registry_call, PROMOTE, 404, "model 'ghost' has no version 1", name="ghost", body={"version": 1})
    assert list(api_store.list_keys("models/")) == []


def test_a_good_promotion_after_refused_ones_is_complete(adult, registry_call) -> None:
    for body in ({"version": 1, "reason": long(2000)}, {"version": "1"}):
        registry_call(PROMOTE, name="adult", body=body)
    got, record, _ = registry_call(PROMOTE, name="adult", body={"version": 3, "reason": long(1000)})
    assert got == 200 and record["version"] == 3 and record["previous_version"] == 2
    history = ModelRegistry(adult).alias_record("adult", registry.CHAMPION)["history"]
    assert [(h["from"], h["to"]) for h in history] == [(None, 1), (1, 2), (2, 3)]
    assert history[-1]["reason"] == long(1000) and history[-1]["actor"] == "api@198.51.100.7"


# -- rollback goes back to the previous different champion --------------------------------------


@pytest.mark.parametrize(
    ("promotions", "after_rollbacks"),
    [
        pytest.param([1, 2, 2], [1], id="v2 promoted twice: back to v1"),
        pytest.param([1, 2, 2, 2], [1], id="v2 promoted three times"),
        pytest.param([1, 1, 2], [1], id="v1 promoted twice"),
        pytest.param([1, 2, 3], [2, 1], id="three versions: back one at a time"),
        pytest.param([1, 2, 1], [2, 1], id="back to v1: a rollback returns to v2, then v1"),
        pytest.param([1, 2, 3, 3, 2], [3, 2, 1], id="repeats among changes"),
    ],
)
def test_rollback_goes_to_the_previous_different_champion(api_store, registry_call, promotions, after_rollbacks) -> None:
    add_versions(api_store)
    for version in promotions:
        # (forced: a worse version only passes the quality gate that way; rollbacks are not gated)
        body = {"version": version, "force": True, "reason": "test sequence"}
        assert registry_call(PROMOTE, name="adult", body=body)[0] == 200
    for expected in after_rollbacks:
        got, history, _ = registry_call(HISTORY, name="adult")
        assert history["rollback_to"] == expected
        got, record, _ = registry_call(ROLLBACK, name="adult", body={"reason": "undo"})
        assert (got, record["version"], champion(api_store)) == (200, expected, expected)
    # Then nothing earlier is left: one more rollback is refused and writes nothing
    got, history, _ = registry_call(HISTORY, name="adult")
    assert history["rollback_to"] is None and "previous different version" in history["rollback_rule"]
    refused(api_store, registry_call, ROLLBACK, 409, "no earlier champion", name="adult")


def test_history_written_before_reasons_were_bounded_is_still_served(adult, registry_call) -> None:
    # Given a champion.json whose history holds a 5 MB reason (the alias grew to 10 MB before)
    record = ModelRegistry(adult).alias_record("adult", registry.CHAMPION)
    record["history"][0]["reason"] = record["reason"] = "x" * 5_000_000
    adult.put_json("models/adult/aliases/champion.json", record)
    # When the history is asked for, Then it is served, the reason shortened with its length
    got, body, raw = registry_call(HISTORY, name="adult")
    assert got == 200 and body["history"][-1]["reason"].endswith("... (5000000 characters)")  # the oldest
    assert len(raw["body"]) < 10_000
    # And the alias can still be moved
    assert registry_call(PROMOTE, name="adult", body={"version": 3})[0] == 200


def test_a_reason_of_exactly_the_limit_is_kept_whole(adult, registry_call) -> None:
    reason = "é" * registry.MAX_REASON_CHARS
    got, record, _ = registry_call(PROMOTE, name="adult", body={"version": 3, "reason": reason})
    assert got == 200 and record["reason"] == reason


def test_the_gate_judges_against_the_champion_of_the_moment(adult, registry_call) -> None:
    # Given v3 (0.82) is champion (it beats v2), When v2 (0.81) is promoted again
    assert registry_call(PROMOTE, name="adult", body={"version": 3})[0] == 200
    refused(adult, registry_call, PROMOTE, 409, "worse than champion v3's 0.82", name="adult", body={"version": 2})
    # And promoting the champion itself passes (it matches itself) without force
    got, record, _ = registry_call(PROMOTE, name="adult", body={"version": 3})
    assert (got, record["forced"], record["gate"]["passed"]) == (200, False, True)


def test_a_version_without_a_recorded_evaluation_needs_force(adult, registry_call) -> None:
    ModelRegistry(adult).register_version("adult", "run-unevaluated", {"model.joblib": b"m"}, {"schema": [], "recipe": "auto"})
    body = refused(adult, registry_call, PROMOTE, 409, "version 4 has no recorded evaluation to judge",
                   name="adult", body={"version": 4})
    assert body["gate"]["passed"] is False
    got, record, _ = registry_call(PROMOTE, name="adult", body={"version": 4, "force": True, "reason": "hand-made"})
    assert (got, record["version"], record["forced"]) == (200, 4, True)


def test_the_core_refuses_a_gated_or_unexplained_forced_promotion_before_writing(adult) -> None:
    # (the CLI calls the registry directly)
    from stepml.errors import ConfigError, GateRefused

    before = registry_state(adult)
    with pytest.raises(GateRefused, match="worse than champion v2") as refusal:
        ModelRegistry(adult).promote_by_hand("adult", 1, "by hand", "ana")
    assert refusal.value.decision["champion_value"] == 0.81
    with pytest.raises(ConfigError, match="a forced promotion needs a reason"):
        ModelRegistry(adult).promote_by_hand("adult", 1, "  ", "ana", force=True)
    assert registry_state(adult) == before


def test_the_core_refuses_an_overlong_reason_before_writing(adult) -> None:
    # (the CLI and the pipeline call the registry directly)
    from stepml.errors import ConfigError

    before = registry_state(adult)
    with pytest.raises(ConfigError, match="the limit is 1000"):
        ModelRegistry(adult).set_alias("adult", registry.CHAMPION, 1, "x" * 1001)
    with pytest.raises(ConfigError, match="the limit is 1000"):
        ModelRegistry(adult).rollback("adult", "x" * 1001)
    assert registry_state(adult) == before

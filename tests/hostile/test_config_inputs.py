"""Hostile-but-fair configs (config/<dataset>.yaml) through the real stage handlers.

Given a good CSV and a config a user could write (typos, wrong types, values out of range,
parameters the estimator refuses, YAML tricks), When the run starts, Then it fails before training
with a ConfigError (or a DataError when the config names data that is not there) that names the
key, without library text, under the 256 KB state limit, with nothing under models/; or, for a
config that is merely unusual, it passes.
"""

# The functional tier's moto fixtures are imported by name below, so tests take them as arguments.
# ruff: noqa: F811
from __future__ import annotations

from typing import Any

import pytest

from stepml.config import MAX_CONFIG_BYTES
from tests.functional.conftest import invoke, s3  # noqa: F401 - fixtures
from tests.hostile.data_runs import (
    FAST,
    assert_refused,
    assert_trained,
    csv_text,
    run,
    table,
)

BASE = csv_text(table()).encode()
#: A regression table: the same columns with a numeric target.
NUMBERS = csv_text(table().assign(label=lambda f: f["size"] * 2.5 + 1)).encode()

#: The same numbers shifted below zero on some rows (a loss fitted on the log of the mean refuses them).
SIGNED = csv_text(table().assign(label=lambda f: f["size"] - 3)).encode()
#: Counts: what `loss: poisson` is for.
COUNTS = csv_text(table().assign(label=lambda f: (f["size"] // 2).astype(int))).encode()

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


REFUSED: list[Any] = [
    # YAML itself
    pytest.param(BASE, BOMB, "ConfigError", "line 2: YAML aliases \\(\\*a\\) are not allowed", id="alias-bomb"),
    pytest.param(BASE, "base: &b {max_iter: 30}\nparams: *b\n", "ConfigError", "YAML aliases \\(\\*b\\)", id="plain-alias"),
    pytest.param(BASE, "x: &x {max_iter: 30}\nparams:\n  <<: *x\n", "ConfigError", "YAML aliases", id="merge-key"),
    pytest.param(BASE, "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1), "ConfigError", "at most 65,536", id="oversize"),
    pytest.param(BASE, "[" * 5000 + "]" * 5000, "ConfigError", "nested too deeply|not valid YAML|expected a mapping",
                 id="deep-nesting"),
    pytest.param(BASE, "target: [unclosed\n", "ConfigError", "not valid YAML.*line", id="syntax-error"),
    pytest.param(BASE, "target:\tlabel\n\tbad: indent\n", "ConfigError", "not valid YAML", id="tab-indent"),
    pytest.param(BASE, "- target\n- label\n", "ConfigError", "expected a mapping of settings, got list", id="a-list"),
    pytest.param(BASE, "just some words\n", "ConfigError", "expected a mapping of settings, got str", id="a-scalar"),
    pytest.param(BASE, "!!python/object/apply:os.system [echo hi]\n", "ConfigError", "not valid YAML",
                 id="python-tag"),
    # keys and types
    pytest.param(BASE, "targt: label\n", "ConfigError", "unknown key 'targt'; allowed: capture, drop_columns", id="unknown-key"),
    pytest.param(BASE, "split: {test_sise: 0.3}\n", "ConfigError", "unknown key 'split.test_sise'; allowed:",
                 id="unknown-nested-key"),
    pytest.param(BASE, "task: clustering\n", "ConfigError", "'task' must be one of classification, regression",
                 id="unknown-task"),
    pytest.param(BASE, "recipe: deep-learning\n", "ConfigError", "'recipe' must be one of auto", id="unknown-recipe"),
    pytest.param(BASE, "target: [a, b]\n", "ConfigError", "'target'", id="target-a-list"),
    pytest.param(BASE, "drop_columns: size\n", "ConfigError", "'drop_columns'", id="drop-columns-a-string"),
    pytest.param(BASE, "min_rows: many\n", "ConfigError", "'min_rows'.*'many'", id="min-rows-text"),
    pytest.param(BASE, "min_rows: 1\n", "ConfigError", "'min_rows'.*greater than or equal to 2", id="min-rows-1"),
    pytest.param(BASE, "min_rows: 1000000\n", "DataError", "60 data rows; at least 1000000", id="min-rows-huge"),
    pytest.param(BASE, "min_primary_metric: high\n", "ConfigError", "'min_primary_metric'", id="gate-text"),
    pytest.param(BASE, "max_regression_vs_champion: -1\n", "ConfigError", "'max_regression_vs_champion'",
                 id="gate-negative"),
    pytest.param(BASE, "primary_metric: precision\n", "ConfigError", "'primary_metric' must be one of", id="metric-unknown"),
    pytest.param(BASE, "primary_metric: rmse\n", "ConfigError", "primary_metric 'rmse' does not apply to classification",
                 id="metric-wrong-task"),
    pytest.param(BASE, "target: " + "x" * 60_000 + "\n", "DataError", "no target column 'x+…; its 4 columns",
                 id="target-60k-characters"),
    pytest.param(BASE, "drop_columns: [" + ", ".join(f"c{i}" for i in range(5000)) + "]\n", "DataError",
                 "drop_columns names column\\(s\\) not in .*c0, c1.* and 4,980 more", id="drop-5000-unknown"),
    # split
    pytest.param(BASE, "split: {test_size: 0}\n", "ConfigError", "'split.test_size'.*0.05", id="test-size-0"),
    pytest.param(BASE, "split: {test_size: 0.9}\n", "ConfigError", "'split.test_size'.*0.5", id="test-size-0.9"),
    pytest.param(BASE, "split: {test_size: half}\n", "ConfigError", "'split.test_size'", id="test-size-text"),
    pytest.param(BASE, "split: {seed: -1}\n", "ConfigError", "'split.seed'", id="seed-negative"),
    pytest.param(BASE, "split: {seed: 99999999999999999999}\n", "ConfigError", "'split.seed'.*less than or equal to 4294967295",
                 id="seed-too-big"),
    pytest.param(BASE, "split: {test_rows: 0}\n", "ConfigError", "'split.test_rows'", id="test-rows-0"),
    pytest.param(BASE, "split: {test_rows: 60}\n", "ConfigError", "split.test_rows is 60 but the upload has only 60",
                 id="test-rows-all"),
    pytest.param(BASE, "split: {test_rows: 5, test_file: data/x/t.csv}\n", "ConfigError", "test_rows or test_file",
                 id="two-test-sets"),
    pytest.param(BASE, "split: {test_file: raw/other/t.csv}\n", "ConfigError", "split.test_file.*not be under raw/",
                 id="test-file-under-raw"),
    pytest.param(BASE, "split: {test_file: ../../etc/passwd}\n", "ConfigError", "'split.test_file'", id="test-file-path"),
    pytest.param(BASE, "split: {test_file: data/none.csv}\n", "DataError", "test_file names .*data/none.csv.*does not exist",
                 id="test-file-missing"),
    # columns
    pytest.param(BASE, "drop_columns: [weight]\n", "DataError", "drop_columns names column\\(s\\) not in .*weight",
                 id="drop-unknown-column"),
    pytest.param(BASE, "keep_columns: [weight]\n", "ConfigError", "keep_columns names column\\(s\\) not in .*weight",
                 id="keep-unknown-column"),
    pytest.param(BASE, "drop_columns: [label]\n", "ConfigError", "drop_columns names 'label', the target",
                 id="drop-the-target"),
    pytest.param(BASE, "drop_columns: [size, colour, flag]\n", "DataError", "no feature columns besides the target",
                 id="drop-every-feature"),
    # recipes and estimator parameters, checked before training
    pytest.param(BASE, "recipe: seed-b\n", "ConfigError", "seed-b.*regression recipe", id="seed-b-classification"),
    pytest.param(BASE, "recipe: seed-a\ntune: {budget_seconds: 10}\n", "ConfigError", "tune works with recipe auto only",
                 id="tune-seed-a"),
    pytest.param(BASE, "tune: {budget_seconds: 100000}\n", "ConfigError", "'tune.budget_seconds'", id="tune-too-long"),
    pytest.param(BASE, "params: {n_trees: 5}\n", "ConfigError", "n_trees.*BoostedTreesClassifier",
                 id="params-unknown"),
    pytest.param(BASE, "params: {learning_rate: -1}\n", "ConfigError",
                 "params.learning_rate must be a float in the range \\(0.0, inf\\).*got -1", id="learning-rate-negative"),
    pytest.param(BASE, "params: {max_leaf_nodes: 1}\n", "ConfigError", "params.max_leaf_nodes must be .*got 1",
                 id="max-leaf-nodes-1"),
    pytest.param(BASE, "params: {max_iter: many}\n", "ConfigError", "params.max_iter must be .*got 'many'",
                 id="max-iter-text"),
    pytest.param(BASE, "params: {max_iter: 0, learning_rate: 0, loss: hinge}\n", "ConfigError",
                 "params.max_iter.*params.learning_rate.*params.loss", id="three-bad-params"),
    pytest.param(BASE, "params: {class_weight: {medium: 2}}\n", "ConfigError",
                 "params.class_weight names class\\(es\\) 'medium'.*classes are 'high', 'low'", id="class-weight-unknown"),
    pytest.param(BASE, "params: {class_weight: {yes: 2}}\n", "ConfigError", "True.*quote the class name",
                 id="class-weight-yaml-boolean"),
    pytest.param(BASE, "params: {class_weight: {high: -2}}\n", "ConfigError", "non-negative numbers",
                 id="class-weight-negative"),
    pytest.param(BASE, "params: [max_iter, 30]\n", "ConfigError", "'params'", id="params-a-list"),
    pytest.param(BASE, "params: {'max iter': 30}\n", "ConfigError", "parameter names must be identifiers",
                 id="params-name-with-space"),
    pytest.param(NUMBERS, "task: regression\nrecipe: seed-a\nparams: {n_estimators: 0}\n", "ConfigError",
                 "params.n_estimators must be .*RandomForestRegressor", id="seed-a-no-trees"),
    pytest.param(NUMBERS, "task: regression\nparams: {loss: log_loss}\n", "ConfigError",
                 "params.loss must be .*BoostedTreesRegressor", id="regression-wrong-loss"),
    pytest.param(SIGNED, "task: regression\nparams: {loss: poisson}\n", "ConfigError",
                 "params.loss 'poisson' needs a target non-negative \\(counts\\).*column 'label' has \\d+ value\\(s\\) "
                 "outside that \\(line \\d+: -", id="poisson-negative-target"),
    pytest.param(COUNTS, "task: regression\nparams: {loss: gamma}\n", "ConfigError",
                 "params.loss 'gamma' needs a target above zero.*\\(line \\d+: 0", id="gamma-zero-target"),
]


@pytest.mark.parametrize(("body", "config", "error", "message"), REFUSED)
def test_a_bad_config_is_refused_before_training_naming_the_key(
    s3, invoke, body: bytes, config: str, error: str, message: str
) -> None:
    outcome = run(s3, invoke, body, config, stages="preprocess")

    assert_refused(s3, outcome, error, message)


def test_a_config_refused_at_validation_never_reaches_training(s3, invoke) -> None:
    """Every refusal above happens in the first stage: a run that trained for minutes and then
    failed on a parameter would waste them."""
    outcome = run(s3, invoke, BASE, "params: {learning_rate: -1}\n")

    assert_refused(s3, outcome, "ConfigError", "learning_rate")
    trace = "".join(outcome["error"]["stackTrace"])
    assert "functions/validate/app.py" in trace and "functions/train/app.py" not in trace


ACCEPTED = [
    pytest.param("", {}, id="empty-file"),
    pytest.param("# only a comment\n", {}, id="only-a-comment"),
    pytest.param("---\n" + FAST + "...\n", {"params": {"max_iter": 30}}, id="document-markers"),
    pytest.param("\ufeff" + FAST, {"params": {"max_iter": 30}}, id="config-with-bom"),
    pytest.param("target: label\ntask: classification\nprimary_metric: f1\n",
                 {"target": "label", "task": "classification", "primary_metric": "f1"}, id="explicit-everything"),
    pytest.param("split: {seed: 4294967295}\n", {"split": {"seed": 4294967295}}, id="largest-seed"),
    pytest.param("params: {class_weight: {'1': 3}}\n", {"params": {"class_weight": {"1": 3}}},
                 id="class-weight-number-as-text"),
]


@pytest.mark.parametrize(("config", "expected"), ACCEPTED)
def test_an_unusual_but_valid_config_passes_validation(s3, invoke, config: str, expected: dict[str, Any]) -> None:
    body = BASE if "class_weight" not in config else BASE.replace(b",high\n", b",1\n").replace(b",low\n", b",0\n")
    state = run(s3, invoke, body, config, stages="validate")

    assert "error" not in state, state.get("error")
    for key, value in expected.items():
        assert state["config"][key] == {**state["config"][key], **value} if isinstance(value, dict) else value


@pytest.mark.parametrize("weights", ["{high: 2, low: 1}", "{'low': 0.5}"])
def test_class_weight_by_label_trains(s3, invoke, weights: str) -> None:
    """A class_weight keyed by the labels (as text in YAML) weighs those classes."""
    outcome = run(s3, invoke, BASE, f"params: {{max_iter: 30, class_weight: {weights}}}\n")

    assert_trained(s3, outcome)


def test_a_count_target_trains_with_the_poisson_loss_and_serves_from_onnx(s3, invoke) -> None:
    """`loss: poisson` on counts (zeros among them) trains, and its graph (exp of the trees) is verified."""
    outcome = run(s3, invoke, COUNTS, "task: regression\nparams: {max_iter: 30, loss: poisson}\n")

    assert_trained(s3, outcome)


# -- which uploads start a run ---------------------------------------------------------------------

def _rule_pattern() -> Any:
    """The template's upload rule, with the bucket name filled in, as moto's matcher (the one the
    offline stack's EventBridge uses) reads it."""
    import json

    from moto.events.models import EventPattern

    from stepml.local.template import load_template_file
    from tests.conftest import ROOT

    function = load_template_file(ROOT / "template.yaml")["Resources"]["PipelineStateMachine"]
    pattern = function["Properties"]["Events"]["CsvUploaded"]["Properties"]["Pattern"]
    pattern["detail"]["bucket"]["name"] = ["data"]
    return EventPattern.load(json.dumps(pattern))


def _created(key: str) -> dict[str, Any]:
    return {"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "data"}, "object": {"key": key}}}


@pytest.mark.parametrize(
    ("key", "starts"),
    [
        ("raw/adult/adult.csv", True),
        ("raw/adult/ADULT.CSV", True),  # Windows tools write upper-case names
        ("raw/adult/export.csv.gz", False),  # the CLI and UI refuse these, saying why
        ("raw/adult/adult.xlsx", False),
        ("data/adult/test.csv", False),  # split.test_file: must not start a run
        ("config/adult.yaml", False),
        ("adult.csv", False),
    ],
)
def test_the_upload_rule_starts_runs_for_csv_keys_in_either_case(key: str, starts: bool) -> None:
    assert _rule_pattern().matches_event(_created(key)) is starts


@pytest.mark.parametrize(
    ("filename", "problem"),
    [
        ("adult.csv", None),
        ("Adult.CSV", None),
        ("Adult.Csv", None),
        ("adult.csv.gz", "gzip-compressed"),
        ("adult.zip", "ZIP-compressed"),
        ("adult.xlsx", "export it as CSV"),
        ("adult.txt", "only uploads named \\*.csv start a training run"),
    ],
)
def test_the_cli_and_ui_upload_to_a_key_that_starts_a_run_or_say_why_not(filename: str, problem: str | None) -> None:
    import re

    from stepml import keys

    found = keys.upload_problem(filename)
    if problem is None:
        assert found is None
        assert _rule_pattern().matches_event(_created(keys.upload_key("adult", filename)))
    else:
        assert found is not None and re.search(problem, found)

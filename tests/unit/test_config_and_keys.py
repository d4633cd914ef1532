from __future__ import annotations

import pytest

from stepml import keys
from stepml.config import DatasetConfig, dump_config, parse_config
from stepml.errors import ConfigError, DataError


def test_config_round_trips_through_yaml() -> None:
    config = DatasetConfig(
        target="income",
        drop_columns=("fnlwgt",),
        id_columns=("id",),
        recipe="seed-a",
        params={"n_estimators": 50},
        split={"test_size": 0.25, "stratify": False},
        primary_metric="roc_auc",
        min_primary_metric=0.8,
        max_regression_vs_champion=0.01,
    )
    assert parse_config(dump_config(config)) == config
    assert DatasetConfig.from_dict(config.to_dict()) == config


def test_an_absent_config_means_auto_with_a_seeded_random_split() -> None:
    config = parse_config("")
    assert config.recipe == "auto" and config.split.test_size == 0.2 and config.split.seed == 42
    assert config.metric_for("classification") == "accuracy" and config.metric_for("regression") == "rmse"
    assert dump_config(config) == (
        "recipe: auto\nengine: auto\nsplit:\n  test_size: 0.2\n  seed: 42\n  stratify: true\nmin_rows: 20\ncapture: full\n")


@pytest.mark.parametrize(("text", "mode"), [("capture: off", "off"), ("capture: 'off'", "off"),
                                            ("capture: hashed", "hashed"), ("", "full")])
def test_capture_mode_reads_yaml_off_as_off(text: str, mode: str) -> None:
    # PyYAML reads a bare `off` as false: the config still means the mode "off".
    assert parse_config(text).capture == mode
    assert parse_config(dump_config(parse_config(text))).capture == mode
    # The run state's config is what Evaluate writes into the version's meta.json, which serving reads.
    from stepml.capture import mode_of

    assert mode_of({"config": parse_config(text).to_dict()}) == mode


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("targt: y", "unknown key 'targt'; allowed: capture, drop_columns"),
        ("task: clustering", "'task' must be one of classification, regression, got 'clustering'"),
        ("recipe: xgb", "'recipe' must be one of auto, seed-a, seed-b"),
        ("capture: sometimes", "'capture' must be one of full, hashed, off, got 'sometimes'"),
        ("capture: yes", "'capture' must be one of full, hashed, off, got True"),
        ("split: {test_size: 2}", "'split.test_size'.*less than or equal to 0.5"),
        ("split: {tst: 1}", "unknown key 'split.tst'; allowed: seed, stratify"),
        ("split: {test_rows: 5, test_file: data/t.csv}", "'split' give test_rows or test_file, not both"),
        ("split: {test_file: raw/adult/test.csv}", "'split.test_file' must not be under raw/"),
        ("split: {test_rows: 0}", "'split.test_rows'"),
        ("drop_columns: a", "drop_columns"),
        ("drop_columns: [a]\nid_columns: [a]", "a are in both drop_columns and id_columns"),
        ("keep_columns: [a]\nid_columns: [a]", "a are in keep_columns and in drop_columns or id_columns"),
        ("target: y\nkeep_columns: [y]", "'y' cannot be in keep_columns"),
        ("primary_metric: auc", "'primary_metric' must be one of accuracy"),
        ("params: [1]", "'params' Input should be a valid dictionary"),
        ("min_primary_metric: high", "'min_primary_metric'"),
        ("max_regression_vs_champion: -1", "'max_regression_vs_champion'"),
        ("tune: {budget_seconds: 1}", "'tune.budget_seconds'"),
        ("tune: {budget: 10}", "unknown key 'tune.budget'; allowed: budget_seconds"),
        ("recipe: seed-a\ntune: {budget_seconds: 10}", "tune works with recipe auto only"),
        ("target: [", "not valid YAML"),
        ("- a\n- b", "expected a mapping"),
    ],
)
def test_bad_config_names_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "config/demo.yaml")


def test_dataset_name_comes_from_the_upload_key() -> None:
    assert keys.dataset_from_raw_key("raw/adult/adult-2024.csv") == "adult"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("raw/Adult Data/x.csv", "not a simple slug"),
        ("raw/adult/sub/x.csv", "not an upload key"),
        ("raw/adult/x.xlsx", "not a .csv"),
        ("config/adult.yaml", "not an upload key"),
    ],
)
def test_bad_upload_keys_are_rejected(key: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        keys.dataset_from_raw_key(key)


def test_dataset_prefixes_cover_every_layout_of_one_dataset_and_no_other() -> None:
    prefixes = keys.dataset_prefixes("smoke-1")
    owned = [keys.raw("smoke-1", "a.csv"), keys.config("smoke-1"), keys.validation_report("smoke-1", "r"),
             keys.preprocessed("smoke-1", "r", "train.parquet"), keys.staging("smoke-1", "r", "model.joblib"),
             keys.version_prefix("smoke-1", 2) + "meta.json", keys.alias("smoke-1", "champion"),
             keys.capture_prefix("smoke-1") + "dt=2026-11-26/x.gz", keys.feedback_batch("smoke-1", "2026-11-26", "b"),
             keys.feedback_upload("smoke-1", "labels.CSV")]
    assert all(any(key.startswith(p) for p in prefixes) for key in owned)
    others = [keys.raw("smoke-10", "a.csv"), "config/smoke-10.yaml", keys.alias("smoke-10", "champion"),
              keys.feedback_upload("smoke-10", "dir/labels.csv")]
    assert not any(key.startswith(p) and (p.endswith("/") or key == p) for key in others for p in prefixes)
    with pytest.raises(DataError):
        keys.dataset_prefixes("../adult")

from __future__ import annotations

import pytest

from stepml import keys
from stepml.config import DatasetConfig, dump_config, parse_config
from stepml.errors import ConfigError, DataError


def test_config_round_trips_through_yaml() -> None:
    config = DatasetConfig(target="income", drop_columns=("fnlwgt",), test_size=0.25)
    assert parse_config(dump_config(config)) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("targt: y", "unknown key.*targt"),
        ("task: clustering", "'task' must be one of"),
        ("test_size: 2", "test_size"),
        ("drop_columns: a", "drop_columns"),
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

"""The ML layer ships exactly the library versions the project is tested with locally.

A model trained locally (pickled scikit-learn pipeline) only loads on Lambda if both sides run the
same scikit-learn, numpy and pandas, so layer/requirements.txt must pin what constraints.txt pins.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

#: What the training and evaluation stages need on Lambda, at the least.
ML_LIBRARIES = {"numpy", "pandas", "scipy", "scikit-learn", "joblib", "pyyaml"}
#: Provided by the Lambda python runtime: bundling them would only waste space.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer"}


@pytest.fixture(scope="module")
def constraints(project_root: Path, pins: Any) -> dict[str, str]:
    return pins.read(project_root / "constraints.txt")


def test_layer_pins_equal_constraints(
    layer_pins: dict[str, str], constraints: dict[str, str]
) -> None:
    # Given the layer's requirements and the project's constraints
    # Then every package in the layer has the exact version the project is tested with
    missing = sorted(set(layer_pins) - set(constraints))
    assert not missing, (
        f"layer/requirements.txt pins packages absent from constraints.txt: {missing}"
    )
    differing = {
        name: f"layer {version} != constraints {constraints[name]}"
        for name, version in layer_pins.items()
        if version != constraints[name]
    }
    assert not differing, f"layer/requirements.txt disagrees with constraints.txt: {differing}"


def test_layer_carries_the_ml_libraries_but_not_boto3(layer_pins: dict[str, str]) -> None:
    assert ML_LIBRARIES <= set(layer_pins), f"missing: {sorted(ML_LIBRARIES - set(layer_pins))}"
    assert not RUNTIME_PROVIDED & set(layer_pins), "the Lambda runtime already provides boto3"


def test_layer_pins_agree_with_pyproject(
    project_root: Path, layer_pins: dict[str, str], pins: Any
) -> None:
    # pyproject.toml pins the ML libraries too (for `pip install stepml`): the three must agree.
    project = tomllib.loads((project_root / "pyproject.toml").read_text())["project"]
    pinned = {
        pins.canonical(match.group(1)): match.group(2)
        for requirement in project["dependencies"]
        if (match := pins.PIN.match(requirement))
    }
    differing = {
        name: f"pyproject {version} != layer {layer_pins[name]}"
        for name, version in pinned.items()
        if name in layer_pins and layer_pins[name] != version
    }
    assert not differing, differing

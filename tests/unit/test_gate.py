"""The quality gate promotes only versions that earn it, and says why."""

from __future__ import annotations

from stepml.config import DatasetConfig
from stepml.gate import decide


def evaluation(value: float, baseline: float = 0.75, metric: str = "accuracy", higher: bool = True) -> dict:
    return {"primary_metric": metric, "higher_is_better": higher, "metrics": {metric: value}, "baseline": {metric: baseline}}


def champion(value: float, version: int = 1, **kwargs) -> dict:
    return {"version": version, "evaluation": evaluation(value, **kwargs)}


def test_first_version_needs_only_to_beat_the_baseline() -> None:
    assert decide(evaluation(0.80), DatasetConfig(), None)["passed"]
    refused = decide(evaluation(0.70), DatasetConfig(), None)
    assert not refused["passed"] and "baseline" in refused["reason"]


def test_a_worse_model_is_not_promoted() -> None:
    decision = decide(evaluation(0.84), DatasetConfig(), champion(0.85))
    assert not decision["passed"]
    assert "worse than champion v1" in decision["reason"]


def test_a_configured_margin_tolerates_a_small_regression() -> None:
    assert decide(evaluation(0.845), DatasetConfig(max_regression_vs_champion=0.01), champion(0.85))["passed"]
    assert not decide(evaluation(0.83), DatasetConfig(max_regression_vs_champion=0.01), champion(0.85))["passed"]


def test_minimum_applies_even_to_the_first_version() -> None:
    decision = decide(evaluation(0.80), DatasetConfig(min_primary_metric=0.85), None)
    assert not decision["passed"] and "min_primary_metric" in decision["reason"]


def test_lower_is_better_metrics() -> None:
    rmse = {"metric": "rmse", "higher": False}
    assert decide(evaluation(48_000, baseline=115_000, **rmse), DatasetConfig(), champion(50_000, baseline=115_000, **rmse))["passed"]
    assert not decide(evaluation(52_000, baseline=115_000, **rmse), DatasetConfig(), champion(50_000, baseline=115_000, **rmse))["passed"]
    assert not decide(evaluation(30_000, baseline=115_000, **rmse), DatasetConfig(min_primary_metric=25_000), None)["passed"]

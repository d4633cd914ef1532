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


def test_a_perfect_test_score_asks_whether_a_column_gives_the_target_away() -> None:
    # Given every test row right (a classification), or an R² of 1 (a regression: bikes hired =
    # casual + registered riders)
    perfect = {**evaluation(1.0, baseline=0.3), "task": "classification", "test_rows": 126}
    exact = {"primary_metric": "rmse", "higher_is_better": False, "task": "regression", "test_rows": 1729,
             "metrics": {"rmse": 2e-5, "r2": 1.0}, "baseline": {"rmse": 133.7, "r2": 0.0}}
    # Then the gate still decides as before, and its reason says what to check
    for candidate in (perfect, exact):
        decision = decide(candidate, DatasetConfig(), None)
        assert decision["passed"] and decision["reason"].startswith("first version: ")
        assert "check that no column gives the target away" in decision["reason"]
    assert "every prediction right on 126 test rows" in decide(perfect, DatasetConfig(), None)["reason"]
    assert "R² 1.000000 on 1,729 test rows" in decide(exact, DatasetConfig(), None)["reason"]
    # And a good score short of perfect says nothing more
    assert decide({**perfect, "metrics": {"accuracy": 0.99}}, DatasetConfig(), None)["reason"] == (
        "first version: accuracy 0.99 beats the baseline's 0.3")
    near = {**exact, "metrics": {"rmse": 3.0, "r2": 0.998}}
    assert "gives the target away" not in decide(near, DatasetConfig(), None)["reason"]

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


def same_rows(champion_value: float | None, candidate_value: float | None, version: int = 1, **extra) -> dict:
    return {"version": version, "metric": "accuracy", "rows": 40, "candidate_value": candidate_value,
            "champion_value": champion_value, "champion_trained_on": 0, "unseen_only": False, "note": "", **extra}


def test_the_champion_is_compared_on_the_candidates_test_rows_when_evaluate_scored_it_there() -> None:
    # Given a candidate whose own split is harder than the champion's was (0.72 vs 0.74), while
    # on the same 40 rows the two score alike
    decision = decide(evaluation(0.72, baseline=0.5), DatasetConfig(), champion(0.74), same_rows(0.70, 0.70))
    # Then the gate compares the same rows, and says so, with the registered value beside it
    assert decision["passed"] and decision["compared_on"] == "candidate test rows"
    assert (decision["champion_value"], decision["champion_registered_value"]) == (0.70, 0.74)
    assert decision["reason"] == "accuracy 0.7 matches or beats champion v1's 0.7 on the same 40 test rows"
    refused = decide(evaluation(0.80, baseline=0.5), DatasetConfig(), champion(0.74), same_rows(0.75, 0.725))
    assert refused["reason"] == ("accuracy 0.725 is worse than champion v1's 0.75 on the same 40 test rows "
                                 "by 0.025 (allowed: 0)")


def test_without_a_same_rows_value_for_this_champion_the_registered_one_is_used_and_the_reason_says_so() -> None:
    registered = "worse than champion v2's 0.85 (as registered, on its own test split) by"
    # No comparison recorded (a promotion by hand of an older version)
    decision = decide(evaluation(0.84), DatasetConfig(), champion(0.85, version=2))
    assert decision["compared_on"] == "champion's own test split" and registered in decision["reason"]
    assert "each version's own test split" in decision["reason"]
    # The champion changed between Evaluate (which scored v1) and the promotion
    changed = decide(evaluation(0.84), DatasetConfig(), champion(0.85, version=2), same_rows(0.5, 0.9))
    assert not changed["passed"] and registered in changed["reason"]
    assert "champion v2 became champion after Evaluate compared with v1 on the same rows" in changed["reason"]
    # Evaluate could not score the champion
    failed = decide(evaluation(0.84), DatasetConfig(), champion(0.85), same_rows(None, None, note="why not"))
    assert failed["reason"].endswith("; not compared on the same rows: why not")


def test_a_caveat_of_the_same_rows_comparison_is_kept_in_the_reason() -> None:
    caveat = "champion v1 trained on 30 of these 40 rows (...): the comparison favours the champion"
    decision = decide(evaluation(0.8), DatasetConfig(), champion(0.9), same_rows(0.9, 0.8, note=caveat))
    assert not decision["passed"] and decision["reason"].endswith(f"; {caveat}")


def test_row_fingerprints_ignore_how_an_upload_typed_its_columns() -> None:
    import pandas as pd

    from stepml.comparison import row_fingerprints

    ints = pd.DataFrame({"n": [1, 2, 3], "t": ["a", "b", None], "y": ["x", "y", "x"]})
    floats = pd.DataFrame({"n": [1.0, 2.0, 3.0], "t": pd.Categorical(["a", "b", None]), "y": ["x", "y", "x"]})
    other = pd.DataFrame({"n": [1.0, 2.0, 3.5], "t": ["a", "b", None], "y": ["x", "y", "x"]})
    first, second, third = (row_fingerprints(f, ["n", "t", "y"], {"n"}) for f in (ints, floats, other))
    assert (first == second).all()
    assert list(first == third) == [True, True, False]

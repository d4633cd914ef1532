"""The Models page's account of what the auto recipe chose: the versions table's cell and the chart."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_MODULE = Path(__file__).resolve().parents[2] / "ui" / "stepml_ui" / "choice.py"
_spec = importlib.util.spec_from_file_location("stepml_ui_choice", _MODULE)
assert _spec is not None and _spec.loader is not None
choice = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(choice)

# A version's auto_choice as GET /models/{name}/versions returns it (the registry sorts its keys)
CHOSEN_TREES = {"rounds": 304, "target_transform": None, "family": "trees", "validation_rows": 600,
                "candidates": {}, "families": {"blend": 0.8511, "forest": 0.8402, "linear": 0.8297, "trees": 0.8533},
                "linear_params": {"C": 1.0}, "booster_params": {}, "folds": 1}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, "trees, 304 rounds"),
    ({"target_transform": "log1p"}, "trees, 304 rounds, log1p target"),
    ({"rounds": None, "target_transform": "log1p"}, "trees, log1p target"),
    ({"family": "blend", "rounds": 120}, "blend, 120 rounds"),
    ({"family": "linear", "rounds": None}, "linear"),
    # a forest's trees are fixed (and its rounds unused): the family says it all
    ({"family": "forest", "rounds": None}, "forest"),
])
def test_the_versions_table_names_the_family_and_what_shaped_its_fit(changes: dict, expected: str) -> None:
    # Given a version whose auto recipe chose a family (and rounds, a target transform)
    # When the versions table summarises it
    # Then the cell reads as a data scientist would say it
    assert choice.summary({**CHOSEN_TREES, **changes}) == expected


def test_a_version_of_another_recipe_has_an_empty_model_cell() -> None:
    # Given a version trained by seed-a (no auto_choice in its metadata), Then its cell is empty
    assert choice.summary(None) == "" and choice.summary({}) == ""


def test_the_chart_lists_every_scored_family_in_the_recipes_order_and_marks_the_chosen_one() -> None:
    # Given a choice whose families came back from the registry in alphabetical order
    # When the chart's frame is built
    scores = choice.family_scores(CHOSEN_TREES)
    # Then the families are in the recipe's order with their scores, and only the trees are chosen
    assert scores.to_dict("records") == [
        {"family": "trees", "score": 0.8533, "chosen": True},
        {"family": "linear", "score": 0.8297, "chosen": False},
        {"family": "blend", "score": 0.8511, "chosen": False},
        {"family": "forest", "score": 0.8402, "chosen": False},
    ]


def test_a_choice_without_family_scores_draws_no_chart() -> None:
    # Given a choice on a large table (or from Spark), where no family was scored
    spark = {"rounds": 250, "target_transform": None, "family": "trees", "validation_rows": 20_000,
             "candidates": {}, "families": {}, "linear_params": {}}
    # Then the frame is empty (the page shows the line alone), and the cell still says the rounds
    assert choice.family_scores(spark).empty and list(choice.family_scores(spark)) == ["family", "score", "chosen"]
    assert choice.summary(spark) == "trees, 250 rounds"


def test_the_score_axis_leaves_room_for_the_lowest_bar_without_starting_at_zero() -> None:
    # Given families a point apart in accuracy, errors far apart, and one family alone
    close = choice.family_scores(CHOSEN_TREES)
    errors = choice.family_scores({**CHOSEN_TREES, "families": {"trees": 0.52, "linear": 0.91, "forest": 0.31}})
    alone = choice.family_scores({**CHOSEN_TREES, "families": {"trees": 0.8}})
    # Then the axis starts half the spread below the lowest score (zero at most), just past the highest
    assert choice.score_domain(close) == pytest.approx((0.8297 - 0.0118, 0.8533 + 0.00118))
    assert choice.score_domain(errors) == pytest.approx((0.01, 0.94))
    low, high = choice.score_domain(alone)
    assert low < 0.8 < high


def test_the_score_axis_says_which_way_is_better() -> None:
    # Given evaluations as the registry records them, and older ones without higher_is_better
    accuracy = {"primary_metric": "accuracy", "higher_is_better": True}
    rmse, mae, r2 = ({"primary_metric": name} for name in ("rmse", "mae", "r2"))
    # Then errors are lower-is-better and scores higher-is-better, in the axis title too
    assert [choice.higher_is_better(e) for e in (accuracy, rmse, mae, r2)] == [True, False, False, True]
    assert choice.score_axis_title("rmse", False) == "validation rmse (lower is better)"
    assert choice.score_axis_title("balanced_accuracy", True) == "validation balanced_accuracy (higher is better)"


def test_the_chart_title_says_cross_validation_or_one_split() -> None:
    # Given a choice made on 5 folds of 2,400 rows, and one made on a single 600-row split
    folded = {**CHOSEN_TREES, "folds": 5, "validation_rows": 2400}
    # Then the title says which
    assert choice.validation_title(folded) == "5-fold cross-validation (2,400 rows)"
    assert choice.validation_title(CHOSEN_TREES) == "one validation split (600 rows)"
    # and a version recorded before folds existed was chosen on one split
    older = {key: value for key, value in CHOSEN_TREES.items() if key != "folds"}
    assert choice.validation_title(older) == "one validation split (600 rows)"


@pytest.mark.parametrize(("tuning", "expected"), [
    ({"ensemble": [{}, {}, {}]}, "tuned: 3 boosters"),
    ({"ensemble": [{}], "family": "trees"}, "tuned: 1 booster"),
    ({"ensemble": [{}, {}], "family": "blend"}, "tuned: blend of 2 boosters and the linear model"),
    ({"ensemble": [{}, {}, {}], "family": "forest"}, "tuned: forest"),
    ({"ensemble": [{}, {}, {}], "family": "linear"}, "tuned: linear"),
    (None, ""),
])
def test_a_tuned_versions_cell_says_what_tune_kept(tuning: dict | None, expected: str) -> None:
    # Given a version trained with tune (its summary in the metadata; no auto_choice), Then its
    # cell names what the search kept
    assert choice.tuned_summary(tuning) == expected

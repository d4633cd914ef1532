"""The auto recipe codes text categories in the order of their target (stepml.category_order):
one split gathers the categories that predict alike, the graph still serves it exactly, and an
unseen category is still answered."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepml import category_order, recipes
from stepml.config import DatasetConfig
from stepml.evaluation import metric_value
from stepml.onnx_export import export, verify
from stepml.preprocessing import feature_schema, split, to_model_frame
from stepml.training import fit, fit_recorded


def _players(players: int = 300, seasons: int = 30, seed: int = 0) -> pd.DataFrame:
    """A season's home runs: a player's own power (random, so no alphabetical order helps) times
    his at-bats, plus noise; the player is known only by an ID."""
    rng = np.random.default_rng(seed)
    power = rng.gamma(2.0, 0.02, players)
    ids = np.array([f"p{rng.integers(10**6):06d}{i}" for i in range(players)])
    who = np.repeat(np.arange(players), seasons)
    at_bats = rng.integers(50, 600, len(who)).astype(float)
    home_runs = rng.poisson(power[who] * at_bats)
    return pd.DataFrame({"player": ids[who], "at_bats": at_bats, "team": rng.choice(["a", "b", "c"], len(who)),
                         "home_runs": home_runs.astype(float)})


def _prepared(frame: pd.DataFrame, target: str, task: str) -> tuple[DatasetConfig, pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    config = DatasetConfig.from_dict({"target": target})
    train, test = split(frame, target, task, config)
    return config, train, test, feature_schema(train, target)


def test_categories_are_ordered_by_their_smoothed_mean_and_rare_ones_sit_at_the_mean() -> None:
    # Given three categories of 20 rows with low, high and middling targets, and two seen twice
    values = pd.Series(["low"] * 20 + ["high"] * 20 + ["mid"] * 20 + ["z_rare"] * 2 + ["a_rare"] * 2)
    scores = np.array([0.0] * 20 + [1.0] * 20 + [0.6] * 20 + [1.0] * 2 + [0.0] * 2)
    # When they are ordered
    order = category_order.target_order(values, scores)
    # Then by their rows' target, and the rare ones (whatever their two rows say) at the overall
    # mean, in alphabetical order among themselves
    assert order == ["low", "a_rare", "z_rare", "mid", "high"]


def test_a_regression_is_ordered_by_ranks_so_one_outlier_does_not_decide() -> None:
    # Given a category whose mean is pulled up by one huge value, but whose rows are mostly low
    values = pd.Series(["tail"] * 20 + ["steady"] * 20)
    y = np.array([1.0] * 19 + [10_000.0] + [5.0] * 20)
    order = category_order.target_order(values, category_order.target_scores(y, "regression"))
    # Then the steady category ranks above it, as most of their rows do
    assert order == ["tail", "steady"]


def test_three_classes_keep_the_alphabetical_order() -> None:
    columns = recipes.build_pipeline(
        [{"name": "c", "kind": "categorical", "categories": ["x", "y"]}], "classification",
        DatasetConfig.from_dict({"target": "t"})).named_steps["columns"]
    category_order.apply(columns, pd.DataFrame({"c": ["x", "y", "x"]}), np.array(["a", "b", "c"]), "classification")
    encoders = {name: transformer for name, transformer, _ in columns.transformers}
    assert encoders["categorical"].categories == "auto"


def test_a_player_id_in_the_targets_order_predicts_better_and_the_graph_serves_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given 9,000 seasons of 300 players, whose power is known only through their ID (a param
    # fixed at its default: the trees are fitted, without the linear model's one-hot IDs)
    config, train, test, schema = _prepared(_players(), "home_runs", "regression")
    config = DatasetConfig.from_dict({"target": "home_runs", "params": {"min_samples_leaf": 20}})
    # When the auto recipe fits it, with the IDs coded in the target's order and in the alphabet's
    fitted = fit_recorded(train, "home_runs", schema, "regression", config)
    assert fitted.auto_choice is not None and fitted.auto_choice["family"] == "trees"
    ordered = fitted.pipeline
    monkeypatch.setattr(category_order, "target_scores", lambda y, task: None)
    alphabetical = fit_recorded(train, "home_runs", schema, "regression", config).pipeline
    monkeypatch.undo()
    # Then the target's order predicts the held-out seasons clearly better
    y_test, rows = test["home_runs"].to_numpy(), to_model_frame(test, schema)
    ordered_rmse = metric_value("regression", "rmse", y_test, ordered.predict(rows))
    alphabetical_rmse = metric_value("regression", "rmse", y_test, alphabetical.predict(rows))
    assert ordered_rmse < 0.9 * alphabetical_rmse, (ordered_rmse, alphabetical_rmse)
    # And its encoder holds the IDs in that order (not sorted), which the ONNX graph follows exactly
    encoder = ordered.named_steps["columns"].named_transformers_["categorical"]
    player_codes = list(encoder.categories_[0])
    assert sorted(player_codes) == sorted(train["player"].unique()) and player_codes != sorted(player_codes)
    unseen = test.head(5).assign(player=["never seen"] * 5)
    checked = pd.concat([test, unseen], ignore_index=True)
    result = verify(export(ordered, schema, "regression"), ordered, checked, schema, "regression")
    assert result.divergent_rows == 0


@pytest.mark.parametrize("recipe", ["seed-a"])
def test_other_recipes_keep_the_alphabetical_order(recipe: str) -> None:
    frame = _players(players=20, seasons=20)  # 16 training rows a player: past MIN_ROWS, so the order would move
    config = DatasetConfig.from_dict({"target": "home_runs", "recipe": recipe})
    train, _ = split(frame, "home_runs", "regression", config)
    schema = feature_schema(train, "home_runs")
    pipeline = fit(train, "home_runs", schema, "regression", config)
    codes = list(pipeline.named_steps["columns"].named_transformers_["categorical"].categories_[0])
    assert codes == sorted(codes)

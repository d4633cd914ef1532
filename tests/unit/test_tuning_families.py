"""``tune`` searches the model families too: after the boosters, the linear model's penalty and
its weight in a blend, on the same validation rows; the winner is still one pipeline the two-block
ONNX graph serves exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepml import model_family, tuning
from stepml.config import DatasetConfig
from stepml.evaluation import metric_value
from stepml.onnx_export import export, verify
from stepml.preprocessing import feature_schema, split, to_model_frame
from stepml.training import fit, fit_recorded
from tests.synthetic import recorded_params, store_sales

BUDGET = 5  # seconds: a few booster trials, then the family phase's cached linear fits


def _smooth(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """A target that is a straight line in three numbers plus a region's offset (a few missing)."""
    rng = np.random.default_rng(seed)
    now, a, b = rng.uniform(1, 7, rows), rng.normal(0, 1, rows), rng.normal(0, 1, rows)
    region = rng.choice(["north", "south", "east"], rows)
    offset = pd.Series(region).map({"north": 0.3, "south": -0.2, "east": 0.0}).to_numpy()
    later = 0.95 * now + 0.2 * a - 0.1 * b + offset + rng.normal(0, 0.02, rows)
    a[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame({"now": now, "a": a, "b": b, "region": region, "later": later})


def _checkerboard(rows: int = 500, seed: int = 1) -> pd.DataFrame:
    """A class that is the XOR of two thresholds: trees draw it, no line can."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, 1, rows), rng.uniform(0, 1, rows)
    return pd.DataFrame({"x": x, "y": y, "label": np.where((x > 0.5) ^ (y > 0.5), "in", "out")})


def _prepared(frame: pd.DataFrame, target: str, task: str, **extra: Any) -> tuple[DatasetConfig, pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    config = DatasetConfig.from_dict({"target": target, "tune": {"budget_seconds": BUDGET}, **extra})
    train, test = split(frame, target, task, config)
    return config, train, test, feature_schema(train, target)


def test_tune_finds_the_line_in_a_smooth_regression_and_the_graph_serves_it() -> None:
    # Given 300 rows whose target is a line in its features
    config, train, test, schema = _prepared(_smooth(), "later", "regression")
    # When tune searches the boosters, then the ridge penalty and the blend weight
    fitted = fit_recorded(train, "later", schema, "regression", config)
    summary = fitted.tuning
    assert summary is not None
    # Then it left the trees for the line (alone, or carrying most of a blend), by validation loss
    assert summary["family"] in (model_family.LINEAR, model_family.BLEND)
    assert summary["linear_weight"] >= 0.5 and "alpha" in summary["linear_params"]
    assert summary["family_losses"][summary["family"]] < summary["family_losses"]["trees"]
    # And the test rows say it was right: far better than the tuned trees alone
    y_test = test["later"].to_numpy()
    tuned = metric_value("regression", "rmse", y_test, fitted.pipeline.predict(to_model_frame(test, schema)))
    trees = fit(train, "later", schema, "regression", config, params=summary["best_params"],
                ensemble=summary["ensemble"])
    trees_rmse = metric_value("regression", "rmse", y_test, trees.predict(to_model_frame(test, schema)))
    assert tuned < trees_rmse / 2
    # And the ONNX graph answers what scikit-learn answers, rows with a missing value included
    result = verify(export(fitted.pipeline, schema, "regression"), fitted.pipeline, test, schema, "regression")
    assert result.divergent_rows == 0 and result.rows_with_missing > 0
    assert result.max_abs_difference < 1e-6


def test_a_tuned_weighted_blend_of_several_boosters_serves_exactly() -> None:
    # Given a two-class version of the smooth table and a tuned ensemble of two boosters
    frame = _smooth(260)
    frame["later"] = np.where(frame["later"] > frame["later"].median(), "high", "low")
    config, train, test, schema = _prepared(frame, "later", "classification")
    ensemble = [{"max_iter": 40, "max_leaf_nodes": 15}, {"max_iter": 60, "max_leaf_nodes": 31}]
    # When the blend gives the logistic model 0.7 of the vote
    pipeline = fit(train, "later", schema, "classification", config, params=ensemble[0], ensemble=ensemble,
                   family=model_family.BLEND, linear_params={"C": 10.0}, linear_weight=0.7)
    voting = pipeline.named_steps["model"]
    # Then each booster is a member of its own beside the linear model, sharing the trees' 0.3
    assert [name for name, _ in voting.estimators] == ["trees0", "trees1", "linear"]
    np.testing.assert_allclose(voting.weights, [0.15, 0.15, 0.7])
    features = pipeline.named_steps["columns"].transform(to_model_frame(test, schema))
    members = voting.named_estimators_
    expected = sum(w * members[n].predict_proba(features) for n, w in zip(members, voting.weights, strict=True))
    np.testing.assert_allclose(pipeline.predict_proba(to_model_frame(test, schema)), expected)
    # And the two-block ONNX graph agrees on every held-out row
    result = verify(export(pipeline, schema, "classification"), pipeline, test, schema, "classification")
    assert result.divergent_rows == 0 and result.max_abs_difference < 1e-6


def test_tune_keeps_the_trees_on_a_checkerboard() -> None:
    # Given classes no line can separate
    config, train, _, schema = _prepared(_checkerboard(), "label", "classification")
    # When tune searches
    summary = fit_recorded(train, "label", schema, "classification", config).tuning
    # Then the linear model gets little or no weight (trees alone, or a small share in a blend)
    assert summary is not None and summary["family"] in (model_family.TREES, model_family.BLEND)
    assert summary["linear_weight"] <= 0.3


def test_fixed_params_skip_the_family_phase() -> None:
    # Given a config that fixes a booster parameter (the user asked for those trees)
    config, train, _, schema = _prepared(_smooth(), "later", "regression", params={"max_leaf_nodes": 15})
    # Then tune searches the boosters only, as before
    summary = tuning.tune(train, "later", schema, "regression", config)
    assert "family" not in summary


def test_a_blend_weight_outside_zero_and_one_is_refused() -> None:
    config, train, _, schema = _prepared(_smooth(120), "later", "regression")
    with pytest.raises(ValueError, match="linear_weight must be between 0 and 1"):
        fit(train, "later", schema, "regression", config, family=model_family.BLEND, linear_weight=1.0)


@pytest.mark.parametrize(("small", "floor"), [(True, tuning.SMALL_TABLE_MIN_LEAF), (False, 5)])
def test_small_tables_let_the_search_try_leaves_of_a_row(small: bool, floor: int) -> None:
    optuna = pytest.importorskip("optuna")
    # Given one trial of a search
    trial = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0)).ask()
    # When the search space is drawn for a small (or a large) table
    tuning.search_space(trial, small=small)
    # Then a small table's leaves may hold a single row; a large one's at least 5
    assert trial.distributions["min_samples_leaf"].low == floor
    assert floor == 1 if small else floor == 5


def _wavy(rows: int = 200, seed: int = 2) -> pd.DataFrame:
    """A level that rises and falls with time (three waves), an unrelated number (a few missing)."""
    rng = np.random.default_rng(seed)
    time = rng.uniform(0, 20, rows)
    noise = rng.normal(0, 1, rows)
    noise[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame({"time": time, "noise": noise, "level": 3 * np.sin(time) + rng.normal(0, 0.1, rows)})


def test_tune_keeps_the_forest_when_it_validates_better_than_the_search(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given 200 rows whose target rises and falls with time, and a search held to the recipe's
    # settings (20-row leaves, which draw the waves as steps; a real search may find small leaves)
    monkeypatch.setattr(tuning, "search_space", lambda trial, small=False, categories=False: {})
    config, train, test, schema = _prepared(_wavy(), "level", "regression")
    # When tune has searched the boosters and the families
    fitted = fit_recorded(train, "level", schema, "regression", config)
    summary = fitted.tuning
    assert summary is not None
    # Then the forest, fitted last on the same validation rows, scored better and replaced them
    assert summary["forest_score"] < summary["searched_score"]
    assert summary["family"] == model_family.FOREST and summary["linear_params"] == {}
    assert type(fitted.pipeline.named_steps["model"]).__name__ == "ExtraTreesRegressor"
    # And the ONNX graph answers what scikit-learn answers
    result = verify(export(fitted.pipeline, schema, "regression"), fitted.pipeline, test, schema, "regression")
    assert result.divergent_rows == 0 and result.rows_with_missing > 0


def test_tune_keeps_whichever_of_its_search_and_the_forest_validated_better() -> None:
    # Given the waves and a real search (which may find leaves small enough to draw them)
    config, train, _, schema = _prepared(_wavy(), "level", "regression")
    fitted = fit_recorded(train, "level", schema, "regression", config)
    summary = fitted.tuning
    assert summary is not None
    # Then both scores are recorded and the better one's model is the one fitted
    forest_won = summary["forest_score"] < summary["searched_score"]
    assert (summary.get("family") == model_family.FOREST) == forest_won
    assert (type(fitted.pipeline.named_steps["model"]).__name__ == "ExtraTreesRegressor") == forest_won


def test_tune_keeps_its_search_where_the_forest_validates_worse() -> None:
    # Given the line: the searched model (the linear family) beats the forest on the validation rows
    config, train, _, schema = _prepared(_smooth(), "later", "regression")
    fitted = fit_recorded(train, "later", schema, "regression", config)
    summary = fitted.tuning
    assert summary is not None
    # Then the search's choice stands, and both scores are recorded
    assert summary["searched_score"] < summary["forest_score"]
    assert summary["family"] != model_family.FOREST


def test_tune_scores_a_small_tables_trials_on_autos_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    from stepml import auto_selection

    # Given the 240 training rows of the line (a small table: auto cross-validates its choice), and
    # each trial's folds recorded as the booster is fitted
    config, train, _, schema = _prepared(_smooth(), "later", "regression")
    fitted_rows: list[int] = []
    original = tuning.estimator

    def recording(*args: Any, **kwargs: Any) -> Any:
        model = original(*args, **kwargs)
        fit_model = model.fit

        def fit_counted(x: Any, *rest: Any, **named: Any) -> Any:
            fitted_rows.append(len(x))
            return fit_model(x, *rest, **named)

        model.fit = fit_counted
        return model

    monkeypatch.setattr(tuning, "estimator", recording)
    # When tune searches
    summary = tuning.tune(train, "later", schema, "regression", config)
    # Then every trial fitted the booster once per fold, on the folds' fitting rows (two thirds)
    folds = auto_selection.choice_folds(train, "later", "regression", config, round_trees=1)
    assert summary["folds"] == len(folds) == auto_selection.FOLDS
    assert len(fitted_rows) == summary["trials"] * len(folds)
    assert sorted(set(fitted_rows)) == sorted({len(fitting) for fitting, _ in folds})
    # and it was scored on every training row, each predicted by the fold that did not fit it
    assert summary["validation_rows"] == len(train)
    # and the best trial's loss is the pooled out-of-fold error: the line's noise (0.02), not a
    # single split's luck
    assert 0 < summary["validation_losses"][0] < 0.05


def test_a_larger_table_tunes_on_one_held_out_fifth() -> None:
    # Given 1,600 rows (over auto's cross-validation limit)
    config, train, _, schema = _prepared(_smooth(2000), "later", "regression")
    # When tune searches
    summary = tuning.tune(train, "later", schema, "regression", config)
    # Then the trials were scored on one split's fifth
    assert summary["folds"] == 1 and summary["validation_rows"] == round(len(train) * tuning.VALIDATION_SIZE)


#: Trials :func:`_recorded_tune` runs, whatever the host's speed (a 5 s budget ran 3 on a busy CI host).
RECORDED_TRIALS = 5


def _recorded_tune(monkeypatch: pytest.MonkeyPatch, frame: pd.DataFrame, target: str) -> tuple[
        list[dict[str, Any]], Any, tuple[DatasetConfig, pd.DataFrame, list[dict[str, Any]]]]:
    """tune on a regression ``frame``, exactly :data:`RECORDED_TRIALS` booster trials (a budget
    it cannot reach): the parameters of every booster it creates (each trial's, fold after fold),
    its summary, and (config, training rows, schema)."""
    import optuna

    config, train, _, schema = _prepared(frame, target, "regression", tune={"budget_seconds": 600})
    optimize = optuna.study.Study.optimize
    monkeypatch.setattr(optuna.study.Study, "optimize", lambda study, func, **how: optimize(
        study, func, **{**how, "n_trials": how.get("n_trials") or RECORDED_TRIALS, "timeout": None}))
    created = recorded_params(monkeypatch, tuning)
    return created, tuning.tune(train, target, schema, "regression", config), (config, train, schema)


def _trials_boosters(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The parameters of every booster tune creates on the line."""
    return _recorded_tune(monkeypatch, _smooth(), "later")[0]


@pytest.mark.parametrize("costly", [True, False])
def test_the_first_trials_are_what_auto_fits_where_rounds_are_costly_or_not(monkeypatch: pytest.MonkeyPatch, costly: bool) -> None:
    from stepml import auto_selection
    from stepml.recipes import AUTO_PARAMS

    # Given the cost threshold below (or above) the line's 240 training rows, and the boosters'
    # parameters recorded as the trials create them
    monkeypatch.setattr(auto_selection, "COSTLY_ROUND_ROW_TREES", 100 if costly else 10**9)
    # When tune searches
    created = _trials_boosters(monkeypatch)
    # Then its first trial is auto's faster, larger rounds there, else the recipe's defaults
    first = created[0]
    expected = auto_selection.COSTLY_ROUND_PARAMS if costly else {
        "learning_rate": AUTO_PARAMS["learning_rate"], "max_leaf_nodes": AUTO_PARAMS["max_leaf_nodes"]}
    assert {name: first[name] for name in expected} == expected
    # and, where rounds are not costly, its second is auto's small leaves (leaves of 2 rows on this
    # small table, each split among 70 % of the columns)
    second = next(params for params in created if params != first)
    small_leaves = {name: second[name] for name in auto_selection.SMALL_LEAF_PARAMS}
    if costly:
        assert small_leaves != auto_selection.SMALL_LEAF_PARAMS
    else:
        assert small_leaves == auto_selection.SMALL_LEAF_PARAMS == {"min_samples_leaf": 2, "max_features": 0.7}
        assert second["learning_rate"] == AUTO_PARAMS["learning_rate"]


@pytest.mark.parametrize("cheap", [True, False])
def test_where_costly_rounds_converge_fast_the_second_trial_is_the_recipes_rate(
        monkeypatch: pytest.MonkeyPatch, cheap: bool) -> None:
    from stepml import auto_selection
    from stepml.recipes import AUTO_PARAMS

    # Given 1,600 training rows (one split) counted as costly, whose noise stops the coarse rounds early
    monkeypatch.setattr(auto_selection, "COSTLY_ROUND_ROW_TREES", 100)
    if not cheap:  # ... or a recipe's-rate fit that would boost too many row-tree-rounds
        monkeypatch.setattr(auto_selection, "FINE_ROW_TREE_ROUNDS", 1_000)
    noisy = _smooth(2000)
    noisy["later"] += np.random.default_rng(5).normal(0, 2, len(noisy))
    created, summary, _ = _recorded_tune(monkeypatch, noisy, "later")
    assert summary["folds"] == 1 and created[0]["learning_rate"] == auto_selection.COSTLY_ROUND_PARAMS["learning_rate"]
    # Then the second trial is what auto tries there: the recipe's own rate, leaves and leaf size
    recipes_own = {name: AUTO_PARAMS[name] for name in ("learning_rate", "max_leaf_nodes", "min_samples_leaf")}
    assert ({name: created[1][name] for name in recipes_own} == recipes_own) is cheap


def test_the_small_leaves_trial_holds_as_few_rows_a_leaf_as_a_large_tables_search_allows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stepml import auto_selection

    # Given the line's 240 rows counted as a large table, whose search's leaves hold 5 rows at least
    monkeypatch.setattr(auto_selection, "COSTLY_ROUND_ROW_TREES", 10**9)
    monkeypatch.setattr(model_family, "MAX_TRAINING_ROWS", 100)
    created = _trials_boosters(monkeypatch)
    # Then the second trial's leaves hold that floor, not auto's 2 rows (out of the search's range)
    second = next(params for params in created if params != created[0])
    assert (second["min_samples_leaf"], second["max_features"]) == (tuning.LARGE_TABLE_MIN_LEAF, 0.7) == (5, 0.7)


def test_tune_searches_text_as_the_boosters_categories_where_auto_would_try_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given 60 stores whose response to x is each store's own (auto keeps the store as the
    # booster's category there: tests/unit/test_auto_selection.py), chosen on one split
    from stepml import auto_selection

    monkeypatch.setattr(auto_selection, "CATEGORY_MIN_ROWS", 1_000)  # the stores' 2,400 training rows
    # When tune searches
    created, summary, (config, train, schema) = _recorded_tune(monkeypatch, store_sales(), "sales")
    # Then its first two trials cut the codes, its third splits the store's codes (column 0) as sets,
    # and, as that validated clearly better, so do all the trials after it
    chosen = [params.get("categorical_features") for params in created]
    assert chosen[:3] == [None, None, [0]] and len(chosen) > 3 and all(codes == [0] for codes in chosen[3:])
    # And its ensemble names the choice as the config would, which the final pipeline resolves
    assert {params["categorical_features"] for params in summary["ensemble"]} <= {None, "from_dtype"}
    assert summary["ensemble"][0]["categorical_features"] == "from_dtype"  # clearly the better trial here
    pipeline = fit(train, "sales", schema, "regression", config, ensemble=summary["ensemble"])
    members = [member for _, member in pipeline.named_steps["model"].estimators] if len(summary["ensemble"]) > 1 \
        else [pipeline.named_steps["model"]]
    assert [member.categorical_features for member in members] == [
        [0] if params["categorical_features"] else None for params in summary["ensemble"]]


def test_tune_keeps_the_ordered_codes_after_a_categories_trial_that_is_not_clearly_better(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the stores, and the categories' trial judged no clearly better than the first
    from stepml import auto_selection

    monkeypatch.setattr(auto_selection, "CATEGORY_MIN_ROWS", 1_000)
    monkeypatch.setattr(tuning, "clearly_better", lambda score, than, higher_is_better: False)
    created, summary, _ = _recorded_tune(monkeypatch, store_sales(), "sales")
    # Then only the third trial had the categories; the ensemble names each member's own
    chosen = [params.get("categorical_features") for params in created]
    assert chosen[2] == [0] and len(chosen) > 3 and chosen[:2] + chosen[3:] == [None] * (len(chosen) - 1)
    assert all(params["categorical_features"] in (None, "from_dtype") for params in summary["ensemble"])


def test_the_users_from_dtype_makes_every_trial_split_categories(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a config that asks for the text as the booster's categories itself
    frame = store_sales(rows=1_600)
    config = DatasetConfig.from_dict({"target": "sales", "tune": {"budget_seconds": BUDGET},
                                      "params": {"categorical_features": "from_dtype"}})
    train, _ = split(frame, "sales", "regression", config)
    created: list[dict[str, Any]] = []
    original = tuning.estimator
    monkeypatch.setattr(tuning, "estimator", lambda config, task, params: created.append(params) or original(
        config, task, params))
    summary = tuning.tune(train, "sales", feature_schema(train, "sales"), "regression", config)
    # Then every trial's boosters split the store's codes as sets; the ensemble keeps the config's word
    assert created and all(params["categorical_features"] == [0] for params in created)
    assert all(params["categorical_features"] == "from_dtype" for params in summary["ensemble"])


def test_models_show_describes_what_tune_kept() -> None:
    from stepml.describe import describe_tuning

    # Given tune's summaries: three boosters on one split, a blend on folds, and the forest
    base: dict[str, Any] = {"trials": 19, "seconds": 61.2, "metric": "accuracy", "validation_score": 0.8812,
                            "validation_scores": [0.8812], "validation_losses": [0.28], "validation_rows": 6513,
                            "best_params": {}, "ensemble": [{}, {}, {}]}
    blend = {**base, "folds": 3, "validation_rows": 481, "family": "blend", "linear_params": {"C": 0.1},
             "linear_weight": 0.3, "forest_score": 0.61, "searched_score": 0.64}
    forest = {**base, "family": model_family.FOREST, "linear_params": {}, "forest_score": 0.9, "searched_score": 0.85}
    # Then each line says where the trials were scored and what was kept
    assert describe_tuning(base) == ("tune: 19 trials in 61.2 s on 6,513 validation rows; kept the average of its 3 "
                                     "best boosters; validation accuracy: best trial 0.8812")  # type: ignore[arg-type]
    assert describe_tuning(blend) == (  # type: ignore[arg-type]
        "tune: 19 trials in 61.2 s on 3-fold cross-validation (481 rows, each out of fold); kept the average of its "
        "3 best boosters blended with the linear model (C=0.1, weight 0.3); validation accuracy: best trial 0.8812, "
        "searched model 0.6400, forest 0.6100")
    assert f"kept the forest ({model_family.FOREST_TREES} extremely randomised trees)" in describe_tuning(forest)  # type: ignore[arg-type]
    # and, where the search estimated its final fit, how long that was to take
    timed = {**base, "final_fit_seconds": 7.4}
    assert "kept the average of its 3 best boosters (whose fit the search estimated at 7.4 s); " in describe_tuning(timed)  # type: ignore[arg-type]


def test_the_search_leaves_the_final_fit_its_share_of_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a budget that fits many trials of this small table
    config, train, _, schema = _prepared(_smooth(), "later", "regression")
    searched = tuning.tune(train, "later", schema, "regression", config)
    assert searched["trials"] > 3 and 0 < searched["final_fit_seconds"] < BUDGET
    # When the final fit is estimated to take the whole budget, the search stops after its first
    # trial (the defaults), leaving the rest to the final fit
    monkeypatch.setattr(tuning, "final_fit_estimate", lambda seconds, trial, final: float(BUDGET))
    stopped = tuning.tune(train, "later", schema, "regression", config)
    assert stopped["trials"] == 1 and stopped["final_fit_seconds"] == BUDGET
    # and the final fit's estimate follows the trials' rows x rounds: a fit of twice the rows and
    # rounds a trial boosted takes twice its time
    monkeypatch.undo()
    assert tuning.final_fit_estimate(1.5, 10_000, 20_000) == 3.0

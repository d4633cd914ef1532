"""An imbalanced target: the report names the minority class, the run is judged by balanced
accuracy with class weights unless the config names its own metric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score

from stepml.config import DatasetConfig
from stepml.gate import decide
from stepml.preprocessing import class_labels, feature_schema, to_model_frame
from stepml.recipes import estimator
from stepml.training import fit
from stepml.validation import validate

SOURCE = "s3://bucket/raw/fraud/data.csv"


def imbalanced(rows: int = 4000, minority: float = 0.05, seed: int = 3) -> pd.DataFrame:
    """Two overlapping classes; ``minority`` of the rows are 'fraud'."""
    rng = np.random.default_rng(seed)
    is_fraud = rng.random(rows) < minority
    x = rng.normal(size=rows) + is_fraud * 1.2
    w = rng.normal(size=rows) + is_fraud * 0.8
    kind = np.where(rng.random(rows) < 0.5 + is_fraud * 0.2, "online", "shop")
    return pd.DataFrame({"x": x, "w": w, "kind": kind, "label": np.where(is_fraud, "fraud", "ok")})


def test_a_minority_under_ten_percent_is_named_and_switches_the_default_metric() -> None:
    report = validate(imbalanced(), DatasetConfig(), SOURCE)

    share = report["minority_classes"]["fraud"]
    assert 0.03 < share < 0.07 and list(report["minority_classes"]) == ["fraud"]
    warning = next(w for w in report["warnings"] if "imbalanced" in w)
    assert "'fraud' is" in warning and f"{share:.1%}" in warning and "under 10%" in warning
    assert "balanced_accuracy" in warning
    assert report["primary_metric"] == "balanced_accuracy"


def test_a_multiclass_minority_switches_the_default_metric_too() -> None:
    frame = imbalanced(3000, minority=0.3)
    frame.loc[frame.index[:150], "label"] = "chargeback"  # 5 %
    report = validate(frame, DatasetConfig(), SOURCE)
    assert list(report["minority_classes"]) == ["chargeback"]
    assert report["primary_metric"] == "balanced_accuracy"


def test_an_explicit_primary_metric_always_wins() -> None:
    config = DatasetConfig(primary_metric="accuracy")
    report = validate(imbalanced(), config, SOURCE)

    assert report["primary_metric"] == "accuracy"
    warning = next(w for w in report["warnings"] if "imbalanced" in w)
    assert "'fraud' is" in warning and "primary_metric accuracy is kept" in warning
    assert config.with_metric(report["primary_metric"]).metric_for("classification") == "accuracy"
    assert "class_weight" not in {k for k, v in estimator(config, "classification").get_params().items() if v}


def test_a_mild_imbalance_keeps_accuracy() -> None:
    report = validate(imbalanced(minority=0.15), DatasetConfig(), SOURCE)
    assert report["minority_classes"] == {} and report["primary_metric"] == "accuracy"


def test_regression_is_never_switched() -> None:
    frame = imbalanced()
    frame["label"] = frame["x"] * 2.0
    report = validate(frame, DatasetConfig(), SOURCE)
    assert report["primary_metric"] == "rmse" and report["minority_classes"] == {}


@pytest.mark.parametrize("recipe", ["auto", "seed-a"])
def test_the_runs_metric_weights_the_classes(recipe: str) -> None:
    config = DatasetConfig(recipe=recipe)
    assert estimator(config, "classification").get_params()["class_weight"] is None
    resolved = config.with_metric("balanced_accuracy")
    assert resolved.metric_for("classification") == "balanced_accuracy"
    assert estimator(resolved, "classification").get_params()["class_weight"] == "balanced"


def test_class_weights_raise_the_minority_recall() -> None:
    frame = imbalanced(6000, minority=0.05)
    train, test = frame.iloc[:4000], frame.iloc[4000:]
    schema = feature_schema(train, "label")
    report = validate(train, DatasetConfig(), SOURCE)

    def minority_recall(config: DatasetConfig) -> float:
        pipeline = fit(train, "label", schema, "classification", config)
        predicted = pipeline.predict(to_model_frame(test, schema))
        return float(recall_score(class_labels(test["label"]), predicted, pos_label="fraud"))

    unweighted = minority_recall(DatasetConfig(primary_metric="accuracy"))
    weighted = minority_recall(DatasetConfig().with_metric(report["primary_metric"]))
    assert weighted > unweighted + 0.2, (weighted, unweighted)


def test_the_gate_compares_on_balanced_accuracy_against_an_accuracy_champion() -> None:
    def evaluation(metric: str, accuracy: float, balanced: float) -> dict:
        return {"primary_metric": metric, "higher_is_better": True,
                "metrics": {"accuracy": accuracy, "balanced_accuracy": balanced},
                "baseline": {"accuracy": 0.95, "balanced_accuracy": 0.5}}

    champion = {"version": 1, "evaluation": evaluation("accuracy", 0.96, 0.62)}
    better = decide(evaluation("balanced_accuracy", 0.90, 0.80), DatasetConfig(), champion)
    worse = decide(evaluation("balanced_accuracy", 0.97, 0.55), DatasetConfig(), champion)
    assert better["passed"] and "balanced_accuracy 0.8 matches or beats champion v1's 0.62" in better["reason"]
    assert not worse["passed"] and "worse than champion v1's 0.62" in worse["reason"]

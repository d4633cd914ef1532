"""The quality gate: does a newly registered version deserve the ``champion`` alias?

A version is promoted when its primary metric
  * beats the trivial baseline (majority class / mean), and
  * meets the config's ``min_primary_metric`` (when set), and
  * is not worse than the current champion's by more than ``max_regression_vs_champion``
    (an absolute amount in the metric's own units; default 0: never worse).
The first version of a dataset only has to beat the baseline (and the minimum).

The champion is compared on the same rows whenever Evaluate could score it there (``same_rows``,
:mod:`stepml.comparison`): two test splits of one table differ by several points of accuracy on
their own, so comparing each model's score on its own split would promote and demote on noise.
Otherwise - the champion could not be loaded or scored, or it is no longer the champion that
Evaluate scored - the champion's value as registered, on its own test split, is used and the
reason says so.
"""

from __future__ import annotations

from typing import Any

from stepml.config import DatasetConfig
from stepml.contracts import GateDecision, SameRowsComparison, VersionMeta


def _better(a: float, b: float, higher_is_better: bool) -> bool:
    return a > b if higher_is_better else a < b


#: A regression whose test R² is at least this has explained the target all but exactly.
PERFECT_R2 = 0.9999


def decide(
    evaluation: dict[str, Any], config: DatasetConfig, champion: VersionMeta | None,
    same_rows: SameRowsComparison | None = None,
) -> GateDecision:
    """The gate's decision: ``passed`` and a ``reason`` a person can read.

    ``evaluation``: :func:`stepml.evaluation.evaluate`'s result for the candidate; ``champion``:
    the current champion's version meta (None before the first promotion); ``same_rows``: both
    models scored on the candidate's test rows (:func:`stepml.comparison.compare_on_test_rows`),
    used when it is about this champion and has both values, else the champion's registered value
    is. A (near) perfect test score adds a sentence to the reason (:func:`too_good`), whatever the
    decision.
    """
    decision = _decide(evaluation, config, champion, same_rows)
    caution = too_good(evaluation)
    if caution:
        decision["reason"] = f"{decision['reason']}; {caution}"
    return decision


def too_good(evaluation: dict[str, Any]) -> str | None:
    """What to check when the test rows are predicted (all but) perfectly: every row right in a
    classification, an R² of at least :data:`PERFECT_R2` in a regression. Real data is rarely that
    predictable; a column that gives the target away usually is (a sum of its parts - bikes hired
    by casual plus registered riders -, a value recorded only after the outcome)."""
    metrics = evaluation.get("metrics", {})
    rows = evaluation.get("test_rows")
    where = f"on {rows:,} test rows" if isinstance(rows, int) else "on the test rows"
    if evaluation.get("task") == "classification" or "accuracy" in metrics:
        perfect = metrics.get("accuracy") == 1.0
        said = f"every prediction right {where}"
    else:
        r2 = metrics.get("r2")
        perfect = r2 is not None and r2 >= PERFECT_R2
        said = f"R² {r2:.6f} {where}" if r2 is not None else ""
    if not perfect:
        return None
    return (f"{said}: check that no column gives the target away (a sum of its parts, a value "
            "recorded after the outcome); drop_columns leaves one out")


def _decide(
    evaluation: dict[str, Any], config: DatasetConfig, champion: VersionMeta | None,
    same_rows: SameRowsComparison | None,
) -> GateDecision:
    metric = evaluation["primary_metric"]
    higher = bool(evaluation["higher_is_better"])
    value = evaluation["metrics"].get(metric)
    baseline = evaluation["baseline"].get(metric)
    decision: GateDecision = {
        "metric": metric,
        "value": value,
        "baseline": baseline,
        "champion_version": champion["version"] if champion else None,
        "champion_value": None,
        "passed": False,
        "reason": "",
    }
    if same_rows is not None:
        decision["same_rows"] = same_rows  # recorded, so that Promote can reuse it
    if value is None:
        decision["reason"] = f"{metric} could not be computed on the test split"
        return decision
    if baseline is not None and not _better(value, baseline, higher):
        decision["reason"] = f"{metric} {value:.4g} does not beat the trivial baseline's {baseline:.4g}"
        return decision
    minimum = config.min_primary_metric
    if minimum is not None and _better(float(minimum), value, higher):
        word = "below" if higher else "above"
        decision["reason"] = f"{metric} {value:.4g} is {word} the required {minimum:.4g} (min_primary_metric)"
        return decision
    if champion is None:
        decision["passed"] = True
        decision["reason"] = f"first version: {metric} {value:.4g} beats the baseline's {baseline:.4g}"
        return decision
    # The champion is judged by the candidate's metric, also when it was itself registered under
    # another one (e.g. accuracy before its target became imbalanced): every version records all
    # of its task's metrics.
    registered = champion.get("evaluation", {}).get("metrics", {}).get(metric)
    decision["champion_registered_value"] = registered
    name = f"champion v{champion['version']}"
    compared = _on_same_rows(same_rows, champion, metric)
    if compared is not None:
        candidate_value, champion_value, where = compared
        decision["compared_on"] = "candidate test rows"
        caveat = _caveat(same_rows)
    else:
        candidate_value, champion_value = value, registered
        where = "(as registered, on its own test split)"
        decision["compared_on"] = "champion's own test split"
        caveat = _why_registered(same_rows, champion)
    decision["champion_value"] = champion_value
    if champion_value is None:
        decision["passed"] = True
        decision["reason"] = f"{name} has no comparable {metric}"
        return decision
    margin = float(config.max_regression_vs_champion or 0.0)
    worse_by = (champion_value - candidate_value) if higher else (candidate_value - champion_value)
    if worse_by > margin:
        decision["reason"] = (
            f"{metric} {candidate_value:.4g} is worse than {name}'s {champion_value:.4g} {where} "
            f"by {worse_by:.4g} (allowed: {margin:.4g}){caveat}"
        )
        return decision
    decision["passed"] = True
    relation = "matches or beats" if worse_by <= 0 else f"is within {margin:.4g} of"
    decision["reason"] = f"{metric} {candidate_value:.4g} {relation} {name}'s {champion_value:.4g} {where}{caveat}"
    return decision


def _on_same_rows(
    same_rows: SameRowsComparison | None, champion: VersionMeta, metric: str
) -> tuple[float, float, str] | None:
    """(candidate's value, champion's value, where) on the same rows, when Evaluate measured both
    for this very champion and metric; None otherwise."""
    if same_rows is None or same_rows.get("version") != champion["version"] or same_rows.get("metric") != metric:
        return None
    candidate_value, champion_value = same_rows.get("candidate_value"), same_rows.get("champion_value")
    if candidate_value is None or champion_value is None:
        return None
    rows = same_rows.get("rows")
    counted = f"{rows:,} " if isinstance(rows, int) else ""
    unseen = " (none of which either model trained on)" if same_rows.get("unseen_only") else ""
    return float(candidate_value), float(champion_value), f"on the same {counted}test rows{unseen}"


def _caveat(same_rows: SameRowsComparison | None) -> str:
    note = same_rows.get("note") if same_rows is not None else None
    return f"; {note}" if note else ""


def _why_registered(same_rows: SameRowsComparison | None, champion: VersionMeta) -> str:
    """Why the champion's registered value (from its own, different test split) was used."""
    if same_rows is None:
        return ("; not compared on the same rows: the values come from each version's own test split, "
                "which differ by chance")
    if same_rows.get("version") != champion["version"]:
        return (f"; champion v{champion['version']} became champion after Evaluate compared with "
                f"v{same_rows.get('version')} on the same rows: compared with its registered value instead")
    note = same_rows.get("note") or "it could not be scored on the candidate's test rows"
    return f"; not compared on the same rows: {note}"

"""The registry's layout is spelled once (stepml.keys), and template.yaml's IAM grants each function
exactly the keys it reads and writes there: a key moved in keys.py without its policy fails here,
not as an AccessDenied in a deployed stack."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest

from stepml import keys
from stepml.local.template import load_template_file
from tests.conftest import ROOT

#: The keys each function writes in the registry's layout (dataset "shop", run "run-1").
WRITES = {
    "ValidateFunction": [keys.delivery("shop", "0" * 64), keys.validation_report("shop", "run-1")],
    "EvaluateFunction": [keys.version_file("shop", 3, keys.VERSION_CLAIM), keys.run_registration("shop", "run-1"),
                         keys.version_file("shop", 3, "model.onnx"), keys.version_file("shop", 3, keys.VERSION_PROFILE),
                         keys.version_file("shop", 3, keys.VERSION_META)],
    "PromoteFunction": [keys.alias("shop", "champion"), keys.alias_history_batch("shop", "champion", 4)],
    "RegistryFunction": [keys.alias("shop", "champion"), keys.alias_history_batch("shop", "champion", 4)],
    "MonitorFunction": [keys.monitoring_report("shop", "20261126T180000Z"), keys.monitoring_latest("shop")],
}
#: The keys each function reads there.
READS = {
    "EvaluateFunction": [keys.run_registration("shop", "run-1"), keys.alias("shop", "champion"),
                         keys.version_file("shop", 2, keys.VERSION_META)],
    "InferenceFunction": [keys.alias("shop", "champion"), keys.version_file("shop", 2, "model.onnx")],
    "RegistryFunction": [keys.alias_history_batch("shop", "champion", 0), keys.version_file("shop", 2, keys.VERSION_META)],
    "MonitorFunction": [keys.alias("shop", "champion"), keys.version_file("shop", 2, keys.VERSION_META),
                        keys.version_file("shop", 2, keys.VERSION_PROFILE), keys.config("shop"),
                        keys.capture_day_prefix("shop", "2026-11-26") + "part-0.gz",
                        keys.feedback_prefix("shop") + "dt=2026-11-26/x.jsonl", keys.feedback_prefix("shop") + "bulk.csv"],
}


def _allowed(template: dict[str, Any], function: str, action: str) -> list[str]:
    """The object-key patterns ``function``'s inline policies allow ``action`` on."""
    patterns = []
    for policy in template["Resources"][function]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []):
            if statement["Effect"] != "Allow" or action not in statement["Action"]:
                continue
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for resource in resources:
                arn = resource["Fn::Sub"] if isinstance(resource, dict) else resource
                prefix = "arn:${AWS::Partition}:s3:::${DataBucket}/"
                if arn.startswith(prefix):
                    patterns.append(arn[len(prefix):])
    return patterns


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template_file(Path(ROOT) / "template.yaml")


@pytest.mark.parametrize(("function", "action", "key"), [
    *[(function, "s3:PutObject", key) for function, written in WRITES.items() for key in written],
    *[(function, "s3:GetObject", key) for function, read in READS.items() for key in read],
])
def test_each_function_may_touch_the_registry_keys_it_uses(template, function: str, action: str, key: str) -> None:
    patterns = _allowed(template, function, action)
    # IAM's * matches across '/', as fnmatch's does
    assert any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns), (function, action, key, patterns)


def test_the_registry_api_writes_aliases_only(template) -> None:
    # The registry function moves aliases (and archives their history); it never writes a version.
    patterns = _allowed(template, "RegistryFunction", "s3:PutObject")
    assert not any(fnmatch.fnmatchcase(keys.version_file("shop", 3, keys.VERSION_META), p) for p in patterns)
    assert not any(fnmatch.fnmatchcase(keys.run_registration("shop", "run-1"), p) for p in patterns)


def test_layout_keys_parse_back() -> None:
    assert keys.version_from_prefix(keys.version_prefix("shop", 12)) == 12
    assert keys.version_from_prefix(keys.models_prefix("shop") + "aliases/") is None
    assert keys.model_from_prefix(keys.models_prefix("shop")) == "shop"
    assert keys.alias_from_key("shop", keys.alias("shop", "champion")) == "champion"
    # Archived history lives beside the alias object but is not an alias
    assert keys.alias_from_key("shop", keys.alias_history_batch("shop", "champion", 0)) is None
    assert keys.deliveries_prefix("shop") in keys.dataset_prefixes("shop")


def test_the_monitor_writes_only_its_reports(template) -> None:
    # It reads captures, feedback and the registry; it writes under monitoring/ and nowhere else.
    assert _allowed(template, "MonitorFunction", "s3:PutObject") == [f"{keys.MONITORING_PREFIX}*"]

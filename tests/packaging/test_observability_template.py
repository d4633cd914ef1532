"""What the deployed functions need for Powertools: the service name and metrics namespace in every
function's environment, X-Ray write permission on every role, and tracing never switched off by the
template (only the offline stack switches it off, having no X-Ray daemon)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepml.local.lambda_runner import function_env
from stepml.local.template import SamTemplate
from stepml.observability import NAMESPACE, SERVICE


@pytest.fixture(scope="module")
def cloudformation(project_root: Path) -> dict:
    template = SamTemplate(project_root / "template.yaml")
    return template.to_cloudformation(artifact_bucket="artifacts", code_key="code.zip", region="us-east-1")


def functions(cloudformation: dict) -> dict[str, dict]:
    return {name: r["Properties"] for name, r in cloudformation["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}


def test_every_function_names_the_service_and_namespace_and_is_traced(cloudformation) -> None:
    found = functions(cloudformation)
    assert len(found) >= 9
    for name, properties in found.items():
        variables = properties["Environment"]["Variables"]
        assert variables["POWERTOOLS_SERVICE_NAME"] == SERVICE, name
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE, name
        assert "POWERTOOLS_TRACE_DISABLED" not in variables, name
        assert properties["TracingConfig"] == {"Mode": "Active"}, name


def test_every_function_role_may_write_traces(cloudformation) -> None:
    # SAM's Tracing: Active attaches AWSXrayWriteOnlyAccess (xray:PutTraceSegments, PutTelemetryRecords).
    resources = cloudformation["Resources"]
    for name, properties in functions(cloudformation).items():
        role = resources[properties["Role"]["Fn::GetAtt"][0]]["Properties"]
        assert "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess" in role["ManagedPolicyArns"], name


def test_only_the_offline_stack_switches_the_tracer_off(project_root: Path) -> None:
    spec = SamTemplate(project_root / "template.yaml").functions()["TrainFunction"]
    env = function_env(spec, function_name="train", template_variables={}, endpoint_url="http://127.0.0.1:4566",
                       region="us-east-1")
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"

"""Checks of template.yaml and the state machine that run without AWS or Docker.

`sam validate --lint` (cfn-lint: bad GetAtt, deprecated runtimes...) and SAM's own validation
(`sam validate` without lint: policy-template parameters...) each catch what the other misses;
neither looks inside the ASL file given by DefinitionUri, which statelint checks.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import stepml.errors

ASL = Path("statemachine") / "pipeline.asl.json"
# AWS's own error names: Step Functions', and Lambda's for a stopped environment.
AWS_ERROR_PREFIXES = ("States.", "Lambda.", "Sandbox.", "Runtime.", "Glue.")
RunTool = Callable[..., subprocess.CompletedProcess[str]]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``node``: states inside Parallel branches and Map processors too."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.fixture(scope="module")
def asl(project_root: Path) -> dict[str, Any]:
    return json.loads((project_root / ASL).read_text())


@pytest.fixture(scope="module")
def template(project_root: Path) -> dict[str, Any]:
    from samcli.yamlhelper import yaml_parse  # the parser sam itself uses (!Ref, !Sub...)

    return yaml_parse((project_root / "template.yaml").read_text())


@pytest.mark.slow
def test_sam_validate_lint_passes(run_tool: RunTool, sam_exe: str) -> None:
    result = run_tool([sam_exe, "validate", "--lint"])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_sam_validate_passes_sams_own_validation(run_tool: RunTool, sam_exe: str) -> None:
    # samconfig.toml turns lint on for `sam validate`, and `--lint` has no off switch: the `nolint`
    # config environment runs SAM's own (translator) validation instead.
    result = run_tool([sam_exe, "validate", "--config-env", "nolint", "--region", "us-east-1"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "basic SAM Validation" in result.stdout, "cfn-lint ran instead of SAM's validation"


def test_statelint_accepts_the_pipeline(run_tool: RunTool) -> None:
    result = run_tool(["statelint", ASL])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_error_the_state_machine_matches_is_a_stepml_error(asl: dict[str, Any]) -> None:
    # Given every name in a Retry/Catch ErrorEquals that is not an AWS-defined error
    names = {
        name
        for node in _walk(asl)
        for name in node.get("ErrorEquals", [])
        if not name.startswith(AWS_ERROR_PREFIXES)
    }
    assert names, "the pipeline matches none of stepml's errors"
    # Then each is an exception class in stepml.errors: the handler raises it, Lambda reports its
    # class name as errorType, and that is what ErrorEquals is compared with
    for name in sorted(names):
        error = getattr(stepml.errors, name, None)
        assert isinstance(error, type) and issubclass(error, Exception), (
            f"{ASL} matches {name!r}, which stepml.errors does not define"
        )


#: AWS's guidance for Lambda tasks ("Handle Lambda service exceptions", Step Functions guide):
#: retry the transient service errors, about 2 s x 6 with backoff 2.
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
}


def test_every_lambda_task_retries_service_errors_and_throttling_as_aws_advises(
    asl: dict[str, Any],
) -> None:
    # Given every Lambda task of the pipeline
    tasks = {
        name: state
        for name, state in asl["States"].items()
        if state["Type"] == "Task" and "lambda" in state["Resource"]
    }
    assert len(tasks) >= 6, sorted(tasks)
    for name, state in tasks.items():
        retriers = state.get("Retry", [])
        by_error = {error: retrier for retrier in retriers for error in retrier["ErrorEquals"]}
        # Then Lambda's transient service errors are retried at least as AWS advises
        service = [by_error.get(error) for error in sorted(LAMBDA_SERVICE_ERRORS)]
        assert all(service), f"{name!r} does not retry {sorted(LAMBDA_SERVICE_ERRORS - set(by_error))}"
        for retrier in service:
            assert retrier is not None
            assert retrier["IntervalSeconds"] >= 2 and retrier["MaxAttempts"] >= 6, name
            assert retrier["BackoffRate"] >= 2.0, name
        # And throttling has a retrier of its own, slower, capped and jittered: retried at the
        # service errors' pace, throttled runs would come back together and be throttled again
        throttled = by_error.get("Lambda.TooManyRequestsException")
        assert throttled is not None, f"{name!r} does not retry Lambda.TooManyRequestsException"
        assert throttled["ErrorEquals"] == ["Lambda.TooManyRequestsException"], name
        assert throttled["IntervalSeconds"] > service[0]["IntervalSeconds"], name  # type: ignore[index]
        assert throttled["BackoffRate"] >= 2.0 and throttled["MaxAttempts"] >= 6, name
        assert throttled["JitterStrategy"] == "FULL", name
        assert throttled["IntervalSeconds"] <= throttled["MaxDelaySeconds"] <= 900, name
        # And what Lambda reports for a stopped function (out of memory, timeout) is never retried
        # blindly: the same input would stop it again
        assert "Lambda.Unknown" not in by_error and "States.ALL" not in by_error, name


@pytest.mark.parametrize(("stage", "fail"), [("Preprocess data", "Staged table changed"),
                                           ("Train model", "Staged table changed"),
                                           ("Evaluate and register", "Staged model changed")])
def test_a_changed_staged_file_fails_the_run_with_a_readable_cause(asl: dict[str, Any], stage: str, fail: str) -> None:
    # Given the catchers of a stage that reads what an earlier one staged (Preprocess and Train the
    # Parquet tables, Evaluate the model files): the integrity error is caught before the catch-all
    states = asl["States"]
    catchers = states[stage]["Catch"]
    caught = [c for c in catchers if "ArtifactIntegrityError" in c["ErrorEquals"]]
    assert len(caught) == 1 and catchers.index(caught[0]) < len(catchers) - 1
    assert all("ArtifactIntegrityError" not in r["ErrorEquals"] for r in states[stage]["Retry"])
    # Then it reaches a Fail whose cause is the error's message (not the runtime's JSON envelope)
    explain = states[caught[0]["Next"]]
    assert explain["Type"] == "Pass" and "StringToJson" in explain["Parameters"]["Cause.$"]
    assert explain["Next"] == fail
    failure = states[explain["Next"]]
    assert failure["Type"] == "Fail" and failure["CausePath"] == "$.Cause.errorMessage"


def test_definition_substitutions_cover_the_asl(
    project_root: Path, template: dict[str, Any]
) -> None:
    # A ${Name} left unsubstituted deploys fine and fails only when the state runs.
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", (project_root / ASL).read_text()))
    machines = [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::StateMachine"
        and resource["Properties"].get("DefinitionUri") == ASL.as_posix()
    ]
    assert len(machines) == 1, f"expected one state machine using {ASL}"
    substitutions = set(machines[0].get("DefinitionSubstitutions", {}))
    assert placeholders <= substitutions, f"not substituted: {sorted(placeholders - substitutions)}"


def test_the_limits_the_state_machine_reports_are_the_functions_own(template: dict[str, Any]) -> None:
    # The readable cause of a stopped function names its MemorySize and Timeout from
    # DefinitionSubstitutions: they must be the values the function is deployed with.
    defaults = template.get("Globals", {}).get("Function", {})
    machine = next(
        r["Properties"] for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::StateMachine"
    )
    substitutions = machine.get("DefinitionSubstitutions", {})
    checked = 0
    for name, value in substitutions.items():
        for limit in ("MemorySize", "Timeout"):
            if name.endswith("Function" + limit):
                function = name[: -len(limit)]
                properties = template["Resources"][function]["Properties"]
                assert str(properties.get(limit, defaults.get(limit))) == str(value), (
                    f"{name} is {value} but {function} has {limit} "
                    f"{properties.get(limit, defaults.get(limit))}"
                )
                checked += 1
    assert checked == 14, "every pipeline function's MemorySize and Timeout is substituted"


def test_the_data_bucket_outlives_the_stack_and_refuses_plain_http(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    bucket = resources["DataBucket"]
    # Every dataset, model and alias history is in it: deleting the stack must not delete them.
    assert bucket.get("DeletionPolicy") == "Retain" and bucket.get("UpdateReplacePolicy") == "Retain"
    # Every bucket (the access-log bucket too, when AccessLogging is on) refuses plain HTTP.
    buckets = sorted(name for name, r in resources.items() if r["Type"] == "AWS::S3::Bucket")
    policies = {
        r["Properties"]["Bucket"]["Ref"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::S3::BucketPolicy"
    }
    assert sorted(policies) == buckets and "DataBucket" in buckets
    for name in buckets:
        deny = [
            s for s in policies[name]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert deny and deny[0]["Principal"] == "*" and deny[0]["Action"] == "s3:*", name
        # The bucket itself and every object in it.
        assert deny[0]["Resource"] == [
            {"Fn::GetAtt": [name, "Arn"]}, {"Fn::Sub": f"${{{name}.Arn}}/*"}
        ], name


def test_lifecycle_rules_expire_scratch_and_old_versions_but_never_current_models(
    template: dict[str, Any],
) -> None:
    rules = template["Resources"]["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    by_prefix = {r.get("Prefix", ""): r for r in rules}
    assert by_prefix[""]["NoncurrentVersionExpiration"] == {"NoncurrentDays": {"Ref": "NoncurrentVersionDays"}}
    assert by_prefix[""]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert "ExpirationInDays" not in by_prefix[""], "current objects (models, aliases) never expire"
    for scratch in ("preprocessed/", "staging/"):
        assert by_prefix[scratch]["ExpirationInDays"] == {"Ref": "ScratchDays"}
    # The audit trail of predictions is kept CaptureRetentionDays (default 90).
    for capture in ("capture/", "capture-errors/"):
        assert by_prefix[capture]["ExpirationInDays"] == {"Ref": "CaptureRetentionDays"}
    assert template["Parameters"]["CaptureRetentionDays"]["Default"] == 90
    # Only scratch and capture prefixes expire current objects: models/, runs/, raw/, config/ and
    # feedback/ are kept.
    expiring = {p for p, r in by_prefix.items() if "ExpirationInDays" in r}
    assert expiring == {"preprocessed/", "staging/", "capture/", "capture-errors/"}


def test_capture_lines_reach_the_bucket_through_logs_and_firehose_with_least_privilege(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    subscription = resources["CaptureSubscriptionFilter"]["Properties"]
    assert subscription["LogGroupName"] == {"Ref": "InferenceFunctionLogGroup"}
    assert "stepml_capture" in subscription["FilterPattern"]
    assert subscription["DestinationArn"] == {"Fn::GetAtt": ["CaptureDeliveryStream", "Arn"]}
    # logs -> firehose: put records into this stream only
    logs_role = resources["CaptureSubscriptionRole"]["Properties"]
    assert logs_role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "logs.amazonaws.com"}
    (statement,) = logs_role["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["firehose:PutRecord", "firehose:PutRecordBatch"]
    assert statement["Resource"] == {"Fn::GetAtt": ["CaptureDeliveryStream", "Arn"]}
    # firehose -> s3: write under capture/ and capture-errors/ only, read nothing
    delivery_role = resources["CaptureDeliveryRole"]["Properties"]
    trust = delivery_role["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "firehose.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "AWS::AccountId"}}}
    writes = [s for s in delivery_role["Policies"][0]["PolicyDocument"]["Statement"] if "s3:PutObject" in s["Action"]]
    assert [w["Resource"] for w in writes] == [[
        {"Fn::Sub": "${DataBucket.Arn}/capture/*"}, {"Fn::Sub": "${DataBucket.Arn}/capture-errors/*"}]]
    assert not any("s3:GetObject" in s["Action"] for s in delivery_role["Policies"][0]["PolicyDocument"]["Statement"])
    destination = resources["CaptureDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    assert destination["Prefix"] == "capture/!{partitionKeyFromQuery:model}/dt=!{partitionKeyFromQuery:dt}/"
    assert destination["DynamicPartitioningConfiguration"] == {"Enabled": True}
    kinds = [p["Type"] for p in destination["ProcessingConfiguration"]["Processors"]]
    assert kinds == ["Decompression", "CloudWatchLogProcessing", "MetadataExtraction", "AppendDelimiterToRecord"]


def test_every_alarm_the_operators_need_exists_and_notifies(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    alarms = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    functions = [k for k, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    watched = {
        (p.get("Namespace"), p.get("MetricName"), str((p.get("Dimensions") or [{}])[0].get("Value")))
        for p in alarms.values()
    }
    for function in functions:
        for metric in ("Errors", "Throttles"):
            assert ("AWS/Lambda", metric, str({"Ref": function})) in watched, f"{function} {metric}"
    api = str({"Ref": "ServerlessHttpApi"})
    assert ("AWS/ApiGateway", "5xx", api) in watched
    latency = next(p for p in alarms.values() if p.get("MetricName") == "Latency")
    assert latency["ExtendedStatistic"] == "p99" and latency["Threshold"] == {"Ref": "ApiLatencyAlarmMs"}
    failed = alarms["PipelineFailedAlarm"]
    stats = {q["MetricStat"]["Metric"]["MetricName"] for q in failed["Metrics"] if "MetricStat" in q}
    assert stats == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    dlq = str({"Fn::GetAtt": ["EventsDeadLetterQueue", "QueueName"]})
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq) in watched
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}], name
    # the monitor's drift figures, over every model (a Metrics Insights query each)
    insights = sorted(q["Expression"] for p in alarms.values() for q in p.get("Metrics", []) if "SELECT" in q.get("Expression", ""))
    assert insights == ["SELECT MAX(MaxFeaturePSI) FROM SCHEMA(stepml, model, service, stage)",
                        "SELECT MAX(PredictionPSI) FROM SCHEMA(stepml, model, service, stage)"]
    assert len(alarms) == 2 * len(functions) + 6


def test_both_rules_retry_then_dead_letter(template: dict[str, Any]) -> None:
    rules = [
        event["Properties"]
        for resource in template["Resources"].values()
        for event in (resource.get("Properties", {}).get("Events") or {}).values()
        if event["Type"] == "EventBridgeRule"
    ]
    assert len(rules) == 2
    for rule in rules:
        assert rule["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}}
        assert rule["RetryPolicy"]["MaximumRetryAttempts"] > 0


def test_every_function_and_the_pipeline_log_with_retention_and_trace(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert template["Globals"]["Function"]["Tracing"] == "Active"
    groups = {
        str(r["Properties"]["LogGroupName"]): r["Properties"]
        for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"
    }
    functions = [k for k, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    for function in functions:
        group = groups[str({"Fn::Sub": f"/aws/lambda/${{{function}}}"})]
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}, function
    machine = resources["PipelineStateMachine"]["Properties"]
    assert machine["Tracing"] == {"Enabled": True}
    assert machine["Logging"]["Level"] == "ERROR" and machine["Logging"]["IncludeExecutionData"] is False
    assert machine["Logging"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"] == {
        "Fn::GetAtt": ["PipelineLogGroup", "Arn"]
    }

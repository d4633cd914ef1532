"""The offline stack end to end, on a tiny project written into a temp folder.

Given a SAM template whose functions are small echo/raise handlers (no ML), When files land in the
bucket, requests hit the API, or functions are invoked, Then the local stack behaves as the same
template deployed on AWS would: S3 → EventBridge → Step Functions → Lambda, Retry/Catch on the
exception class names, API Gateway HTTP API events and responses, and stack outputs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from stepml.local import LocalStack, LocalStackError, invoke_function
from stepml.stack import Stack

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    Timeout: 30
    # Room for the environment's Python: an environment starts from its fork server's preloaded
    # libraries (~135 MB resident), over the default 128 MB, and the limit is enforced.
    MemorySize: 512
    # The handlers import stepml: as on AWS, only a layer that ships it lets them.
    Layers: [!Ref MLLayer]
    Environment:
      Variables:
        STEPML_BUCKET: !Ref DataBucket
        SHARED: from-globals
Resources:
  MLLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
  DataBucket:
    Type: AWS::S3::Bucket
    Properties:
      NotificationConfiguration:
        EventBridgeConfiguration:
          EventBridgeEnabled: true
      VersioningConfiguration:
        Status: Enabled
  ValidateFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/validate/
      Handler: app.lambda_handler
  FlakyFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/flaky/
      Handler: app.lambda_handler
      Environment:
        Variables:
          ONLY_FLAKY: "yes"
  ApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/api/
      Handler: app.lambda_handler
      Events:
        Predict:
          Type: HttpApi
          Properties:
            Path: /models/{name}/predict
            Method: POST
        Describe:
          Type: HttpApi
          Properties:
            Path: /models/{name}
            Method: GET
  Pipeline:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: statemachine/pipeline.asl.json
      DefinitionSubstitutions:
        ValidateFunctionArn: !GetAtt ValidateFunction.Arn
        FlakyFunctionArn: !GetAtt FlakyFunction.Arn
      Policies:
        - LambdaInvokePolicy:
            FunctionName: !Ref ValidateFunction
        - LambdaInvokePolicy:
            FunctionName: !Ref FlakyFunction
      Events:
        CsvUploaded:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.s3]
              detail-type: [Object Created]
              detail:
                bucket:
                  name: [!Ref DataBucket]
                object:
                  key: [{ "wildcard": "raw/*.csv" }]
Outputs:
  BucketName:
    Value: !Ref DataBucket
  StateMachineArn:
    Value: !Ref Pipeline
  ApiUrl:
    Value: !Sub "https://${ServerlessHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"
"""

# Both Task forms: lambda:invoke with a Payload (Validate) and the bare function ARN (Flaky).
DEFINITION = {
    "StartAt": "Validate",
    "States": {
        "Validate": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {
                "FunctionName": "${ValidateFunctionArn}",
                "Payload": {"event.$": "$", "run_id.$": "$$.Execution.Name"},
            },
            "OutputPath": "$.Payload",
            "Catch": [{"ErrorEquals": ["DataError"], "ResultPath": "$.error", "Next": "Rejected"}],
            "Next": "Flaky",
        },
        "Flaky": {
            "Type": "Task",
            "Resource": "${FlakyFunctionArn}",
            "Retry": [
                {
                    "ErrorEquals": ["TransientError"],
                    "IntervalSeconds": 1,
                    "MaxAttempts": 2,
                    "BackoffRate": 1.0,
                }
            ],
            "End": True,
        },
        "Rejected": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
    },
}

HANDLERS = {
    "validate": """
        from stepml.errors import DataError
        from stepml.settings import current_environment, load_settings

        def lambda_handler(event, context):
            key = event["event"]["detail"]["object"]["key"]
            if "bad" in key:
                raise DataError(f"{key} has no target column")
            env = current_environment()
            return {
                "key": key,
                "run_id": event["run_id"],
                "detail": event["event"]["detail"],
                "bucket": load_settings().bucket,
                "env": {k: env.get(k) for k in ("SHARED", "ONLY_FLAKY", "AWS_ENDPOINT_URL", "AWS_REGION")},
                "function_name": context.function_name,
                "remaining_ms": context.get_remaining_time_in_millis(),
            }
    """,
    "flaky": """
        from stepml.errors import TransientError
        from stepml.settings import current_environment

        _failed_once = set()

        def lambda_handler(event, context):
            if "flaky" in event.get("key", "") and event["run_id"] not in _failed_once:
                _failed_once.add(event["run_id"])
                raise TransientError("throttled, try again")
            return {**event, "only_flaky": current_environment().get("ONLY_FLAKY")}
    """,
    "api": """
        import json

        def lambda_handler(event, context):
            name = event["pathParameters"]["name"]
            if name == "crash":
                raise RuntimeError("secret internals")
            if name == "bare":
                return {"name": name}
            if name == "missing":
                return {"statusCode": 404, "body": json.dumps({"error": f"no model {name}"})}
            return {
                "statusCode": 200,
                "headers": {"Content-Type": "application/json", "X-Model": name},
                "body": json.dumps({"name": name, "event": event}),
            }
    """,
}


def write_project(root: Path) -> Path:
    """A minimal SAM project: the template above, its ASL file, three tiny handlers and the
    project's ML layer (its Makefile and requirements: what the functions may import)."""
    shutil.copytree(Path(__file__).resolve().parents[2] / "layer", root / "layer")
    (root / "statemachine").mkdir(parents=True)
    (root / "template.yaml").write_text(TEMPLATE)
    (root / "statemachine" / "pipeline.asl.json").write_text(json.dumps(DEFINITION, indent=2))
    for name, source in HANDLERS.items():
        (root / "functions" / name).mkdir(parents=True)
        (root / "functions" / name / "app.py").write_text(textwrap.dedent(source))
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def stack(project: Path) -> Iterator[LocalStack]:
    # Its own stack name: the e2e session stack ("stepml") may still run in this process.
    with LocalStack(project, port=0, api_port=0, stack_name="stepml-functional") as running:
        yield running


def finished(stack: LocalStack, execution_arn: str, timeout: float = 30) -> dict[str, Any]:
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        execution = sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING" or time.monotonic() > deadline:
            return execution
        time.sleep(0.05)


def upload_and_wait(stack: LocalStack, key: str) -> dict[str, Any]:
    """Put a CSV at ``key`` and return the finished execution it started."""
    sfn = stack.client("stepfunctions")
    before = {
        e["executionArn"]
        for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    }
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=b"a,b\n1,2\n")
    # EventBridge delivery happens inside the S3 request: the execution exists once put returns.
    started = [
        e
        for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
        if e["executionArn"] not in before
    ]
    assert len(started) == 1, f"{key} started {len(started)} executions"
    return finished(stack, started[0]["executionArn"])


def test_csv_upload_runs_the_state_machine_with_aws_shaped_event(stack: LocalStack) -> None:
    # Given the deployed stack, When a CSV lands under raw/<dataset>/,
    execution = upload_and_wait(stack, "raw/x/f.csv")

    # Then the execution succeeds, is named after the dataset, and the handler got AWS's event.
    assert execution["status"] == "SUCCEEDED", execution
    assert execution["name"].startswith("x-") and len(execution["name"]) <= 80
    output = json.loads(execution["output"])
    assert output["run_id"] == execution["name"]
    assert output["bucket"] == stack.bucket
    obj = output["detail"]["object"]
    assert obj["key"] == "raw/x/f.csv" and obj["size"] == 8
    assert "etag" in obj and "eTag" not in obj and obj["version-id"]
    assert output["detail"]["bucket"]["name"] == stack.bucket


def test_handlers_get_their_own_environment_not_the_process_one(stack: LocalStack) -> None:
    execution = upload_and_wait(stack, "raw/env/f.csv")
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])

    assert output["env"] == {
        "SHARED": "from-globals",
        "ONLY_FLAKY": None,  # FlakyFunction's variable does not leak into ValidateFunction
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        "AWS_REGION": "us-east-1",
    }
    assert output["only_flaky"] == "yes"
    assert output["function_name"] == stack.function_name("ValidateFunction")
    assert 0 < output["remaining_ms"] <= 30_000
    assert "STEPML_BUCKET" not in os.environ


def test_data_error_is_caught_by_name_and_fails_with_a_readable_cause(stack: LocalStack) -> None:
    execution = upload_and_wait(stack, "raw/x/bad.csv")

    assert execution["status"] == "FAILED"
    assert execution["error"] == "DataError"
    cause = json.loads(execution["cause"])
    assert cause["errorType"] == "DataError"
    assert cause["errorMessage"] == "raw/x/bad.csv has no target column"
    assert any("raise DataError" in line for line in cause["stackTrace"])


def test_transient_error_is_retried_then_succeeds(stack: LocalStack) -> None:
    execution = upload_and_wait(stack, "raw/flaky/f.csv")

    assert execution["status"] == "SUCCEEDED", execution
    history = stack.client("stepfunctions").get_execution_history(
        executionArn=execution["executionArn"]
    )["events"]
    failures = [e for e in history if e["type"] == "LambdaFunctionFailed"]
    assert [f["lambdaFunctionFailedEventDetails"]["error"] for f in failures] == ["TransientError"]
    assert sum(e["type"] == "LambdaFunctionSucceeded" for e in history) == 1


@pytest.mark.parametrize("key", ["other/f.csv", "raw/x/notes.txt", "rawish.csv"])
def test_objects_outside_the_rule_pattern_start_nothing(stack: LocalStack, key: str) -> None:
    sfn = stack.client("stepfunctions")
    count = len(sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"])
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=b"x")

    assert len(sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]) == count


def test_tagging_an_object_is_not_an_upload(stack: LocalStack) -> None:
    # moto also emits "Object Tags Added"; the rule's detail-type pattern must filter it out.
    upload_and_wait(stack, "raw/tags/f.csv")
    sfn = stack.client("stepfunctions")
    count = len(sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"])
    stack.client("s3").put_object_tagging(
        Bucket=stack.bucket, Key="raw/tags/f.csv", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
    )
    assert len(sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]) == count


def test_stack_outputs_are_true_locally(stack: LocalStack) -> None:
    cloudformation = stack.client("cloudformation")
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in cloudformation.describe_stacks(StackName="stepml-functional")["Stacks"][0][
            "Outputs"
        ]
    }

    assert set(outputs) == {"BucketName", "StateMachineArn", "ApiUrl"}
    assert outputs == stack.outputs
    assert outputs["ApiUrl"] == stack.api_url and outputs["ApiUrl"].startswith("http://127.0.0.1:")
    stack.client("s3").head_bucket(Bucket=outputs["BucketName"])
    machine = stack.client("stepfunctions").describe_state_machine(
        stateMachineArn=outputs["StateMachineArn"]
    )
    assert "${" not in machine["definition"]
    assert stack.function_name("ValidateFunction") in machine["definition"]


def test_plain_boto3_clients_with_endpoint_url_drive_the_pipeline(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given clients built the ordinary way (credentials from the environment: the administrator's
    # keys, as `stepml local up` prints them), as the CLI does,
    for name, value in stack.client_environment().items():
        monkeypatch.setenv(name, value)
    # (a new session: boto3's default one keeps the credentials it resolved first, in this process
    # a test's fake ones)
    session = boto3.session.Session()
    s3 = session.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    sfn = session.client("stepfunctions", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    cfn = session.client("cloudformation", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in cfn.describe_stacks(StackName="stepml-functional")["Stacks"][0]["Outputs"]
    }

    # When a file is copied in,
    s3.put_object(Bucket=outputs["BucketName"], Key="raw/boto/data.csv", Body=b"a\n1\n")
    latest = max(
        sfn.list_executions(stateMachineArn=outputs["StateMachineArn"])["executions"],
        key=lambda e: e["startDate"],
    )
    finished(stack, latest["executionArn"])

    # Then its execution and history are there.
    history = sfn.get_execution_history(executionArn=latest["executionArn"])["events"]
    types = [e["type"] for e in history]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    assert (
        json.loads(history[0]["executionStartedEventDetails"]["input"])["detail"]["object"]["key"]
        == "raw/boto/data.csv"
    )


# -- the HTTP API --------------------------------------------------------------------------------


def http(
    stack: LocalStack, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        stack.api_url + path.lstrip("/"),
        data=body,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                json.loads(response.read()),
            )
    except urllib.error.HTTPError as error:
        return (
            error.code,
            {k.lower(): v for k, v in error.headers.items()},
            json.loads(error.read()),
        )


def test_api_routes_post_predict_with_a_v2_event(stack: LocalStack) -> None:
    status, headers, body = http(
        stack, "POST", "/models/adult/predict?limit=2&limit=3", b'{"rows": [{"age": 39}]}'
    )

    assert status == 200 and headers["x-model"] == "adult"
    event = body["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /models/{name}/predict"
    assert event["rawPath"] == "/models/adult/predict"
    assert event["rawQueryString"] == "limit=2&limit=3"
    assert event["queryStringParameters"] == {"limit": "2,3"}
    assert event["pathParameters"] == {"name": "adult"}
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["path"] == "/models/adult/predict"
    assert event["headers"]["content-type"] == "application/json"
    assert (
        json.loads(event["body"]) == {"rows": [{"age": 39}]} and event["isBase64Encoded"] is False
    )


def test_api_returns_the_handlers_status_and_infers_bare_json(stack: LocalStack) -> None:
    status, headers, body = http(stack, "GET", "/models/missing")
    assert (status, body) == (404, {"error": "no model missing"})
    assert headers["content-type"] == "application/json"  # API Gateway's default

    status, headers, body = http(stack, "GET", "/models/bare")
    assert (status, body) == (200, {"name": "bare"}) and headers[
        "content-type"
    ] == "application/json"


def test_api_answers_404_for_unknown_routes_and_500_without_internals(stack: LocalStack) -> None:
    assert http(stack, "GET", "/nothing/here")[::2] == (404, {"message": "Not Found"})
    assert http(stack, "DELETE", "/models/adult")[::2] == (404, {"message": "Not Found"})
    assert http(stack, "GET", "/models/crash")[::2] == (500, {"message": "Internal Server Error"})


# -- invoking one function -------------------------------------------------------------------------


def test_invoke_through_the_stack_returns_the_runtime_error_payload(
    stack: LocalStack, project: Path
) -> None:
    event = {"event": {"detail": {"object": {"key": "raw/x/bad.csv"}}}, "run_id": "r1"}

    invocation = invoke_function(project, "validate", event, stack=stack)

    assert invocation.errored and invocation.error_type == "DataError"
    assert set(invocation.payload) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    response = stack.client("lambda").invoke(
        FunctionName=stack.function_name("ValidateFunction"), Payload=json.dumps(event)
    )
    assert (
        response["FunctionError"]
        and json.loads(response["Payload"].read())["errorType"] == "DataError"
    )


def test_invoke_against_an_endpoint_runs_there_with_the_deployed_environment(
    stack: LocalStack, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `stepml local invoke` does when `stepml local up` serves the stack from another process:
    # signed as the user (the administrator), run by that stack in the function's environment.
    for name, value in stack.client_environment().items():
        monkeypatch.setenv(name, value)
    event = {"event": {"detail": {"object": {"key": "raw/x/ok.csv"}}}, "run_id": "r2"}

    invocation = invoke_function(
        project,
        "ValidateFunction",
        event,
        endpoint_url=stack.endpoint_url,
        stack_name="stepml-functional",
    )

    assert not invocation.errored, invocation.payload
    assert invocation.payload["bucket"] == stack.bucket
    assert invocation.payload["env"]["AWS_ENDPOINT_URL"] == stack.endpoint_url


def test_unknown_function_names_the_known_ones(stack: LocalStack) -> None:
    with pytest.raises(KeyError, match="ValidateFunction"):
        stack.function_name("nope")


def test_a_second_stack_with_the_same_name_is_refused(stack: LocalStack, project: Path) -> None:
    with pytest.raises(LocalStackError, match="already runs"):
        LocalStack(project, port=0, api_port=0, stack_name="stepml-functional").start()
    # The refused stack cleaned up after itself; the running one still serves.
    assert stack.client("s3").head_bucket(Bucket=stack.bucket)


def test_a_stack_started_here_leaves_the_processs_default_credentials_to_the_environment(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a process whose boto3 default session has read no credentials yet, and an environment
    # naming credentials of the caller's own (the fake ones every test gets)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    # When a stack starts in it, and then the environment names that stack's administrator (as
    # `stepml smoke` run in-process by click's CliRunner gets it)
    with LocalStack(project, port=0, api_port=0, stack_name="stepml-default-chain") as started:
        for name, value in started.client_environment().items():
            monkeypatch.setenv(name, value)

        # Then a default-chain client made now signs as the administrator, not as whoever the
        # environment named while the stack deployed (that was InvalidClientTokenId)
        found = Stack(stack_name="stepml-default-chain", endpoint_url=started.endpoint_url).outputs
        assert found == started.outputs


def test_the_last_stack_to_stop_gives_the_process_its_moto_settings_back(project: Path) -> None:
    # Given a fresh process (this one may run other stacks) whose environment names its own moto port
    # and none of the settings a stack turns on
    script = textwrap.dedent(f"""
        import json, os
        from stepml.local import LocalStack
        from stepml.local.endpoint import MOTO_ENVIRONMENT
        os.environ["MOTO_PORT"] = "5999"
        for name in MOTO_ENVIRONMENT[1:]:
            os.environ.pop(name, None)
        seen = {{}}
        # When two stacks start, one after the other, and stop in the order they started
        first = LocalStack({str(project)!r}, port=0, api_port=0, stack_name="stepml-env-one").start()
        second = LocalStack({str(project)!r}, port=0, api_port=0, stack_name="stepml-env-two").start()
        seen["running"] = {{name: os.environ.get(name) for name in MOTO_ENVIRONMENT}}
        first.stop()
        seen["one_left"] = os.environ.get("MOTO_PORT") == str(second.port)
        second.stop()
        seen["after"] = {{name: os.environ.get(name) for name in MOTO_ENVIRONMENT}}
        print(json.dumps(seen))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("MOTO_IAM_LOAD_MANAGED_POLICIES", "MOTO_PORT")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # Then while they run, moto is pointed at them and asked for AWS's managed policies
    assert seen["running"]["MOTO_IAM_LOAD_MANAGED_POLICIES"] == "true"
    assert seen["running"]["MOTO_PORT"] != "5999"
    assert seen["one_left"], "the interpreter's MOTO_PORT must follow a stack that still runs"
    # And once the last one stopped the process has its own settings again
    assert seen["after"] == {"MOTO_PORT": "5999", "MOTO_IAM_LOAD_MANAGED_POLICIES": None,
                             "MOTO_LAMBDA_CONCURRENCY_QUOTA": None}

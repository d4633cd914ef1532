"""The offline stack refuses what AWS refuses: credentials, IAM policies and Lambda's limits.

Each test deploys a variant of the project's own template.yaml (a copy beside symlinks to the real
functions and state machine) and runs the real pipeline on it, as a user changing the template would.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepml.local import LocalStack
from tests.conftest import ROOT
from tests.e2e.conftest import upload, wait_for_execution
from tests.e2e.test_pipeline import model_keys, synthetic_csv

VALIDATE_RUNS_STATEMENT = """\
            - Effect: Allow
              Action: [s3:GetObject, s3:PutObject]
              Resource: !Sub "arn:${AWS::Partition}:s3:::${DataBucket}/runs/*"
"""


VALIDATE_LIMITS = {"ValidateFunctionTimeout": "300", "ValidateFunctionMemorySize": "2048"}


def project_variant(tmp_path: Path, edit) -> Path:
    """A project folder whose template.yaml is ``edit(project's template)``; the rest is linked."""
    for name in ("functions", "statemachine", "layer", "layer-inference", "events"):
        (tmp_path / name).symlink_to(ROOT / name)
    text = (ROOT / "template.yaml").read_text()
    changed = edit(text) if edit else text
    assert edit is None or changed != text, "the edit did not apply to template.yaml"
    (tmp_path / "template.yaml").write_text(changed)
    return tmp_path


def replace_validate(text: str, code_dir: Path, extra: str, limits: dict[str, str]) -> str:
    """Point ValidateFunction at ``code_dir`` with ``extra`` properties, and the ASL's copy of its limits."""
    text = text.replace(
        "      CodeUri: functions/validate/\n", f"      CodeUri: {code_dir}/\n{extra}", 1
    )
    for key, value in limits.items():
        text = text.replace(f'        {key}: "{VALIDATE_LIMITS[key]}"', f'        {key}: "{value}"', 1)
    return text


def handler(tmp_path: Path, source: str) -> Path:
    code = tmp_path / "custom-validate"
    code.mkdir()
    (code / "app.py").write_text(textwrap.dedent(source))
    return code


@pytest.fixture
def variant_stack(tmp_path: Path) -> Iterator:
    started: list[LocalStack] = []

    def start(edit) -> LocalStack:
        project = project_variant(tmp_path, edit)
        stack = LocalStack(project, port=0, api_port=0, stack_name=f"strict-{uuid.uuid4().hex[:8]}")
        started.append(stack.start())
        return stack

    yield start
    for stack in started:
        stack.stop()


def test_keys_without_their_session_token_are_refused_and_the_default_chain_works(variant_stack, tmp_path) -> None:
    # Given a function that builds its S3 client as load_settings did before (key and secret copied
    # from the environment, the session token dropped), and one that uses the fixed load_settings
    code = handler(
        tmp_path,
        """
        import os, boto3
        from stepml.settings import load_settings

        def lambda_handler(event, context):
            settings = load_settings()
            if event.get("old"):
                s3 = boto3.client(
                    "s3",
                    endpoint_url=settings.endpoint_url,
                    region_name=settings.region,
                    aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                )
            else:
                s3 = settings.client("s3")
            return s3.get_object(Bucket=settings.bucket, Key="raw/x/a.csv")["Body"].read().decode()
        """,
    )
    stack = variant_stack(lambda text: replace_validate(text, code, "", {}))
    stack.client("s3").put_object(Bucket=stack.bucket, Key="raw/x/a.csv", Body=b"a,b\n1,2\n")

    # When each is invoked
    old = stack.invoke("ValidateFunction", {"old": True})
    fixed = stack.invoke("ValidateFunction", {})

    # Then AWS's answer to role keys without their token, and the object with the whole chain
    assert old.errored and "InvalidAccessKeyId" in old.payload["errorMessage"]
    assert not fixed.errored and fixed.payload == "a,b\n1,2\n"


def test_a_function_without_a_policy_statement_fails_with_access_denied(variant_stack) -> None:
    # Given Validate's role without its statement for runs/* (where it writes its report)
    stack = variant_stack(lambda text: text.replace(VALIDATE_RUNS_STATEMENT, "", 1))

    # When a CSV is uploaded
    since = upload(stack, "raw/denied/data.csv", synthetic_csv(100, 1))
    execution = wait_for_execution(stack, since=since, key="raw/denied/data.csv")

    # Then the run fails with AWS's AccessDenied, naming the action and the resource
    assert execution["status"] == "FAILED"
    cause = execution["cause"]
    assert "AccessDenied" in cause and "s3:PutObject" in cause
    assert f"arn:aws:s3:::{stack.bucket}/runs/denied/" in cause
    assert "assumed-role/" in cause and "ValidateFunctionRole" in cause
    assert model_keys(stack, "denied") == []


def test_a_caller_without_credentials_of_the_stack_is_refused(variant_stack) -> None:
    import boto3

    stack = variant_stack(None)
    stranger = boto3.client(
        "s3",
        endpoint_url=stack.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )

    with pytest.raises(Exception, match="InvalidAccessKeyId"):
        stranger.list_objects_v2(Bucket=stack.bucket)
    assert stack.client("s3").list_objects_v2(Bucket=stack.bucket)["KeyCount"] == 0


def test_a_handler_past_its_timeout_fails_the_run_with_a_readable_cause(variant_stack, tmp_path) -> None:
    code = handler(tmp_path, "import time\ndef lambda_handler(event, context):\n    time.sleep(60)\n")
    stack = variant_stack(
        lambda text: replace_validate(text, code, "      Timeout: 2\n", {"ValidateFunctionTimeout": "2"})
    )

    since = upload(stack, "raw/slow/data.csv", synthetic_csv(100, 1))
    execution = wait_for_execution(stack, since=since, key="raw/slow/data.csv", timeout=120)

    assert execution["status"] == "FAILED" and execution["error"] == "Lambda.Unknown"
    cause = execution["cause"]
    assert cause.startswith("Validate dataset ran out of time: ValidateFunction has Timeout 2 s")
    assert "Raise Timeout of ValidateFunction in template.yaml" in cause
    assert model_keys(stack, "slow") == []


def test_a_handler_past_its_memory_size_fails_the_run_with_a_readable_cause(variant_stack, tmp_path) -> None:
    code = handler(
        tmp_path,
        """
        def lambda_handler(event, context):
            block = bytearray(700 * 1024 * 1024)
            for i in range(0, len(block), 4096):
                block[i] = 1
            return len(block)
        """,
    )
    stack = variant_stack(
        lambda text: replace_validate(text, code, "      MemorySize: 512\n", {"ValidateFunctionMemorySize": "512"})
    )

    body = synthetic_csv(100, 1)
    since = upload(stack, "raw/hungry/data.csv", body)
    execution = wait_for_execution(stack, since=since, key="raw/hungry/data.csv", timeout=120)

    assert execution["status"] == "FAILED" and execution["error"] == "Lambda.Unknown"
    cause = execution["cause"]
    assert cause.startswith(
        f"Validate dataset ran out of memory: ValidateFunction has MemorySize 512 MB and the upload is {len(body)} bytes"
    )
    assert "Raise MemorySize of ValidateFunction" in cause
    history = stack.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])
    failed = [e for e in history["events"] if e["type"] == "TaskFailed"]
    assert failed and "Runtime.OutOfMemory" in json.dumps(failed[-1]["taskFailedEventDetails"])


def test_a_test_file_under_data_is_readable_by_the_pipeline(variant_stack) -> None:
    # On main before the strict stack, Validate/Preprocess could read only raw/ and config/: a
    # split.test_file anywhere else was refused on AWS (403) and the run failed.
    stack = variant_stack(None)
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.bucket, Key="data/shop/test.csv", Body=synthetic_csv(120, 7))
    s3.put_object(
        Bucket=stack.bucket,
        Key="config/shop.yaml",
        Body=b"target: label\nrecipe: seed-a\nsplit: {test_file: data/shop/test.csv}\n",
    )

    since = upload(stack, "raw/shop/train.csv", synthetic_csv(300, 8))
    execution = wait_for_execution(stack, since=since, key="raw/shop/train.csv")

    assert execution["status"] == "SUCCEEDED", execution.get("cause")


VALIDATE_LIST_BUCKET = """\
            - Effect: Allow
              Action: [s3:ListBucket]
              Resource: !Sub "arn:${AWS::Partition}:s3:::${DataBucket}"
"""


READ_A_MISSING_KEY = """
from stepml.settings import load_settings

def lambda_handler(event, context):
    settings = load_settings()
    try:
        settings.client("s3").get_object(Bucket=settings.bucket, Key="config/nothing.yaml")
    except Exception as exc:
        return exc.response["Error"]["Code"] + ": " + exc.response["Error"].get("Message", "")
"""


@pytest.mark.parametrize(("list_bucket", "code"), [(False, "AccessDenied"), (True, "NoSuchKey")])
def test_a_missing_key_is_access_denied_unless_the_role_may_list_the_bucket(
    variant_stack, tmp_path, list_bucket: bool, code: str
) -> None:
    # Given a function that reads a key that does not exist, with or without s3:ListBucket
    def edit(text: str) -> str:
        text = replace_validate(text, handler(tmp_path, READ_A_MISSING_KEY), "", {})
        if list_bucket:
            return text
        start = text.index("  ValidateFunction:\n")  # its own statement, not an earlier function's
        return text[:start] + text[start:].replace(VALIDATE_LIST_BUCKET, "", 1)

    stack = variant_stack(edit)

    # When it runs
    answer = stack.invoke("ValidateFunction", {}).payload

    # Then S3 answers as AWS does: 403 AccessDenied naming s3:ListBucket without it, 404 with it
    assert answer.startswith(code), answer
    assert ("s3:ListBucket" in answer) is not list_bucket


def test_a_result_over_256_kb_fails_the_state_as_on_aws(variant_stack, tmp_path) -> None:
    code = handler(tmp_path, "def lambda_handler(event, context):\n    return {'blob': 'x' * 300_000}\n")
    stack = variant_stack(lambda text: replace_validate(text, code, "", {}))

    since = upload(stack, "raw/chatty/data.csv", synthetic_csv(100, 1))
    execution = wait_for_execution(stack, since=since, key="raw/chatty/data.csv", timeout=120)

    assert execution["status"] == "FAILED" and execution["error"] == "States.DataLimitExceeded"


def test_an_eventbridge_rule_whose_role_may_not_start_the_pipeline_starts_nothing(variant_stack) -> None:
    # Given the rule's role stripped of its states:StartExecution policy (by an administrator)
    stack = variant_stack(None)
    iam = stack.client("iam")
    every_role = [r for page in iam.get_paginator("list_roles").paginate() for r in page["Roles"]]
    roles = [r["RoleName"] for r in every_role if "CsvUploadedRole" in r["RoleName"]
             and r["RoleName"].startswith(stack.stack_name)]
    assert len(roles) == 1, roles
    for policy in iam.list_role_policies(RoleName=roles[0])["PolicyNames"]:
        iam.delete_role_policy(RoleName=roles[0], PolicyName=policy)

    # When a CSV lands under raw/
    stack.client("s3").put_object(Bucket=stack.bucket, Key="raw/norole/data.csv", Body=synthetic_csv(50, 1))

    # Then EventBridge cannot start the state machine: no execution, as on AWS
    executions = stack.client("stepfunctions").list_executions(stateMachineArn=stack.state_machine_arn)
    assert executions["executions"] == []


def test_the_offline_bucket_carries_the_templates_policy_and_lifecycle_rules(local_stack: LocalStack) -> None:
    # moto's CloudFormation skips both; the local stack applies them itself, resolved.
    s3 = local_stack.client("s3")
    policy = json.loads(s3.get_bucket_policy(Bucket=local_stack.bucket)["Policy"])
    (deny,) = policy["Statement"]
    assert deny["Resource"] == [f"arn:aws:s3:::{local_stack.bucket}", f"arn:aws:s3:::{local_stack.bucket}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=local_stack.bucket)["Rules"]}
    assert rules["expire-old-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert rules["expire-staged-artifacts"] == {
        "ID": "expire-staged-artifacts", "Status": "Enabled", "Filter": {"Prefix": "staging/"},
        "Expiration": {"Days": 14},
    }


def test_a_bucket_policys_explicit_deny_refuses_even_the_administrator(local_stack: LocalStack) -> None:
    from stepml.local.iam import bucket_policy_denies

    s3 = local_stack.client("s3")
    bucket = local_stack.bucket
    original = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    # The template's TLS-only statement refuses plain HTTP as AWS would; the loopback endpoint
    # counts as secure transport, so it refuses nothing here.
    assert bucket_policy_denies(original, "s3:GetObject", f"arn:aws:s3:::{bucket}/raw/x.csv",
                                {"aws:SecureTransport": "false"})
    assert not bucket_policy_denies(original, "s3:GetObject", f"arn:aws:s3:::{bucket}/raw/x.csv")
    s3.put_object(Bucket=bucket, Key="secret/kept.txt", Body=b"x")
    policy = json.loads(original)
    policy["Statement"].append({
        "Sid": "NoSecrets", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/secret/*",
    })
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    try:
        with pytest.raises(s3.exceptions.ClientError) as refused:
            s3.get_object(Bucket=bucket, Key="secret/kept.txt")
        error = refused.value.response["Error"]
        assert error["Code"] == "AccessDenied"
        assert "s3:GetObject" in error["Message"] and "explicit deny in a resource-based policy" in error["Message"]
    finally:
        s3.put_bucket_policy(Bucket=bucket, Policy=original)
        s3.delete_object(Bucket=bucket, Key="secret/kept.txt")


def test_lambdas_read_calls_are_signed_and_checked_like_any_other(local_stack: LocalStack) -> None:
    import boto3

    # GETs without a body (get-function, get-policy...) verify as AWS verifies them: moto signed
    # its parsed path parameters as the payload, so every correctly signed read was refused.
    name = local_stack.function_name("NotifyFunction")
    lam = local_stack.client("lambda")
    assert lam.get_function_configuration(FunctionName=name)["FunctionName"] == name
    assert "events.amazonaws.com" in lam.get_policy(FunctionName=name)["Policy"]
    keys = local_stack.admin_credentials.client_kwargs()
    forged = boto3.session.Session().client(
        "lambda", endpoint_url=local_stack.endpoint_url, region_name=local_stack.region,
        aws_access_key_id=keys["aws_access_key_id"], aws_secret_access_key="not-the-secret",
    )
    with pytest.raises(forged.exceptions.ClientError) as refused:
        forged.get_function_configuration(FunctionName=name)
    assert "SignatureDoesNotMatch" in str(refused.value)

"""A failed run tells people: one readable SNS message per failed run, through the real rule.

Given the offline stack with an SQS queue subscribed to the stack's NotificationTopic, When an
upload fails validation, Then Step Functions' status-change event reaches the Notify function
through the EventBridge rule, and the queue receives one message naming the dataset, the run, the
failed state, the cause and how to look at it. A run that succeeds sends nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from stepml.local import LocalStack
from tests.e2e.conftest import upload, wait_for_execution
from tests.e2e.test_pipeline import synthetic_csv


@pytest.fixture
def subscribed_queue(local_stack: LocalStack) -> Any:
    sqs, sns = local_stack.client("sqs"), local_stack.client("sns")
    url = sqs.create_queue(QueueName=f"notified-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription = sns.subscribe(
        TopicArn=local_stack.outputs["NotificationTopicArn"], Protocol="sqs", Endpoint=arn
    )["SubscriptionArn"]
    yield url
    sns.unsubscribe(SubscriptionArn=subscription)
    sqs.delete_queue(QueueUrl=url)


def messages_about(local_stack: LocalStack, queue_url: str, dataset: str, wait: float) -> list[dict[str, Any]]:
    """SNS notifications in the queue whose subject names ``dataset``, polling for ``wait`` seconds."""
    sqs = local_stack.client("sqs")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            envelope = json.loads(message["Body"])
            if dataset in envelope.get("Subject", ""):
                found.append(envelope)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        time.sleep(0.2)
    return found


def test_a_failed_run_publishes_one_readable_message(local_stack: LocalStack, subscribed_queue: str) -> None:
    dataset = f"notify-{uuid.uuid4().hex[:6]}"
    local_stack.client("s3").put_object(
        Bucket=local_stack.bucket, Key=f"config/{dataset}.yaml", Body=b"target: price\n"
    )
    key = f"raw/{dataset}/data.csv"
    since = upload(local_stack, key, synthetic_csv(200, 1))

    execution = wait_for_execution(local_stack, since=since, key=key)
    assert execution["status"] == "FAILED"

    (notification,) = messages_about(local_stack, subscribed_queue, dataset, wait=20)
    assert notification["Subject"] == f"stepml: {dataset} run failed"
    text = notification["Message"]
    assert f"Dataset:      {dataset}" in text
    assert f"Upload:       {key}" in text
    assert f"Run:          {execution['name']}" in text
    assert "Failed state: Validate dataset" in text
    assert "Error:        DataError" in text
    assert "no target column 'price'" in text and "Traceback" not in text
    assert f"stepml runs show {execution['name']}" in text


def test_a_successful_run_sends_nothing(local_stack: LocalStack, subscribed_queue: str) -> None:
    dataset = f"quiet-{uuid.uuid4().hex[:6]}"
    local_stack.client("s3").put_object(
        Bucket=local_stack.bucket, Key=f"config/{dataset}.yaml",
        Body=b"target: label\nrecipe: seed-a\n",
    )
    key = f"raw/{dataset}/data.csv"
    since = upload(local_stack, key, synthetic_csv(300, 3))

    assert wait_for_execution(local_stack, since=since, key=key)["status"] == "SUCCEEDED"
    assert messages_about(local_stack, subscribed_queue, dataset, wait=3) == []


def test_without_the_functions_permission_eventbridge_invokes_nothing(
    local_stack: LocalStack, subscribed_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    # As on AWS: EventBridge may invoke a function only if its resource policy allows the rule.
    from moto.awslambda.models import lambda_backends

    backend = lambda_backends["123456789012"][local_stack.region]
    function = local_stack.function_name("NotifyFunction")
    wrapped = json.loads(backend.get_policy(function, None))
    (statement,) = json.loads(wrapped["Policy"])["Statement"]
    backend.remove_permission(function, statement["Sid"])
    try:
        dataset = f"unheard-{uuid.uuid4().hex[:6]}"
        local_stack.client("s3").put_object(
            Bucket=local_stack.bucket, Key=f"config/{dataset}.yaml", Body=b"target: price\n"
        )
        key = f"raw/{dataset}/data.csv"
        since = upload(local_stack, key, synthetic_csv(200, 1))
        assert wait_for_execution(local_stack, since=since, key=key)["status"] == "FAILED"

        assert messages_about(local_stack, subscribed_queue, dataset, wait=5) == []
        assert any(
            "does not allow events.amazonaws.com to invoke it" in record.getMessage() for record in caplog.records
        )
        # The undelivered event is in the rule's dead-letter queue, as AWS puts it there.
        sqs = local_stack.client("sqs")
        dlq = sqs.get_queue_url(QueueName=local_stack.resources["EventsDeadLetterQueue"].rsplit("/", 1)[-1])["QueueUrl"]
        letters = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
        mine = [m for m in letters if dataset in m["Body"]]
        assert len(mine) == 1
        assert mine[0]["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "NO_PERMISSIONS"
        assert json.loads(mine[0]["Body"])["detail-type"] == "Step Functions Execution Status Change"
        for letter in letters:
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=letter["ReceiptHandle"])
    finally:
        backend.add_permission(function, None, json.dumps({
            "StatementId": statement["Sid"], "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com", "SourceArn": statement["Condition"]["ArnLike"]["AWS:SourceArn"],
        }))


def test_the_templates_alarms_exist_offline_and_notify_the_topic(local_stack: LocalStack) -> None:
    # This stack's alarms (other stacks of the test session are named stepml-<something> too).
    logical = [k for k, r in local_stack.template.resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"]
    alarms = local_stack.client("cloudwatch").describe_alarms(
        AlarmNames=[f"stepml-{name}" for name in logical]
    )["MetricAlarms"]
    names = {a["AlarmName"] for a in alarms}
    assert len(alarms) == len(logical)
    # every function's errors and throttles, and the stack-wide ones
    functions = [k for k, r in local_stack.template.resources.items() if r["Type"] == "AWS::Serverless::Function"]
    assert {f"stepml-{f}{kind}Alarm" for f in functions for kind in ("Errors", "Throttles")} <= names
    assert {"stepml-ApiLatencyAlarm", "stepml-ApiServerErrorsAlarm", "stepml-PipelineFailedAlarm",
            "stepml-EventsDeadLetterAlarm", "stepml-MonitorFeatureDriftAlarm", "stepml-MonitorPredictionDriftAlarm"} <= names
    assert all(a["AlarmActions"] == [local_stack.outputs["NotificationTopicArn"]] for a in alarms)
    errors = next(a for a in alarms if a["AlarmName"] == "stepml-TrainFunctionErrorsAlarm")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": local_stack.function_name("TrainFunction")}]


def test_a_notification_the_function_cannot_publish_lands_in_its_dead_letter_queue(
    local_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    # Given NotifyFunction's role denied sns:Publish: every attempt fails to publish
    from moto.awslambda.models import lambda_backends

    sqs, iam = local_stack.client("sqs"), local_stack.client("iam")
    function = local_stack.function_name("NotifyFunction")
    role = lambda_backends["123456789012"][local_stack.region].get_function(function).role.rsplit("/", 1)[-1]
    iam.put_role_policy(RoleName=role, PolicyName="test-deny-publish", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "sns:Publish", "Resource": "*"}],
    }))
    dlq = sqs.get_queue_url(QueueName=local_stack.resources["EventsDeadLetterQueue"].rsplit("/", 1)[-1])["QueueUrl"]
    try:
        # When a run fails
        dataset = f"unsent-{uuid.uuid4().hex[:6]}"
        local_stack.client("s3").put_object(
            Bucket=local_stack.bucket, Key=f"config/{dataset}.yaml", Body=b"target: price\n"
        )
        key = f"raw/{dataset}/data.csv"
        since = upload(local_stack, key, synthetic_csv(200, 1))
        assert wait_for_execution(local_stack, since=since, key=key)["status"] == "FAILED"

        # Then, after Lambda's retries, the run's event is in the function's dead-letter queue with
        # Lambda's attributes (not EventBridge's: EventBridge did deliver it)
        mine: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not mine and time.monotonic() < deadline:
            letters = sqs.receive_message(
                QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1
            ).get("Messages", [])
            mine += [m for m in letters if dataset in m["Body"]]
            for letter in letters:
                sqs.delete_message(QueueUrl=dlq, ReceiptHandle=letter["ReceiptHandle"])
        assert len(mine) == 1, "\n".join(r.getMessage() for r in caplog.records if "Validate" not in r.getMessage())
        attributes = mine[0]["MessageAttributes"]
        assert attributes["ErrorCode"]["StringValue"] == "200" and "ERROR_CODE" not in attributes
        assert "sns:Publish" in attributes["ErrorMessage"]["StringValue"]
        assert json.loads(mine[0]["Body"])["detail"]["status"] == "FAILED"
        attempts = [r for r in caplog.records if "lambda.dead_lettered" in r.getMessage() and function in r.getMessage()]
        assert len(attempts) == 1
    finally:
        iam.delete_role_policy(RoleName=role, PolicyName="test-deny-publish")

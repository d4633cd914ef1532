"""The Monitor page's S3 reads on the strict offline stack, with the user's own credentials.

Given a monitor report and a capture file in the stack's bucket, When the UI's client reads them as
an identity that may read reports but not list captures, Then it gets the report, and the refused
reads are errors that name the object or prefix and the missing action (the page shows them).
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from stepml.local import LocalStack, iam
from stepml.local.endpoint import ACCOUNT_ID
from stepml.stack import Stack
from tests.conftest import ROOT

REPORT = {"schema": 1, "model": "adult", "champion_version": 1, "generated_at": "2026-11-26T18:00:00.000Z",
          "window": {"start": "2026-11-25T18:00:00.000Z", "end": "2026-11-26T18:00:00.000Z"},
          "volume": {"requests": 1, "rows": 1, "errors": 0}, "traffic": [], "features": [], "alarms": []}
CAPTURE = {"stepml_capture": 1, "time": "2026-11-26T17:00:00.000Z", "request_id": "r1", "caller": "jwt:bob",
           "model": "adult", "version": 1, "mode": "hashed", "inputs": None, "input_hashes": ["ab" * 32],
           "outputs": [">50K"], "latency_ms": 0.3, "status": 200}


@pytest.fixture(scope="module")
def console_class() -> Iterator[Any]:
    sys.path.insert(0, str(ROOT / "ui"))
    try:
        from stepml_ui.client import Console, S3ReadRefused

        yield Console, S3ReadRefused
    finally:
        sys.path.remove(str(ROOT / "ui"))


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(ROOT, port=0, api_port=0, stack_name="stepml-ui-monitor") as running:
        admin = running.client("s3")
        body = json.dumps(REPORT).encode()
        for key in ("monitoring/adult/latest.json", "monitoring/adult/reports/20261126T180000Z.json"):
            admin.put_object(Bucket=running.bucket, Key=key, Body=body)
        admin.put_object(Bucket=running.bucket, Key="capture/adult/dt=2026-11-26/part-1.gz",
                         Body=gzip.compress((json.dumps(CAPTURE) + "\n").encode()))
        yield running


def reader(stack: LocalStack) -> dict[str, str]:
    """An IAM user who may find the stack and read reports, and nothing else in the bucket."""
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "cloudformation:DescribeStacks", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{stack.bucket}/monitoring/*"}]}
    policy = stack.client("iam").create_policy(PolicyName="monitor-report-reader", PolicyDocument=json.dumps(document))
    return dict(iam.create_user(ACCOUNT_ID, stack.region, "report-reader", policy["Policy"]["Arn"]).client_kwargs())


def test_the_administrator_reads_reports_and_gzip_captures(stack: LocalStack, console_class: Any) -> None:
    console_type, _ = console_class
    console = console_type(Stack(stack_name=stack.stack_name, endpoint_url=stack.endpoint_url,
                                 credentials=stack.admin_credentials.client_kwargs()))
    key, report = console.monitor_report("adult")
    assert key == "monitoring/adult/latest.json" and report == REPORT
    assert console.monitor_report_keys("adult") == ["monitoring/adult/reports/20261126T180000Z.json"]
    assert console.monitor_report("other") == ("monitoring/other/latest.json", None)
    assert console.capture_days("adult") == [date(2026, 11, 26)]
    found = console.captures("adult", [date(2026, 11, 26)])
    assert [r["request_id"] for r in found.records] == ["r1"] and found.problems == [] and not found.truncated


def test_refused_reads_name_the_object_and_the_missing_action(stack: LocalStack, console_class: Any) -> None:
    console_type, refused = console_class
    console = console_type(Stack(stack_name=stack.stack_name, endpoint_url=stack.endpoint_url,
                                 credentials=reader(stack)))
    # the report itself is readable with s3:GetObject on monitoring/*
    assert console.monitor_report("adult")[1] == REPORT
    # listing is not: the dated reports and the capture days are refused, naming the prefix
    with pytest.raises(refused, match=rf"may not list s3://{stack.bucket}/monitoring/adult/reports/ \(s3:ListBucket"):
        console.monitor_report_keys("adult")
    with pytest.raises(refused, match=rf"may not list s3://{stack.bucket}/capture/adult/ \(s3:ListBucket"):
        console.capture_days("adult")
    # and a capture object is not readable at all
    with pytest.raises(refused, match=rf"may not read s3://{stack.bucket}/capture/adult/dt=2026-11-26/part-1.gz"):
        console._get("capture/adult/dt=2026-11-26/part-1.gz")


def test_the_stacks_monitor_reader_policy_reads_reports_and_captures_and_nothing_else(
    stack: LocalStack, console_class: Any
) -> None:
    """The template's MonitorReaderPolicy, as CloudFormation created it, is all the Monitor page
    needs; its listing is bounded to the two prefixes by an ``s3:prefix`` condition, evaluated."""
    console_type, _ = console_class
    policy = stack.outputs["MonitorReaderPolicyArn"]
    credentials = iam.create_user(ACCOUNT_ID, stack.region, "monitor-reader", policy).client_kwargs()
    console = console_type(Stack(stack_name=stack.stack_name, endpoint_url=stack.endpoint_url,
                                 credentials=dict(credentials)))
    assert console.monitor_report("adult")[1] == REPORT
    assert console.monitor_report_keys("adult") == ["monitoring/adult/reports/20261126T180000Z.json"]
    assert console.capture_days("adult") == [date(2026, 11, 26)]
    assert [r["request_id"] for r in console.captures("adult", [date(2026, 11, 26)]).records] == ["r1"]
    # the rest of the bucket: neither listed (with or without a prefix) nor read
    import boto3

    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=stack.region, **credentials)
    for prefix in ("raw/", "models/", ""):
        with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
            s3.list_objects_v2(Bucket=stack.bucket, Prefix=prefix)
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.get_object(Bucket=stack.bucket, Key="config/adult.yaml")

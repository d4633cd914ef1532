"""Regenerate events/*.json: run the stages on the first 2,000 Adult rows in moto and save each input.

The upload is stepml.local.seed.sample_upload("adult"): what `stepml local invoke` seeds a fresh
stack with, so every event here refers to objects it can recreate (tests/e2e/test_local_invoke.py).

Usage: STEPML_DATA_DIR=../shared/datasets .venv/bin/python scripts/make_sample_events.py
"""
import json

import boto3
from moto import mock_aws

from stepml import stages
from stepml.local.seed import sample_upload
from stepml.settings import Settings

B = "stepml-databucket-example"
data = sample_upload("adult")
with mock_aws():
    s3 = boto3.client("s3", region_name="us-east-1"); s3.create_bucket(Bucket=B)
    s3.put_bucket_versioning(Bucket=B, VersioningConfiguration={"Status": "Enabled"})
    r = s3.put_object(Bucket=B, Key="raw/adult/adult.csv", Body=data)
    run = "a1b2c3d4-upload-adult"
    ev = {"event": {
        "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created",
        "source": "aws.s3", "account": "123456789012", "time": "2026-11-22T06:00:00Z", "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{B}"],
        "detail": {"version": "0", "bucket": {"name": B},
                   "object": {"key": "raw/adult/adult.csv", "size": len(data), "etag": r["ETag"].strip('"'),
                              "version-id": r["VersionId"], "sequencer": "00617F08299329D189"},
                   "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "source-ip-address": "1.2.3.4",
                   "reason": "PutObject"}},
        "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:PipelineStateMachine-abc123:{run}",
        "run_id": run}
    s = Settings(bucket=B)
    out = {"validate": ev}
    st = stages.validate_upload(ev, s); out["preprocess"] = st
    st = stages.preprocess(st, s); out["train"] = st
    st = stages.train(st, s); out["verify"] = st
    from stepml.onnx_verify import verify_export
    st = verify_export(st, s); out["evaluate"] = st
    st = stages.evaluate_and_register(st, s); out["promote"] = st
    for k, v in out.items():
        json.dump(v, open(f"events/{k}.json", "w"), indent=2); open(f"events/{k}.json","a").write("\n")
rec = {"age": 39, "workclass": "State-gov", "fnlwgt": 77516, "education": "Bachelors", "educational-num": 13, "marital-status": "Never-married", "occupation": "Adm-clerical", "relationship": "Not-in-family", "race": "White", "gender": "Male", "capital-gain": 2174, "capital-loss": 0, "hours-per-week": 40, "native-country": "United-States"}
api = {"version": "2.0", "routeKey": "POST /models/{name}/predict", "rawPath": "/models/adult/predict", "rawQueryString": "",
  "headers": {"content-type": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "curl/8.5.0", "content-length": str(len(json.dumps(rec)))},
  "requestContext": {"accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abc123",
     "http": {"method": "POST", "path": "/models/adult/predict", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
     "requestId": "JKJaXmPLvHcESHA=", "routeKey": "POST /models/{name}/predict", "stage": "$default", "time": "22/Nov/2026:06:00:00 +0000", "timeEpoch": 1795327200000},
  "pathParameters": {"name": "adult"}, "body": json.dumps(rec), "isBase64Encoded": False}
json.dump(api, open("events/inference.json","w"), indent=2); open("events/inference.json","a").write("\n")

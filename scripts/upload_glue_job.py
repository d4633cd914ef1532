"""Upload the Glue job's script and the stepml package it imports to a deployed stack's data bucket.

`make deploy` runs it after `sam deploy` (a Glue job's ScriptLocation must be an S3 object, and
SAM packages no Glue scripts): glue/stepml_spark_job.py -> s3://<bucket>/glue/stepml_spark_job.py,
src/stepml as a zip -> s3://<bucket>/glue/stepml.zip (the job's --extra-py-files).
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import boto3

from stepml import keys

ROOT = Path(__file__).resolve().parent.parent


def library_zip() -> bytes:
    buffer = io.BytesIO()
    package = ROOT / "src" / "stepml"
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*.py")):
            archive.write(path, path.relative_to(package.parent).as_posix())
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default="stepml", help="the CloudFormation stack name (sam deploy's)")
    args = parser.parse_args()
    outputs = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0].get("Outputs", [])
    bucket = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "BucketName")
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key=keys.GLUE_SCRIPT, Body=(ROOT / "glue" / "stepml_spark_job.py").read_bytes())
    s3.put_object(Bucket=bucket, Key=keys.GLUE_LIBRARY, Body=library_zip())
    print(f"uploaded s3://{bucket}/{keys.GLUE_SCRIPT} and s3://{bucket}/{keys.GLUE_LIBRARY}")


if __name__ == "__main__":
    main()

"""What the local stack reads from the project's real template.yaml (no hand-kept resource list)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stepml.local.template import LayerSpec, SamTemplate, localize_outputs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> SamTemplate:
    return SamTemplate(ROOT / "template.yaml")


def test_every_function_has_a_code_folder_and_handler(template: SamTemplate) -> None:
    functions = template.functions()

    assert functions, "no AWS::Serverless::Function with local code in template.yaml"
    for logical_id, spec in functions.items():
        assert spec.code_dir.is_dir(), f"{logical_id}: {spec.code_dir}"
        assert spec.module_file.is_file(), f"{logical_id}: {spec.module_file}"
        assert spec.code_dir.is_relative_to(ROOT)


def test_functions_carry_their_layers_with_the_layers_folders(template: SamTemplate, tmp_path: Path) -> None:
    functions = template.functions()

    assert functions["InferenceFunction"].layers == (LayerSpec("InferenceLayer", ROOT / "layer-inference"),)
    assert functions["TrainFunction"].layers == (LayerSpec("MLLayer", ROOT / "layer"),)
    # Globals' layers come first, as SAM merges them; an ARN's contents are unknown offline.
    (tmp_path / "fn").mkdir()
    (tmp_path / "template.yaml").write_text(
        "Globals:\n  Function:\n    Layers: [arn:aws:lambda:us-east-1:123456789012:layer:shared:3]\n"
        "Resources:\n  Own:\n    Type: AWS::Serverless::LayerVersion\n    Properties: {ContentUri: own/}\n"
        "  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: fn/, Handler: app.handler, Layers: [!Ref Own]}\n"
    )
    assert SamTemplate(tmp_path / "template.yaml").functions()["Fn"].layers == (
        LayerSpec("arn:aws:lambda:us-east-1:123456789012:layer:shared:3"),
        LayerSpec("Own", tmp_path / "own"),
    )


def test_http_routes_come_from_httpapi_events(template: SamTemplate) -> None:
    routes = {route.route_key: route.function for route in template.http_routes()}

    assert routes.get("POST /models/{name}/predict") == "InferenceFunction"


def test_routes_carry_the_authorizer_the_template_gives_them(template: SamTemplate) -> None:
    # Globals.HttpApi.Auth.DefaultAuthorizer guards every route the local API serves.
    assert {route.authorizer for route in template.http_routes()} == {"AWS_IAM"}


def test_translation_inlines_the_definition_with_substitutions(template: SamTemplate) -> None:
    cfn = template.to_cloudformation(
        artifact_bucket="artifacts", code_key="code.zip", region="us-east-1"
    )

    for logical_id, spec in template.state_machines().items():
        properties = cfn["Resources"][logical_id]["Properties"]
        assert (
            "DefinitionS3Location" not in properties and "DefinitionSubstitutions" not in properties
        )
        _separator, parts = properties["DefinitionString"]["Fn::Join"]
        literal = "".join(p for p in parts if isinstance(p, str))
        for name in spec.substitutions:
            assert "${" + name + "}" not in literal, name
        # Where the file had a placeholder, the Join holds the template's own value for it.
        placeholders = set(re.findall(r"\$\{(\w+)\}", spec.definition_file.read_text()))
        values = [p for p in parts if not isinstance(p, str)]
        intrinsic = {n for n, v in spec.substitutions.items() if not isinstance(v, str)}
        assert len(values) >= len(placeholders & intrinsic)
        assert all(v in [spec.substitutions[n] for n in spec.substitutions] for v in values)
        # A plain value (a stage's MemorySize, Timeout) is written into the definition itself.
        for name in placeholders - intrinsic:
            assert f'"{spec.substitutions[name]}"' in literal, name


def test_code_locations_become_s3_uris(template: SamTemplate) -> None:
    cfn = template.to_cloudformation(
        artifact_bucket="artifacts", code_key="code.zip", region="us-east-1"
    )

    functions = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert functions and all(
        f["Properties"]["Code"] == {"S3Bucket": "artifacts", "S3Key": "code.zip"} for f in functions
    )


def test_api_url_output_points_at_the_local_api(template: SamTemplate) -> None:
    cfn = template.to_cloudformation(
        artifact_bucket="artifacts", code_key="code.zip", region="us-east-1"
    )
    before = json.dumps(cfn["Outputs"])

    localize_outputs(cfn, "http://127.0.0.1:3000")

    after = json.dumps(cfn["Outputs"])
    assert "execute-api" in before and "execute-api" not in after
    assert "http://127.0.0.1:3000/" in after


def test_conditional_resources_follow_the_parameters_as_cloudformation_decides(template: SamTemplate) -> None:
    # Given the template's defaults, Then the access-log bucket and the e-mail subscription are absent
    default = template.deployed_resources()
    assert "AccessLogBucket" not in default and "AccessLogBucketPolicy" not in default
    assert "AlarmEmailSubscription" not in default and "DataBucket" in default
    # When the parameters turn them on, Then they are part of the stack
    on = template.deployed_resources({"AccessLogging": "true", "AlarmEmail": "ops@example.com"})
    assert {"AccessLogBucket", "AccessLogBucketPolicy", "AlarmEmailSubscription"} <= set(on)
    assert template.conditions({"InferenceReservedConcurrency": "-1"})["ReservesInferenceConcurrency"] is False
    assert template.conditions({"TrainingConcurrency": "-1"})["CapsTraining"] is False

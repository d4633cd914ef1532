"""One route table (src/stepml/routes.py): the dispatchers, the OpenAPI document, template.yaml's
HttpApi events, its consumer policy and its JWT API all agree with it; a route added in one place
and not the others fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from stepml import api, registry_api
from stepml.routes import INFERENCE_FUNCTION, REGISTRY_FUNCTION, ROUTES, consumer_patterns

Row = tuple[str, str, str, str, str]  # method, path, function, event, authorizer


@pytest.fixture(scope="module")
def template(project_root: Path) -> dict[str, Any]:
    from samcli.yamlhelper import yaml_parse  # the parser sam itself uses (!Ref, !Sub...)

    return yaml_parse((project_root / "template.yaml").read_text())


def template_routes(template: dict[str, Any]) -> set[Row]:
    """Every HttpApi event: method, path, function, event id and the authorizer that guards it."""
    default = template["Globals"]["HttpApi"]["Auth"]["DefaultAuthorizer"]
    rows = set()
    for function, resource in template["Resources"].items():
        for event, spec in (resource.get("Properties", {}).get("Events") or {}).items():
            if spec["Type"] == "HttpApi":
                properties = spec["Properties"]
                authorizer = (properties.get("Auth") or {}).get("Authorizer", default)
                rows.add((properties["Method"], properties["Path"], function, event, authorizer))
    return rows


def test_template_routes_are_the_table_and_all_iam_authorized(template: dict[str, Any]) -> None:
    assert template["Globals"]["HttpApi"]["Auth"]["EnableIamAuthorizer"] is True
    table = {(r.method, r.path, r.function, r.event, "AWS_IAM") for r in ROUTES}
    found = template_routes(template)
    assert found == table, f"only in template.yaml: {found - table}; only in routes.py: {table - found}"


def test_the_comparison_fails_when_the_template_drifts(template: dict[str, Any]) -> None:
    # Given a template whose promote route lost its authorization, Then the rows differ.
    events = template["Resources"][REGISTRY_FUNCTION]["Properties"]["Events"]
    drifted = {**template, "Resources": {**template["Resources"], REGISTRY_FUNCTION: {"Properties": {
        "Events": {**events, "Promote": {"Type": "HttpApi", "Properties": {
            **events["Promote"]["Properties"], "Auth": {"Authorizer": "NONE"}}}}}}}}
    assert ("POST", "/models/{name}/promote", REGISTRY_FUNCTION, "Promote", "NONE") in template_routes(drifted)
    assert template_routes(drifted) != template_routes(template)


def test_openapi_document_lists_exactly_the_prediction_functions_routes() -> None:
    paths = api.openapi_document()["paths"]
    documented = {(method.upper(), path, operation["operationId"])
                  for path, methods in paths.items() for method, operation in methods.items()}
    table = {(r.method, r.path, r.operation_id) for r in ROUTES if r.in_openapi}
    assert documented == table
    assert {r.event for r in ROUTES if r.function == INFERENCE_FUNCTION} < {r.event for r in ROUTES if r.in_openapi}


def test_each_dispatcher_has_an_operation_for_each_of_its_routes() -> None:
    assert set(api.OPERATIONS) == {r.event for r in ROUTES if r.function == INFERENCE_FUNCTION}
    assert set(registry_api.OPERATIONS) == {r.event for r in ROUTES if r.function == REGISTRY_FUNCTION}


def _resources(policy: dict[str, Any]) -> list[str]:
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Action"] for s in statements] == ["execute-api:Invoke"] * len(statements)
    found = []
    for statement in statements:
        resources = statement["Resource"]
        for resource in resources if isinstance(resources, list) else [resources]:
            text = resource["Fn::Sub"]
            prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ServerlessHttpApi}/*"
            assert text.startswith(prefix), text
            found.append(text[len(prefix):].lstrip("/"))
    return found


def test_policies_name_the_tables_routes(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert _resources(resources["ApiOperatorPolicy"]) == [""]  # every route, every stage
    consumer = _resources(resources["ApiConsumerPolicy"])
    assert sorted(consumer) == sorted(consumer_patterns())
    # No consumer pattern reaches an operator route (IAM's * also matches '/').
    for route in ROUTES:
        concrete = re.sub(r"\{[^}]+\}", "x", f"{route.method}{route.path}")
        reached = any(re.fullmatch(re.escape(p).replace(r"\*", ".*"), concrete) for p in consumer)
        assert reached == (route.access == "consumer"), route
    outputs = template["Outputs"]
    assert outputs["OperatorPolicyArn"]["Value"] == {"Ref": "ApiOperatorPolicy"}
    assert outputs["ConsumerPolicyArn"]["Value"] == {"Ref": "ApiConsumerPolicy"}


def test_the_jwt_api_serves_the_tables_jwt_routes_only_when_an_issuer_is_given(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    routes = {spec["Properties"]["RouteKey"] for spec in resources.values()
              if spec["Type"] == "AWS::ApiGatewayV2::Route"}
    assert routes == {r.route_key for r in ROUTES if r.jwt}
    for logical_id, spec in resources.items():
        if spec["Type"].startswith("AWS::ApiGatewayV2::") or logical_id.startswith("Jwt"):
            assert spec.get("Condition") == "UseJwt", logical_id
        if spec["Type"] == "AWS::ApiGatewayV2::Route":
            assert spec["Properties"]["AuthorizationType"] == "JWT"
    assert template["Conditions"]["UseJwt"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtIssuer"}, ""]}]}
    assert template["Outputs"]["JwtApiUrl"]["Condition"] == "UseJwt"

"""The HTTP API's routes, in one table.

Each function's dispatcher (:mod:`stepml.api`, :mod:`stepml.registry_api`) looks a request's
``routeKey`` up here; the OpenAPI document lists these routes; the template's ``HttpApi`` events,
its consumer policy and its JWT API are tested against this table (tests/packaging). Adding a
route is: one row here, one ``HttpApi`` event in template.yaml, the handler's branch.

Who may call a route is its ``access``: the stack's *consumer* policy allows the ``consumer``
routes (predictions and reads), its *operator* policy every route (promote, rollback and the
lineage of a version, which names account ids and S3 keys). ``jwt`` routes are also served by the
optional JWT API (template parameters ``JwtIssuer``/``JwtAudience``).

Pure Python (the inference function's cold start imports it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Access = Literal["consumer", "operator"]
_PARAMETER = re.compile(r"\{[^}]+\}")

INFERENCE_FUNCTION = "InferenceFunction"
REGISTRY_FUNCTION = "RegistryFunction"


@dataclass(frozen=True)
class Route:
    """One route: ``method path`` served by ``function`` (a template logical id)."""

    method: str
    path: str
    function: str
    #: The template's event logical id, also the OpenAPI ``operationId`` (lower camel case).
    event: str
    access: Access = "consumer"
    #: Also served by the optional JWT API.
    jwt: bool = False
    #: In the prediction API's OpenAPI document although another function serves it.
    documented: bool = False

    @property
    def in_openapi(self) -> bool:
        """Whether ``GET /openapi.json`` lists it: the prediction function's routes, and those
        marked ``documented`` (a client of predictions also sends feedback)."""
        return self.function == INFERENCE_FUNCTION or self.documented

    @property
    def route_key(self) -> str:
        """API Gateway's ``routeKey``, e.g. ``"POST /models/{name}/predict"``."""
        return f"{self.method} {self.path}"

    @property
    def operation_id(self) -> str:
        return self.event[0].lower() + self.event[1:]

    @property
    def resource_pattern(self) -> str:
        """The route in an ``execute-api:Invoke`` resource ARN, after ``{api}/{stage}/``: path
        parameters become ``*`` (``POST/models/*/predict``)."""
        return self.method + _PARAMETER.sub("*", self.path)


ROUTES: tuple[Route, ...] = (
    # The prediction function (numpy + onnxruntime only).
    Route("POST", "/models/{name}/predict", INFERENCE_FUNCTION, "Predict", jwt=True),
    Route("GET", "/models/{name}", INFERENCE_FUNCTION, "DescribeModel", jwt=True),
    Route("GET", "/models", INFERENCE_FUNCTION, "ListModels"),
    Route("GET", "/openapi.json", INFERENCE_FUNCTION, "OpenApi"),
    # The registry function: reads for consumers, writes and lineage for operators only.
    Route("GET", "/models/{name}/versions", REGISTRY_FUNCTION, "ListVersions"),
    Route("GET", "/models/{name}/versions/{version}", REGISTRY_FUNCTION, "ShowVersion"),
    Route("GET", "/models/{name}/history", REGISTRY_FUNCTION, "AliasHistory"),
    Route("GET", "/models/{name}/diff", REGISTRY_FUNCTION, "DiffVersions"),
    Route("POST", "/models/{name}/promote", REGISTRY_FUNCTION, "Promote", access="operator"),
    Route("POST", "/models/{name}/rollback", REGISTRY_FUNCTION, "Rollback", access="operator"),
    # Labels for served predictions (stepml.feedback): consumers send what really happened.
    Route("POST", "/models/{name}/feedback", REGISTRY_FUNCTION, "Feedback", documented=True),
    # Outside /models/ so that no consumer resource pattern (``GET/models/*``) can match it.
    Route("GET", "/lineage/{name}/{version}", REGISTRY_FUNCTION, "Lineage", access="operator"),
)


def routes_of(function: str) -> dict[str, Route]:
    """The routes ``function`` serves, by ``routeKey``."""
    return {route.route_key: route for route in ROUTES if route.function == function}


def consumer_patterns() -> list[str]:
    """The consumer policy's resource patterns (operator routes excluded)."""
    return [route.resource_pattern for route in ROUTES if route.access == "consumer"]

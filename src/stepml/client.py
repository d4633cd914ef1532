"""The one client of stepml's HTTP API (the CLI, the UI, ``stepml smoke``, tests and benchmarks).

Every request is signed with the caller's AWS credentials (SigV4, service ``execute-api``), as the
API's IAM authorization wants - on AWS and offline alike. A 403 says what is missing: the stack's
consumer policy for predictions and reads, its operator policy for promote, rollback and lineage.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stepml.routes import ROUTES

#: The service name API Gateway's IAM authorization signs for.
SIGNING_SERVICE = "execute-api"


@dataclass(frozen=True)
class ApiResponse:
    """An HTTP API answer: status and parsed JSON body (``{"message": …}`` for non-JSON)."""

    status: int
    body: Any
    #: API Gateway's id of the request (its ``apigw-requestid`` header): what feedback names.
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        if isinstance(self.body, dict) and self.body.get("message"):
            return str(self.body["message"])
        return f"HTTP {self.status}"

    def field_errors(self) -> dict[str, list[str]]:
        """The API's per-field messages (422 ``errors``), by field name."""
        found: dict[str, list[str]] = {}
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        for error in errors or []:
            if isinstance(error, dict) and error.get("field"):
                found.setdefault(str(error["field"]), []).append(str(error.get("message", "invalid")))
        return found


def signed_headers(
    method: str,
    url: str,
    body: bytes | None,
    credentials: Any,
    region: str,
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers of a request to ``url`` signed with SigV4 for ``execute-api`` in ``region``.

    ``credentials`` is a botocore credentials object (``boto3.Session().get_credentials()``) or a
    mapping of boto3 keyword arguments (``aws_access_key_id``…). The body is signed as sent.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    if isinstance(credentials, Mapping):
        credentials = Credentials(credentials["aws_access_key_id"], credentials["aws_secret_access_key"],
                                  credentials.get("aws_session_token"))
    request = AWSRequest(method=method.upper(), url=url, data=body or b"", headers=dict(headers or {}))
    SigV4Auth(credentials, SIGNING_SERVICE, region).add_auth(request)
    return dict(request.headers.items())


def forbidden_hint(method: str, path: str, operator_policy_arn: str | None,
                   consumer_policy_arn: str | None) -> str:
    """What a 403 on ``method path`` most likely means, naming the policy that grants it."""
    access = _access_of(method, path)
    if access == "operator":
        arn = f" {operator_policy_arn}" if operator_policy_arn else " (the stack's OperatorPolicyArn output)"
        return f"your identity lacks the stepml operator policy{arn}"
    arn = f" {consumer_policy_arn}" if consumer_policy_arn else " (the stack's ConsumerPolicyArn output)"
    return f"your identity lacks the stepml consumer policy{arn} (or the operator policy)"


def _access_of(method: str, path: str) -> str:
    import re

    for route in ROUTES:
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(route.path)) + "/?$"
        if route.method == method.upper() and re.match(pattern, path):
            return route.access
    return "consumer"


class ApiClient:
    """Signed requests to one stack's HTTP API.

    ``credentials``: botocore credentials or boto3 keyword arguments; None uses boto3's default
    chain (the caller's own identity, resolved on the first request).
    """

    def __init__(
        self,
        base_url: str,
        region: str,
        credentials: Any = None,
        *,
        timeout: float = 30.0,
        operator_policy_arn: str | None = None,
        consumer_policy_arn: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.region = region
        self.timeout = timeout
        self.operator_policy_arn = operator_policy_arn
        self.consumer_policy_arn = consumer_policy_arn
        self._credentials = credentials

    @property
    def credentials(self) -> Any:
        if self._credentials is None:
            import boto3

            self._credentials = boto3.Session().get_credentials()
        return self._credentials

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        return self.base_url + path + ("?" + urllib.parse.urlencode(params) if params else "")

    def request(self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None,
                *, raw: bytes | None = None) -> ApiResponse:
        """One signed request; ``body`` is sent as JSON (or ``raw`` bytes as they are).

        Never raises for an HTTP status: a 403 carries a ``hint`` naming the missing policy.
        """
        url = self.url(path, query)
        data = raw if raw is not None else (None if body is None else json.dumps(body, allow_nan=False).encode())
        headers = {"content-type": "application/json"}
        if self.credentials is not None:
            headers = signed_headers(method, url, data, self.credentials, self.region, headers)
        request = urllib.request.Request(url, data=data, method=method.upper(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return ApiResponse(response.status, _json_or_message(response.read()),
                                   response.headers.get("apigw-requestid"))
        except urllib.error.HTTPError as exc:
            answer = ApiResponse(exc.code, _json_or_message(exc.read()), exc.headers.get("apigw-requestid"))
        if answer.status == 403 and isinstance(answer.body, dict):
            hint = forbidden_hint(method, urllib.parse.urlsplit(url).path, self.operator_policy_arn,
                                  self.consumer_policy_arn) if self.credentials is not None else (
                "the request was not signed: no AWS credentials found (set AWS_PROFILE, run "
                "`aws configure` or `aws sso login`)")
            answer = ApiResponse(403, {**answer.body, "hint": hint,
                                       "message": f"{answer.message} - {hint}"})
        return answer

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> ApiResponse:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any = None, query: Mapping[str, Any] | None = None) -> ApiResponse:
        return self.request("POST", path, body, query)


def quote(segment: str) -> str:
    """A path segment, percent-encoded (a model name with ``/`` or ``%`` stays one segment)."""
    return urllib.parse.quote(segment, safe="")


def _json_or_message(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {"message": raw.decode("utf-8", errors="replace")[:500]}

"""Credentials and IAM on the offline endpoint, as strict as AWS.

moto can validate SigV4 signatures and evaluate the caller's IAM policies
(``moto/core/authorization.py``, ``moto/iam/access_control.py``), but only process-wide, through a
request counter. This module turns that on *per endpoint*: requests that reach a strict local stack
(its ``host:port``) are authenticated and authorized; anything else in the process — a test's own
``mock_aws()`` — keeps moto's default. What it adds to moto:

* **Denials that say what was denied.** ``AccessDenied`` names the principal, the action and the
  resource, in the words of AWS's own messages ("User: … is not authorized to perform: s3:GetObject
  on resource: "arn:aws:s3:::bucket/key" because no identity-based policy allows the s3:GetObject
  action").
* **Lambda calls are authorized on the function's ARN** (moto checks them against ``*``, which a
  policy naming the function never matches).
* **Step Functions calls Lambda as the state machine's role.** moto's ASL interpreter signs its
  calls with the made-up key ``ak``; here it gets the role's temporary credentials, so the role's
  ``lambda:InvokeFunction`` statements decide, as on AWS.
* **Roles are assumed as the services assume them**: the trust policy must let the service
  (``lambda.amazonaws.com``, ``states.amazonaws.com``, ``events.amazonaws.com``) assume the role,
  and the credentials are STS session credentials (``ASIA…`` key, secret and session token).
* **An administrator** (an IAM user with ``AdministratorAccess``) for the user's own clients.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepml.settings import LOCAL_PROFILE, aws_config_file, aws_credentials_file

logger = logging.getLogger("stepml_local.iam")

PARTITION = "aws"
ADMIN_USER = "stepml-local-admin"
ADMIN_POLICY_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
#: The named AWS profile ``stepml local up`` writes for the administrator.
PROFILE = LOCAL_PROFILE

_lock = threading.RLock()
_strict_hosts: set[str] = set()
_originals: dict[str, Any] = {}


@dataclass(frozen=True)
class Credentials:
    """A set of AWS credentials (``session_token`` for temporary, role credentials)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    arn: str = ""

    def environment(self) -> dict[str, str]:
        """The ``AWS_*`` variables that hand these credentials to an SDK or CLI."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client`` (only the local stack passes keys explicitly)."""
        kwargs = {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }
        if self.session_token:
            kwargs["aws_session_token"] = self.session_token
        return kwargs


class RoleNotAssumable(RuntimeError):
    """A role's trust policy does not let the service assume it (AWS refuses the same)."""


# -- per-endpoint enforcement ----------------------------------------------------------------------


def enforce(host: str, port: int) -> None:
    """Authenticate and authorize every request that reaches ``host:port`` from now on."""
    with _lock:
        _strict_hosts.update({f"{host}:{port}", f"localhost:{port}"})


def release(host: str, port: int) -> None:
    """Stop enforcing IAM on ``host:port`` (the stack stopped)."""
    with _lock:
        _strict_hosts.difference_update({f"{host}:{port}", f"localhost:{port}"})


def is_enforced(host: str) -> bool:
    """Whether requests to ``host`` (``host:port``) are checked."""
    return host in _strict_hosts


def _request_host(response: Any) -> str:
    headers = getattr(response, "headers", None) or {}
    host = headers.get("Host") or headers.get("host")
    if not host:
        from urllib.parse import urlparse

        host = urlparse(getattr(response, "uri", "") or "").netloc
    return str(host or "")


def _authenticate_and_authorize_action(
    self: Any, iam_request_cls: type, resource: str = "*"
) -> None:
    """Replacement for moto's ``ActionAuthenticatorMixin._authenticate_and_authorize_action``."""
    if not is_enforced(_request_host(self)):
        _originals["authorize"](self, iam_request_cls, resource)
        return
    from urllib.parse import urlparse

    from moto.core.authorization import ActionAuthenticatorMixin

    if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
        return
    if "Authorization" not in self.headers:
        _raise_denied(iam_request_cls, "an anonymous caller", self._get_action(), resource, self)
    path = self.raw_path
    query = urlparse(self.uri).query
    if query:
        path += "?" + query
    request = iam_request_cls(
        account_id=self.current_account,
        method=self.method,
        path=path,
        # moto signs ``body or data``: for a GET without a body (Lambda's reads) its ``data`` is
        # what it parsed from the path and query, which the client never signed as payload.
        data="" if self.method in ("GET", "HEAD") and not self.raw_body else self.data,
        body=self.raw_body,
        headers=self.headers,
        action=self._get_action(),
    )
    request.check_signature()
    request._action = _IAM_ACTIONS.get(request._action, request._action)
    _check_action_permitted(request, resource, self)


#: moto's operation names whose IAM action is named otherwise.
_IAM_ACTIONS = {
    "lambda:Invoke": "lambda:InvokeFunction",
    "lambda:InvokeAsync": "lambda:InvokeFunction",
}


def _check_action_permitted(request: Any, resource: str, response: Any) -> None:
    """moto's ``check_action_permitted``, with AWS's explicit denial messages.

    One more rule AWS applies and moto does not: reading a key that does not exist is
    ``AccessDenied`` (403), not ``NoSuchKey`` (404), unless the caller may ``s3:ListBucket``.
    """
    from moto.iam.access_control import PermissionResult, S3IAMRequest

    action = request._action
    if action == "sts:GetCallerIdentity":
        return
    principal = request._access_key.arn
    result = _evaluate(request, action, resource)
    if result == PermissionResult.DENIED:
        _raise_denied(type(request), principal, action, resource, response, explicit=True)
    permitted = result == PermissionResult.PERMITTED
    if permitted and request._is_assuming_role_operation(resource):
        permitted = request._check_role_trust_relationship(resource)
    if not permitted:
        _raise_denied(type(request), principal, action, resource, response)
    if isinstance(request, S3IAMRequest):
        bucket_name = resource.partition(":::")[2].partition("/")[0]
        if bucket_policy_denies(_bucket_policy(request.account_id, bucket_name), action, resource):
            _raise_denied(type(request), principal, action, resource, response, explicit="resource")
    if isinstance(request, S3IAMRequest) and action == "s3:GetObject":
        bucket, _, key = resource.partition(":::")[2].partition("/")
        if key and not _object_exists(request.account_id, bucket, key):
            listing = f"arn:{PARTITION}:s3:::{bucket}"
            if _evaluate(request, "s3:ListBucket", listing) != PermissionResult.PERMITTED:
                _raise_denied(type(request), principal, "s3:ListBucket", listing, response)


def _evaluate(request: Any, action: str, resource: str) -> Any:
    """The caller's identity policies on ``action``/``resource``: PERMITTED, DENIED or NEUTRAL.

    moto matches each statement's action and resource; a statement's ``Condition`` is evaluated
    here against the request (:func:`request_condition_values`): moto passes no request values to
    identity policies, so it read an Allow whose condition it could not check as an explicit Deny.
    A condition that does not hold leaves its statement out, as on AWS; an operator this emulator
    does not know holds for a Deny and not for an Allow (the stricter reading of both)."""
    from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, PermissionResult

    outcome = PermissionResult.NEUTRAL
    values: Mapping[str, str] | None = None
    for policy in request._access_key.collect_policies():
        statements = IAMPolicy(_policy_source(policy))._policy_json.get("Statement") or []
        for statement in statements if isinstance(statements, list) else [statements]:
            conditions = statement.get("Condition")
            bare = {key: value for key, value in statement.items() if key != "Condition"}
            result = IAMPolicyStatement(bare).is_action_permitted(action, resource)
            if result == PermissionResult.NEUTRAL:
                continue
            if conditions:
                if values is None:
                    values = request_condition_values(request)
                if not _conditions_hold(conditions, values, unknown_holds=statement.get("Effect") == "Deny"):
                    continue
            if result == PermissionResult.DENIED:
                return result
            outcome = result
    return outcome


def request_condition_values(request: Any) -> dict[str, str]:
    """The condition keys this emulator knows for a request: ``aws:SecureTransport`` (see
    :data:`LOCAL_CONDITION_VALUES`) and, on an S3 listing, ``s3:prefix`` and ``s3:delimiter`` (absent
    when the request has none, as on AWS: a ``StringLike s3:prefix`` condition then does not hold)."""
    from urllib.parse import parse_qs, urlsplit

    values = dict(LOCAL_CONDITION_VALUES)
    query = parse_qs(urlsplit(str(getattr(request, "_path", ""))).query, keep_blank_values=True)
    for parameter in ("prefix", "delimiter"):
        if parameter in query:
            values[f"s3:{parameter}"] = query[parameter][0]
    return values


#: The local endpoint listens on the loopback interface only: a request that reaches it never
#: crossed a network, so it counts as secure transport (``aws:SecureTransport``), as HTTPS does on
#: AWS. A bucket policy that refuses plain HTTP therefore refuses nothing locally.
LOCAL_CONDITION_VALUES = {"aws:SecureTransport": "true"}


def bucket_policy_denies(
    policy: str | bytes | None,
    action: str,
    resource: str,
    condition_values: Mapping[str, str] = LOCAL_CONDITION_VALUES,
) -> bool:
    """Whether a bucket policy explicitly denies ``action`` on ``resource`` (for any principal).

    moto matches the action and resource; the ``Condition`` block is evaluated here, since moto's
    own evaluation skips every operator but ``StringEquals`` (a skipped operator matched, so
    ``Bool aws:SecureTransport false`` denied every request).
    """
    from moto.iam.access_control import IAMPolicy, PermissionResult

    if not policy:
        return False
    document = json.loads(policy.decode() if isinstance(policy, bytes) else policy)
    statements = document.get("Statement") or []
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") != "Deny":
            continue
        matched = {key: value for key, value in statement.items() if key != "Condition"}
        matched["Effect"] = "Allow"
        single = json.dumps({"Version": "2012-10-17", "Statement": [matched]})
        if IAMPolicy(single).is_action_permitted(action, resource) != PermissionResult.PERMITTED:
            continue
        if _conditions_hold(statement.get("Condition") or {}, condition_values):
            return True
    return False


def _like(actual: str, patterns: list[str]) -> bool:
    """IAM's ``StringLike``: ``*`` any run of characters, ``?`` one character, nothing else special."""
    return any(re.fullmatch(".*".join(".".join(re.escape(part) for part in piece.split("?"))
                                      for piece in pattern.split("*")), actual, re.DOTALL)
               for pattern in patterns)


#: Condition operators evaluated locally: the value compared, and how.
_CONDITION_TESTS: dict[str, Callable[[str, list[str]], bool]] = {
    "Bool": lambda actual, expected: actual.lower() in [e.lower() for e in expected],
    "StringEquals": lambda actual, expected: actual in expected,
    "StringNotEquals": lambda actual, expected: actual not in expected,
    "StringLike": _like,
    "StringNotLike": lambda actual, expected: not _like(actual, expected),
    "ArnEquals": lambda actual, expected: actual in expected,
    "ArnLike": _like,
}


def _conditions_hold(conditions: Mapping[str, Any], values: Mapping[str, str], unknown_holds: bool = True) -> bool:
    """Every operator's every key holds (AWS: AND across them, OR across a key's values); a key the
    request does not carry does not hold. An operator this emulator does not know holds when
    ``unknown_holds`` (for a Deny: the stricter reading), else not (for an Allow)."""
    for operator, keys in conditions.items():
        test = _CONDITION_TESTS.get(operator)
        if test is None:
            if unknown_holds:
                continue
            return False
        for key, expected in keys.items():
            wanted = [str(e) for e in (expected if isinstance(expected, list) else [expected])]
            if key not in values or not test(values[key], wanted):
                return False
    return True


def _bucket_policy(account_id: str, bucket: str) -> bytes | None:
    from moto.s3.models import s3_backends

    try:
        return s3_backends[account_id][PARTITION].get_bucket(bucket).policy  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - a missing bucket, in moto's words
        return None


def _bucket_get_permission(self: Any, action: str, resource: str) -> Any:
    """moto's ``FakeBucket.get_permission``: its bucket-policy check on object requests, made
    before the request is authenticated and answering a bare 403. The strict stack evaluates bucket
    policies in :func:`_check_action_permitted` instead (AWS's message, after authentication);
    ``--no-strict`` evaluates neither identity nor bucket policies."""
    from moto.iam.access_control import PermissionResult

    return PermissionResult.NEUTRAL


def _object_exists(account_id: str, bucket: str, key: str) -> bool:
    from moto.s3.models import FakeKey, s3_backends

    try:
        keys = s3_backends[account_id][PARTITION].get_bucket(bucket).keys
    except Exception:  # noqa: BLE001 - a missing bucket, in moto's words
        return False
    return isinstance(keys.get(key), FakeKey)  # a delete marker is no object


def _policy_source(policy: Any) -> Any:
    """What moto's ``IAMPolicy`` reads: a role's inline policy created by CloudFormation is a dict."""
    if isinstance(policy, dict) and "policy_document" not in policy:
        return json.dumps(policy)
    if isinstance(policy, dict) and isinstance(policy["policy_document"], dict):
        return json.dumps(policy["policy_document"])
    return policy


def denial_message(principal: str, action: str, resource: str, explicit: bool | str = False) -> str:
    """AWS's wording for an authorization failure (``explicit="resource"``: a bucket policy's)."""
    if explicit == "resource":
        why = "with an explicit deny in a resource-based policy"
    elif explicit:
        why = "with an explicit deny in an identity-based policy"
    else:
        why = f"because no identity-based policy allows the {action} action"
    return f'User: {principal} is not authorized to perform: {action} on resource: "{resource}" {why}'


def _raise_denied(
    request_cls: type,
    principal: str,
    action: Any,
    resource: str,
    response: Any,
    explicit: bool | str = False,
) -> None:
    from moto.core.exceptions import JsonRESTError
    from moto.core.exceptions import _RESTError as XmlRESTError
    from moto.iam.access_control import S3IAMRequest
    from moto.s3.exceptions import S3ClientError

    if isinstance(action, list):
        action = action[0]
    service = str(getattr(response, "service_name", "") or "")
    if ":" not in str(action):
        action = f"{_SERVICE_PREFIX.get(service, service or 's3')}:{action}"
    message = denial_message(principal, str(action), resource, explicit)
    if issubclass(request_cls, S3IAMRequest):
        raise S3ClientError("AccessDenied", message)
    if service in _JSON_SERVICES:

        class _JsonAccessDenied(JsonRESTError):
            code = 403

        raise _JsonAccessDenied("AccessDeniedException", message)

    class _XmlAccessDenied(XmlRESTError):
        code = 403

    raise _XmlAccessDenied("AccessDenied", message)


#: moto's service names whose IAM prefix differs, and the services that answer in JSON.
_SERVICE_PREFIX = {"awslambda": "lambda", "stepfunctions": "states"}
_JSON_SERVICES = {"awslambda", "stepfunctions", "logs", "events", "firehose", "kinesis", "glue"}


def _lambda_resource(self: Any) -> str:
    """The ARN a Lambda API call acts on: the function named in the path (else ``*``)."""
    from urllib.parse import unquote

    parts = [unquote(p) for p in str(self.path).split("?")[0].split("/") if p]
    if "functions" in parts:
        index = parts.index("functions")
        if index + 1 < len(parts):
            name = parts[index + 1]
            if name.startswith("arn:"):
                return name
            return f"arn:{PARTITION}:lambda:{self.region}:{self.current_account}:function:{name}"
    return "*"


def _resource_named_by(*params: str) -> Callable[[Any], str]:
    """A ``_determine_resource`` for moto's response class: the first of ``params`` holding an
    ARN (the resource AWS authorizes the call on), else ``*``."""

    def determine_resource(self: Any) -> str:
        for name in params:
            value = self._get_param(name)
            if isinstance(value, str) and value.startswith("arn:"):
                return value
        return "*"

    return determine_resource


def _glue_job_resource(self: Any) -> str:
    """The ARN a Glue job-run call acts on: the job named by ``JobName`` (else ``*``)."""
    name = self._get_param("JobName")
    if isinstance(name, str) and name:
        return f"arn:{PARTITION}:glue:{self.region}:{self.current_account}:job/{name}"
    return "*"


def _stack_resource(self: Any) -> str:
    """The ARN a CloudFormation call acts on: the stack named by ``StackName`` (else ``*``); a
    stack named, not given by id, is ``stack/<name>/*``, which a policy on the stack's id matches."""
    name = self._get_param("StackName")
    if isinstance(name, str) and name:
        if name.startswith("arn:"):
            return name
        return f"arn:{PARTITION}:cloudformation:{self.region}:{self.current_account}:stack/{name}/*"
    return "*"


#: moto's response classes that would check every call against ``*``, and the resource they act on.
_RESOURCE_OF = {
    ("moto.cloudformation.responses", "CloudFormationResponse"): _stack_resource,
    ("moto.glue.responses", "GlueResponse"): _glue_job_resource,
    ("moto.stepfunctions.responses", "StepFunctionResponse"): _resource_named_by("executionArn", "stateMachineArn"),
    ("moto.sns.responses", "SNSResponse"): _resource_named_by("TopicArn", "TargetArn"),
}


# -- Step Functions calls Lambda as its role --------------------------------------------------------


#: Credentials of a role for the service that assumes it; set by the local stack.
RoleCredentials = Callable[[str, str], Credentials]
_role_credentials: RoleCredentials | None = None


def _boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    """Replacement for moto's ``boto_client_for``: sign as the execution role, not as ``ak``."""
    client = _originals["boto_client_for"](region, service, state_credentials)
    role_arn = getattr(state_credentials, "role_arn", None)
    if _role_credentials is None or not role_arn:
        return client
    from botocore.config import Config

    credentials = _role_credentials(role_arn, "states.amazonaws.com")
    signed = _any_client(
        service,
        region_name=region,
        endpoint_url=client.meta.endpoint_url,
        config=client.meta.config.merge(Config()),
        **credentials.client_kwargs(),
    )
    return _StatesLambdaClient(signed) if service == "lambda" else signed


#: Step Functions caps a state's input and output at 256 KB.
MAX_STATE_PAYLOAD_BYTES = 256 * 1024
#: errorType values of a stopped execution environment: Step Functions reports them as Lambda.Unknown.
_UNKNOWN_ERROR_TYPES = {"Sandbox.Timedout", "Runtime.OutOfMemory", "Runtime.ExitError"}


class StatesDataLimitExceeded(Exception):
    """A task's result over Step Functions' 256 KB: the state fails with States.DataLimitExceeded."""


def _from_error(original: Any) -> Any:
    """Wrap a Lambda task's ``_from_error``: :class:`StatesDataLimitExceeded` fails the state with
    ``States.DataLimitExceeded`` (moto's interpreter has the name but never raises it)."""

    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        if not isinstance(ex, StatesDataLimitExceeded):
            return original(self, env, ex)
        from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
            FailureEvent,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
            StatesErrorName,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
            StatesErrorNameType,
        )
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        name = StatesErrorName(typ=StatesErrorNameType.StatesStatesDataLimitExceeded)
        return FailureEvent(
            env=env,
            error_name=name,
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item]  # moto declares every key, sets one
                taskFailedEventDetails=TaskFailedEventDetails(error=name.error_name, cause=str(ex))
            ),
        )

    from_error.__stepml_original__ = original  # type: ignore[attr-defined]
    return from_error


def _echoed_error_name() -> type:
    from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName

    class EchoedErrorName(ErrorName):
        """An error name a Fail state takes from its input: any name, States.* included."""

        def __init__(self, error_name: str | None) -> None:
            super().__init__(error_name=error_name)

    return EchoedErrorName


def _lambda_task_classes() -> list[Any]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
        StateTaskServiceLambda,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import (
        StateTaskLambda,
    )

    return [StateTaskServiceLambda, StateTaskLambda]


class _StatesLambdaClient:
    """A Lambda client as Step Functions' Lambda integration sees the service.

    * A function stopped by a limit (timeout, memory, its process exiting) reaches the state machine
      as ``Lambda.Unknown`` — "Unhandled errors in Lambda are reported as Lambda.Unknown ... These
      include out-of-memory errors and function timeouts" (Step Functions developer guide) — with
      Lambda's payload in the cause.
    * A result over 256 KB fails the state with ``States.DataLimitExceeded``.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def invoke(self, **kwargs: Any) -> Any:
        import io

        response = self._client.invoke(**kwargs)
        raw = response["Payload"].read()
        replacement: dict[str, Any] | None = None
        if response.get("FunctionError"):
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and payload.get("errorType") in _UNKNOWN_ERROR_TYPES:
                replacement = {
                    "errorType": "Lambda.Unknown",
                    "errorMessage": "The cause could not be determined because Lambda did not "
                    f"return an error type. Returned payload: {raw.decode('utf-8', 'replace')}",
                }
        elif len(raw) > MAX_STATE_PAYLOAD_BYTES:
            raise StatesDataLimitExceeded(
                "The state/task returned a result with a size exceeding the maximum number of "
                f"bytes service limit ({len(raw)} > {MAX_STATE_PAYLOAD_BYTES} bytes)."
            )
        if replacement is not None:
            raw = json.dumps(replacement).encode("utf-8")
        response["Payload"] = io.BytesIO(raw)
        return response


def _interpreter_modules() -> list[Any]:
    import importlib
    import pkgutil

    import moto.stepfunctions.parser.asl.component.state.exec as package

    modules = []
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        try:
            modules.append(importlib.import_module(info.name))
        except Exception:  # an optional integration that fails to import is not ours to fix
            logger.debug("could not import %s", info.name, exc_info=True)
    return modules


def install(role_credentials: RoleCredentials) -> None:
    """Patch moto (idempotent): per-endpoint IAM, Lambda resources, role-signed interpreter."""
    global _role_credentials
    from moto.awslambda.responses import LambdaResponse
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.stepfunctions.parser.asl.utils import boto_client

    with _lock:
        _role_credentials = role_credentials
        if _originals:
            return
        _originals["authorize"] = ActionAuthenticatorMixin._authenticate_and_authorize_action
        ActionAuthenticatorMixin._authenticate_and_authorize_action = (  # type: ignore[method-assign]
            _authenticate_and_authorize_action
        )
        from moto.s3.models import FakeBucket

        _originals["bucket_permission"] = FakeBucket.get_permission
        FakeBucket.get_permission = _bucket_get_permission  # type: ignore[method-assign]
        _originals["lambda_resource"] = getattr(LambdaResponse, "_determine_resource", None)
        LambdaResponse._determine_resource = _lambda_resource  # type: ignore[attr-defined]
        import importlib

        for (module, name), resource in _RESOURCE_OF.items():
            response_class = getattr(importlib.import_module(module), name)
            _originals[f"resource:{name}"] = getattr(response_class, "_determine_resource", None)
            response_class._determine_resource = resource
        original = boto_client.boto_client_for
        _originals["boto_client_for"] = original
        patched: list[Any] = [boto_client]
        for module in _interpreter_modules():
            if getattr(module, "boto_client_for", None) is original:
                patched.append(module)
        for patched_module in patched:
            patched_module.boto_client_for = _boto_client_for
        _originals["patched_modules"] = patched
        for task in _lambda_task_classes():
            task._from_error = _from_error(task._from_error)
        # A Fail state that re-raises a caught error by ErrorPath may name a States.* error (as the
        # pipeline's "Pipeline failed" does); moto's interpreter refuses the prefix there.
        from moto.stepfunctions.parser.asl.component.state.fail import state_fail

        _originals["fail_error_name"] = state_fail.CustomErrorName
        state_fail.CustomErrorName = _echoed_error_name()  # type: ignore[misc, assignment]  # patched class


def uninstall() -> None:
    """Restore moto's own behaviour (no stack is running any more)."""
    global _role_credentials
    from moto.awslambda.responses import LambdaResponse
    from moto.core.authorization import ActionAuthenticatorMixin

    with _lock:
        if not _originals:
            return
        ActionAuthenticatorMixin._authenticate_and_authorize_action = _originals["authorize"]  # type: ignore[method-assign]
        from moto.s3.models import FakeBucket

        FakeBucket.get_permission = _originals["bucket_permission"]  # type: ignore[method-assign]
        if _originals["lambda_resource"] is None:
            del LambdaResponse._determine_resource  # type: ignore[attr-defined]
        else:
            LambdaResponse._determine_resource = _originals["lambda_resource"]  # type: ignore[attr-defined]
        import importlib

        for module, name in _RESOURCE_OF:
            response_class = getattr(importlib.import_module(module), name)
            original = _originals[f"resource:{name}"]
            if original is None:
                del response_class._determine_resource
            else:
                response_class._determine_resource = original
        for module in _originals["patched_modules"]:
            module.boto_client_for = _originals["boto_client_for"]
        for task in _lambda_task_classes():
            task._from_error = getattr(task._from_error, "__stepml_original__", task._from_error)
        from moto.stepfunctions.parser.asl.component.state.fail import state_fail

        state_fail.CustomErrorName = _originals["fail_error_name"]  # type: ignore[misc]  # restored class
        _originals.clear()
        _strict_hosts.clear()
        _role_credentials = None


# -- identities ------------------------------------------------------------------------------------


def _iam_backend(account_id: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account_id][PARTITION]


def create_admin(account_id: str, region: str, user_name: str = ADMIN_USER) -> Credentials:
    """An IAM user with ``AdministratorAccess`` and a fresh access key: the user's own identity.

    A stack started again in the same process replaces the user's earlier keys (IAM allows two).
    """
    backend = _iam_backend(account_id)
    if user_name not in backend.users:
        backend.create_user(region, user_name)
        try:
            backend.attach_user_policy(ADMIN_POLICY_ARN, user_name)
        except Exception:  # noqa: BLE001 - AWS managed policies are loaded only when asked for
            backend.put_user_policy(
                user_name,
                "AdministratorAccess",
                json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                    }
                ),
            )
    for old in backend.list_access_keys(user_name):
        backend.delete_access_key(old.access_key_id, user_name)
    key = backend.create_access_key(user_name)
    return Credentials(
        access_key_id=key.access_key_id,
        secret_access_key=key.secret_access_key,
        arn=backend.get_user(user_name).arn,
    )


def attach_user_policy(account_id: str, user_name: str, policy_arn: str) -> None:
    """Attach a managed policy (e.g. one the stack created) to an IAM user."""
    _iam_backend(account_id).attach_user_policy(policy_arn, user_name)


def create_user(account_id: str, region: str, user_name: str, *policy_arns: str) -> Credentials:
    """A new IAM user with ``policy_arns`` attached and an access key (tests' consumers and operators)."""
    backend = _iam_backend(account_id)
    backend.create_user(region, user_name)
    for arn in policy_arns:
        backend.attach_user_policy(arn, user_name)
    key = backend.create_access_key(user_name)
    return Credentials(key.access_key_id, key.secret_access_key, arn=backend.get_user(user_name).arn)


def trusts_service(role: Any, service: str) -> bool:
    """Whether the role's trust policy lets ``service`` call ``sts:AssumeRole``."""
    document = role.assume_role_policy_document
    if isinstance(document, str):
        document = json.loads(document)
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        actions = statement.get("Action") or []
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            continue
        principals = (statement.get("Principal") or {}).get("Service") or []
        principals = [principals] if isinstance(principals, str) else principals
        if service not in principals:
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def assume_role(account_id: str, region: str, role_arn: str, service: str, session: str) -> Credentials:
    """STS credentials for ``role_arn`` as ``service`` gets them (the trust policy is checked)."""
    from moto.sts.models import sts_backends

    try:
        role = _iam_backend(account_id).get_role_by_arn(role_arn)
    except Exception as exc:
        raise RoleNotAssumable(f"role {role_arn} does not exist") from exc
    if not trusts_service(role, service):
        raise RoleNotAssumable(
            f"{service} cannot assume role {role_arn}: its trust policy (AssumeRolePolicyDocument)"
            f" does not allow {service} to call sts:AssumeRole"
        )
    assumed = sts_backends[account_id][PARTITION].assume_role(
        region_name=region,
        role_session_name=session[:64],
        role_arn=role_arn,
        policy="",
        duration=43200,
        external_id="",
    )
    return Credentials(
        access_key_id=assumed.access_key_id,
        secret_access_key=assumed.secret_access_key,
        session_token=assumed.session_token,
        arn=assumed.arn,
    )


def role_allows(account_id: str, role_arn: str, action: str, resource: str) -> bool:
    """Whether the role's identity policies allow ``action`` on ``resource`` (no explicit deny)."""
    backend = _iam_backend(account_id)
    name = role_arn.rsplit("/", 1)[-1]
    policies: list[Any] = [backend.get_role_policy(name, p)[1] for p in backend.list_role_policies(name)]
    policies += backend.list_attached_role_policies(name)[0]
    return policies_allow(policies, action, resource)


def policies_allow(policies: Iterable[Any], action: str, resource: str) -> bool:
    """Whether identity ``policies`` allow ``action`` on ``resource``: one Allow and no explicit Deny."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    permitted = False
    for policy in policies:
        result = IAMPolicy(_policy_source(policy)).is_action_permitted(action, resource)
        if result == PermissionResult.DENIED:
            return False
        permitted = permitted or result == PermissionResult.PERMITTED
    return permitted


# -- the administrator's named profile ------------------------------------------------------------


def write_profile(
    credentials: Credentials,
    *,
    endpoint_url: str,
    region: str,
    profile: str = PROFILE,
    environ: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """Write ``profile`` to the AWS shared credentials and config files; returns their paths.

    Honours ``AWS_SHARED_CREDENTIALS_FILE`` and ``AWS_CONFIG_FILE``. The config carries the
    endpoint (``endpoint_url``, read by boto3 and the AWS CLI v2), so ``aws --profile stepml-local
    s3 ls`` reaches the local stack; other profiles are left as they are.
    """
    credentials_file = aws_credentials_file(environ)
    config_file = aws_config_file(environ)
    _update_ini(
        credentials_file,
        profile,
        {
            "aws_access_key_id": credentials.access_key_id,
            "aws_secret_access_key": credentials.secret_access_key,
        },
    )
    _update_ini(
        config_file,
        f"profile {profile}",
        {"region": region, "endpoint_url": endpoint_url, "output": "json"},
    )
    return credentials_file, config_file


def _update_ini(path: Path, section: str, values: Mapping[str, str]) -> None:
    parser = configparser.RawConfigParser()
    if path.is_file():
        parser.read(path)
    if parser.has_section(section):
        parser.remove_section(section)
    parser.add_section(section)
    for key, value in values.items():
        parser.set(section, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".stepml-tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        parser.write(handle)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def _any_client(service: str, *args: Any, **kwargs: Any) -> Any:
    """``boto3.client`` for a service named at run time (boto3's stubs type it by literal names)."""
    import boto3

    make: Any = boto3.client
    return make(service, *args, **kwargs)

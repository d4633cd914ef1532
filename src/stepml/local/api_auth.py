"""IAM authorization of the local HTTP API, as API Gateway does it for an ``AWS_IAM`` route.

A request must be signed with SigV4 for ``execute-api`` by a known identity (an IAM user's access
key, or an assumed role's temporary key with its session token) of the offline stack; the
signature is verified with moto's own machinery (``moto.iam.access_control.IAMRequest``, as the
rest of the strict stack), and the caller's identity policies must allow ``execute-api:Invoke`` on

    arn:aws:execute-api:{region}:{account}:{api id}/{stage}/{METHOD}/{path}

Unsigned, badly signed, expired or unknown-key requests get 403 ``{"message": "Forbidden"}``; a
caller whose policies do not allow the route gets 403 ``{"message": "User: <arn> is not authorized
to perform: execute-api:Invoke on resource: <arn>"}``. An allowed request's event carries
``requestContext.authorizer.iam`` as API Gateway fills it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: SigV4 signatures older (or further in the future) than this are refused, as AWS does.
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
ACTION = "execute-api:Invoke"


class Forbidden(Exception):
    """A 403: ``message`` is the body's ``message``."""

    def __init__(self, message: str = "Forbidden") -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class IamAuthorizer:
    """Checks one API's requests against the offline stack's IAM (moto's backend, ``account_id``)."""

    account_id: str
    region: str
    api_id: str
    stage: str = "$default"

    def resource(self, method: str, path: str) -> str:
        return f"arn:aws:execute-api:{self.region}:{self.account_id}:{self.api_id}/{self.stage}/{method.upper()}{path}"

    def authorize(self, method: str, target: str, path: str, headers: Iterable[tuple[str, str]],
                  body: bytes) -> dict[str, Any]:
        """The ``iam`` authorizer context of an allowed request; :class:`Forbidden` otherwise.

        ``target`` is the request line's path and query as sent (what the client signed),
        ``path`` its path alone.
        """
        from requests.structures import CaseInsensitiveDict

        received: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for name, value in headers:
            received[name] = value
        authorization = received.get("authorization") or ""
        if not authorization.startswith("AWS4-HMAC-SHA256 ") or "x-amz-date" not in received:
            raise Forbidden()
        scope = authorization.partition("Credential=")[2].partition(",")[0].split("/")
        if len(scope) != 5 or scope[2] != self.region or scope[3] != "execute-api":
            raise Forbidden()
        _check_date(received["x-amz-date"])
        access_key = _verified_key(self.account_id, method, target, received, body)
        principal = _principal(access_key)
        resource = self.resource(method, path)
        if not _permitted(access_key.collect_policies(), resource):
            raise Forbidden(f"User: {principal['userArn']} is not authorized to perform: {ACTION} on resource: {resource}")
        return {"accessKey": scope[0], "accountId": self.account_id, **principal,
                "cognitoIdentity": None, "principalOrgId": None}


def _check_date(stamp: str) -> None:
    try:
        signed = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise Forbidden() from exc
    now = dt.datetime.now(dt.UTC)
    if abs(now - signed) > MAX_CLOCK_SKEW:
        raise Forbidden(f"Signature expired: {stamp} is now earlier than "
                        f"{(now - MAX_CLOCK_SKEW).strftime('%Y%m%dT%H%M%SZ')}")


def _verified_key(account_id: str, method: str, target: str, headers: Any, body: bytes) -> Any:
    """moto's access key of the request, once its SigV4 signature matches (else Forbidden)."""
    from moto.iam.access_control import IAMRequest

    # moto reads these two headers by their canonical names.
    normalized = dict(headers.items())
    for canonical in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
        if canonical in headers:
            normalized = {k: v for k, v in normalized.items() if k.lower() != canonical.lower()}
            normalized[canonical] = headers[canonical]
    try:
        request = IAMRequest(account_id=account_id, method=method.upper(), path=target, data={},  # type: ignore[arg-type]
                             body=body, headers=normalized, action="Invoke")
        request.check_signature()
    except Exception as exc:  # moto's InvalidClientTokenId / SignatureDoesNotMatch: both a 403 here
        raise Forbidden() from exc
    return request._access_key


def _principal(access_key: Any) -> dict[str, str]:
    """``userArn``, ``userId`` and ``callerId`` as API Gateway reports the caller."""
    from moto.iam.access_control import AssumedRoleAccessKey

    backend = access_key.backend
    if isinstance(access_key, AssumedRoleAccessKey):
        role = backend.get_role(access_key._owner_role_name)
        user_id = f"{role.id}:{access_key._session_name}"
    else:
        user_id = backend.get_user(access_key._owner_user_name).id
    return {"userArn": access_key.arn, "userId": user_id, "callerId": user_id}


def _permitted(policies: Iterable[Any], resource: str) -> bool:
    from stepml.local.iam import policies_allow

    return policies_allow(policies, ACTION, resource)

"""A local stand-in for API Gateway HTTP APIs (``sam local start-api``, without Docker).

Routes come from the template's ``HttpApi`` events. A request becomes an API Gateway **payload
format 2.0** event, the function is invoked through moto's Lambda API (so the same in-process runner
runs it as in the pipeline), and the function's response is written back as API Gateway would:

* ``{"statusCode", "headers", "body", "isBase64Encoded", "cookies"}`` is used as given;
* any other JSON value means 200 with that JSON as the body;
* a function error is a 500 ``{"message": "Internal Server Error"}`` (no trace to the client);
* no matching route is a 404 ``{"message": "Not Found"}``;
* a request beyond the stage's throttling (:mod:`stepml.local.throttle`) is a 429
  ``{"message": "Too Many Requests"}``, before anything else is done with it;
* a throttled function (over its reserved concurrency) is a 500, as API Gateway answers it;
* a body over HTTP APIs' 10 MB payload limit is a 413 ``{"message": "Request Entity Too Large"}``
  before it is read, and so is one whose event Lambda refuses (over its 6 MB request limit);
  a ``Content-Length`` that is not a number is a 400 ``{"message": "Bad Request"}``;
* with an authorizer (the strict stack's: :mod:`stepml.local.api_auth`), every route is
  IAM-authorized as the template's ``AWS_IAM`` default authorizer: unsigned or not allowed is a
  403 before the function runs, and an allowed event carries ``requestContext.authorizer.iam``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from stepml.local.api_auth import Forbidden, IamAuthorizer
from stepml.local.template import HttpRoute
from stepml.local.throttle import THROTTLED_BODY, THROTTLED_STATUS, TokenBucket

logger = logging.getLogger("stepml_local.api")

#: Invokes a function (logical id) with an event; returns (payload bytes, function errored).
Invoker = Callable[[str, dict[str, Any]], tuple[bytes, bool]]

#: API Gateway HTTP APIs' payload limit (a hard quota): a larger request is refused unread.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024

_TEXT_TYPES = re.compile(
    r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded|.*\+json|.*\+xml)|$)"
)


@dataclass(frozen=True)
class _CompiledRoute:
    route: HttpRoute
    pattern: re.Pattern[str] | None  # None for $default
    literal_segments: int
    greedy: bool


def _compile(route: HttpRoute) -> _CompiledRoute:
    if route.path == "$default":
        return _CompiledRoute(route, None, -1, True)
    regex = ""
    literal = 0
    greedy = False
    for segment in route.path.strip("/").split("/"):
        if not segment:
            continue
        match = re.fullmatch(r"\{([A-Za-z0-9_.-]+)(\+?)\}", segment)
        if match and match.group(2):
            regex += f"/(?P<{_group(match.group(1))}>.+)"
            greedy = True
        elif match:
            regex += f"/(?P<{_group(match.group(1))}>[^/]+)"
        else:
            regex += "/" + re.escape(segment)
            literal += 1
    return _CompiledRoute(route, re.compile((regex or "/") + "/?$"), literal, greedy)


def _group(name: str) -> str:
    # Regex group names must be identifiers; path parameter names may hold '-' or '.'.
    return "p_" + "".join(c if c.isalnum() else f"_{ord(c):x}_" for c in name)


def _ungroup(group: str) -> str:
    return re.sub(r"_([0-9a-f]+)_", lambda m: chr(int(m.group(1), 16)), group[2:])


class Router:
    """Match a method + path to a route, preferring the most specific one, as API Gateway does:
    an exact method over ``ANY``, literal segments over ``{param}``, ``{param}`` over ``{proxy+}``,
    and ``$default`` last."""

    def __init__(self, routes: Iterable[HttpRoute]) -> None:
        compiled = [_compile(route) for route in routes]
        self._routes = sorted(
            compiled,
            key=lambda c: (
                c.pattern is None,
                c.greedy,
                -c.literal_segments,
                c.route.method == "ANY",
            ),
        )

    @property
    def routes(self) -> list[HttpRoute]:
        """The routes, most specific first."""
        return [c.route for c in self._routes]

    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        """The route serving ``method path`` and its path parameters, or None (a 404)."""
        for compiled in self._routes:
            if compiled.route.method not in ("ANY", method.upper()):
                continue
            if compiled.pattern is None:
                return compiled.route, {}
            found = compiled.pattern.match(path)
            if found:
                params = {_ungroup(k): unquote(v) for k, v in found.groupdict().items()}
                return compiled.route, params
        return None


def build_event(
    *,
    route: HttpRoute,
    path_parameters: dict[str, str],
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str,
    api_id: str = "local",
    domain_name: str = "localhost",
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The API Gateway HTTP API payload format 2.0 event for one request."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "cookie":
            # 2.0 moves cookies out of the headers into their own list.
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[lower] = f"{merged[lower]},{value}" if lower in merged else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = dt.datetime.now(dt.UTC)
    request_id = base64.b32encode(uuid.uuid4().bytes)[:16].decode()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": api_id,
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if authorizer:
        event["requestContext"]["authorizer"] = authorizer
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        content_type = merged.get("content-type", "").split(";")[0].strip().lower()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and _TEXT_TYPES.match(content_type):
            event["body"] = text
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


@dataclass
class HttpResponse:
    """What the client gets."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _json_response(status: int, document: Any) -> HttpResponse:
    return HttpResponse(
        status, [("content-type", "application/json")], json.dumps(document).encode("utf-8")
    )


def to_http_response(payload: bytes, errored: bool) -> HttpResponse:
    """Turn a function's payload into the HTTP response API Gateway would send."""
    if errored:
        if b'"RequestTooLargeException"' in payload[:512]:
            # Lambda refused the event (over 6 MB): the request, not the function, is at fault.
            return _json_response(413, {"message": "Request Entity Too Large"})
        return _json_response(500, {"message": "Internal Server Error"})
    try:
        result = json.loads(payload.decode("utf-8")) if payload else None
    except (UnicodeDecodeError, ValueError):
        return _json_response(500, {"message": "Internal Server Error"})
    if not (isinstance(result, dict) and "statusCode" in result):
        # Format 2.0 inference: a bare JSON value is a 200 with that JSON as the body.
        return _json_response(200, result)
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        return _json_response(500, {"message": "Internal Server Error"})
    headers = [(str(k).lower(), str(v)) for k, v in (result.get("headers") or {}).items()]
    if not any(name == "content-type" for name, _ in headers):
        headers.append(("content-type", "application/json"))
    headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
    body = result.get("body")
    if body is None:
        raw = b""
    elif result.get("isBase64Encoded"):
        raw = base64.b64decode(str(body))
    else:
        raw = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
    return HttpResponse(status, headers, raw)


#: The response buffer: a typical response (headers and a JSON body) fits, and goes in one send;
#: a larger body is written through.
_WRITE_BUFFER_BYTES = 64 * 1024


class _ThreadingServer(ThreadingHTTPServer):
    """One thread per connection, with a listen backlog fit for a burst of clients."""

    daemon_threads = True
    # socketserver's default backlog is 5: a burst of clients beyond it overflows the accept
    # queue, and their connections are reset. The kernel caps this at net.core.somaxconn.
    request_queue_size = socket.SOMAXCONN

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request is the client's business, not a traceback on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("client %s hung up", client_address)
            return
        logger.exception("serving %s failed", client_address)


class HttpApiServer:
    """The local HTTP API: a threaded HTTP server that routes requests to functions.

    The socket is bound in the constructor (so a port of 0 is resolved before the stack deploys and
    its ``ApiUrl`` output can name it); :meth:`start` serves, :meth:`stop` closes.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 3000) -> None:
        self.router = Router(())
        self._invoke: Invoker | None = None
        self._authorizer: IamAuthorizer | None = None
        #: The stage's request throttling (None: unthrottled); set once the stack is deployed.
        self.throttle: TokenBucket | None = None
        self._thread: threading.Thread | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway
            server_version = "stepml-local-api"
            # Without TCP_NODELAY a keep-alive client waits out its delayed ACK (~40 ms) on every
            # request: Nagle holds back the server's next small segment until the ACK comes.
            disable_nagle_algorithm = True
            # Buffered (the stdlib writes unbuffered): the status line, headers and body of a
            # response leave in one send, flushed by _handle, rather than one send per part.
            wbufsize = _WRITE_BUFFER_BYTES

            def _serve(self) -> None:
                server._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
                logger.debug(format, *args)

        self._httpd = _ThreadingServer((host, port), Handler)

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def configure(
        self, routes: Iterable[HttpRoute], invoke: Invoker, authorizer: IamAuthorizer | None = None
    ) -> None:
        """Set the routes, how to invoke a function (once the stack is deployed) and who may call
        them (None: anyone, as a route without authorization)."""
        self.router = Router(routes)
        self._invoke = invoke
        self._authorizer = authorizer

    def _authorize(
        self, route: HttpRoute, request: BaseHTTPRequestHandler, raw_path: str, body: bytes
    ) -> dict[str, Any] | HttpResponse:
        """The event's ``requestContext.authorizer``, or the 403 that answers instead."""
        if self._authorizer is None or route.authorizer == "NONE":
            return {}
        if route.authorizer != "AWS_IAM":
            # A JWT or Lambda authorizer is not emulated: refused, never let through unchecked.
            return _json_response(403, {"message": "Forbidden"})
        try:
            iam = self._authorizer.authorize(
                request.command, request.path, raw_path, request.headers.items(), body
            )
        except Forbidden as exc:
            return _json_response(403, {"message": exc.message})
        return {"iam": iam}

    def start(self) -> None:
        """Serve requests on a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"stepml-local-api:{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        started = time.perf_counter()
        split = urlsplit(request.path)
        raw_path = split.path or "/"
        declared = (request.headers.get("content-length") or "0").strip()
        length = int(declared) if declared.isascii() and declared.isdigit() else -1
        matched = self.router.match(request.command, raw_path)
        function = None
        if self.throttle is not None and not self.throttle.take():
            # Refused at the door. The body is drained, so a keep-alive connection stays usable.
            if 0 <= length <= MAX_PAYLOAD_BYTES:
                request.rfile.read(length)
            else:
                request.close_connection = True
            response = _json_response(THROTTLED_STATUS, THROTTLED_BODY)
        elif length < 0 or length > MAX_PAYLOAD_BYTES:
            # The body is not read: the connection cannot carry another request after it.
            request.close_connection = True
            response = (
                _json_response(400, {"message": "Bad Request"})
                if length < 0
                else _json_response(413, {"message": "Request Entity Too Large"})
            )
        elif matched is None or self._invoke is None:
            request.rfile.read(length)
            response = _json_response(404, {"message": "Not Found"})
        else:
            body = request.rfile.read(length) if length else b""
            route, params = matched
            authorizer = self._authorize(route, request, raw_path, body)
            if isinstance(authorizer, HttpResponse):
                self._respond(request, authorizer, started, None, raw_path)
                return
            function = route.function
            event = build_event(
                route=route,
                path_parameters=params,
                method=request.command,
                raw_path=raw_path,
                raw_query=split.query,
                headers=request.headers.items(),
                body=body,
                source_ip=request.client_address[0],
                domain_name=request.headers.get("host", "localhost"),
                api_id=self._authorizer.api_id if self._authorizer else "local",
                authorizer=authorizer,
            )
            try:
                payload, errored = self._invoke(route.function, event)
                response = to_http_response(payload, errored)
            except Exception:  # an API Gateway answers 500, it does not hang up
                logger.exception("invoking %s failed", route.function)
                response = _json_response(500, {"message": "Internal Server Error"})
            # As on AWS, the apigw-requestid header is the request id the function saw (the key a
            # client sends feedback with).
            self._respond(request, response, started, function, raw_path, event["requestContext"]["requestId"])
            return
        self._respond(request, response, started, function, raw_path)

    def _respond(
        self,
        request: BaseHTTPRequestHandler,
        response: HttpResponse,
        started: float,
        function: str | None,
        raw_path: str,
        request_id: str | None = None,
    ) -> None:
        request.send_response(response.status)
        for name, value in response.headers:
            if name not in ("content-length", "connection", "transfer-encoding"):
                request.send_header(name, value)
        request.send_header("content-length", str(len(response.body)))
        request.send_header("apigw-requestid", request_id or base64.b32encode(uuid.uuid4().bytes)[:16].decode())
        if request.close_connection:
            request.send_header("connection", "close")
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(response.body)
        request.wfile.flush()
        if not logger.isEnabledFor(logging.INFO):
            return
        logger.info(
            json.dumps(
                {
                    "event": "api.request",
                    "method": request.command,
                    "path": raw_path,
                    "function": function,
                    "status": response.status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                }
            )
        )

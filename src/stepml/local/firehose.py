"""CloudWatch Logs subscription filters → Firehose → S3, offline, as the template configures them.

On AWS the prediction function's capture lines travel: its log group → a subscription filter
(only events matching the filter pattern) → a Firehose delivery stream, which decompresses the
CloudWatch Logs batches, keeps each event's message, reads partition keys from it with jq
(dynamic partitioning), and writes the records, newline-delimited and gzip-compressed, to
``<Prefix with the keys filled in><stream>-1-<yyyy-MM-dd-HH-mm-ss>-<uuid>.gz`` in the bucket.

moto has the pieces but not the behaviour: its CloudFormation creates neither a delivery stream
nor a subscription filter (and fails on a ``GetAtt`` of one); its CloudWatch Logs ignores the
filter pattern; its Firehose writes the raw gzip envelope under ``YYYY/MM/DD/HH/``, without
processors or partitioning. So this module:

* :func:`detach` takes the streams and filters (and log streams) out of the CloudFormation moto deploys, naming each
  stream as CloudFormation would and writing its name/ARN where the template refers to it;
* :func:`attach` creates them through moto's Firehose and CloudWatch Logs APIs once the stack is
  deployed, refusing what AWS refuses: a role its service cannot assume, a subscription role that
  may not put records into the stream, a filter pattern or processor this emulation does not
  read (so a template change cannot silently lose records offline);
* :func:`install` routes moto's Firehose ``send_log_event`` (what a subscription delivery ends in)
  to :class:`LocalDeliveryStream`, which applies the pattern, the processors and the prefixes, and
  writes with the **delivery role's** temporary credentials, so the local IAM enforcement judges
  the role's policy as AWS would.

Not emulated: buffering (each batch of log lines is delivered at once, by a background thread:
:func:`drain` waits for it), retries of failed deliveries, Firehose's own error logging.
"""

from __future__ import annotations

import gzip
import json
import logging
import queue
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("stepml_local.firehose")

CFN_STREAM = "AWS::KinesisFirehose::DeliveryStream"
CFN_SUBSCRIPTION = "AWS::Logs::SubscriptionFilter"
#: Firehose's own error log stream (moto's CloudFormation has no log streams either).
CFN_LOG_STREAM = "AWS::Logs::LogStream"
#: The processors this emulation applies (any other in a template is refused at deploy).
PROCESSORS = ("Decompression", "CloudWatchLogProcessing", "MetadataExtraction", "AppendDelimiterToRecord")
_PREFIX_EXPRESSION = re.compile(r"!\{([A-Za-z]+):([^}]*)\}")
#: Java date patterns a ``!{timestamp:…}`` expression may use, as strftime directives.
_JAVA_DATE = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


class FirehoseEmulationError(RuntimeError):
    """A delivery stream or subscription filter the local stack cannot run as AWS would."""


# -- filter patterns ---------------------------------------------------------------------------------

_JSON_TERM = re.compile(
    r"^\s*\$\.(?P<path>[A-Za-z_][\w.]*)\s*(?P<op>=|!=|>=|<=|>|<)\s*(?P<value>\"[^\"]*\"|[^\s&|\"]+)\s*$"
)


@dataclass(frozen=True)
class FilterPattern:
    """A CloudWatch Logs filter pattern, of the forms this emulation reads: empty (every event),
    terms that must all appear (``ERROR "disk full"``), or a JSON pattern of comparisons joined by
    ``&&`` or by ``||`` (``{ $.stepml_capture >= 1 }``). Anything else is refused when parsed."""

    text: str
    terms: tuple[str, ...] = ()
    comparisons: tuple[tuple[tuple[str, ...], str, Any], ...] = ()
    any_of: bool = False

    @classmethod
    def parse(cls, text: str) -> FilterPattern:
        stripped = text.strip()
        if not stripped:
            return cls(text)
        if stripped.startswith("{"):
            if not stripped.endswith("}"):
                raise FirehoseEmulationError(f"filter pattern {text!r}: a JSON pattern ends with }}")
            body = stripped[1:-1]
            if "(" in body or ("&&" in body and "||" in body):
                raise FirehoseEmulationError(f"filter pattern {text!r}: parentheses and mixed &&/|| are not emulated")
            any_of = "||" in body
            comparisons = []
            for part in body.split("||" if any_of else "&&"):
                match = _JSON_TERM.match(part)
                if match is None:
                    raise FirehoseEmulationError(f"filter pattern {text!r}: cannot read {part.strip()!r}")
                raw = match.group("value")
                value: Any = raw[1:-1] if raw.startswith('"') else _number_or_word(raw)
                if match.group("op") not in ("=", "!=") and not isinstance(value, float):
                    raise FirehoseEmulationError(f"filter pattern {text!r}: {match.group('op')} compares numbers only")
                comparisons.append((tuple(match.group("path").split(".")), match.group("op"), value))
            return cls(text, comparisons=tuple(comparisons), any_of=any_of)
        if any(c in stripped for c in "?[-"):
            raise FirehoseEmulationError(f"filter pattern {text!r}: only plain and quoted terms are emulated")
        terms = tuple(m.group(1) or m.group(2) for m in re.finditer(r'"([^"]*)"|(\S+)', stripped))
        return cls(text, terms=terms)

    def matches(self, message: str) -> bool:
        """Whether a log event's message passes the filter."""
        if self.terms:
            return all(term in message for term in self.terms)
        if not self.comparisons:
            return True
        try:
            document = json.loads(message)
        except ValueError:
            return False
        results = (_compare(document, path, op, value) for path, op, value in self.comparisons)
        return any(results) if self.any_of else all(results)


def _number_or_word(raw: str) -> Any:
    try:
        return float(raw)
    except ValueError:
        return raw


def _compare(document: Any, path: tuple[str, ...], op: str, expected: Any) -> bool:
    value = document
    for step in path:
        if not isinstance(value, dict) or step not in value:
            return False
        value = value[step]
    if isinstance(expected, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return {"=": value == expected, "!=": value != expected, ">": value > expected, "<": value < expected,
                ">=": value >= expected, "<=": value <= expected}[op]
    if not isinstance(value, str):
        return op == "!="
    pattern = re.compile("^" + ".*".join(map(re.escape, expected.split("*"))) + "$")
    return bool(pattern.match(value)) == (op == "=")


# -- a delivery stream ---------------------------------------------------------------------------------


def _parameters(processor: Mapping[str, Any]) -> dict[str, str]:
    return {str(p["ParameterName"]): str(p["ParameterValue"]) for p in processor.get("Parameters") or []}


@dataclass
class LocalDeliveryStream:
    """One Firehose delivery stream with an extended S3 destination, as configured in the template."""

    logical_id: str
    name: str
    arn: str
    bucket: str
    prefix: str
    error_prefix: str
    compression: str
    role_arn: str
    #: CloudWatch Logs decompression + message extraction (required: the stream takes log events).
    extracts_messages: bool
    append_delimiter: bool
    query: Any  # a compiled jq program, or None without dynamic partitioning
    #: Writes one object: (bucket, key, body) with the delivery role's credentials.
    put_object: Callable[[str, str, bytes], None]
    #: Deliveries that failed (S3 refused the write): (key, error). AWS would retry, then give up.
    failures: list[tuple[str, str]] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)

    @classmethod
    def from_properties(
        cls, logical_id: str, name: str, arn: str, properties: Mapping[str, Any],
        put_object: Callable[[str, str, bytes], None],
    ) -> LocalDeliveryStream:
        """The stream the template's (resolved) properties describe; refuses what is not emulated."""
        import jq

        where = f"{logical_id} ({CFN_STREAM})"
        destination = properties.get("ExtendedS3DestinationConfiguration")
        if not isinstance(destination, Mapping):
            raise FirehoseEmulationError(f"{where}: only an ExtendedS3DestinationConfiguration is emulated")
        processing = destination.get("ProcessingConfiguration") or {}
        processors = processing.get("Processors") or [] if processing.get("Enabled") in (True, "true") else []
        kinds = [p.get("Type") for p in processors]
        unknown = sorted({str(k) for k in kinds} - set(PROCESSORS))
        if unknown:
            raise FirehoseEmulationError(f"{where}: processor(s) {', '.join(unknown)} are not emulated")
        by_kind = {p["Type"]: _parameters(p) for p in processors}
        extracts = (by_kind.get("Decompression", {}).get("CompressionFormat") == "GZIP"
                    and by_kind.get("CloudWatchLogProcessing", {}).get("DataMessageExtraction") == "true")
        if not extracts:
            raise FirehoseEmulationError(
                f"{where}: a stream fed by CloudWatch Logs is emulated with Decompression (GZIP) and "
                "CloudWatchLogProcessing (DataMessageExtraction true) only"
            )
        partitioning = (destination.get("DynamicPartitioningConfiguration") or {}).get("Enabled") in (True, "true")
        prefix, error_prefix = str(destination.get("Prefix") or ""), str(destination.get("ErrorOutputPrefix") or "")
        query = None
        if partitioning:
            # AWS refuses a partitioned stream without an error prefix or without keys in its prefix.
            if not error_prefix or "partitionKeyFrom" not in prefix:
                raise FirehoseEmulationError(
                    f"{where}: dynamic partitioning needs an ErrorOutputPrefix and partition keys in its Prefix"
                )
            extraction = by_kind.get("MetadataExtraction")
            if extraction is None or not extraction.get("MetadataExtractionQuery"):
                raise FirehoseEmulationError(f"{where}: dynamic partitioning needs a MetadataExtraction query")
            try:
                query = jq.compile(extraction["MetadataExtractionQuery"])
            except ValueError as exc:
                raise FirehoseEmulationError(f"{where}: the MetadataExtractionQuery does not compile: {exc}") from exc
        elif "partitionKeyFrom" in prefix:
            raise FirehoseEmulationError(f"{where}: its Prefix uses partition keys without dynamic partitioning")
        for namespace, _ in _PREFIX_EXPRESSION.findall(prefix + error_prefix):
            if namespace not in ("partitionKeyFromQuery", "timestamp", "firehose"):
                raise FirehoseEmulationError(f"{where}: prefix expression !{{{namespace}:…}} is not emulated")
        return cls(
            logical_id=logical_id, name=name, arn=arn, bucket=str(destination["BucketARN"]).split(":")[-1],
            prefix=prefix, error_prefix=error_prefix, compression=str(destination.get("CompressionFormat") or "UNCOMPRESSED"),
            role_arn=str(destination["RoleARN"]), extracts_messages=extracts,
            append_delimiter="AppendDelimiterToRecord" in by_kind, query=query, put_object=put_object,
        )

    def _prefix(self, template: str, keys: Mapping[str, Any], arrival: datetime, error_type: str = "") -> str:
        def fill(match: re.Match[str]) -> str:
            namespace, name = match.group(1), match.group(2)
            if namespace == "partitionKeyFromQuery":
                return str(keys[name])
            if namespace == "timestamp":
                return arrival.strftime(re.sub("yyyy|MM|dd|HH|mm|ss", lambda m: _JAVA_DATE[m.group(0)], name))
            if name == "error-output-type":
                return error_type
            return uuid.uuid4().hex[:11]  # firehose:random-string

        return _PREFIX_EXPRESSION.sub(fill, template)

    def _keys(self, message: str) -> dict[str, Any] | None:
        """The partition keys of one record, or None when Firehose could not extract them."""
        try:
            keys = self.query.input_value(json.loads(message)).first()
        except (ValueError, StopIteration):
            return None
        if not isinstance(keys, dict) or any(v is None or isinstance(v, dict | list) for v in keys.values()):
            return None
        return keys

    def deliver(self, messages: list[str], arrival: datetime | None = None) -> list[str]:
        """Process and write one batch of log messages; returns the keys written."""
        arrival = arrival or datetime.now(UTC)
        batches: dict[str, list[bytes]] = {}
        for message in messages:
            record = message.encode("utf-8") + (b"\n" if self.append_delimiter else b"")
            if self.query is None:
                batches.setdefault(self._prefix(self.prefix, {}, arrival), []).append(record)
                continue
            keys = self._keys(message)
            wanted = set(re.findall(r"!\{partitionKeyFromQuery:([^}]*)\}", self.prefix))
            if keys is None or not wanted <= set(keys):
                prefix = self._prefix(self.error_prefix, {}, arrival, "partitioning-failed")
            else:
                prefix = self._prefix(self.prefix, keys, arrival)
            batches.setdefault(prefix, []).append(record)
        written = []
        for prefix, records in batches.items():
            body = b"".join(records)
            suffix = ""
            if self.compression == "GZIP":
                body, suffix = gzip.compress(body), ".gz"
            key = f"{prefix}{self.name}-1-{arrival.strftime('%Y-%m-%d-%H-%M-%S')}-{uuid.uuid4()}{suffix}"
            try:
                self.put_object(self.bucket, key, body)
            except Exception as exc:  # noqa: BLE001 - AWS retries, then gives up: kept and logged
                self.failures.append((key, str(exc)))
                logger.error(json.dumps({"event": "firehose.delivery_failed", "stream": self.name, "key": key,
                                         "error": str(exc)}))
                continue
            written.append(key)
        self.delivered += written
        return written


# -- the stack's streams and filters ---------------------------------------------------------------------


@dataclass
class _Subscription:
    stream: LocalDeliveryStream
    pattern: FilterPattern


#: delivery stream ARN → stream; (log group, filter name) → subscription
_streams: dict[str, LocalDeliveryStream] = {}
_subscriptions: dict[tuple[str, str], _Subscription] = {}
_queue: queue.Queue[tuple[_Subscription, list[str]] | None] = queue.Queue()
_worker: threading.Thread | None = None
_moto_send_log_event: Callable[..., None] | None = None
_lock = threading.Lock()


def stream_name(stack_name: str, logical_id: str) -> str:
    """A delivery stream's name as CloudFormation makes it when the template sets none (≤ 64)."""
    return f"{stack_name}-{logical_id}"[:64]


def detach(cfn: dict[str, Any], *, stack_name: str, region: str, account_id: str) -> dict[str, dict[str, Any]]:
    """Take the delivery streams and subscription filters out of ``cfn`` (what moto deploys) and
    write each stream's name and ARN where the rest of the template refers to it; returns the
    detached resources by logical id (for :func:`attach`)."""
    resources = cfn.get("Resources", {})
    detached = {k: resources.pop(k) for k in [k for k, r in resources.items()
                                             if r.get("Type") in (CFN_STREAM, CFN_SUBSCRIPTION, CFN_LOG_STREAM)]}
    names: dict[str, str] = {}
    arns: dict[str, str] = {}
    for logical_id, resource in detached.items():
        if resource["Type"] == CFN_STREAM:
            name = (resource.get("Properties") or {}).get("DeliveryStreamName") or stream_name(stack_name, logical_id)
            names[logical_id] = name
            arns[logical_id] = f"arn:aws:firehose:{region}:{account_id}:deliverystream/{name}"

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(item) for item in node if not (isinstance(item, str) and item in detached)]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"} and node["Ref"] in names:
            return names[node["Ref"]]
        if set(node) == {"Fn::GetAtt"}:
            target = node["Fn::GetAtt"]
            logical, _, attribute = (".".join(target) if isinstance(target, list) else str(target)).partition(".")
            if logical in arns and attribute == "Arn":
                return arns[logical]
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            text = node["Fn::Sub"]
            for logical, name in names.items():
                text = text.replace(f"${{{logical}.Arn}}", arns[logical]).replace(f"${{{logical}}}", name)
            return {"Fn::Sub": text}
        return {key: rewrite(value) for key, value in node.items()}

    cfn["Resources"] = {k: rewrite(r) for k, r in resources.items()}
    if "Outputs" in cfn:
        cfn["Outputs"] = rewrite(cfn["Outputs"])
    for resource in cfn["Resources"].values():
        depends = resource.get("DependsOn")
        if isinstance(depends, str) and depends in detached:
            del resource["DependsOn"]
    detached = {logical_id: rewrite(resource) for logical_id, resource in detached.items()}
    for logical_id, resource in detached.items():
        resource["_name"] = names.get(logical_id, "")
    return detached


def attach(
    detached: Mapping[str, dict[str, Any]],
    *,
    resolve: Callable[[Any], Any],
    stack_name: str,
    region: str,
    account_id: str,
    clients: Callable[[str], Any],
    s3_for_role: Callable[[str], Any],
) -> list[LocalDeliveryStream]:
    """Create the detached streams and filters in moto (see the module docstring).

    ``resolve`` resolves a template node (Ref, GetAtt, Sub); ``clients(service)`` is an
    administrator's client; ``s3_for_role(role_arn)`` an S3 client with the role's temporary
    credentials as Firehose gets them (it raises when firehose.amazonaws.com may not assume it).
    """
    from stepml.local import iam

    created: list[LocalDeliveryStream] = []
    for resource in detached.values():
        if resource["Type"] == CFN_LOG_STREAM:
            properties = resolve(resource.get("Properties") or {})
            clients("logs").create_log_stream(
                logGroupName=properties["LogGroupName"], logStreamName=properties["LogStreamName"])
    for logical_id, resource in detached.items():
        if resource["Type"] != CFN_STREAM:
            continue
        name = resource["_name"]
        arn = f"arn:aws:firehose:{region}:{account_id}:deliverystream/{name}"
        properties = resolve(resource.get("Properties") or {})
        role_arn = str((properties.get("ExtendedS3DestinationConfiguration") or {}).get("RoleARN", ""))
        try:
            s3 = s3_for_role(role_arn)
        except Exception as exc:
            raise FirehoseEmulationError(f"{logical_id}: Firehose cannot assume its role {role_arn}: {exc}") from exc

        def put(bucket: str, key: str, body: bytes, s3: Any = s3) -> None:
            s3.put_object(Bucket=bucket, Key=key, Body=body)

        stream = LocalDeliveryStream.from_properties(logical_id, name, arn, properties, put)
        s3_destination = dict(properties["ExtendedS3DestinationConfiguration"])
        clients("firehose").create_delivery_stream(
            DeliveryStreamName=name, DeliveryStreamType=properties.get("DeliveryStreamType", "DirectPut"),
            ExtendedS3DestinationConfiguration={
                k: s3_destination[k] for k in ("RoleARN", "BucketARN", "Prefix", "ErrorOutputPrefix", "CompressionFormat")
                if k in s3_destination},
        )
        with _lock:
            _streams[arn] = stream
        created.append(stream)
    for logical_id, resource in detached.items():
        if resource["Type"] != CFN_SUBSCRIPTION:
            continue
        properties = resolve(resource.get("Properties") or {})
        destination = str(properties["DestinationArn"])
        target = _streams.get(destination)
        if target is None:
            raise FirehoseEmulationError(f"{logical_id}: its destination {destination} is not a delivery stream of this stack")
        role_arn = str(properties.get("RoleArn") or "")
        role = iam._iam_backend(account_id).get_role_by_arn(role_arn) if role_arn else None
        if role is None or not iam.trusts_service(role, "logs.amazonaws.com"):
            raise FirehoseEmulationError(f"{logical_id}: CloudWatch Logs cannot assume its role {role_arn or '(none)'}")
        if not iam.role_allows(account_id, role_arn, "firehose:PutRecordBatch", destination):
            raise FirehoseEmulationError(
                f"{logical_id}: its role {role_arn} may not firehose:PutRecordBatch into {destination} "
                "(AWS refuses the subscription filter: its test message cannot be delivered)"
            )
        pattern = FilterPattern.parse(str(properties.get("FilterPattern", "")))
        filter_name = properties.get("FilterName") or f"{stack_name}-{logical_id}"
        group = str(properties["LogGroupName"])
        clients("logs").put_subscription_filter(
            logGroupName=group, filterName=filter_name, filterPattern=pattern.text,
            destinationArn=destination, roleArn=role_arn,
        )
        with _lock:
            _subscriptions[(group, filter_name)] = _Subscription(target, pattern)
    return created


def unregister(streams: list[LocalDeliveryStream]) -> None:
    """Forget a stopped stack's streams and the filters that feed them."""
    drain()
    with _lock:
        for stream in streams:
            _streams.pop(stream.arn, None)
            for key in [k for k, s in _subscriptions.items() if s.stream is stream]:
                del _subscriptions[key]


def _send_log_event(
    self: Any, delivery_stream_arn: str, filter_name: str, log_group_name: str, log_stream_name: str,
    log_events: list[dict[str, Any]],
) -> None:
    """Replacement for moto's ``FirehoseBackend.send_log_event``: the template's streams run here."""
    subscription = _subscriptions.get((log_group_name, filter_name))
    if subscription is None or subscription.stream.arn != delivery_stream_arn:
        assert _moto_send_log_event is not None
        _moto_send_log_event(self, delivery_stream_arn, filter_name, log_group_name, log_stream_name, log_events)
        return
    # moto hands every event to every filter: the pattern is applied here, as CloudWatch Logs does.
    messages = [str(e["message"]) for e in log_events if subscription.pattern.matches(str(e["message"]))]
    if messages:
        _queue.put((subscription, messages))


def _work() -> None:
    while True:
        item = _queue.get()
        try:
            if item is None:
                return
            subscription, messages = item
            subscription.stream.deliver(messages)
        except Exception:  # a delivery never takes the worker down
            logger.exception("firehose delivery failed")
        finally:
            _queue.task_done()


def drain(timeout: float = 30.0) -> bool:
    """Wait until every queued delivery is written; False if ``timeout`` passed first."""
    import time

    deadline = time.monotonic() + timeout
    while _queue.unfinished_tasks:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def install() -> None:
    """Route moto's subscription deliveries to Firehose through this module (idempotent)."""
    global _moto_send_log_event, _worker
    from moto.firehose.models import FirehoseBackend

    with _lock:
        if _moto_send_log_event is None:
            _moto_send_log_event = FirehoseBackend.send_log_event
            FirehoseBackend.send_log_event = _send_log_event  # type: ignore[method-assign]
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, name="stepml-local-firehose", daemon=True)
            _worker.start()


def uninstall() -> None:
    """Restore moto's own ``send_log_event`` and stop the delivery thread."""
    global _moto_send_log_event, _worker
    from moto.firehose.models import FirehoseBackend

    drain()
    with _lock:
        if _moto_send_log_event is not None:
            FirehoseBackend.send_log_event = _moto_send_log_event  # type: ignore[method-assign]
            _moto_send_log_event = None
        if _worker is not None:
            _queue.put(None)
            _worker = None

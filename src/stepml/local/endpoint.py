"""The offline AWS: the project's template deployed into moto, running in this Python process.

:class:`LocalStack` starts moto's server on a local port, deploys ``template.yaml`` through moto's
CloudFormation, and closes the gaps between moto and AWS for this kind of application (listed in
ARCHITECTURE.md): state machines run in moto's *executing* Step Functions backend with their
``DefinitionSubstitutions`` applied, EventBridge rules start executions, buckets send their
EventBridge notifications, Lambda functions run their real handlers in-process, and HTTP API routes
are served by a local API Gateway stand-in. The stack's outputs are made true locally, so a client
finds everything the same way as on AWS: ``cloudformation.describe_stacks(StackName=...)``.

Strict by default, as AWS is: every request to the endpoint must be signed by a known identity and
is authorized against that identity's IAM policies (:mod:`stepml.local.iam`). Each function runs in
environments of its own with its role's temporary credentials and its configured limits
(:mod:`stepml.local.worker`); Step Functions calls Lambda as the state machine's role; an
EventBridge rule starts an execution only if its role may. The user's own clients use the
administrator identity the stack creates (:attr:`LocalStack.admin_credentials`, also written as the
named profile ``stepml-local`` by ``stepml local up``). ``strict=False`` turns IAM and the limits off.

moto's backends are process-wide: stacks started in one process share them, so every stack needs
its own ``stack_name``; starting the first stack of a process resets moto. Without ``data_dir`` a
stack's state is in memory only; with it, the buckets' objects and the executions are kept there and
come back on the next start (:mod:`stepml.local.persistence`), as ``stepml local up`` does.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import secrets
import socket
import string
import threading
import time
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from stepml.local import (
    events,
    firehose,
    glue_runner,
    iam,
    lambda_runner,
    persistence,
    run_events,
    s3_conditions,
)
from stepml.local.api import HttpApiServer
from stepml.local.api_auth import IamAuthorizer
from stepml.local.lambda_runner import Invocation
from stepml.local.seed import Seeding, seed_for_event
from stepml.local.template import (
    LOCAL_API_ID,
    SamTemplate,
    TemplateError,
    dumps,
    localize_api_ids,
    localize_outputs,
    resolve,
)
from stepml.local.throttle import stage_throttle

# Not under "stepml": the handlers' Powertools Logger(service="stepml") takes that logger over
# (its own handler, propagate=False), so lines logged below it would reach neither the root
# logger nor pytest, and would carry the last Lambda context it saw.
logger = logging.getLogger("stepml_local")

ACCOUNT_ID = "123456789012"  # moto's default account
#: The stack output naming the HTTP API's operator policy (template.yaml).
OPERATOR_POLICY_OUTPUT = "OperatorPolicyArn"
DEFAULT_REGION = "us-east-1"
FAKE_ACCESS_KEY_ID = "testing"  # used only before the administrator exists, and when not strict
FAKE_SECRET_ACCESS_KEY = "testing"
_CODE_KEY = "local/placeholder.zip"
#: Connections each function's Lambda client keeps to moto (botocore's default is 10).
_LAMBDA_POOL_CONNECTIONS = 64


#: Stacks running in this process, oldest first (moto's backends and config are process-wide).
_running: list[LocalStack] = []
_running_lock = threading.RLock()
#: The moto settings the first stack of a process sets in its environment (moto reads them there),
#: and their values before it: the last stack to stop puts them back, so a ``mock_aws()`` after it
#: runs as in a process that never started one (no managed policies loaded on every first call).
MOTO_ENVIRONMENT = ("MOTO_PORT", "MOTO_IAM_LOAD_MANAGED_POLICIES", "MOTO_LAMBDA_CONCURRENCY_QUOTA")
_environment_before: dict[str, str | None] = {}


def _restore_environment() -> None:
    """Put back the moto settings the first stack changed (:data:`MOTO_ENVIRONMENT`)."""
    for name, value in _environment_before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _environment_before.clear()


class LocalStackError(RuntimeError):
    """The local stack could not start or deploy."""


class LocalStack:
    """The project's SAM application, deployed offline into an in-process moto server.

    Parameters
    ----------
    project_root
        The project folder; the template defaults to ``project_root / "template.yaml"``.
    template
        The SAM template to deploy (paths in it are relative to its own folder, as in SAM).
    host, port
        Where moto listens. ``port=0`` picks a free port.
    api_port
        Where the local HTTP API listens (on ``host``). ``0`` picks a free port.
    stack_name
        The CloudFormation stack name; the CLI finds the stack by this name.
    region
        The region of everything deployed.
    parameters
        CloudFormation parameter values (``ParameterKey`` → value).
    strict
        As strict as AWS (the default): IAM authentication and authorization on every request,
        each function inside its own role and limits. ``False`` accepts any credentials and runs
        functions without limits (the switch ``stepml local up --no-strict``).
    data_dir
        Keep the stack's state here (the buckets' objects, the executions) and start from what it
        holds: a restart, even after ``kill -9``, serves every model, alias, dataset and run kept
        before. ``None`` (the default): in memory only, gone with the process.
    fresh
        Empty ``data_dir`` first.

    Examples
    --------
    >>> with LocalStack(Path("."), port=0, api_port=0) as stack:  # doctest: +SKIP
    ...     s3 = stack.client("s3")
    ...     s3.put_object(Bucket=stack.bucket, Key="raw/adult/adult.csv", Body=b"...")
    """

    def __init__(
        self,
        project_root: Path,
        template: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 4566,
        api_port: int = 3000,
        stack_name: str = "stepml",
        region: str = DEFAULT_REGION,
        parameters: Mapping[str, str] | None = None,
        strict: bool = True,
        data_dir: Path | None = None,
        fresh: bool = False,
    ) -> None:
        self.strict = strict
        self.data_dir = persistence.DataDir(data_dir) if data_dir is not None else None
        self.fresh = fresh
        self.admin_credentials: iam.Credentials | None = None
        #: The template's operator policy, attached to the administrator (None: the template has none).
        self.operator_policy_arn: str | None = None
        self.project_root = Path(project_root).resolve()
        self.template_path = (
            Path(template).resolve() if template else self.project_root / "template.yaml"
        )
        self.host = host
        self.requested_port = port
        self.requested_api_port = api_port
        self.stack_name = stack_name
        self.region = region
        self.parameters = dict(parameters or {})
        self.template: SamTemplate | None = None
        self._moto: Any = None  # moto.server.ThreadedMotoServer
        self._api: HttpApiServer | None = None
        self._port: int | None = None
        self._outputs: dict[str, str] = {}
        self._resources: dict[str, str] = {}  # logical id → physical id
        self._function_names: dict[str, str] = {}  # function logical id → deployed name
        self._lambda_clients: dict[str, Any] = {}  # by function, as named by the caller
        self._lambda_clients_lock = threading.Lock()
        self._started = False
        self._kept_buckets: list[str] = []
        self._kept_machines: dict[str, persistence.ExecutionArchive] = {}  # by ARN
        #: The template's Firehose delivery streams (capture), run by stepml.local.firehose.
        self.delivery_streams: list[firehose.LocalDeliveryStream] = []
        self._progress: persistence.ProgressWriter | None = None
        #: What the start found in ``data_dir``: object keys and runs (executions) restored.
        self.restored = {"objects": 0, "runs": 0}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Start moto and the HTTP API, and deploy the template. Returns ``self``."""
        if self._started:
            return self
        self.template = SamTemplate(self.template_path)
        with _running_lock:
            first = not _running
            try:
                if self.data_dir is not None:
                    self.data_dir.acquire(self.stack_name, self.region, fresh=self.fresh)
                self._start_servers(first)
                _running.append(self)
                self._started = True
                self._deploy()
                if self.data_dir is not None:  # `stepml --local` finds this port there
                    self.data_dir.record_serving(self.endpoint_url, self.api_url)
            except BaseException:
                self.stop()
                raise
        logger.info(
            json.dumps(
                {
                    "event": "local_stack.started",
                    "stack": self.stack_name,
                    "endpoint_url": self.endpoint_url,
                    "api_url": self.api_url,
                    "data_dir": str(self.data_dir.path) if self.data_dir else None,
                }
            )
        )
        return self

    def stop(self) -> None:
        """Stop serving; the deployed state goes with the process (or the next first stack)."""
        with _running_lock:
            if self._api is not None:
                self._api.stop()
                self._api = None
            if self._progress is not None:
                self._progress.stop()
                self._progress = None
            firehose.unregister(self.delivery_streams)
            self.delivery_streams = []
            persistence.unregister(self._kept_buckets, list(self._kept_machines))
            self._kept_buckets, self._kept_machines = [], {}
            if self._port is not None:
                lambda_runner.unregister_stack(self.stack_name, self.endpoint_url)
                iam.release(self.host, self._port)
            with self._lambda_clients_lock:
                for client in {id(c): c for c in self._lambda_clients.values()}.values():
                    client.close()
                self._lambda_clients.clear()
            if self in _running:
                _running.remove(self)
            if self._moto is not None:
                self._moto.stop()
                self._moto = None
            self._port = None
            if _running:
                # The interpreter calls Lambda at MOTO_PORT: keep it on a server that still runs.
                os.environ["MOTO_PORT"] = str(_running[0].port)
            else:
                # The reverse of the install order: patches of the same method chain.
                persistence.uninstall()
                firehose.uninstall()
                iam.uninstall()
                s3_conditions.uninstall()
                run_events.uninstall()
                events.uninstall()
                lambda_runner.uninstall()
                glue_runner.uninstall()
                _restore_environment()
            if self.data_dir is not None:
                self.data_dir.release()
            self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what a client needs -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port moto listens on."""
        if self._port is None:
            raise LocalStackError("the local stack is not started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        """The AWS endpoint: give it to boto3 as ``endpoint_url`` (or set ``AWS_ENDPOINT_URL``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """Base URL of the local HTTP API, with a trailing slash (as the ``ApiUrl`` output)."""
        if self._api is None:
            raise LocalStackError("the local stack is not started")
        return self._api.url + "/"

    @property
    def outputs(self) -> dict[str, str]:
        """The stack's outputs, as ``describe_stacks`` reports them."""
        return dict(self._outputs)

    @property
    def resources(self) -> dict[str, str]:
        """Physical ids of the deployed resources, by logical id."""
        return dict(self._resources)

    @property
    def bucket(self) -> str:
        """The data bucket: the ``BucketName`` output, else the template's only bucket."""
        if "BucketName" in self._outputs:
            return self._outputs["BucketName"]
        return self._single_resource("AWS::S3::Bucket")

    @property
    def state_machine_arn(self) -> str:
        """The pipeline: the ``StateMachineArn`` output, else the template's only state machine."""
        if "StateMachineArn" in self._outputs:
            return self._outputs["StateMachineArn"]
        return self._single_resource("AWS::Serverless::StateMachine")

    def function_name(self, function: str) -> str:
        """The deployed name of a function given by logical id, deployed name, or code folder."""
        return self._function_names[self.resolve_function(function)]

    def resolve_function(self, function: str) -> str:
        """The logical id of a function named by logical id, deployed name/ARN or code folder."""
        assert self.template is not None
        return resolve_function_id(self.template, function, self._function_names)

    def client(self, service: str, config: Any = None) -> Any:
        """A boto3 client for ``service`` aimed at this stack, as its administrator."""
        return _client(service, self.endpoint_url, self.region, config, self.admin_credentials)

    def client_environment(self) -> dict[str, str]:
        """Environment variables that aim an AWS SDK or CLI (in a subprocess) at this stack.

        They carry the administrator's keys; ``AWS_SESSION_TOKEN`` is blanked so that a token in the
        caller's environment is not sent with them (leave ``AWS_PROFILE`` out of that environment).
        """
        credentials = self.admin_credentials or iam.Credentials(
            FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY
        )
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_SESSION_TOKEN": "",
            "AWS_SECURITY_TOKEN": "",
            **credentials.environment(),
        }

    def role_credentials(self, role_arn: str, service: str) -> iam.Credentials:
        """Temporary credentials of ``role_arn`` as ``service`` (e.g. ``lambda.amazonaws.com``) gets them."""
        return iam.assume_role(ACCOUNT_ID, self.region, role_arn, service, f"stepml-local-{service.split('.')[0]}")

    def invoke(self, function: str, event: Any) -> Invocation:
        """Invoke a function through moto's Lambda API (what a Task or ``lambda.invoke`` does)."""
        name = self.function_name(function)
        started = time.perf_counter()
        response = self._lambda_client(function).invoke(
            FunctionName=name, Payload=json.dumps(event).encode("utf-8"), LogType="Tail"
        )
        raw = response["Payload"].read()
        payload = json.loads(raw) if raw else None
        logs = response.get("LogResult")
        return Invocation(
            function_name=name,
            request_id=str(response.get("ResponseMetadata", {}).get("RequestId", "")),
            payload=payload,
            errored=bool(response.get("FunctionError")),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            log_lines=base64.b64decode(logs).decode("utf-8").splitlines() if logs else [],
        )

    # -- internals -----------------------------------------------------------------------------

    def _deployed_template_resources(self) -> dict[str, dict[str, Any]]:
        """The template's resources this stack has: conditional ones only if their condition holds."""
        assert self.template is not None
        return self.template.deployed_resources(self.parameters)

    def _single_resource(self, resource_type: str) -> str:
        assert self.template is not None
        ids = [k for k, r in self._deployed_template_resources().items() if r.get("Type") == resource_type]
        if len(ids) != 1:
            raise LocalStackError(f"the template has {len(ids)} resources of type {resource_type}")
        return self._resources[ids[0]]

    def _start_servers(self, first: bool) -> None:
        from moto.server import ThreadedMotoServer

        # Bind the API first: with api_port=0 its port must be known before the outputs are.
        self._api = HttpApiServer(self.host, self.requested_api_port)
        port = self.requested_port or _free_port(self.host)
        _check_port_free(self.host, port)  # moto's server would hang, not fail, on a busy port
        _quiet_moto_server_logs()
        self._moto = ThreadedMotoServer(ip_address=self.host, port=port, verbose=False)
        self._moto.start()
        self._port = int(self._moto.get_host_and_port()[1])
        if first:
            _environment_before.update({name: os.environ.get(name) for name in MOTO_ENVIRONMENT})
            os.environ["MOTO_PORT"] = str(self._port)
            # AWS managed policies (AdministratorAccess, AWSLambdaBasicExecutionRole...) exist in
            # moto's IAM only when asked for, before its backend is created.
            os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
            # moto refuses a put_function_concurrency under the unreserved minimum only when told
            # the account's quota; the template's reservations are checked by the stack itself.
            os.environ["MOTO_LAMBDA_CONCURRENCY_QUOTA"] = str(lambda_runner.ACCOUNT_CONCURRENCY)
            self._post_moto_api("/moto-api/reset", {})
        # Step Functions: run the definitions (moto's ASL interpreter); Lambda: the docker backend,
        # whose one invoke method lambda_runner replaces (use_docker=False would only echo).
        self._post_moto_api(
            "/moto-api/config",
            {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": True}},
        )
        lambda_runner.install()
        firehose.install()
        glue_runner.install()
        events.install()
        run_events.install()
        s3_conditions.install()
        iam.install(self.role_credentials)
        self._api.start()

    def _post_moto_api(self, path: str, body: Mapping[str, Any]) -> None:
        import urllib.request

        request = urllib.request.Request(
            self.endpoint_url + path,
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def _deploy(self) -> None:
        assert self.template is not None and self._api is not None
        cloudformation = self.client("cloudformation")
        try:
            cloudformation.describe_stacks(StackName=self.stack_name)
        except cloudformation.exceptions.ClientError:
            pass
        else:
            raise LocalStackError(
                f"a stack named {self.stack_name!r} already runs in this process: "
                "give each LocalStack its own stack_name"
            )
        # One administrator per stack (moto's IAM is shared by the stacks of a process); made once
        # no other stack of this name runs, since a new key replaces the user's earlier ones.
        admin = iam.ADMIN_USER if self.stack_name == "stepml" else f"{self.stack_name}-admin"[:64]
        self.admin_credentials = iam.create_admin(ACCOUNT_ID, self.region, admin)
        cloudformation = self.client("cloudformation")
        s3 = self.client("s3")
        artifacts = f"{self.stack_name.lower()}-local-artifacts"
        s3.create_bucket(Bucket=artifacts)
        s3.put_object(Bucket=artifacts, Key=_CODE_KEY, Body=_placeholder_zip())

        try:
            cfn = self.template.to_cloudformation(
                artifact_bucket=artifacts,
                code_key=_CODE_KEY,
                region=self.region,
                parameters=self.parameters,
            )
        except TemplateError:
            raise
        except Exception as exc:  # the translator's InvalidDocumentException and friends
            raise LocalStackError(f"{self.template_path} does not translate: {exc}") from exc
        localize_outputs(cfn, self._api.url)
        localize_api_ids(cfn)
        # moto's CloudFormation creates no delivery stream or subscription filter: made after it.
        detached = firehose.detach(cfn, stack_name=self.stack_name, region=self.region, account_id=ACCOUNT_ID)
        self._name_glue_jobs(cfn)
        if self.data_dir is not None:
            self._keep_physical_names(cfn)

        cloudformation.create_stack(
            StackName=self.stack_name,
            TemplateBody=dumps(cfn),
            Parameters=[
                {"ParameterKey": k, "ParameterValue": str(v)} for k, v in self.parameters.items()
            ],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        stack = cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise LocalStackError(f"stack {self.stack_name} ended in {stack['StackStatus']}")
        self._resources = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cloudformation.describe_stack_resources(StackName=self.stack_name)[
                "StackResources"
            ]
            if r.get("LogicalResourceId") and r.get("PhysicalResourceId")
        }
        self._register_functions()
        self._check_reserved_concurrency()
        self._create_glue_jobs()
        self._create_executing_state_machines(cfn)
        self._apply_bucket_properties()
        self._create_alarms()
        self._create_schedules(cfn)
        self._apply_queue_policies()
        self._attach_delivery_streams(detached)
        if self.data_dir is not None:
            self._restore_state(cfn)
        self._api.throttle = self._stage_throttle(cfn) if self.strict else None
        self._check_service_roles(cfn)
        self._grant_operator(admin)
        self._api.configure(
            self.template.http_routes(),
            self._invoke_for_api,
            IamAuthorizer(ACCOUNT_ID, self.region, LOCAL_API_ID) if self.strict else None,
        )
        if self.strict:
            events.check_target_roles(True)
            run_events.check_function_policies(True)
            iam.enforce(self.host, self.port)
        self._outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0].get(
                "Outputs", []
            )
        }

    def _grant_operator(self, admin: str) -> None:
        """Attach the stack's operator policy (output ``OperatorPolicyArn``) to the administrator,
        so the user's own identity may call every route of the HTTP API, as its operator."""
        cloudformation = self.client("cloudformation")
        outputs = cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0].get("Outputs", [])
        arn = next((o["OutputValue"] for o in outputs if o["OutputKey"] == OPERATOR_POLICY_OUTPUT), None)
        if arn:
            iam.attach_user_policy(ACCOUNT_ID, admin, arn)
            self.operator_policy_arn = arn

    def _keep_physical_names(self, cfn: dict[str, Any]) -> None:
        """Give the buckets and state machines the names they had before: the kept objects and
        executions (and every ARN and S3 URI inside them) name them. Names the template sets
        itself are left alone; new ones are made the way CloudFormation makes them."""
        assert self.data_dir is not None
        naming = {
            "AWS::S3::Bucket": ("BucketName", True),
            "AWS::StepFunctions::StateMachine": ("StateMachineName", False),
        }
        deployed = self._deployed_template_resources()
        for logical_id, resource in cfn["Resources"].items():
            if resource.get("Type") not in naming or logical_id not in deployed:
                continue
            name_property, lowercase = naming[resource["Type"]]
            properties = resource.setdefault("Properties", {})
            if name_property in properties:
                continue

            def make(logical_id: str = logical_id, lowercase: bool = lowercase) -> str:
                alphabet = string.digits + string.ascii_uppercase
                suffix = "".join(secrets.choice(alphabet) for _ in range(12))
                tail = f"-{logical_id}-{suffix}"
                name = self.stack_name[: 63 - len(tail)] + tail
                return name.lower() if lowercase else name

            properties[name_property] = self.data_dir.physical_name(logical_id, make)
        # Requests for the buckets' objects wait until _restore_state has filled them.
        persistence.install()
        for logical_id, resource in cfn["Resources"].items():
            if logical_id not in deployed:
                continue
            name = (resource.get("Properties") or {}).get("BucketName")
            if resource.get("Type") == "AWS::S3::Bucket" and isinstance(name, str):
                persistence.hold_bucket(name)
                self._kept_buckets.append(name)

    def _restore_state(self, cfn: Mapping[str, Any]) -> None:
        """Load the kept objects and executions, then keep every later change (before the stack
        serves its first request: strict IAM is not on yet, and no user has its keys)."""
        from moto.s3.models import s3_backends
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        assert self.data_dir is not None and self.template is not None
        persistence.install()
        for logical_id, resource in self._deployed_template_resources().items():
            if resource.get("Type") != "AWS::S3::Bucket":
                continue
            name = self._resources[logical_id]
            mirror = self.data_dir.bucket(name)
            bucket = s3_backends[ACCOUNT_ID][iam.PARTITION].get_bucket(name)
            count = mirror.restore(bucket, ACCOUNT_ID, self.region)
            self.restored["objects"] += count
            persistence.register_bucket(mirror)
            persistence.release_bucket(name)
            if name not in self._kept_buckets:
                self._kept_buckets.append(name)
            logger.info(json.dumps({"event": "local_stack.restored_bucket", "bucket": name,
                                    "keys": count, "data_dir": str(self.data_dir.path)}))
        backend = stepfunctions_parser_backends[ACCOUNT_ID][self.region]
        for logical_id, resource in cfn["Resources"].items():
            if resource.get("Type") != "AWS::StepFunctions::StateMachine":
                continue
            arn = self._resources[logical_id]
            archive = self.data_dir.executions(logical_id)
            restored = archive.restore()
            backend.describe_state_machine(arn).executions.extend(restored)  # type: ignore[arg-type]  # same API
            self.restored["runs"] += len(restored)
            persistence.register_state_machine(arn, archive)
            self._kept_machines[arn] = archive
            logger.info(json.dumps({"event": "local_stack.restored_executions", "state_machine": arn,
                                    "executions": len(restored)}))
        self._progress = persistence.ProgressWriter(self._kept_machines, backend)
        self._progress.start()

    def _register_functions(self) -> None:
        assert self.template is not None
        refs = self._template_references()
        for logical_id, spec in self.template.functions().items():
            name = self._resources.get(logical_id)
            if name is None:
                raise LocalStackError(f"function {logical_id} was not deployed")
            self._function_names[logical_id] = name
            dead_letter = resolve(self.template.function_property(logical_id, "DeadLetterQueue"), *refs) or {}
            if dead_letter and dead_letter.get("Type") != "SQS":
                logger.warning("%s: a %s dead-letter queue is not emulated locally", logical_id, dead_letter.get("Type"))
            lambda_runner.register(
                account_id=ACCOUNT_ID,
                region=self.region,
                function_name=name,
                spec=spec,
                endpoint_url=self.endpoint_url,
                stack_name=self.stack_name,
                credentials=self.role_credentials,
                strict=self.strict,
                dead_letter_arn=dead_letter.get("TargetArn") if dead_letter.get("Type") == "SQS" else None,
            )

    def _check_reserved_concurrency(self) -> None:
        """Refuse reservations that leave the account under Lambda's unreserved minimum, as AWS
        refuses them (the stack's functions are the only ones of the local account)."""
        from moto.awslambda.models import lambda_backends

        backend = lambda_backends[ACCOUNT_ID][self.region]
        problem = lambda_runner.unreserved_concurrency_problem(
            {
                logical_id: lambda_runner.reserved_concurrency(backend.get_function(name))
                for logical_id, name in self._function_names.items()
            }
        )
        if problem is not None:
            raise LocalStackError(f"{problem}: lower InferenceReservedConcurrency or TrainingConcurrency")

    def _stage_throttle(self, cfn: Mapping[str, Any]) -> Any:
        """The HTTP API stage's request throttling, from its ``DefaultRouteSettings``: the stage of
        the API the local server serves (SAM's ``ServerlessHttpApi``; the optional JWT API is not served)."""
        stages = [
            resource.get("Properties") or {}
            for resource in cfn.get("Resources", {}).values()
            if resource.get("Type") == "AWS::ApiGatewayV2::Stage"
            and (resource.get("Properties") or {}).get("ApiId") == {"Ref": "ServerlessHttpApi"}
        ]
        if len(stages) > 1:
            logger.warning("%d HTTP API stages: the local API throttles with the first one's limits", len(stages))
        settings = resolve(stages[0].get("DefaultRouteSettings"), *self._template_references()) if stages else None
        return stage_throttle(settings)

    def _check_service_roles(self, cfn: Mapping[str, Any]) -> None:
        """Refuse a role its service cannot assume, as CloudFormation (or the first call) would."""
        from moto.awslambda.models import lambda_backends
        from moto.iam.models import iam_backends

        roles = iam_backends[ACCOUNT_ID][iam.PARTITION]
        checks: list[tuple[str, str, str]] = []
        for logical_id, name in self._function_names.items():
            function = lambda_backends[ACCOUNT_ID][self.region].get_function(name)
            checks.append((logical_id, function.role, "lambda.amazonaws.com"))
        sfn = self.client("stepfunctions")
        for logical_id, resource in cfn["Resources"].items():
            if resource.get("Type") == "AWS::StepFunctions::StateMachine":
                role = sfn.describe_state_machine(stateMachineArn=self._resources[logical_id])["roleArn"]
                checks.append((logical_id, role, "states.amazonaws.com"))
        for logical_id, role_arn, service in checks:
            try:
                role = roles.get_role_by_arn(role_arn)
            except Exception as exc:
                raise LocalStackError(f"{logical_id}: its role {role_arn} does not exist") from exc
            if not iam.trusts_service(role, service):
                raise LocalStackError(
                    f"{logical_id}: {service} cannot assume its role {role_arn} "
                    "(the role's AssumeRolePolicyDocument does not trust the service)"
                )

    def _create_executing_state_machines(self, cfn: Mapping[str, Any]) -> None:
        """Recreate each deployed state machine in moto's executing backend, under the same ARN.

        moto's CloudFormation creates state machines in its plain Step Functions backend, which
        stores definitions but never runs them. The definition it stored is already substituted
        (see ``template._inline_definition``); the same name in the executing backend gives the
        same ARN, so the stack's ``Ref`` and outputs stay right.
        """
        from moto.stepfunctions.models import stepfunctions_backends

        plain = stepfunctions_backends[ACCOUNT_ID][self.region]
        sfn = self.client("stepfunctions")
        for logical_id, resource in cfn["Resources"].items():
            if resource.get("Type") != "AWS::StepFunctions::StateMachine":
                continue
            arn = self._resources[logical_id]
            deployed = plain.describe_state_machine(arn)
            created = sfn.create_state_machine(
                name=deployed.name,
                definition=deployed.definition,
                roleArn=deployed.roleArn,
                type=resource["Properties"].get("StateMachineType", "STANDARD"),
            )
            if created["stateMachineArn"] != arn:
                raise LocalStackError(
                    f"{logical_id}: executing ARN {created['stateMachineArn']} != {arn}"
                )

    def _apply_bucket_properties(self) -> None:
        """Apply the bucket settings moto's CloudFormation ignores (EventBridge, versioning,
        lifecycle rules, bucket policies...)."""
        assert self.template is not None
        s3 = self.client("s3")
        refs = self._template_references()
        for logical_id, resource in self._deployed_template_resources().items():
            if resource.get("Type") != "AWS::S3::Bucket":
                continue
            bucket = self._resources[logical_id]
            properties = resource.get("Properties") or {}
            notifications = properties.get("NotificationConfiguration") or {}
            if (notifications.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled") in (
                True,
                "true",
                "True",
            ):
                s3.put_bucket_notification_configuration(
                    Bucket=bucket,
                    NotificationConfiguration={"EventBridgeConfiguration": {}},
                )
            unsupported = sorted(set(notifications) - {"EventBridgeConfiguration"})
            if unsupported:
                logger.warning("%s: %s are not applied locally", logical_id, ", ".join(unsupported))
            status = (properties.get("VersioningConfiguration") or {}).get("Status")
            if isinstance(status, str):
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})
            block = properties.get("PublicAccessBlockConfiguration")
            if isinstance(block, dict) and all(isinstance(v, bool) for v in block.values()):
                s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
            rules = (resolve(properties.get("LifecycleConfiguration"), *refs) or {}).get("Rules")
            if rules:
                s3.put_bucket_lifecycle_configuration(
                    Bucket=bucket, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in rules]}
                )
        for logical_id, resource in self._deployed_template_resources().items():
            if resource.get("Type") == "AWS::S3::BucketPolicy":
                properties = resolve(resource.get("Properties") or {}, *refs)
                s3.put_bucket_policy(
                    Bucket=properties["Bucket"], Policy=json.dumps(properties["PolicyDocument"])
                )

    def _template_references(self) -> tuple[dict[str, str], dict[str, str]]:
        """What ``Ref`` and ``Fn::GetAtt`` name in this stack: parameters, pseudo parameters,
        every resource's physical id, and the buckets' ``Arn``."""
        assert self.template is not None
        refs = {
            **self.template.parameter_values(self.parameters),
            "AWS::Partition": "aws",
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            **self._resources,
        }
        # The HTTP API is served by the local API server, not by moto: it has no physical id there.
        refs.setdefault("ServerlessHttpApi", LOCAL_API_ID)
        attributes: dict[str, str] = {}
        for logical_id, resource in self._deployed_template_resources().items():
            physical = self._resources.get(logical_id)
            if physical is None:
                continue
            if resource.get("Type") == "AWS::S3::Bucket":
                attributes[f"{logical_id}.Arn"] = f"arn:aws:s3:::{physical}"
            elif resource.get("Type") == "AWS::SQS::Queue":
                name = physical.rstrip("/").rsplit("/", 1)[-1]
                attributes[f"{logical_id}.QueueName"] = name
                attributes[f"{logical_id}.Arn"] = f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{name}"
        return refs, attributes

    def _attach_delivery_streams(self, detached: Mapping[str, dict[str, Any]]) -> None:
        """The template's Firehose delivery streams and log subscription filters (the capture
        path), run by :mod:`stepml.local.firehose`; refused with the reason AWS would give."""
        if not detached:
            return
        refs, attributes = self._template_references()
        from moto.iam.models import iam_backends

        roles = iam_backends[ACCOUNT_ID][iam.PARTITION]
        for logical_id, resource in self._deployed_template_resources().items():
            physical = self._resources.get(logical_id)
            if physical and resource.get("Type") == "AWS::IAM::Role":
                attributes[f"{logical_id}.Arn"] = roles.get_role(physical).arn
            elif physical and resource.get("Type") == "AWS::Logs::LogGroup":
                attributes[f"{logical_id}.Arn"] = f"arn:aws:logs:{self.region}:{ACCOUNT_ID}:log-group:{physical}:*"

        def s3_for_role(role_arn: str) -> Any:
            credentials = self.role_credentials(role_arn, "firehose.amazonaws.com")
            return _client("s3", self.endpoint_url, self.region, credentials=credentials)

        try:
            self.delivery_streams = firehose.attach(
                detached, resolve=lambda node: resolve(node, refs, attributes), stack_name=self.stack_name,
                region=self.region, account_id=ACCOUNT_ID, clients=self.client, s3_for_role=s3_for_role,
            )
        except firehose.FirehoseEmulationError as exc:
            raise LocalStackError(str(exc)) from exc

    def _apply_queue_policies(self) -> None:
        """The template's SQS queue policies (moto's CloudFormation skips them)."""
        assert self.template is not None
        sqs = self.client("sqs")
        refs = self._template_references()
        for resource in self._deployed_template_resources().values():
            if resource.get("Type") != "AWS::SQS::QueuePolicy":
                continue
            properties = resolve(resource.get("Properties") or {}, *refs)
            for queue in properties["Queues"]:
                sqs.set_queue_attributes(
                    QueueUrl=queue, Attributes={"Policy": json.dumps(properties["PolicyDocument"])}
                )

    def _name_glue_jobs(self, cfn: dict[str, Any]) -> None:
        """Name each Glue job (``<stack>-<logical id>``) and write that name wherever the template
        refers to it: moto's CloudFormation skips the resource, so its ``Ref`` would be None in the
        state machine's substitutions and in policies."""
        names = {logical_id: f"{self.stack_name}-{logical_id}" for logical_id, resource in cfn["Resources"].items()
                 if resource.get("Type") == "AWS::Glue::Job"}
        for logical_id, name in names.items():
            cfn["Resources"][logical_id].setdefault("Properties", {}).setdefault("Name", name)

        def named(node: Any) -> Any:
            if isinstance(node, dict):
                if set(node) == {"Ref"} and node["Ref"] in names:
                    return names[node["Ref"]]
                if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
                    text = node["Fn::Sub"]
                    for logical_id, name in names.items():
                        text = text.replace("${" + logical_id + "}", name)
                    return {"Fn::Sub": text}
                return {key: named(value) for key, value in node.items()}
            if isinstance(node, list):
                return [named(value) for value in node]
            return node

        cfn["Resources"] = named(cfn["Resources"])

    def _create_glue_jobs(self) -> None:
        """The template's Glue jobs, which moto's CloudFormation skips, created as AWS would (named
        ``<stack>-<logical id>``); each run executes the job's script with local PySpark
        (:mod:`stepml.local.glue_runner`), with its role's credentials."""
        assert self.template is not None
        glue = self.client("glue")
        refs, attributes = self._template_references()
        for logical_id, resource in self._deployed_template_resources().items():
            if resource.get("Type") == "AWS::IAM::Role" and logical_id in self._resources:
                attributes[f"{logical_id}.Arn"] = f"arn:{iam.PARTITION}:iam::{ACCOUNT_ID}:role/{self._resources[logical_id]}"
        for logical_id, resource in self._deployed_template_resources().items():
            if resource.get("Type") != "AWS::Glue::Job":
                continue
            properties = resolve(resource.get("Properties") or {}, refs, attributes)
            name = properties.pop("Name", None) or f"{self.stack_name}-{logical_id}"
            tags = properties.pop("Tags", None) or {}
            for number in ("NumberOfWorkers", "Timeout", "MaxRetries"):
                if number in properties:
                    properties[number] = int(properties[number])
            glue.create_job(Name=name, Tags=tags, **properties)
            self._resources[logical_id] = name
            glue_runner.register(glue_runner.JobSpec(
                name=name, role_arn=properties["Role"], endpoint_url=self.endpoint_url, region=self.region,
                credentials=(lambda arn, service: self.role_credentials(arn, service).environment())
                if self.strict else None,
                timeout_minutes=int(properties.get("Timeout") or 2880),
            ))

    def _create_alarms(self) -> None:
        """The template's CloudWatch alarms, which moto's CloudFormation skips, created as AWS
        would (named ``<stack>-<logical id>``), so ``describe-alarms`` lists them offline."""
        assert self.template is not None
        cloudwatch = self.client("cloudwatch")
        refs = self._template_references()
        for logical_id, resource in self._deployed_template_resources().items():
            if resource.get("Type") != "AWS::CloudWatch::Alarm":
                continue
            properties = resolve(resource.get("Properties") or {}, *refs)
            for number in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
                if number in properties:
                    properties[number] = int(properties[number])
            if "Threshold" in properties:
                properties["Threshold"] = float(properties["Threshold"])
            for query in properties.get("Metrics") or []:
                if "MetricStat" in query:
                    query["MetricStat"]["Period"] = int(query["MetricStat"]["Period"])
            cloudwatch.put_metric_alarm(AlarmName=f"{self.stack_name}-{logical_id}", **properties)

    def _create_schedules(self, cfn: Mapping[str, Any]) -> None:
        """The template's EventBridge Scheduler schedules (SAM's ``ScheduleV2`` events), which
        moto's CloudFormation skips, created in moto's Scheduler so that ``get-schedule`` shows
        them offline. They are not run: nothing fires on a schedule locally (README)."""
        refs, attributes = self._template_references()
        for logical_id, resource in cfn["Resources"].items():
            physical = self._resources.get(logical_id)
            if physical is None:
                continue
            if resource.get("Type") == "AWS::Lambda::Function":
                attributes[f"{logical_id}.Arn"] = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{physical}"
            elif resource.get("Type") == "AWS::IAM::Role":
                attributes[f"{logical_id}.Arn"] = f"arn:aws:iam::{ACCOUNT_ID}:role/{physical}"
        scheduler = self.client("scheduler")
        for logical_id, resource in cfn["Resources"].items():
            if resource.get("Type") != "AWS::Scheduler::Schedule":
                continue
            properties = resolve(resource.get("Properties") or {}, refs, attributes)
            target = properties["Target"]
            for number in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
                if number in target.get("RetryPolicy", {}):
                    target["RetryPolicy"][number] = int(target["RetryPolicy"][number])
            scheduler.create_schedule(
                Name=properties.get("Name") or f"{self.stack_name}-{logical_id}",
                ScheduleExpression=properties["ScheduleExpression"],
                FlexibleTimeWindow=properties["FlexibleTimeWindow"],
                Target=target,
                **({"Description": properties["Description"]} if "Description" in properties else {}),
            )

    def _lambda_client(self, function: str) -> Any:
        """The function's Lambda client: waits as long as the function may run, never retries.

        botocore's defaults (60 s read timeout, retries on timeouts) would invoke a long-running
        handler (training) again while the first call is still running. One client per function,
        made once: creating a client costs milliseconds and is not thread-safe (using one is), and
        the HTTP API calls this on every request from its own thread. Its connection pool is as
        large as the burst of concurrent API clients the local API is tested with, so a burst
        reuses connections to moto instead of opening and discarding them.
        """
        client = self._lambda_clients.get(function)
        if client is not None:
            return client
        from botocore.config import Config

        assert self.template is not None
        with self._lambda_clients_lock:
            logical_id = self.resolve_function(function)
            client = self._lambda_clients.get(logical_id)
            if client is None:
                timeout = self.template.functions()[logical_id].timeout
                config = Config(
                    read_timeout=timeout + 60,
                    connect_timeout=10,
                    retries={"total_max_attempts": 1},
                    max_pool_connections=_LAMBDA_POOL_CONNECTIONS,
                )
                client = self.client("lambda", config)
            self._lambda_clients[logical_id] = self._lambda_clients[function] = client
        return client

    def _invoke_for_api(self, function: str, event: dict[str, Any]) -> tuple[bytes, bool]:
        """Invoke a route's function as API Gateway does: inside AWS, not through the public
        Lambda endpoint. API Gateway's integration is a service calling Lambda; no user signs it,
        so this goes to moto's Lambda model directly (the same ``invoke`` the Lambda API ends in,
        hence the same execution environments, role and limits) and skips an HTTP round trip,
        a SigV4 check and a policy evaluation that would stand for no real AWS step."""
        from moto.awslambda.models import lambda_backends

        deployed = lambda_backends[ACCOUNT_ID][self.region].get_function(
            self._function_names[function]
        )
        return lambda_runner.invoke_as_service(deployed, event)


# -- invoking one function (`stepml local invoke`) -------------------------------------------------


def resolve_function_id(
    template: SamTemplate, function: str, deployed_names: Mapping[str, str] | None = None
) -> str:
    """The logical id of a function given by logical id (any case), deployed name/ARN or folder."""
    functions = template.functions()
    if function in functions:
        return function
    name = function.rsplit(":", 1)[-1] if function.startswith("arn:") else function
    for logical_id, deployed in (deployed_names or {}).items():
        if deployed == name:
            return logical_id
    candidates = [
        logical_id
        for logical_id, spec in functions.items()
        if function.lower() in (logical_id.lower(), spec.code_dir.name.lower())
    ]
    if len(candidates) == 1:
        return candidates[0]
    known = ", ".join(sorted(functions)) or "none"
    raise KeyError(f"no single function {function!r} in the template (functions: {known})")


def invoke_function(
    project_root: Path,
    function: str,
    event: Any,
    *,
    template: Path | None = None,
    stack: LocalStack | None = None,
    endpoint_url: str | None = None,
    stack_name: str = "stepml",
    region: str = DEFAULT_REGION,
    seed: bool = True,
    seeding: Seeding | None = None,
) -> Invocation:
    """Run one function's handler with ``event``: the engine of ``stepml local invoke``.

    The offline stand-in for ``sam local invoke``. ``function`` is a logical id
    (``ValidateFunction``), its code folder (``validate``) or a deployed name. Where it runs:

    * ``stack`` (a started :class:`LocalStack` in this process): through moto's Lambda API, exactly
      as a Step Functions Task or ``lambda.invoke`` would;
    * ``endpoint_url`` (a local stack served by another process, e.g. ``stepml local up``): through
      that stack's Lambda API, so the handler runs there, in the function's own environment, role
      and limits; the call is signed with the caller's credentials (the ``stepml-local`` profile);
    * neither: a fresh local stack is started for the call and stopped after it. With ``seed``
      (the default) it is first given what the event refers to, and the event is pointed at it
      (see :mod:`stepml.local.seed`; ``seeding`` is filled in with what was done). A stack that
      already runs (``stack`` or ``endpoint_url``) holds the user's data and is never seeded.

    Returns the :class:`~stepml.local.lambda_runner.Invocation`: ``payload`` is the handler's
    return value, or the runtime's error payload when ``errored``.
    """
    if stack is not None:
        return stack.invoke(function, event)
    if endpoint_url is None:
        with LocalStack(
            project_root, template, port=0, api_port=0, stack_name=stack_name, region=region
        ) as fresh:
            if seed:
                event = seed_for_event(fresh, fresh.resolve_function(function), event, seeding)
            return fresh.invoke(function, event)

    sam = SamTemplate(Path(template) if template else Path(project_root) / "template.yaml")
    logical_id = resolve_function_id(sam, function)
    spec = sam.functions()[logical_id]
    # describe_stack_resources, not the singular call: moto's singular one fails (500) on a stack
    # holding a resource type its CloudFormation skips (alarms, bucket and queue policies).
    resources = _user_client("cloudformation", endpoint_url, region).describe_stack_resources(
        StackName=stack_name
    )["StackResources"]
    physical = next(
        r["PhysicalResourceId"] for r in resources if r.get("LogicalResourceId") == logical_id
    )
    from botocore.config import Config

    config = Config(
        read_timeout=spec.timeout + 60, connect_timeout=10, retries={"total_max_attempts": 1}
    )
    started = time.perf_counter()
    response = _user_client("lambda", endpoint_url, region, config).invoke(
        FunctionName=physical, Payload=json.dumps(event).encode("utf-8"), LogType="Tail"
    )
    raw = response["Payload"].read()
    logs = response.get("LogResult")
    return Invocation(
        function_name=physical,
        request_id=str(response.get("ResponseMetadata", {}).get("RequestId", "")),
        payload=json.loads(raw) if raw else None,
        errored=bool(response.get("FunctionError")),
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        log_lines=base64.b64decode(logs).decode("utf-8").splitlines() if logs else [],
    )


def _user_client(service: str, endpoint_url: str, region: str, config: Any = None) -> Any:
    """A client for a stack served by another process, as the user: the ``stepml-local`` profile
    that ``stepml local up`` wrote, unless the environment names credentials of its own."""
    import boto3

    from stepml.stack import local_profile

    # A session of its own: boto3's default session keeps the credentials it resolved first.
    profile = local_profile()
    session: Any = boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
    return session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)


# -- helpers ---------------------------------------------------------------------------------------


def _client(
    service: str,
    endpoint_url: str,
    region: str,
    config: Any = None,
    credentials: iam.Credentials | None = None,
) -> Any:
    """A boto3 client for a local endpoint (created on demand: never at import time).

    Signed with ``credentials`` (the stack's administrator); without, with the caller's own
    (boto3's default chain), falling back to fake keys when there are none.

    The caller's own credentials are read by a session of this client's own, never by boto3's
    default session: that one keeps the first credentials it resolves for the whole process, so a
    stack deployed under one identity would sign every later default-chain client in the process
    (the CLI run in-process, a handler's :class:`~stepml.settings.Settings`) with it, long after the
    environment named another (a later stack's administrator got ``InvalidClientTokenId``).
    """
    import boto3
    from botocore.exceptions import ProfileNotFound

    if credentials is not None:
        return boto3.client(  # type: ignore[call-overload,unused-ignore]
            service, endpoint_url=endpoint_url, region_name=region, config=config,
            **credentials.client_kwargs(),
        )
    session: Any = boto3.session.Session()
    try:
        found = session.get_credentials() is not None
    except ProfileNotFound:  # AWS_PROFILE names a profile this stack has yet to write
        found = False
    if found:
        return session.client(service, endpoint_url=endpoint_url, region_name=region, config=config)
    return boto3.client(  # type: ignore[call-overload,unused-ignore]
        service, endpoint_url=endpoint_url, region_name=region, config=config,
        aws_access_key_id=FAKE_ACCESS_KEY_ID, aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
    )


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule (``AWS::S3::Bucket`` ``Rules``) as S3's API spells it."""
    known = {"Id", "Status", "Prefix", "ExpirationInDays", "NoncurrentVersionExpiration",
             "AbortIncompleteMultipartUpload"}
    unknown = sorted(set(rule) - known)
    if unknown:
        raise LocalStackError(f"lifecycle rule {rule.get('Id')!r}: {', '.join(unknown)} not supported locally")
    converted: dict[str, Any] = {"Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "Id" in rule:
        converted["ID"] = rule["Id"]
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        days = rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
        converted["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(days)}
    if "AbortIncompleteMultipartUpload" in rule:
        days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        converted["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(days)}
    return converted


def _placeholder_zip() -> bytes:
    """A tiny valid zip: moto wants code in S3 to create a function; the real code runs in-process."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "stepml local stack: handlers run from the project folder\n")
    return buffer.getvalue()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise LocalStackError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


class _DropMessages(logging.Filter):
    """Drop log records whose message starts with a given prefix."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


# moto's CloudFormation warns (on every stack read) for each resource type it skips; the HTTP API
# is served by the local API and bucket policies are applied by _apply_bucket_properties, so those
# would only be noise.
_emulated_filter = _DropMessages(
    "No Moto CloudFormation support for AWS::ApiGatewayV2::",
    "No Moto CloudFormation support for AWS::CloudWatch::Alarm",
    "No Moto CloudFormation support for AWS::SQS::QueuePolicy",
    "No Moto CloudFormation support for AWS::Scheduler::Schedule",
    "No Moto CloudFormation support for AWS::S3::BucketPolicy",
)
# moto's ASL interpreter logs an ERROR with the repr of the state for every failed execution: the
# normal outcome of a rejected dataset, already in the execution's status and history. Other
# interpreter exceptions (real faults) still show.
_failure_filter = _DropMessages("Exception=FailureEventException")


def _quiet_moto_server_logs() -> None:
    # werkzeug logs every request at INFO and installs its own stderr handler unless a level is
    # already set; the local stack logs its own structured lines instead.
    werkzeug = logging.getLogger("werkzeug")
    if werkzeug.level == logging.NOTSET:
        werkzeug.setLevel(logging.WARNING)
    for name, quiet in (
        ("moto", _emulated_filter),
        ("moto.stepfunctions.parser.asl.component.eval_component", _failure_filter),
    ):
        if quiet not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(quiet)
    warnings.filterwarnings(
        "ignore", message=r"Tried to parse AWS::ApiGatewayV2::", category=UserWarning
    )
    # Bucket policies, alarms and schedules are applied by _apply_bucket_properties, _create_alarms
    # and _create_schedules.
    for emulated in ("AWS::S3::BucketPolicy", "AWS::CloudWatch::Alarm", "AWS::SQS::QueuePolicy",
                     "AWS::Scheduler::Schedule"):
        warnings.filterwarnings(
            "ignore", message=rf"Tried to parse {emulated}", category=UserWarning
        )

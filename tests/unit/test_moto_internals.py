"""The moto internals the offline stack relies on still exist, with the shapes it expects.

``stepml.local`` patches or calls a few non-public parts of moto (pinned to one minor version in
pyproject.toml). When a moto upgrade moves one of them, these tests say which, before the pipeline
fails in a less readable way.
"""

from __future__ import annotations

import inspect

import moto
import pytest

pytest.importorskip("moto.awslambda.models")


def test_moto_is_the_pinned_minor_version() -> None:
    assert moto.__version__.startswith("5.2."), moto.__version__


def test_lambda_invocations_end_in_one_patchable_method() -> None:
    from moto.awslambda.models import LambdaFunction

    signature = inspect.signature(LambdaFunction._invoke_lambda)
    assert list(signature.parameters) == ["self", "event"]
    assert "tuple[str, bool, str]" in str(signature.return_annotation)
    # invoke() (the API, Step Functions Tasks) goes through it and marks errored results.
    source = inspect.getsource(LambdaFunction.invoke)
    assert "self._invoke_lambda(event=body)" in source
    assert "x-amz-function-error" in source


def test_lambda_function_has_the_attributes_the_runner_reads() -> None:
    from moto.awslambda.models import LambdaFunction

    init = inspect.getsource(LambdaFunction.__init__)
    for attribute in (
        "self.account_id",
        "self.region",
        "self.function_name",
        "self.environment_vars",
        "self.function_arn",
        "self.logs_backend",
        "self.logs_group_name",
    ):
        assert attribute in init, attribute
    assert callable(LambdaFunction.save_logs)


def test_eventbridge_rules_deliver_through_send_to_targets() -> None:
    from moto.events.models import EventPattern, Rule

    signature = inspect.signature(Rule.send_to_targets)
    assert list(signature.parameters) == ["self", "original_event", "transform_input"]
    assert signature.parameters["transform_input"].default is True
    init = inspect.getsource(Rule.__init__)
    assert "self.event_pattern = EventPattern.load" in init
    assert "self.targets" in init and "self.state" in init
    assert callable(EventPattern.matches_event)
    # Still no Step Functions branch: if one appears, the wrapper in stepml.local.events may go.
    assert "states" not in inspect.getsource(Rule.send_to_targets)


def test_s3_eventbridge_events_still_have_moto_field_names() -> None:
    from moto.s3 import notifications

    source = inspect.getsource(notifications._send_event_bridge_message)
    assert "rule.send_to_targets(event, transform_input=False)" in source
    # stepml.local.events.normalise_s3_event rewrites these to AWS's shape.
    assert '"eTag"' in source and '"reason"' in source


def test_step_functions_backends_the_stack_uses() -> None:
    from moto.core.base_backend import BackendDict
    from moto.stepfunctions.models import StateMachine, StepFunctionBackend, stepfunctions_backends
    from moto.stepfunctions.parser.models import (
        StepFunctionsParserBackend,
        stepfunctions_parser_backends,
    )

    assert isinstance(stepfunctions_backends, BackendDict)
    assert isinstance(stepfunctions_parser_backends, BackendDict)
    start = inspect.signature(StepFunctionsParserBackend.start_execution)
    assert ["self", "state_machine_arn", "name", "execution_input"] == list(start.parameters)[:4]
    assert list(inspect.signature(StepFunctionBackend.describe_state_machine).parameters) == [
        "self",
        "arn",
    ]
    init = inspect.getsource(StateMachine.__init__)
    assert "name=name" in init and "definition=definition" in init and "roleArn=roleArn" in init
    # The gap the stack closes: CloudFormation creates state machines in the non-executing backend.
    assert "stepfunctions_backends[account_id][region_name]" in inspect.getsource(
        StateMachine.create_from_cloudformation_json
    )


def test_the_interpreter_calls_lambda_at_moto_port() -> None:
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.utils import boto_client

    from stepml.local import iam

    # While a local stack runs, boto_client_for is stepml's (it signs as the execution role).
    original = iam._originals.get("boto_client_for", boto_client.boto_client_for)
    assert "moto_server_port()" in inspect.getsource(original)
    assert "MOTO_PORT" in inspect.getsource(moto_server_port)


def test_the_execute_config_is_settable_through_the_moto_api() -> None:
    from moto.moto_api._internal.models import MotoAPIBackend

    assert '"stepfunctions" in config' in inspect.getsource(MotoAPIBackend.set_config)


def test_s3_conditional_puts_are_checked_in_one_patchable_method() -> None:
    from moto.s3.responses import S3Response

    source = inspect.getsource(S3Response.put_object)
    assert 'self.headers.get("If-Match")' in source and 'self.headers.get("If-None-Match")' in source


def test_the_iam_internals_the_strict_stack_relies_on_exist() -> None:
    # stepml.local.iam reimplements moto's per-request check for the strict endpoints: the names
    # it calls must still be there, with the same meaning.
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import AssumedRoleAccessKey, IAMRequestBase, IAMUserAccessKey
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_lambda,
    )
    from moto.sts.models import STSBackend

    assert "_authenticate_and_authorize_action" in vars(ActionAuthenticatorMixin)
    for name in ("check_signature", "_is_assuming_role_operation", "_check_role_trust_relationship"):
        assert callable(getattr(IAMRequestBase, name))
    assert "self._action =" in inspect.getsource(IAMRequestBase.__init__)
    assert "self._access_key =" in inspect.getsource(IAMRequestBase.__init__)
    for key in (IAMUserAccessKey, AssumedRoleAccessKey):
        assert callable(key.collect_policies) and isinstance(inspect.getattr_static(key, "arn"), property)
    # An assumed role's key must come with its session token.
    assert "X-Amz-Security-Token" in inspect.getsource(AssumedRoleAccessKey.__init__)
    assert list(inspect.signature(STSBackend.assume_role).parameters)[1:4] == [
        "region_name", "role_session_name", "role_arn",
    ]
    # The interpreter imports boto_client_for by name (patched per module) and names a Lambda
    # failure after the payload's errorType.
    assert "boto_client_for" in vars(lambda_eval_utils)
    assert 'cause_object["errorType"]' in inspect.getsource(state_task_service_lambda)


def test_the_signature_check_the_local_http_api_reuses_exists() -> None:
    # stepml.local.api_auth: IAMRequest(...).check_signature(), then the caller's key and policies.
    from moto.iam.access_control import AssumedRoleAccessKey, IAMRequest, IAMUserAccessKey

    assert list(inspect.signature(IAMRequest.__init__).parameters) == [
        "self", "account_id", "method", "path", "data", "body", "headers", "action"]
    assert "self._access_key = create_access_key(" in inspect.getsource(IAMRequest.__mro__[1].__init__)
    assert "collect_policies" in dir(IAMUserAccessKey) and "collect_policies" in dir(AssumedRoleAccessKey)
    assert "self._owner_user_name = iam_user.name" in inspect.getsource(IAMUserAccessKey.__init__)
    source = inspect.getsource(AssumedRoleAccessKey.__init__)
    assert "self._owner_role_name" in source and "self._session_name" in source


def test_the_internals_the_data_dir_relies_on_exist() -> None:
    """stepml.local.persistence: S3 requests end in two patchable methods, objects are rebuilt from
    their parts, executions start and end in patchable methods and are listed from one list."""
    from moto.s3.models import FakeDeleteMarker, FakeKey
    from moto.s3.responses import S3Response
    from moto.stepfunctions.parser.backend.execution import (
        BaseExecutionWorkerCommunication,
        Execution,
    )
    from moto.stepfunctions.utils import PAGINATION_MODEL

    for method in (S3Response.key_response, S3Response.bucket_response):
        assert list(inspect.signature(method).parameters) == ["self", "request", "full_url", "headers"]
    assert callable(S3Response.parse_key_name) and callable(S3Response.parse_bucket_name_from_url)
    key_parameters = inspect.signature(FakeKey.__init__).parameters
    for name in ("etag", "version_id", "is_versioned", "bucket_name", "encryption", "checksum_value"):
        assert name in key_parameters, name
    assert "self._version_id" in inspect.getsource(FakeDeleteMarker.__init__)
    assert list(inspect.signature(Execution.start).parameters) == ["self"]
    assert list(inspect.signature(BaseExecutionWorkerCommunication.terminated).parameters) == ["self"]
    assert "self.execution.exec_status" in inspect.getsource(BaseExecutionWorkerCommunication)
    # A restored execution answers list/describe/history through these attributes.
    assert PAGINATION_MODEL["list_executions"]["unique_attribute"] == ["start_date", "execution_arn"]
    for attribute in ("execution_arn", "state_machine_arn", "start_date", "execution_input"):
        assert f"self.{attribute}" in inspect.getsource(Execution.__init__), attribute


def test_log_subscriptions_reach_firehose_through_one_patchable_method() -> None:
    # stepml.local.firehose replaces FirehoseBackend.send_log_event; CloudWatch Logs' put_log_events
    # calls it for every subscription filter of the group, with every event (moto applies no pattern).
    from moto.firehose.models import FirehoseBackend
    from moto.logs.models import LogStream

    signature = inspect.signature(FirehoseBackend.send_log_event)
    assert list(signature.parameters) == [
        "self", "delivery_stream_arn", "filter_name", "log_group_name", "log_stream_name", "log_events"]
    put = inspect.getsource(LogStream.put_log_events)
    assert "self.log_group.subscription_filters.values()" in put and "filter_pattern" not in put
    assert "firehose_backends[self.account_id][self.region].send_log_event(" in inspect.getsource(
        LogStream._send_log_events)
def test_the_glue_internals_the_offline_spark_path_relies_on_exist() -> None:
    from moto.glue.models import FakeJob, FakeJobRun
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk,
        state_task_service_callback,
        state_task_service_glue,
    )

    from stepml.local import glue_runner

    # moto's own methods, also after a local stack in this process installed the wrappers
    start = glue_runner._original_start or FakeJob.start_job_run
    status = glue_runner._original_status or inspect.getattr_static(FakeJobRun, "status")
    as_dict = glue_runner._original_as_dict or FakeJobRun.as_dict
    sdk_task = glue_runner._original_sdk_task or state_task_service_aws_sdk.StateTaskServiceAwsSdk._eval_service_task
    # glue_runner wraps a job's start and reads/sets a run's state and ErrorMessage
    assert "self.job_runs.append(fake_job_run)" in inspect.getsource(start)
    assert isinstance(status, property)
    assert '"JobRunState": self.status' in inspect.getsource(as_dict)
    # the .sync crash it works around (LocalStack PR 13706): when moto fixes it, drop _glue_sync
    source = inspect.getsource(state_task_service_callback.StateTaskServiceCallback._eval_integration_pattern)
    assert "callback_endpoint.interrupt_all()" in source
    glue = state_task_service_glue.StateTaskServiceGlue
    for name in ("_build_sync_resolver", "_eval_sync", "_eval_integration_pattern"):
        assert hasattr(glue, name), name
    # aws-sdk results are pushed unconverted (an S3 body stays a stream)
    assert "env.stack.append(response)" in inspect.getsource(sdk_task)

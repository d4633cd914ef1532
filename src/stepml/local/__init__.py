"""The offline AWS stack: the project's SAM template running in-process on moto.

See :class:`stepml.local.endpoint.LocalStack` (start/stop a stack) and
:func:`stepml.local.endpoint.invoke_function` (run one function, like ``sam local invoke``).
"""

from __future__ import annotations

from stepml.local.endpoint import LocalStack, LocalStackError, invoke_function
from stepml.local.lambda_runner import Invocation
from stepml.local.template import SamTemplate, TemplateError
from stepml.local.worker import LambdaContext

__all__ = [
    "Invocation",
    "LambdaContext",
    "LocalStack",
    "LocalStackError",
    "SamTemplate",
    "TemplateError",
    "invoke_function",
]

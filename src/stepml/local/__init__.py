"""The offline AWS stack: the project's SAM template running in-process on moto.

See :class:`stepml.local.endpoint.LocalStack` (start/stop a stack) and
:func:`stepml.local.endpoint.invoke_function` (run one function, like ``sam local invoke``).

The names below are imported on first use (PEP 562): every Lambda execution environment imports
:mod:`stepml.local.worker`, and must not load the stack's own dependencies (moto, pydantic, PyYAML)
with it — a function sees only what its layers hold (:mod:`stepml.local.imports`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepml.local.endpoint import LocalStack, LocalStackError, invoke_function
    from stepml.local.lambda_runner import Invocation
    from stepml.local.template import SamTemplate, TemplateError
    from stepml.local.worker import LambdaContext

_EXPORTS = {
    "Invocation": "stepml.local.lambda_runner",
    "LambdaContext": "stepml.local.worker",
    "LocalStack": "stepml.local.endpoint",
    "LocalStackError": "stepml.local.endpoint",
    "SamTemplate": "stepml.local.template",
    "TemplateError": "stepml.local.template",
    "invoke_function": "stepml.local.endpoint",
}

__all__ = [
    "Invocation",
    "LambdaContext",
    "LocalStack",
    "LocalStackError",
    "SamTemplate",
    "TemplateError",
    "invoke_function",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'stepml.local' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

"""A function imports offline only what its package would hold on AWS.

Given handlers run by the real worker with the template's layers, When they import a package the
virtualenv has but their layers lack, Then they fail as on Lambda: ``Runtime.ImportModuleError`` at
init, the exception's own type at run time — and the real functions of template.yaml all import
under their layers.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

from stepml.local.imports import code_policy, function_policy, layers_policy
from stepml.local.lambda_runner import Invocation, run_handler
from stepml.local.template import FunctionSpec, LayerSpec, SamTemplate
from stepml.local.worker import ExecutionEnvironment, Limits
from tests.conftest import ROOT

ML_LAYER = LayerSpec("MLLayer", ROOT / "layer")
INFERENCE_LAYER = LayerSpec("InferenceLayer", ROOT / "layer-inference")


def function(root: Path, source: str, layers: tuple[LayerSpec, ...] | None) -> FunctionSpec:
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "app.py").write_text(textwrap.dedent(source))
    (code / "helpers.py").write_text("VALUE = 42\n")
    return FunctionSpec(
        logical_id="ProbeFunction", code_dir=code, handler="app.lambda_handler", timeout=60,
        memory_size=2048, layers=layers,
    )


def run(spec: FunctionSpec) -> Invocation:
    return run_handler(spec, {}, env={}, function_name="probe", function_arn="arn:aws:lambda:::function:probe")


def test_the_packages_used_below_are_installed_here_so_only_the_guard_refuses_them() -> None:
    for name in ("xgboost", "onnxruntime", "pandas", "pyarrow", "moto"):
        assert importlib.util.find_spec(name) is not None, name


def test_importing_a_package_the_layer_lacks_fails_at_init_with_lambdas_error(tmp_path: Path) -> None:
    spec = function(tmp_path, "import xgboost\n\ndef lambda_handler(event, context):\n    return 1\n", (ML_LAYER,))

    invocation = run(spec)

    assert invocation.errored and invocation.error_type == "Runtime.ImportModuleError"
    assert invocation.payload["errorMessage"] == "Unable to import module 'app': No module named 'xgboost'"


def test_a_lazy_import_fails_at_run_time_with_its_own_type_and_optional_imports_work(tmp_path: Path) -> None:
    spec = function(
        tmp_path,
        """
        import importlib.metadata
        import importlib.util
        import pickle

        import helpers  # the function's own code folder
        import pandas  # MLLayer
        from sklearn._loss._loss import CyHalfBinomialLoss
        import boto3  # the runtime

        def lambda_handler(event, context):
            try:
                import pyarrow  # optional for pandas, in the virtualenv, not in the layer
            except ImportError:
                pyarrow = None
            if event.get("metadata"):
                try:
                    importlib.metadata.version("xgboost")
                    listed = True
                except importlib.metadata.PackageNotFoundError:
                    listed = False
                return {
                    "pyarrow": pyarrow is not None,
                    "find_spec": importlib.util.find_spec("onnxruntime") is not None,
                    "xgboost_listed": listed,
                    "pandas_version": importlib.metadata.version("pandas"),
                    "helpers": helpers.VALUE,
                    # a class whose module is a compiled alias (sklearn._loss._loss as "_loss"),
                    # as in every fitted gradient-boosting pipeline Train pickles
                    "pickled": type(pickle.loads(pickle.dumps(CyHalfBinomialLoss()))).__name__,
                }
            import onnxruntime  # only the inference layer has it
        """,
        (ML_LAYER,),
    )

    described = run_handler(spec, {"metadata": True}, env={}, function_name="probe", function_arn="arn")
    failed = run(spec)

    assert described.payload == {
        "pyarrow": False, "find_spec": False, "xgboost_listed": False, "pandas_version": "2.3.3", "helpers": 42,
        "pickled": "CyHalfBinomialLoss",
    }
    assert failed.errored and failed.error_type == "ModuleNotFoundError"
    assert failed.payload["errorMessage"] == "No module named 'onnxruntime'"


def test_the_inference_layer_has_no_pandas_even_though_another_layers_server_preloaded_it(tmp_path: Path) -> None:
    ml = function(tmp_path / "ml", "import pandas\n\ndef lambda_handler(event, context):\n    return 'ok'\n", (ML_LAYER,))
    inference = function(
        tmp_path / "inference",
        "import numpy, onnxruntime, stepml.serving\nimport pandas\n\ndef lambda_handler(event, context):\n    return 1\n",
        (INFERENCE_LAYER,),
    )

    assert run(ml).payload == "ok"
    refused = run(inference)

    assert refused.error_type == "Runtime.ImportModuleError"
    assert refused.payload["errorMessage"] == "Unable to import module 'app': No module named 'pandas'"


def test_a_function_without_layers_has_the_runtime_but_not_stepml(tmp_path: Path) -> None:
    spec = function(
        tmp_path,
        """
        import boto3, json

        def lambda_handler(event, context):
            import stepml  # the worker's own package, imported before the guard: forgotten
        """,
        (),
    )

    invocation = run(spec)

    assert invocation.error_type == "ModuleNotFoundError"
    assert invocation.payload["errorMessage"] == "No module named 'stepml'"


def test_a_spec_without_known_layers_is_not_checked(tmp_path: Path) -> None:
    unknown = function(tmp_path, "import moto\n\ndef lambda_handler(event, context):\n    return 1\n",
                       (LayerSpec("arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3:1"),))

    assert layers_policy(unknown.layers) is None
    assert run(unknown).payload == 1


_PROBE = """\
import importlib.util
import sys

# Load the real handler file as Lambda would (its imports pass through this environment's guard).
_spec = importlib.util.spec_from_file_location("real_app", {path!r})
real_app = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real_app)
assert callable(real_app.lambda_handler)


def lambda_handler(event, context):
    # By the name each module was imported as: compiled extensions also enter sys.modules under
    # short aliases (scipy's ``_ni_label``, scikit-learn's ``_loss``), which are not packages.
    return sorted({{module.__spec__.name.partition(".")[0] for module in list(sys.modules.values())
                   if getattr(getattr(module, "__spec__", None), "has_location", False)}})
"""


def test_every_function_of_the_template_imports_under_its_own_layers(tmp_path: Path) -> None:
    functions = SamTemplate(ROOT / "template.yaml").functions()
    environments: dict[str, tuple[ExecutionEnvironment, FunctionSpec]] = {}
    for logical_id, spec in functions.items():
        assert spec.layers, f"{logical_id} has no layers in template.yaml"
        probe = tmp_path / logical_id
        probe.mkdir()
        (probe / "app.py").write_text(_PROBE.format(path=str(spec.module_file)))
        environments[logical_id] = (
            ExecutionEnvironment(
                function_name=logical_id, code_dir=probe, handler="app.lambda_handler",
                env={"STEPML_BUCKET": "bucket", "POWERTOOLS_TRACE_DISABLED": "true", "AWS_REGION": "us-east-1"},
                limits=Limits(memory_mb=spec.memory_size, timeout_s=60), root=tmp_path,
                imports=layers_policy(spec.layers), own_imports=code_policy(probe),
            ),
            spec,
        )
    try:
        loaded = {}
        for logical_id, (environment, _) in environments.items():
            outcome = environment.invoke("{}", "probe", {
                "function_name": logical_id, "invoked_function_arn": "arn", "memory_limit_in_mb": 2048,
                "timeout_seconds": 60})
            assert not outcome.errored, (logical_id, outcome.payload)
            loaded[logical_id] = set(outcome.payload)
    finally:
        for environment, _ in environments.values():
            environment.discard()

    for logical_id, modules in loaded.items():
        policy = function_policy(functions[logical_id])
        assert policy is not None
        outside = sorted(name for name in modules if not policy.permits(name) and name != "real_app")
        assert not outside, f"{logical_id} loaded {outside}"
    assert {"stepml", "aws_lambda_powertools"} <= loaded["ValidateFunction"]
    assert {"onnxruntime", "numpy"} <= loaded["InferenceFunction"]  # preloaded by its layer's server
    assert not loaded["InferenceFunction"] & {"pandas", "sklearn", "scipy", "joblib"}


@pytest.mark.parametrize(("layer", "present", "absent"), [
    (ML_LAYER, {"pandas", "sklearn", "scipy", "optuna", "skl2onnx", "lightgbm", "fastparquet", "stepml",
                "boto3", "yaml"},
     {"xgboost", "onnxmltools", "onnxruntime", "pyarrow", "moto", "pyspark", "sqlalchemy"}),
    (INFERENCE_LAYER, {"numpy", "onnxruntime", "orjson", "aws_lambda_powertools", "stepml", "boto3", "dateutil"},
     {"pandas", "sklearn", "scipy", "joblib", "skl2onnx", "yaml", "pydantic"}),
])
def test_a_layers_imports_come_from_its_requirements_and_makefile(layer: LayerSpec, present: set[str], absent: set[str]) -> None:
    policy = layers_policy((layer,))

    assert policy is not None
    assert present <= policy.modules
    assert not absent & policy.modules

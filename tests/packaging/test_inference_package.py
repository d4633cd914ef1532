"""The inference function ships onnxruntime + numpy + stepml only, within 130 MB, and serves on a
bare python3.12 that sees nothing but its code, its layer and the runtime's boto3."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

#: The issue's budget for the inference function + its layers, unzipped.
INFERENCE_BUDGET = 130_000_000
FORBIDDEN = ("pandas", "sklearn", "scipy", "joblib", "skl2onnx", "sympy", "lightgbm", "xgboost")
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")


@pytest.fixture(scope="module")
def template(project_root: Path) -> dict[str, Any]:
    from samcli.yamlhelper import yaml_parse

    return yaml_parse((project_root / "template.yaml").read_text())


def test_inference_function_uses_only_the_inference_layer_and_serves_every_route(template) -> None:
    function = template["Resources"]["InferenceFunction"]["Properties"]
    layers = [*template.get("Globals", {}).get("Function", {}).get("Layers", []), *function.get("Layers", [])]
    assert layers == [{"Ref": "InferenceLayer"}]
    assert template["Resources"]["InferenceLayer"]["Properties"]["ContentUri"] == "layer-inference/"
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in function["Events"].values()}
    assert routes == {
        ("POST", "/models/{name}/predict"), ("GET", "/models/{name}"), ("GET", "/models"), ("GET", "/openapi.json"),
    }


def test_inference_layer_pins_equal_constraints(project_root: Path, pins) -> None:
    layer = pins.read(project_root / "layer-inference" / "requirements.txt")
    constraints = pins.read(project_root / "constraints.txt")
    assert set(layer) == {"numpy", "onnxruntime", "orjson", "aws-lambda-powertools", "typing-extensions", "aws-xray-sdk",
                          "wrapt"}
    assert {name: constraints.get(name) for name in layer} == layer


@pytest.fixture(scope="module")
def built_layer(project_root: Path, tmp_path_factory: pytest.TempPathFactory, lambda_python: str, report) -> Path:
    out = tmp_path_factory.mktemp("inference-layer")
    result = subprocess.run(
        ["make", "-f", str(project_root / "layer-inference" / "Makefile"), "build-InferenceLayer",
         f"ARTIFACTS_DIR={out}", f"PYTHON={lambda_python}"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out


def _size(path: Path) -> int:
    return sum((Path(d) / f).lstat().st_size for d, _, files in os.walk(path) for f in files)


@pytest.mark.slow
def test_inference_package_fits_its_budget_without_pandas_or_scikit_learn(
    built_layer: Path, project_root: Path, report
) -> None:
    site = built_layer / "python"
    total = _size(built_layer) + _size(project_root / "functions" / "inference")
    report(f"InferenceFunction + InferenceLayer: {total / 1e6:.1f} MB unzipped (budget {INFERENCE_BUDGET / 1e6:.0f} MB)")
    assert total < INFERENCE_BUDGET
    assert (site / "onnxruntime").is_dir() and (site / "numpy").is_dir() and (site / "stepml").is_dir()
    present = [name for name in FORBIDDEN if (site / name).exists()]
    assert not present, f"the inference layer carries {present}"


@pytest.mark.slow
def test_handler_serves_on_bare_python_with_only_its_layer(
    built_layer: Path, project_root: Path, lambda_python: str, tmp_path: Path
) -> None:
    from tests.functional.inference_models import SCHEMA, classifier_onnx

    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec and spec.origin
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    model = tmp_path / "model.onnx"
    model.write_bytes(classifier_onnx())
    code = textwrap.dedent(
        f"""\
        import json, sys
        import app
        import onnxruntime
        from stepml import onnx_model
        session = onnxruntime.InferenceSession(open({str(model)!r}, "rb").read())
        schema = json.loads({json.dumps(SCHEMA)!r})
        inputs = onnx_model.feeds({{"age": [39], "hours-per-week": [None], "job": ["a"], "city": [None]}}, schema)
        probabilities = session.run([onnx_model.PROBABILITIES], inputs)[0]
        files = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
        print(json.dumps({{"sum": float(probabilities.sum()), "files": files, "stdlib": sys.base_prefix}}))
        """
    )
    paths = [project_root / "functions" / "inference", built_layer / "python", runtime]
    result = subprocess.run(
        [lambda_python, "-S", "-s", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(map(str, paths)),
             "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache"), "STEPML_BUCKET": "example",
             "AWS_REGION": "us-east-1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["sum"] == pytest.approx(1.0, abs=1e-5)
    allowed = tuple(str(p) for p in [*paths, Path(probe["stdlib"])])
    strays = [f for f in probe["files"] if f and not f.startswith(allowed)]
    assert not strays, strays[:10]


@pytest.mark.slow
def test_inference_layer_ships_bytecode_that_lambda_reads_as_is(built_layer: Path, lambda_python: str) -> None:
    """Every module has a python3.12 .pyc in __pycache__, hash-based and unchecked: /opt is read-only,
    so without them each cold start would compile numpy and onnxruntime from source."""
    site = built_layer / "python"
    sources = sorted(site.rglob("*.py"))
    assert len(sources) > 100
    missing, checked = [], []
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        if not pyc.is_file():
            missing.append(str(source.relative_to(site)))
            continue
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        if flags != 0b01:  # bit 0: hash-based; bit 1: check the source (0 = use as is)
            checked.append(str(source.relative_to(site)))
    assert not missing, missing[:10]
    assert not checked, checked[:10]
    # And a bare interpreter really loads them: `python -v` names each code object read from a .pyc.
    result = subprocess.run(
        [lambda_python, "-S", "-s", "-v", "-c", "import numpy, onnxruntime, stepml.serving"], capture_output=True,
        text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for package in ("numpy", "onnxruntime", "stepml"):
        pyc = site / package / "__pycache__" / "__init__.cpython-312.pyc"
        assert f"code object from '{pyc}'" in result.stderr, f"{package} compiled from source"

"""The inference handler's import graph holds no pandas, scikit-learn or joblib - even after it has
loaded a model and served predictions - so it runs on the onnxruntime + numpy layer alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT
from tests.functional.inference_models import classifier_onnx

FORBIDDEN = ("pandas", "sklearn", "joblib", "scipy", "skl2onnx", "onnxmltools", "lightgbm", "xgboost")

_PROBE = textwrap.dedent(
    """\
    import json, sys
    sys.path.insert(0, {handler_dir!r})
    import app  # functions/inference/app.py, as Lambda imports it

    from stepml.registry import CHAMPION, ModelRegistry
    from stepml.serving import ModelServer
    from stepml.storage import DirectoryStore

    # A registry on a folder: the same reads serving makes on S3, without moto.
    store = DirectoryStore({registry!r})
    models = ModelRegistry(store)
    meta = {{"task": "classification", "target": "income", "schema": json.loads({schema!r})}}
    version = models.register_version("adult", "run-1", {{"model.onnx": open({model!r}, "rb").read()}}, meta)
    models.set_alias("adult", CHAMPION, version["version"], "probe")

    server = ModelServer(store)
    record = {{"age": 39, "hours-per-week": 40, "job": "a", "city": "x"}}
    event = {{"routeKey": "POST /models/{{name}}/predict", "pathParameters": {{"name": "adult"}},
             "body": json.dumps({{"instances": [record, record]}})}}
    result = app.handle(event, server)
    print(json.dumps({{"status": result["statusCode"], "body": json.loads(result["body"]),
                      "modules": sorted({{m.split(".")[0] for m in sys.modules}})}}))
    """
)


def test_serving_a_prediction_imports_no_pandas_or_scikit_learn(tmp_path: Path) -> None:
    from tests.functional.inference_models import SCHEMA

    model = tmp_path / "model.onnx"
    model.write_bytes(classifier_onnx())
    code = _PROBE.format(
        handler_dir=str(ROOT / "functions" / "inference"), model=str(model), schema=json.dumps(SCHEMA),
        registry=str(tmp_path / "registry"),
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
        # PYTHONPATH passed on: the probe imports the stepml under test (a worktree's src, say)
        env={"STEPML_BUCKET": "example", "PATH": "/usr/bin:/bin",
             **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["status"] == 200 and len(probe["body"]["predictions"]) == 2
    assert "onnxruntime" in probe["modules"] and "numpy" in probe["modules"]
    leaked = sorted(set(FORBIDDEN) & set(probe["modules"]))
    assert not leaked, f"the inference path imported {leaked}"

"""`sam build --no-cached` produces functions and an ML layer that fit Lambda and run on their own.

The build runs on a copy of the project (so the checkout's .aws-sam is left alone) into a temporary
build directory. Its output is then checked as Lambda would see it: sizes against the 250 MB
unzipped limit, every shared library's NEEDED entries against what Lambda's loader finds
(tests/lambda_libraries.py), and imports on a bare python3.12 whose only paths are the function's
folder (/var/task), the layer's python/ folder (/opt/python) and the boto3 the runtime ships.
"""

from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import shutil
import subprocess
import textwrap
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest

from tests.lambda_libraries import shared_objects, unresolved_libraries

pytestmark = pytest.mark.slow

#: Lambda's limit on a function's unzipped code plus all its layers ("250 MB"), in bytes.
LAMBDA_UNZIPPED_LIMIT = 262_144_000
LAYER = "MLLayer"
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    ".aws-sam",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "node_modules",
)
STUB_HANDLER = textwrap.dedent(
    '''\
    """Stand-in written by tests/packaging: the real handler did not exist yet."""
    import stepml


    def lambda_handler(event, context):
        return {}
    '''
)
#: What the Lambda python runtime itself provides, besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")


BarePython = Callable[..., dict[str, Any]]


@dataclass
class Build:
    root: Path  # the copy of the project that sam built
    out: Path  # --build-dir
    template: dict[str, Any]

    @property
    def resources(self) -> dict[str, Any]:
        return self.template["Resources"]

    @property
    def function_globals(self) -> dict[str, Any]:
        return self.template.get("Globals", {}).get("Function", {})

    def layers(self) -> list[str]:
        return sorted(
            name
            for name, res in self.resources.items()
            if res["Type"] == "AWS::Serverless::LayerVersion"
        )

    def functions(self) -> list[str]:
        return sorted(
            name
            for name, res in self.resources.items()
            if res["Type"] == "AWS::Serverless::Function"
        )

    def layers_of(self, function: str) -> list[str]:
        """Layers attached to a function (SAM adds Globals' list to the function's own)."""
        globals_ = self.function_globals.get("Layers", [])
        own = self.resources[function]["Properties"].get("Layers", [])
        return [ref["Ref"] for ref in [*globals_, *own] if isinstance(ref, dict) and "Ref" in ref]

    def function_env(self, function: str) -> dict[str, str]:
        """The function's environment variables, with intrinsics replaced by plausible values."""
        merged = {
            **self.function_globals.get("Environment", {}).get("Variables", {}),
            **self.resources[function]["Properties"].get("Environment", {}).get("Variables", {}),
        }
        return {
            k: v if isinstance(v, str) else f"stepml-test-{k.lower()}" for k, v in merged.items()
        }

    def handler_of(self, function: str) -> str:
        own = self.resources[function]["Properties"].get("Handler")
        return own or self.function_globals.get("Handler", "app.lambda_handler")


def _parse_template(path: Path) -> dict[str, Any]:
    from samcli.yamlhelper import yaml_parse  # the parser sam itself uses (!Ref, !Sub...)

    return yaml_parse(path.read_text())


def _write_missing_handlers(build: Build) -> list[str]:
    stubbed = []
    for name in build.functions():
        code_uri = build.resources[name]["Properties"].get("CodeUri")
        if not isinstance(code_uri, str):
            continue
        module = build.handler_of(name).rsplit(".", 1)[0]
        handler_file = build.root / code_uri / (module.replace(".", "/") + ".py")
        if not handler_file.exists():
            handler_file.parent.mkdir(parents=True, exist_ok=True)
            handler_file.write_text(STUB_HANDLER)
            stubbed.append(name)
    return stubbed


@pytest.fixture(scope="module")
def build(
    project_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
    run_tool: Callable[..., subprocess.CompletedProcess[str]],
    sam_exe: str,
    report: Callable[[str], None],
) -> Build:
    work = tmp_path_factory.mktemp("sam-build")
    root = work / "project"
    shutil.copytree(project_root, root, ignore=COPY_IGNORE, symlinks=True)
    build = Build(root=root, out=work / "build", template=_parse_template(root / "template.yaml"))
    stubbed = _write_missing_handlers(build)
    if stubbed:
        warnings.warn(f"built with stand-in handlers for {stubbed}: their handler file is missing")

    started = time.monotonic()
    result = run_tool(
        [sam_exe, "build", "--no-cached", "--build-dir", build.out], cwd=root, timeout=900
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"sam build failed:\n{result.stdout}\n{result.stderr}"
    report(f"sam build --no-cached: {seconds:.0f} s")
    return build


def _unzipped_size(path: Path) -> int:
    return sum(
        (Path(folder) / name).lstat().st_size
        for folder, _, files in os.walk(path)
        for name in files
    )


def test_every_function_and_the_layer_are_built(build: Build) -> None:
    for name in [*build.functions(), LAYER]:
        assert (build.out / name).is_dir(), f"sam build produced no {name}"
    assert (build.out / "template.yaml").is_file()


def test_each_function_with_its_layers_fits_lambdas_unzipped_limit(
    build: Build, report: Callable[[str], None]
) -> None:
    # Given the built layer and functions
    layers = {layer for function in build.functions() for layer in build.layers_of(function)}
    sizes = {name: _unzipped_size(build.out / name) for name in [LAYER, *layers, *build.functions()]}
    report(f"{LAYER}: {sizes[LAYER] / 1e6:.1f} MB unzipped")
    # Then every function plus the layers attached to it stays under Lambda's 250 MB
    over = []
    for function in build.functions():
        total = sizes[function] + sum(sizes[layer] for layer in build.layers_of(function))
        report(
            f"{function}: {sizes[function] / 1e3:.0f} kB + layers {build.layers_of(function)} "
            f"= {total / 1e6:.1f} MB of {LAMBDA_UNZIPPED_LIMIT / 1e6:.0f} MB"
        )
        if total >= LAMBDA_UNZIPPED_LIMIT:
            over.append(function)
    assert not over, f"over Lambda's unzipped limit: {over}"


def test_layer_bundles_stepml_exactly_as_in_src(build: Build) -> None:
    layer_stepml = build.out / LAYER / "python" / "stepml"
    assert (layer_stepml / "__init__.py").is_file()
    source = build.root / "src" / "stepml"  # the copy that was built: src/ may change meanwhile
    sources = {
        p.relative_to(source) for p in source.rglob("*") if p.is_file() and p.suffix != ".pyc"
    }
    bundled = {p.relative_to(layer_stepml) for p in layer_stepml.rglob("*") if p.is_file()}
    assert bundled == sources
    _, mismatch, errors = filecmp.cmpfiles(source, layer_stepml, sorted(map(str, sources)), False)
    assert not mismatch and not errors, f"differ from src/stepml: {mismatch + errors}"


def test_layer_holds_exactly_the_pinned_distributions(
    build: Build, layer_pins: dict[str, str], pins: Any
) -> None:
    # Given the distributions pip installed into the layer
    installed = {}
    for metadata in (build.out / LAYER / "python").glob("*.dist-info/METADATA"):
        headers = Parser().parsestr(metadata.read_text(encoding="utf-8"), headersonly=True)
        installed[pins.canonical(headers["Name"])] = headers["Version"]
    # Then they are exactly layer/requirements.txt: nothing unpinned slipped in as a dependency
    assert installed == layer_pins
    assert (build.out / LAYER / "python" / "sklearn").is_dir()


def test_layer_is_slimmed_but_keeps_what_numpy_needs(build: Build) -> None:
    site = build.out / LAYER / "python"
    tests_dirs = [p for p in site.rglob("tests") if p.is_dir()]
    assert tests_dirs == [site / "numpy" / "_core" / "tests"]
    assert [p.name for p in tests_dirs[0].iterdir()] == ["_natype.py"]  # numpy.testing imports it
    leftovers = [
        p.relative_to(site)
        for pattern in ("*.pyi", "*.pxd", "*.h", "*.c", "*.cpp", "__pycache__")
        for p in site.rglob(pattern)
    ]
    assert not leftovers, leftovers[:20]
    assert list(site.glob("numpy.libs/libscipy_openblas*")), "numpy's bundled OpenBLAS is missing"
    assert not (site / "boto3").exists() and not (site / "botocore").exists()


def test_every_shared_library_resolves_as_lambdas_loader_would(
    build: Build, report: Callable[[str], None]
) -> None:
    # Given every ELF shared object in the built layers and functions
    problems: list[str] = []
    checked = 0
    for layer in build.layers():
        root = build.out / layer
        checked += len(shared_objects(root))
        # a layer alone: its own lib/ (/opt/lib) and $ORIGIN RPATHs, or the runtime's libraries
        problems += [f"{layer}/{problem}" for problem in unresolved_libraries(root)]
    for function in build.functions():
        root = build.out / function
        checked += len(shared_objects(root))
        # a function: its lib/ (/var/task/lib) and its layers' lib/ (merged at /opt/lib)
        layer_libs = [build.out / layer / "lib" for layer in build.layers_of(function)]
        problems += [f"{function}/{problem}" for problem in unresolved_libraries(root, layer_libs)]
    report(f"NEEDED check: {checked} shared objects in {build.layers()} and the functions")
    # Then each NEEDED library is in the package or in the Lambda python3.12 runtime, with the
    # symbol versions asked: LightGBM's libgomp.so.1 comes from the MLLayer's lib/
    assert not problems, "unresolved on Lambda:\n" + "\n".join(problems)
    libgomp = build.out / LAYER / "lib" / "libgomp.so.1"
    assert libgomp.is_file() and not libgomp.is_symlink(), "MLLayer must ship lib/libgomp.so.1"
    assert (build.out / LAYER / "python" / "lightgbm" / "lib" / "lib_lightgbm.so").is_file()


def test_layer_slims_onnx_to_what_stepml_uses(build: Build) -> None:
    site = build.out / LAYER / "python"
    assert not (site / "onnx" / "backend" / "test").exists()
    assert (site / "onnx" / "__init__.py").is_file()
    # the booster's graph is stepml's own (stepml.onnx_export): no onnxmltools on Lambda
    assert not (site / "onnxmltools").exists()


# --- on a bare python3.12, as Lambda runs it -----------------------------------------------------

_PROBE = textwrap.dedent(
    """\
    import json, os, sys
    {imports}
    print(json.dumps({{
        "path": sys.path,
        "stdlib": os.path.dirname(os.__file__),
        "files": sorted({{getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}}),
        "result": RESULT,
    }}))
    """
)

_ML_SMOKE = textwrap.dedent(
    """\
    import numpy as np, pandas as pd, scipy.stats, sklearn, joblib, yaml, numpy.testing
    import stepml, stepml.errors
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 90, 300).astype(float),
                          "job": rng.choice(["a", "b", None], 300)})
    frame.loc[::7, "age"] = np.nan
    target = (frame["age"].fillna(40) > 45).astype(int)
    model = Pipeline([
        ("columns", ColumnTransformer([
            ("numbers", SimpleImputer(), ["age"]),
            ("words", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                    OneHotEncoder(handle_unknown="ignore")), ["job"]),
        ])),
        ("model", HistGradientBoostingClassifier(max_iter=20)),
    ]).fit(frame, target)
    # the auto recipe's booster and its export, as the Train stage runs them
    import onnx
    from stepml.booster import BoostedTreesClassifier
    from stepml.onnx_export import export
    numbers = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    labels = np.where(numbers["a"] > 0, "yes", "no")
    booster = Pipeline([("columns", ColumnTransformer([("numbers", SimpleImputer(), ["a", "b", "c"])])),
                        ("model", BoostedTreesClassifier(max_iter=10, max_leaf_nodes=7))]).fit(numbers, labels)
    exported = onnx.load_from_string(export(booster, [{"name": n, "kind": "numeric"} for n in "abc"], "classification"))
    libgomp = sorted({line.split()[-1] for line in open("/proc/self/maps") if "libgomp" in line})
    RESULT = {"accuracy": float(model.score(frame, target)), "sklearn": sklearn.__version__,
              "pandas": pd.__version__, "numpy": np.__version__, "stepml": stepml.__file__,
              "lightgbm": float(booster.score(numbers, labels)),
              "onnx_nodes": len(exported.graph.node), "libgomp": libgomp}
    """
)


@pytest.fixture(scope="module")
def lambda_runtime_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder standing in for the runtime's own site-packages: boto3 and its dependencies."""
    folder = tmp_path_factory.mktemp("lambda-runtime")
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec and spec.origin, f"{name} is not installed in the test environment"
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (folder / source.name).symlink_to(source)
    return folder


@pytest.fixture(scope="module")
def bare_python(lambda_python: str, tmp_path_factory: pytest.TempPathFactory) -> BarePython:
    """Run code on python3.12 with -S (no site-packages) and exactly the given sys.path entries."""
    cwd = tmp_path_factory.mktemp("bare-cwd")
    pycache = tmp_path_factory.mktemp("pycache")  # Lambda's /opt and /var/task are read-only

    def _run(code: str, paths: list[Path], env: dict[str, str] | None = None) -> dict[str, Any]:
        result = subprocess.run(
            [lambda_python, "-S", "-s", "-c", code],
            cwd=cwd,
            env={
                "PATH": "/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "HOME": str(cwd),
                "PYTHONPATH": os.pathsep.join(map(str, paths)),
                "PYTHONPYCACHEPREFIX": str(pycache),
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                **(env or {}),
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"failed on bare {lambda_python}:\n{result.stderr[-3000:]}")
        probe: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        # Every module came from the given paths or the standard library: nothing leaked in
        allowed = tuple(str(p) for p in [*paths, Path(probe["stdlib"])])
        strays = [f for f in probe["files"] if f and not f.startswith(allowed)]
        if strays:
            raise AssertionError(f"imported from outside the Lambda paths: {strays[:10]}")
        return probe

    return _run


def test_layer_alone_runs_pandas_scikit_learn_and_lightgbm(
    build: Build, bare_python: BarePython
) -> None:
    # Given only the layer on a python3.12 that sees no site-packages, with the layer's lib/ on
    # LD_LIBRARY_PATH as Lambda puts /opt/lib there
    layer = build.out / LAYER / "python"
    lib = build.out / LAYER / "lib"
    # When stepml, pandas and scikit-learn are imported and a small pipeline is fitted, and a small
    # booster (LightGBM) is fitted and exported to ONNX
    probe = bare_python(_PROBE.format(imports=_ML_SMOKE), [layer], {"LD_LIBRARY_PATH": str(lib)})
    # Then it all came from the layer, and the models learned something
    result = probe["result"]
    assert result["stepml"].startswith(str(layer))
    assert result["accuracy"] > 0.8 and result["lightgbm"] > 0.8 and result["onnx_nodes"] >= 1
    # and lib_lightgbm.so's libgomp.so.1 is the layer's copy (scikit-learn's own vendored one may
    # be loaded too, from scikit_learn.libs). This host has a system libgomp, so the import alone
    # would pass without the layer's: that it is missing on Lambda is what
    # test_every_shared_library_resolves_as_lambdas_loader_would checks from the files.
    assert str((lib / "libgomp.so.1").resolve()) in result["libgomp"]
    assert all(path.startswith(str((build.out / LAYER).resolve())) for path in result["libgomp"])


_TUNE_SMOKE = textwrap.dedent(
    """\
    import importlib.util
    import numpy as np, pandas as pd
    from stepml.config import DatasetConfig
    from stepml.preprocessing import feature_schema
    from stepml.training import fit_with_config
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "job": rng.choice(["a", "b"], 300)})
    frame["y"] = frame["x"] * 3 + (frame["job"] == "a") + rng.normal(scale=0.1, size=300)
    # small fixed rounds keep each trial short; how many trials fit in 5 s depends on the machine
    config = DatasetConfig.from_dict({"target": "y", "params": {"max_iter": 20}, "tune": {"budget_seconds": 5}})
    pipeline, tuning = fit_with_config(frame, "y", feature_schema(frame, "y"), "regression", config)
    RESULT = {"trials": tuning["trials"], "members": len(tuning["ensemble"]),
              "without": [m for m in ("sqlalchemy", "alembic") if importlib.util.find_spec(m) is None]}
    """
)


def test_layer_tunes_with_optuna_but_without_its_database_packages(build: Build, bare_python: BarePython) -> None:
    # Given only the layer (Optuna installed without SQLAlchemy and Alembic)
    layer = build.out / LAYER / "python"
    # When a config with tune is fitted there
    probe = bare_python(_PROBE.format(imports=_TUNE_SMOKE), [layer])
    # Then the search ran trials in memory, and the database packages were never needed
    trials = probe["result"]["trials"]
    assert trials >= 1 and probe["result"]["members"] == min(3, trials)
    assert probe["result"]["without"] == ["sqlalchemy", "alembic"]
    assert not [f for f in probe["files"] if "sqlalchemy" in f or "alembic" in f]


def test_each_handler_imports_with_only_its_layers_and_the_runtime(
    build: Build, bare_python: BarePython, lambda_runtime_packages: Path
) -> None:
    failures = {}
    for function in build.functions():
        handler = build.handler_of(function)
        module, attribute = handler.rsplit(".", 1)
        code = _PROBE.format(
            imports=f"import importlib\n"
            f"RESULT = callable(getattr(importlib.import_module({module!r}), {attribute!r}))"
        )
        # Lambda's order: /var/task, then the layers' /opt/python, then the runtime's packages
        paths = [
            build.out / function,
            *(build.out / layer / "python" for layer in build.layers_of(function)),
            lambda_runtime_packages,
        ]
        env = {"AWS_LAMBDA_FUNCTION_NAME": function, **build.function_env(function)}
        try:
            assert bare_python(code, paths, env)["result"] is True, f"{handler} is not callable"
        except AssertionError as error:
            failures[function] = str(error)
    assert not failures, "\n\n".join(f"{name}: {why}" for name, why in failures.items())

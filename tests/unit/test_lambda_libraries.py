"""The NEEDED check refuses what Lambda's loader refuses: LightGBM without libgomp.so.1.

Built from the virtualenv's own wheels (no `sam build`): lightgbm's lib_lightgbm.so needs
libgomp.so.1, which the Lambda runtime lacks; scikit-learn's wheel vendors a libgomp that
satisfies it. tests/packaging/test_shared_libraries.py runs the same check on the real build.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from tests.lambda_libraries import read_dynamic, unresolved_libraries


def _package_dir(name: str) -> Path:
    # find_spec does not import the package (importing lightgbm loads the host's libgomp)
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        pytest.skip(f"{name} is not installed")
    return Path(spec.origin).parent


@pytest.fixture(scope="module")
def lib_lightgbm() -> Path:
    return _package_dir("lightgbm") / "lib" / "lib_lightgbm.so"


@pytest.fixture(scope="module")
def vendored_libgomp() -> Path:
    found = sorted((_package_dir("sklearn").parent / "scikit_learn.libs").glob("libgomp-*.so*"))
    assert len(found) == 1, f"scikit-learn's wheel should vendor exactly one libgomp: {found}"
    return found[0]


@pytest.fixture(autouse=True)
def _needs_readelf() -> None:
    if shutil.which("readelf") is None:
        pytest.fail("readelf not found: the NEEDED check needs binutils (apt-get install binutils)")


def _layer_with_lightgbm(tmp_path: Path, lib_lightgbm: Path) -> Path:
    layer = tmp_path / "layer"
    target = layer / "python" / "lightgbm" / "lib" / "lib_lightgbm.so"
    target.parent.mkdir(parents=True)
    shutil.copy2(lib_lightgbm, target)
    return layer


def test_lightgbm_without_libgomp_is_refused_naming_file_and_library(
    tmp_path: Path, lib_lightgbm: Path
) -> None:
    # Given a layer holding lib_lightgbm.so and no libgomp (as the wheel installs it)
    layer = _layer_with_lightgbm(tmp_path, lib_lightgbm)
    # When its NEEDED libraries are resolved as Lambda would
    problems = unresolved_libraries(layer)
    # Then libgomp.so.1 is reported missing, with the object that needs it; glibc's and GCC's
    # runtime libraries are not (the Lambda runtime has them)
    assert [(p.path, p.library) for p in problems] == [
        (Path("python/lightgbm/lib/lib_lightgbm.so"), "libgomp.so.1")
    ]
    message = str(problems[0])
    assert "python/lightgbm/lib/lib_lightgbm.so" in message and "libgomp.so.1" in message


def test_the_layers_lib_folder_resolves_libgomp(
    tmp_path: Path, lib_lightgbm: Path, vendored_libgomp: Path
) -> None:
    # Given the same layer with scikit-learn's vendored libgomp copied to lib/libgomp.so.1
    layer = _layer_with_lightgbm(tmp_path, lib_lightgbm)
    (layer / "lib").mkdir()
    shutil.copy2(vendored_libgomp, layer / "lib" / "libgomp.so.1")
    # Then nothing is left unresolved: lib/ is /opt/lib, on Lambda's LD_LIBRARY_PATH, and the
    # copy defines every symbol version lib_lightgbm.so asks of libgomp.so.1
    assert unresolved_libraries(layer) == []
    asked = read_dynamic(lib_lightgbm).version_needs["libgomp.so.1"]
    assert {"OMP_1.0", "GOMP_1.0", "GOMP_4.0", "GOMP_4.5"} <= asked
    assert asked <= read_dynamic(layer / "lib" / "libgomp.so.1").version_defs


def test_a_library_without_the_versions_asked_is_refused(
    tmp_path: Path, lib_lightgbm: Path, vendored_libgomp: Path
) -> None:
    # Given a lib/libgomp.so.1 that is some other library (right name, no GOMP_* versions):
    # numpy.random's _sfc64 extension, which needs only libc.so.6
    impostor = next((_package_dir("numpy") / "random").glob("_sfc64*.so"))
    layer = _layer_with_lightgbm(tmp_path, lib_lightgbm)
    (layer / "lib").mkdir()
    shutil.copy2(impostor, layer / "lib" / "libgomp.so.1")
    # Then the name alone does not pass: the loader would fail on the missing versions
    problems = unresolved_libraries(layer)
    assert [(p.path, p.library) for p in problems] == [
        (Path("python/lightgbm/lib/lib_lightgbm.so"), "libgomp.so.1")
    ]
    assert "GOMP_4.5" in problems[0].why and "lib/libgomp.so.1" in str(problems[0])


def test_origin_rpath_resolves_only_inside_the_package(
    tmp_path: Path, lib_lightgbm: Path, vendored_libgomp: Path
) -> None:
    # Given libgomp beside lib_lightgbm.so but outside lib/ and with no RPATH pointing at it
    layer = _layer_with_lightgbm(tmp_path, lib_lightgbm)
    shutil.copy2(vendored_libgomp, layer / "python" / "lightgbm" / "lib" / "libgomp.so.1")
    # Then it is still unresolved: the loader does not look in the object's own folder unless its
    # RPATH/RUNPATH says $ORIGIN (lib_lightgbm.so has none)
    assert read_dynamic(lib_lightgbm).search_path == ()
    assert [p.library for p in unresolved_libraries(layer)] == ["libgomp.so.1"]
    # while a function's layers' lib/ folders (all merged at /opt/lib) do count
    layer_lib = tmp_path / "other-layer" / "lib"
    layer_lib.mkdir(parents=True)
    shutil.copy2(vendored_libgomp, layer_lib / "libgomp.so.1")
    assert unresolved_libraries(layer, [layer_lib]) == []

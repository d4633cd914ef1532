"""What a function may import offline: its runtime, its layers and its own code — nothing else.

Why: on AWS a Python 3.12 function finds modules in four places only — the standard library, what
the runtime bundles (boto3 and what it needs, in ``/var/runtime``), its own code (``CodeUri``, in
``/var/task``, plus the packages ``sam build`` installs from its ``requirements.txt``) and its
layers (``/opt/python``). Offline every function runs in the project's virtualenv, which holds far
more (moto, pyarrow, XGBoost, LightGBM, pyspark, pytest...). A handler that imports one of those
passes every offline test and fails on AWS with ``Runtime.ImportModuleError`` on every invocation;
one that imports it lazily fails mid-run. Evaluate unpickling an XGBoost pipeline while MLLayer
holds no XGBoost was such a bug, found by reading, not by the emulator. The offline stack must be
at least as strict as AWS, so each execution environment refuses what its function's package
would not hold.

What a function may import (:func:`function_policy`) is derived from ``template.yaml`` alone:

* each of its ``Layers`` that the template builds (``AWS::Serverless::LayerVersion`` with a local
  ``ContentUri``): the distributions its ``requirements*.txt`` files name — the layer Makefiles
  install exactly those (the ML layer's files list the whole closure and a build test fails on
  anything else) — and ``stepml`` if its Makefile copies the package (``$(layer_add_stepml)``);
  a layer without requirements files ships its ``python/`` folder as it is;
* the runtime's bundled packages (:data:`RUNTIME_DISTRIBUTIONS`);
* the function's code folder: its modules and packages, and its own ``requirements.txt``;
* the standard library (``sys.stdlib_module_names``).

Distributions become top-level import names through their installed metadata
(``importlib.metadata.packages_distributions()``: ``top_level.txt`` or ``RECORD``).

:class:`ImportGuard` enforces that in one process. It does not raise from a finder of its own: it
wraps the path-based finders of ``sys.meta_path`` so that a name outside the set is simply *not
found* — ``import xgboost`` raises ``ModuleNotFoundError: No module named 'xgboost'`` from
importlib itself, ``importlib.util.find_spec("xgboost")`` is None, and ``importlib.metadata`` does
not list the distribution. That is what a missing package does on Lambda, so the optional imports
libraries probe for (pandas and pyarrow, Powertools and pydantic, ``try: import x except
ImportError``) take the branch they take on AWS. The worker installs the guard in the fork server
of each layer set *before* it preloads any library (:mod:`stepml.local.worker`), so even the
preloaded modules were imported as the function's package would import them.

Not modeled: names are checked at the top level (``google`` from protobuf admits any installed
``google.*`` namespace package); what a layer Makefile deletes inside a package (the inference
layer drops ``onnxruntime.tools``, ``numpy.f2py``, most of Powertools' utilities: the packaging
tests import the handler from the built layer for that); a layer given as an ARN, or through an
intrinsic the template does not resolve, whose contents are unknown offline: such a function's
imports are not checked (the environment logs why).

This module is imported into every fork server before the guard is armed: it must import nothing
beyond the standard library at module level.
"""

from __future__ import annotations

import functools
import importlib.machinery
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepml.local.template import FunctionSpec, LayerSpec

#: What Lambda's python3.12 runtime bundles beside the standard library: the AWS SDK for Python
#: and its dependencies (AWS's "Runtime-included SDK versions"; the layers leave boto3 out on
#: purpose, see layer/requirements.txt).
RUNTIME_DISTRIBUTIONS = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "urllib3",
)

#: The line of a layer's Makefile that copies src/stepml into the layer (make/layer.mk).
STEPML_RECIPE = "$(layer_add_stepml)"


class ImportPolicyError(ValueError):
    """A layer's contents cannot be read (a missing folder, an unreadable requirements file)."""


def canonical_name(name: str) -> str:
    """A distribution's name as PEP 503 compares them (``PyYAML`` → ``pyyaml``, ``a_b`` → ``a-b``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class ImportPolicy:
    """What one function's package holds beside the standard library."""

    #: Top-level import names (``sklearn``, ``yaml``, ``stepml``, ``app``).
    modules: frozenset[str]
    #: Canonical distribution names, what ``importlib.metadata`` may list (``scikit-learn``).
    distributions: frozenset[str] = frozenset()

    def __or__(self, other: ImportPolicy) -> ImportPolicy:
        return ImportPolicy(self.modules | other.modules, self.distributions | other.distributions)

    def permits(self, name: str) -> bool:
        """Whether the module ``name`` (dotted or not) can be imported in the function."""
        top = name.partition(".")[0]
        return top in self.modules or top in sys.stdlib_module_names


# -- deriving a function's policy from the template (in the stack's process) ------------------------


@functools.cache
def _distribution_modules() -> dict[str, frozenset[str]]:
    """Installed distribution (canonical name) → its top-level import names."""
    from importlib.metadata import packages_distributions

    modules: dict[str, set[str]] = {}
    for module, distributions in packages_distributions().items():
        if not module.isidentifier():  # RECORD also lists __pycache__, *.pth, data folders
            continue
        for distribution in distributions:
            modules.setdefault(canonical_name(distribution), set()).add(module)
    return {name: frozenset(names) for name, names in modules.items()}


def distribution_modules(distributions: Iterable[str]) -> frozenset[str]:
    """The top-level names these distributions provide, as installed here (a distribution that is
    not installed provides nothing: it cannot be imported offline anyway)."""
    installed = _distribution_modules()
    return frozenset().union(*(installed.get(canonical_name(name), frozenset()) for name in distributions))


def requirement_names(path: Path) -> list[str]:
    """The distributions a pip requirements file names (``-r other.txt`` followed)."""
    from packaging.requirements import InvalidRequirement, Requirement

    names: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ImportPolicyError(f"cannot read {path}: {exc}") from None
    for number, raw in enumerate(lines, start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            names.extend(requirement_names(path.parent / line.split(None, 1)[1]))
            continue
        if line.startswith("-"):  # pip options (--no-binary, -c constraints): no package
            continue
        try:
            names.append(Requirement(line).name)
        except InvalidRequirement as exc:
            raise ImportPolicyError(f"{path}, line {number}: {exc}") from None
    return names


def _folder_modules(folder: Path) -> frozenset[str]:
    """Top-level modules a folder on ``sys.path`` provides: ``x.py``, ``x.*.so`` and packages."""
    names: set[str] = set()
    if not folder.is_dir():
        return frozenset()
    for entry in folder.iterdir():
        if entry.is_dir():
            if entry.name.isidentifier():
                names.add(entry.name)
        elif entry.suffix in (".py", ".so", ".pyc"):
            stem = entry.name.partition(".")[0]
            if stem.isidentifier():
                names.add(stem)
    return frozenset(names)


def layer_policy(layer: LayerSpec) -> ImportPolicy | None:
    """What a layer of the template holds; None when the template does not say (an ARN)."""
    folder = layer.content_dir
    if folder is None:
        return None
    if not folder.is_dir():
        raise ImportPolicyError(f"layer {layer.name}: ContentUri {folder} is not a folder")
    requirement_files = sorted(folder.glob("requirements*.txt"))
    makefile = folder / "Makefile"
    if not requirement_files and not makefile.is_file():
        # No build step: the folder is the layer's content (/opt), its python/ is on sys.path.
        return ImportPolicy(_folder_modules(folder / "python"))
    distributions = [name for path in requirement_files for name in requirement_names(path)]
    modules = set(distribution_modules(distributions))
    if makefile.is_file() and STEPML_RECIPE in makefile.read_text(encoding="utf-8"):
        modules.add("stepml")
    return ImportPolicy(frozenset(modules), frozenset(canonical_name(name) for name in distributions))


def runtime_policy() -> ImportPolicy:
    """What the python3.12 runtime itself provides beside the standard library."""
    return ImportPolicy(
        distribution_modules(RUNTIME_DISTRIBUTIONS),
        frozenset(canonical_name(name) for name in RUNTIME_DISTRIBUTIONS),
    )


def layers_policy(layers: Iterable[LayerSpec] | None) -> ImportPolicy | None:
    """The runtime plus these layers; None when one of them (or the list) is unknown."""
    if layers is None:
        return None
    policy = runtime_policy()
    for layer in layers:
        contents = layer_policy(layer)
        if contents is None:
            return None
        policy = policy | contents
    return policy


def code_policy(code_dir: Path) -> ImportPolicy:
    """What a function's code folder provides: its modules, and what ``sam build`` installs from
    its ``requirements.txt``."""
    requirements = code_dir / "requirements.txt"
    distributions = requirement_names(requirements) if requirements.is_file() else []
    return ImportPolicy(
        _folder_modules(code_dir) | distribution_modules(distributions),
        frozenset(canonical_name(name) for name in distributions),
    )


def function_policy(spec: FunctionSpec) -> ImportPolicy | None:
    """Everything ``spec``'s function may import beside the standard library; None when its
    layers are not known (a spec made by hand, a layer ARN): then nothing is checked."""
    layers = layers_policy(spec.layers)
    return None if layers is None else layers | code_policy(spec.code_dir)


# -- enforcing it in an execution environment ------------------------------------------------------

#: The finders that only ever find standard-library modules (built in, frozen): left unwrapped.
_STDLIB_FINDERS = (importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter)


def _standard_library_folder() -> str:
    """The folder of the standard library's modules (lib-dynload inside it)."""
    return os.path.dirname(os.__file__) + os.sep


def _in_standard_library(spec: Any) -> bool:
    """Whether a found module is the interpreter's own: in the standard library's folder (some
    of its modules have platform-specific names sys.stdlib_module_names does not list, such as
    ``_sysconfigdata__linux_x86_64-linux-gnu``), and not in a site-packages folder inside it."""
    origin = getattr(spec, "origin", None) or ""
    return origin.startswith(_standard_library_folder()) and not any(
        part in ("site-packages", "dist-packages") for part in Path(origin).parts
    )


class _GuardedFinder:
    """A ``sys.meta_path`` finder that finds nothing its guard refuses, and delegates the rest."""

    def __init__(self, finder: Any, guard: ImportGuard) -> None:
        self.finder = finder
        self.guard = guard

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        spec = self.finder.find_spec(fullname, path, target)
        if spec is None or self.guard.policy.permits(fullname) or _in_standard_library(spec):
            return spec
        return None

    def find_distributions(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """``importlib.metadata`` asks every finder: list the policy's distributions only."""
        find = getattr(self.finder, "find_distributions", None)
        if find is None:
            return iter(())
        allowed = self.guard.policy.distributions
        return (
            distribution
            for distribution in find(*args, **kwargs)
            if canonical_name(distribution.metadata["Name"] or "") in allowed
        )

    def invalidate_caches(self) -> None:
        invalidate = getattr(self.finder, "invalidate_caches", None)
        if invalidate is not None:
            invalidate()

    def __repr__(self) -> str:
        return f"<stepml import guard around {self.finder!r}>"


class ImportGuard:
    """Refuse, in this process, every import outside ``policy`` (see the module docstring)."""

    def __init__(self, policy: ImportPolicy) -> None:
        self.policy = policy

    def install(self) -> None:
        """Wrap the path-based finders of ``sys.meta_path`` (once per process)."""
        if active_guard() is not None:
            raise RuntimeError("an import guard is already installed in this process")
        sys.meta_path[:] = [
            finder if finder in _STDLIB_FINDERS else _GuardedFinder(finder, self)
            for finder in sys.meta_path
        ]

    def allow(self, extra: ImportPolicy) -> None:
        """Admit ``extra`` too (the function's own code, in its environment)."""
        self.policy = self.policy | extra

    def forget_refused(self) -> list[str]:
        """Drop from ``sys.modules`` what was imported before the guard and is refused now (the
        worker's own package, in a function without it), so that importing it fails as on AWS.
        Returns the names dropped."""
        dropped: list[str] = []
        for name, module in list(sys.modules.items()):
            spec: Any = getattr(module, "__spec__", None)
            # Judged by the name it was imported as: compiled extensions also enter themselves
            # under short aliases (scikit-learn's ``_loss`` is ``sklearn._loss._loss``, and
            # pickles name it so); modules made by extensions (Cython's ``_cython_3_*``) and
            # ``__main__`` have no file and stay.
            if getattr(spec, "has_location", False) and not self.policy.permits(spec.name):
                dropped.append(name)
        for name in dropped:
            forgotten = sys.modules.pop(name)
            parent, _, child = name.rpartition(".")
            if parent and getattr(sys.modules.get(parent), child, None) is forgotten:
                delattr(sys.modules[parent], child)
        return dropped


def active_guard() -> ImportGuard | None:
    """The guard installed in this process, if any."""
    for finder in sys.meta_path:
        if isinstance(finder, _GuardedFinder):
            return finder.guard
    return None

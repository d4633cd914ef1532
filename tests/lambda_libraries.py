"""Would Lambda's dynamic loader find every library a built layer's or function's ELF objects need?

On AWS a shared object whose NEEDED library is missing fails at import time ("OSError:
libgomp.so.1: cannot open shared object file"), on the first cold start after a deploy. Offline the
host usually has the library (a developer's Linux ships libgomp, the X11 libraries...), so an
import test passes there and proves nothing. This module decides it from the files alone: every
NEEDED entry of every ELF object under a folder (a built layer or function) must be found

- inside that folder, where the loader looks for it on Lambda: the object's own DT_RPATH/DT_RUNPATH
  with $ORIGIN expanded (auditwheel's ``<package>.libs`` folders), or the ``lib/`` folder of the
  layer (/opt/lib) or function (/var/task/lib), both on Lambda's LD_LIBRARY_PATH; or
- in the python3.12 runtime itself: ``LAMBDA_RUNTIME_LIBRARIES`` below.

A library found inside the folder must also define every symbol version the object asks of it
(``readelf -V``: a libgomp without GOMP_4.5 fails as surely as no libgomp), and the runtime's glibc
is 2.34: an object needing GLIBC_2.35 or later is refused too.

The ELF headers are read with binutils' ``readelf`` (the project's Makefiles already use binutils'
``strip`` when present); no Python ELF library is a dependency of the project.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Libraries the Lambda python3.12 runtime (Amazon Linux 2023, x86_64) provides itself, so that a
#: layer may leave them out. Evidence:
#: - python3.12 runs on Amazon Linux 2023 (the provided.al2023 base, built from AL2023's minimal
#:   container image) with glibc 2.34: https://docs.aws.amazon.com/linux/al2023/ug/lambda.html,
#:   https://docs.aws.amazon.com/linux/al2023/ug/core-glibc.html and
#:   https://github.com/aws/aws-lambda-builders/pull/752 (`ldd --version` in the al2023 image).
#: - The libraries below are the part of the manylinux policy's whitelist (PEP 599/600; auditwheel's
#:   src/auditwheel/policy/manylinux-policy.json, "lib_whitelist") that a glibc system without X11
#:   or GLib has: wheels may link them without bundling them, which is how every manylinux wheel in
#:   today's layer (numpy, scipy, scikit-learn, pandas, onnx, pydantic-core...) already runs on
#:   Lambda. glibc's libraries; GCC's C++ runtime and unwinder (libstdc++.so.6, libgcc_s.so.1),
#:   which AL2023 ships with its gcc 11 runtime; zlib (libz.so.1; scipy's vendored libgfortran
#:   needs it), part of even AL2023's minimal image.
#: - LD_LIBRARY_PATH on the AL2023 runtimes is
#:   /var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib
#:   (aws/aws-lambda-base-images, the images' Dockerfile ENV): /var/task/lib and /opt/lib are where
#:   a function or layer adds its own.
#: Deliberately absent: libgomp.so.1 (GCC's OpenMP runtime: not in the whitelist, not on Lambda;
#: "OSError: libgomp.so.1: cannot open shared object file" is the classic Lambda failure),
#: libgfortran/libquadmath (wheels bundle them), and the whitelist's X11/GL/GLib libraries (the
#: Lambda image has no graphics stack).
LAMBDA_RUNTIME_LIBRARIES = frozenset(
    {
        # glibc 2.34
        "ld-linux-x86-64.so.2",
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libutil.so.1",
        "libresolv.so.2",
        "libanl.so.1",
        # GCC's runtime libraries
        "libstdc++.so.6",
        "libgcc_s.so.1",
        # zlib
        "libz.so.1",
    }
)
#: The runtime's glibc: GLIBC_<x.y> symbol versions above it are not defined on Lambda.
LAMBDA_GLIBC = (2, 34)
GLIBC_LIBRARIES = frozenset(
    name for name in LAMBDA_RUNTIME_LIBRARIES if not name.startswith(("libstdc", "libgcc", "libz"))
)
ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class ElfDynamic:
    """What the loader reads from a shared object's dynamic section and version sections."""

    needed: tuple[str, ...]
    search_path: tuple[str, ...]  # DT_RPATH/DT_RUNPATH entries, unexpanded
    version_needs: dict[str, frozenset[str]]  # NEEDED file -> version names required of it
    version_defs: frozenset[str]  # version names this object defines


@dataclass(frozen=True)
class Unresolved:
    """A NEEDED library the loader would not find (or not with the versions asked) on Lambda."""

    path: Path  # the ELF object, relative to the folder checked
    library: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}: NEEDED {self.library} {self.why}"


def readelf() -> str:
    found = shutil.which("readelf")
    if not found:
        raise RuntimeError("readelf not found: install binutils (apt-get install binutils)")
    return found


_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[(.+)\]")
_SEARCH = re.compile(r"\((?:RPATH|RUNPATH)\)\s+Library (?:rpath|runpath): \[(.*)\]")
_FILE = re.compile(r"\bFile: (\S+)")
_NAME = re.compile(r"\bName: (\S+)")


def read_dynamic(path: Path) -> ElfDynamic:
    """The NEEDED entries, search path and symbol versions of one ELF object (``readelf -d -V``)."""
    out = subprocess.run(
        [readelf(), "-d", "-V", "-W", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
    ).stdout
    needed = tuple(_NEEDED.findall(out))
    search = tuple(entry for found in _SEARCH.findall(out) for entry in found.split(":") if entry)
    needs: dict[str, set[str]] = {}
    defs: set[str] = set()
    section = ""
    current_file = ""
    for line in out.splitlines():
        if "section '.gnu.version_d'" in line:
            section = "defs"
        elif "section '.gnu.version_r'" in line:
            section = "needs"
        elif "section '" in line:
            section = ""
        elif section == "defs":
            if (name := _NAME.search(line)) and "Flags: BASE" not in line:
                defs.add(name.group(1))
        elif section == "needs":
            if file := _FILE.search(line):
                current_file = file.group(1)
            elif (name := _NAME.search(line)) and current_file:
                needs.setdefault(current_file, set()).add(name.group(1))
    return ElfDynamic(
        needed=needed,
        search_path=search,
        version_needs={file: frozenset(names) for file, names in needs.items()},
        version_defs=frozenset(defs),
    )


def shared_objects(root: Path) -> list[Path]:
    """Every ELF file named like a shared object (``*.so``, ``*.so.1.2``) under root."""
    found = []
    for path in sorted(root.rglob("*.so*")):
        if path.is_file() and re.search(r"\.so(\.\d+)*$", path.name):
            with path.open("rb") as handle:
                if handle.read(4) == ELF_MAGIC:
                    found.append(path)
    return found


def _glibc_too_new(versions: Iterable[str]) -> list[str]:
    too_new = []
    for version in versions:
        match = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", version)
        if match and (int(match.group(1)), int(match.group(2))) > LAMBDA_GLIBC:
            too_new.append(version)
    return sorted(too_new)


def unresolved_libraries(root: Path, lib_dirs: Sequence[Path] = ()) -> list[Unresolved]:
    """Every NEEDED library of root's shared objects that Lambda's loader would not resolve.

    root is what Lambda unpacks in one place (a layer at /opt, a function at /var/task); its
    ``lib/`` is on LD_LIBRARY_PATH, as are ``lib_dirs`` (e.g. the ``lib/`` of a function's layers).
    An RPATH/RUNPATH entry counts only if it points inside root: a build machine's absolute path
    does not exist on Lambda.
    """
    root = root.resolve()
    allowed = [root, *(d.resolve() for d in lib_dirs)]
    library_path = [root / "lib", *(d.resolve() for d in lib_dirs)]
    cache: dict[Path, ElfDynamic] = {}

    def dynamic(path: Path) -> ElfDynamic:
        if path not in cache:
            cache[path] = read_dynamic(path)
        return cache[path]

    problems = []
    for path in shared_objects(root):
        info = dynamic(path)
        rel = path.relative_to(root)
        dirs = [
            Path(entry.replace("${ORIGIN}", str(path.parent)).replace("$ORIGIN", str(path.parent)))
            for entry in info.search_path
        ]
        for library in info.needed:
            asked = info.version_needs.get(library, frozenset())
            candidates = [
                d.resolve() / library
                for d in [*dirs, *library_path]
                if any(d.resolve().is_relative_to(a) for a in allowed)
            ]
            target = next((c for c in candidates if c.is_file()), None)
            if target is not None:
                missing = sorted(asked - dynamic(target).version_defs)
                if missing:
                    where = target.relative_to(root) if target.is_relative_to(root) else target
                    problems.append(
                        Unresolved(rel, library, f"found at {where}, which lacks {missing}")
                    )
            elif library in LAMBDA_RUNTIME_LIBRARIES:
                too_new = _glibc_too_new(asked) if library in GLIBC_LIBRARIES else []
                if too_new:
                    problems.append(
                        Unresolved(rel, library, f"needs {too_new}: Lambda's glibc is 2.34")
                    )
            else:
                searched = ", ".join(str(d) for d in [*dirs, *library_path]) or "nothing"
                problems.append(
                    Unresolved(
                        rel,
                        library,
                        f"is neither in the Lambda runtime nor in the package (searched {searched})",
                    )
                )
    return problems

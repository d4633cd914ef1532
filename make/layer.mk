# What both Lambda layers' Makefiles share (layer/Makefile: MLLayer, layer-inference/Makefile:
# InferenceLayer). Each Makefile sets LAYER_DIR from its own location, then includes this file, and
# builds its layer with the canned recipes below:
#
#   $(layer_start)                       check ARTIFACTS_DIR and the sources, empty python/
#   $(call layer_install,FLAGS,REQS)     pip install REQS for Lambda's python3.12 x86_64
#   $(layer_add_stepml)                  copy src/stepml into the layer
#   $(call layer_check,NAME,MODULE,LIMIT,LIMIT TEXT)   complete, and under its size limit
#
# `sam build` runs `make --makefile <absolute path of the layer's Makefile in the source tree>` in a
# scratch copy of the layer's folder (unless --build-in-source), so every path is taken from
# LAYER_DIR, never from the working directory. STEPML_ROOT overrides the project root (e.g. for a
# container build that mounts the project elsewhere).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

STEPML_ROOT ?= $(abspath $(LAYER_DIR)/..)
STEPML_SRC := $(STEPML_ROOT)/src/stepml
# Any python with pip will do for installing: the wheels are chosen by --platform/--python-version,
# not by the interpreter running pip.
PYTHON ?= $(firstword $(shell command -v python3.12 python3 2>/dev/null))

# Lambda python3.12 runs on Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels and older.
PIP_TARGET_FLAGS := --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  --implementation cp --python-version 3.12 --only-binary=:all:
SITE_OUT = $(ARTIFACTS_DIR)/python

define layer_start
@test -n "$${ARTIFACTS_DIR:-}" || { echo "ARTIFACTS_DIR is not set (sam build sets it)" >&2; exit 2; }
@test -f "$(STEPML_SRC)/__init__.py" || { \
  echo "stepml sources not found at $(STEPML_SRC); set STEPML_ROOT to the project root" >&2; exit 2; }
rm -rf "$(SITE_OUT)"
mkdir -p "$(SITE_OUT)"
endef

# $(1): extra pip flags (e.g. --no-deps), $(2): the requirements file.
define layer_install
"$(PYTHON)" -m pip install --quiet --disable-pip-version-check --no-compile $(1) \
  $(PIP_TARGET_FLAGS) --target "$(SITE_OUT)" -r "$(2)"
endef

define layer_add_stepml
cp -R "$(STEPML_SRC)" "$(SITE_OUT)/stepml"
endef

# $(1): the layer's name, $(2): a package that must be in it, $(3): size limit in bytes, $(4): the
# limit in words.
define layer_check
@test -f "$(SITE_OUT)/stepml/__init__.py" && test -d "$(SITE_OUT)/$(2)" \
  || { echo "$(1) is incomplete" >&2; exit 1; }
@size=$$(du -sb "$(ARTIFACTS_DIR)" | cut -f1); \
  echo "$(1): $$((size / 1000000)) MB unzipped ($(4))"; \
  test "$$size" -lt $(3) || { echo "$(1) is over its limit: $(4)" >&2; exit 1; }
endef

# Drop from SITE what is never imported at run time: console scripts, test suites, type stubs,
# Cython declarations, C/C++ headers and sources, and bytecode (a layer ships bytecode only when its
# Makefile compiles it for python3.12 itself). numpy.testing imports numpy/_core/tests/_natype.py,
# so that one file stays. Shared libraries (the bundled OpenBLAS) are left untouched: stripping them
# breaks numpy.
define layer_slim
@test -n "$(SITE)" && test -d "$(SITE)"
rm -rf "$(SITE)/bin"
find "$(SITE)" -type d -name tests ! -path "$(SITE)/numpy/_core/tests" -prune -exec rm -rf {} +
find "$(SITE)/numpy/_core/tests" -mindepth 1 -maxdepth 1 ! -name _natype.py ! -name __init__.py -exec rm -rf {} +
find "$(SITE)" -type d -name __pycache__ -prune -exec rm -rf {} +
find "$(SITE)" -type f \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.pyx' \
  -o -name '*.h' -o -name '*.hpp' -o -name '*.c' -o -name '*.cc' -o -name '*.cpp' \) -delete
endef

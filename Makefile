# `make demo` and `make test` each set everything up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages of the real tools the tests run on exported trees
# (tests/test_real_tools.py): lsmem, lscpu (util-linux), lstopo (hwloc),
# numactl and numastat (numactl).
SYSDEPS_TOOLS := lstopo-no-graphics numactl numastat lsmem lscpu
SYSDEPS_PKGS := util-linux hwloc numactl

.PHONY: all setup sysdeps demo test lint bench clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Install the tools' packages with apt-get when a tool is missing; without
# root or apt-get, say so and go on: the tests that need a missing tool skip,
# naming it.  As root, a failed install is an error (CI must not skip them).
sysdeps:
	@missing=; for t in $(SYSDEPS_TOOLS); do \
	  command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "sysdeps: missing$$missing; not root or no apt-get, so not installing" \
	       "$(SYSDEPS_PKGS) (the tests that need them will skip)"; \
	else \
	  echo "sysdeps: missing$$missing; installing $(SYSDEPS_PKGS)"; \
	  { apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSDEPS_PKGS); } || \
	  { echo "sysdeps: apt-get install $(SYSDEPS_PKGS) failed"; exit 1; }; \
	fi

demo: $(STAMP)
	$(BIN)/dnuma demo

test: $(STAMP) sysdeps
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# the README's performance table, measured now (a few minutes, ~9 GB at peak)
bench: $(STAMP)
	$(BIN)/dnuma bench

slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

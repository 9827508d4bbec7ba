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

.PHONY: all setup sysdeps demo test lint bench clean coverage oracle oracle-deps

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

# The real kernel as the judge: boot Linux 6.12.117 (Debian's build, fetched
# with apt-get download and unpacked into .oracle/, never installed) under
# QEMU for every shipped oracle scenario, re-record tests/data/oracle/ and
# print the agreement table.  Needs root for apt-get (qemu-system-x86,
# busybox-static, gcc and libc6-dev for the static traced workload); a few
# seconds a scenario.
ORACLE_KPKG := linux-image-6.12.117+deb12-amd64-unsigned
ORACLE_KERNEL := .oracle/kernel/boot/vmlinuz-6.12.117+deb12-amd64

oracle-deps:
	@command -v qemu-system-x86_64 >/dev/null 2>&1 && test -x /bin/busybox && \
	  command -v gcc >/dev/null 2>&1 && test -f /usr/lib/x86_64-linux-gnu/libc.a || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq qemu-system-x86 busybox-static gcc libc6-dev; }
	@test -f $(ORACLE_KERNEL) || { mkdir -p .oracle && cd .oracle && \
	  apt-get download -q $(ORACLE_KPKG) && \
	  dpkg-deb -x $(ORACLE_KPKG)_*.deb kernel && rm -f $(ORACLE_KPKG)_*.deb; }

.oracle/dnuma-workload: src/dnuma/oracle/workload.c | oracle-deps
	mkdir -p .oracle && gcc -static -O2 -Wall -o $@ $<

oracle: $(STAMP) oracle-deps .oracle/dnuma-workload
	$(BIN)/dnuma oracle --live --save --kernel $(ORACLE_KERNEL) || test $$? = 1

# Line coverage of src/dnuma.  numba-compiled code is invisible to coverage.py,
# so the kernels run as plain Python (DNUMA_NO_JIT=1, see _kernels/_jit.py),
# with the Hypothesis profile "coverage" (a tenth of the examples; see
# tests/conftest.py).  Left out, each >30 s as plain Python and over code the
# rest of the suite covers: `bench --quick` (test_bench's module fixture and
# the three tests using it: benchmarks of uncompiled kernels measure nothing),
# the long trace and scenario runs (a replay with layout events, the whole
# kmem trace, the demo scenario through the CLI, the 24 GiB host experiment);
# and a timing assertion that holds for compiled kernels only (test_report's
# sample cost).  The default suite's -m 'not slow' still applies.  Report:
# the table printed at the end and build/coverage/html/index.html.
COVERAGE_DESELECT := \
	tests/test_bench.py::test_schema \
	tests/test_bench.py::test_quick_judges_only_unsized_floors \
	tests/test_bench.py::test_figures_agree_with_their_parts \
	tests/test_replay.py::test_layout_events_move_the_traces_pages \
	tests/test_ftrace.py::test_whole_fixture \
	tests/test_cli.py::test_demo_json_repeats_and_writes_the_output_folder \
	tests/test_host.py::test_dnuma_experiment_on_real_state \
	tests/test_report.py::test_sample_cost_is_small

coverage: $(STAMP)
	mkdir -p build/coverage
	rm -f build/coverage/.coverage
	DNUMA_NO_JIT=1 DNUMA_HYPOTHESIS=coverage $(BIN)/coverage run -m pytest -q \
	  $(addprefix --deselect ,$(COVERAGE_DESELECT)) || status=$$?; \
	$(BIN)/coverage report; \
	$(BIN)/coverage html -q; \
	exit $${status:-0}

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

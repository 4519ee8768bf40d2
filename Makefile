# grpcmesh — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONSUL_BIN ?= .cache/bin/consul

.PHONY: demo test test-pure cluster-test unit lint typecheck compiled protos protos-check consul judges h2spec interop ghz fuzz bench bench-quick clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: compiled
	$(PY) -m grpcmesh.cli demo $(ARGS)

test: compiled lint typecheck
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory test-pure

# The sidecar's HTTP/2 layer runs compiled (mypyc, built by every pip install: hatch_build.py);
# this rebuilds it after a source changed. test-pure runs its tests on the pure-Python fallback.
compiled: $(STAMP)
	$(PY) scripts/compile_dataplane.py --if-stale

test-pure: $(STAMP)
	GRPCMESH_PURE_PYTHON=1 $(PY) -m pytest -q -p no:cacheprovider tests/unit/dataplane \
	  tests/integration/sidecar/test_h2spec.py tests/integration/sidecar/test_h2_attacks.py \
	  tests/integration/sidecar/test_pair.py

# The multi-host tests (tests/cluster, marker `cluster`, needs root): network namespaces stand in
# for machines, 3 Consul servers and app hosts run the deploy/ files, faults go in one at a time.
# CLUSTER_PROFILE=ci is the short run .ci/run uses; the default, full, is the documented one.
# Leftovers of a killed run are swept before and after.
CLUSTER_PROFILE ?= full
cluster-test: compiled
	@$(PY) -m tests.cluster.netns sweep
	CLUSTER_PROFILE=$(CLUSTER_PROFILE) $(PY) -m pytest -q -p no:cacheprovider -o timeout=600 -m cluster tests/cluster; \
	  rc=$$?; $(PY) -m tests.cluster.netns sweep; exit $$rc

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy sdk/grpcmesh/sdk sidecar/grpcmesh/sidecar cli/grpcmesh/cli

# Regenerate the checked-in stubs next to the contracts; tests/unit/test_protos_fresh.py
# fails when they drift from the .proto files.
protos: $(STAMP)
	$(PY) -m grpcmesh.cli proto gen protos --out protos

consul:
	scripts/build-consul.sh

# Outside judges, built from the Go module proxy into .cache/bin (git-ignored, built once).
GRPC_GO_VERSION ?= v1.85.0
H2SPEC_VERSION ?= v2.2.1+incompatible
GHZ_VERSION ?= v0.121.0
judges: h2spec interop ghz

h2spec:
	scripts/build-go-tool.sh h2spec github.com/summerwind/h2spec/cmd/h2spec@$(H2SPEC_VERSION)

interop:
	scripts/build-go-tool.sh grpc-interop-server google.golang.org/grpc/interop/server@$(GRPC_GO_VERSION)
	scripts/build-go-tool.sh grpc-interop-client google.golang.org/grpc/interop/client@$(GRPC_GO_VERSION)

# The load generator of bench/sidecar_fast.py (against the interop server above).
ghz:
	scripts/build-go-tool.sh ghz github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

# Fuzz the sidecar's HTTP/2 frame reader and HPACK decoder: many structured (hypothesis) cases, then
# coverage-guided atheris for FUZZ_SECONDS with its corpus kept in .cache/fuzz-h2. `make test` runs
# a few seconds of both; a crash found here becomes a case in tests/unit/dataplane/test_h2_fuzz.py.
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	H2_FUZZ_EXAMPLES=20000 $(PY) -m pytest -q -p no:cacheprovider -o timeout=0 tests/unit/dataplane/test_h2_fuzz.py -k "not atheris"
	@mkdir -p .cache/fuzz-h2
	$(PY) -m tests.unit.dataplane.fuzz_h2 -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 .cache/fuzz-h2

bench: compiled interop ghz
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

bench-quick: compiled interop ghz
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) .cache/tmp .pytest_cache .mypy_cache .ruff_cache
	python3 scripts/compile_dataplane.py --clean

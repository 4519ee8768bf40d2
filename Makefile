# grpcmesh — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONSUL_BIN ?= .cache/bin/consul

.PHONY: demo test unit lint typecheck protos protos-check consul judges h2spec interop bench bench-quick clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m grpcmesh.cli demo $(ARGS)

test: $(STAMP) lint typecheck
	$(PY) -m pytest -q

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
judges: h2spec interop

h2spec:
	scripts/build-go-tool.sh h2spec github.com/summerwind/h2spec/cmd/h2spec@$(H2SPEC_VERSION)

interop:
	scripts/build-go-tool.sh grpc-interop-server google.golang.org/grpc/interop/server@$(GRPC_GO_VERSION)
	scripts/build-go-tool.sh grpc-interop-client google.golang.org/grpc/interop/client@$(GRPC_GO_VERSION)

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

bench-quick: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) .cache/tmp .pytest_cache .mypy_cache .ruff_cache

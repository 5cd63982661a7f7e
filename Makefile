# opsledger — the two commands are `make run` and `make test`; each sets up
# what it needs (a .venv with the pinned dependencies) on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
SITE = $(shell $(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
GRPC_TOOLS_PROTO = $(shell $(BIN)/python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
PROTOS := $(wildcard protos/opsledger/v1/*.proto)

.PHONY: run test lint lock generate drift buf ruff typecheck bench bench-quick torture clean venv test-deps browser-deps pg-deps cluster

# Every dependency comes from a lock file with hashes (requirements/*.lock,
# refreshed by `make lock`); the project itself is installed editable on top,
# with --no-deps so nothing unlocked slips in.
$(STAMP): pyproject.toml client/pyproject.toml requirements/run.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements/run.lock
	$(BIN)/pip install -q --no-deps -e ./client -e .
	touch $@

$(TEST_STAMP): $(STAMP) requirements/test.lock
	$(BIN)/pip install -q --require-hashes -r requirements/test.lock
	touch $@

## lock: re-resolve requirements/run.lock and test.lock (hashes for every transitive
## dependency) from requirements/*.in (both pyproject.toml files); commit both. Run after changing a pin.
UV_VERSION := 0.13.8
# our own two distributions are installed editable (--no-deps), never from the lock
LOCK_FLAGS := --generate-hashes --python-version 3.11 -q --custom-compile-command "make lock" \
  --no-emit-package opsledger --no-emit-package opsledger-client
lock:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile requirements/run.in $(LOCK_FLAGS) -o requirements/run.lock
	$(BIN)/uv pip compile requirements/test.in $(LOCK_FLAGS) -c requirements/run.lock -o requirements/test.lock

venv: $(STAMP)
test-deps: $(TEST_STAMP)

# The board page tests drive Debian's Chromium (no browser download: no internet);
# the legacy cron check runs the real curl.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || ! command -v curl >/dev/null; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    chromium chromium-driver fonts-noto-cjk curl >/dev/null; fi

# The PostgreSQL backend's tests start their own throwaway cluster from Debian's package.
pg-deps:
	@if ! command -v initdb >/dev/null && [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    postgresql >/dev/null; fi
	@# the partition tests build network namespaces with ip(8)
	@if ! command -v ip >/dev/null; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    iproute2 >/dev/null; fi

## run: set up and start the server (gRPC 127.0.0.1:50051, HTTP 127.0.0.1:8080)
run: $(STAMP)
	$(BIN)/opsledger bundle publish --if-missing examples/strategy_example.json
	$(BIN)/opsledger serve

## test: set up and run the test suite
test: $(TEST_STAMP) browser-deps pg-deps
	$(BIN)/python -m pytest -q

## generate: rebuild generated/ from protos/
generate: $(TEST_STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iprotos -I$(SITE) -I$(GRPC_TOOLS_PROTO) \
	  --python_out=generated --pyi_out=generated --grpc_python_out=generated $(PROTOS)
	touch generated/opsledger/__init__.py generated/opsledger/v1/__init__.py

## cluster: a local PostgreSQL (build/cluster/pg) and two replicas on it:
## gRPC 127.0.0.1:50051 / 50052, HTTP 127.0.0.1:8080 / 8081; Ctrl-C stops all
cluster: $(STAMP) pg-deps
	$(BIN)/python -m tests.pg cluster build/cluster

## bench: every performance row against its baseline; writes docs/BENCHMARKS.md (~3 min here)
bench: $(TEST_STAMP) pg-deps
	$(BIN)/python -m bench.run

## bench-quick: the same rows on small sizes, one round (~15 s here); writes nothing
bench-quick: $(TEST_STAMP) pg-deps
	$(BIN)/python -m bench.run --quick --out -

## torture: the full reliability suite (~7 min here); writes docs/RELIABILITY.md
torture: $(TEST_STAMP) pg-deps
	$(BIN)/python -m torture.run

## drift: fail when the committed stubs differ from what protos/ generates
drift: generate
	git diff --exit-code -- generated/
	test -z "$$(git status --porcelain -- generated/)"

## buf: lint our own protos offline (image built by protoc, see buf.yaml)
buf: $(TEST_STAMP)
	mkdir -p build
	$(BIN)/python -m grpc_tools.protoc -Iprotos -I$(SITE) -I$(GRPC_TOOLS_PROTO) \
	  --include_imports --include_source_info -o build/image.binpb $(PROTOS)
	$(BIN)/buf lint build/image.binpb --config buf.yaml $(foreach p,$(PROTOS),--path $(patsubst protos/%,%,$(p)))

## ruff: the full rule set of pyproject.toml ([tool.ruff]); typecheck: mypy over server/ and client/
ruff: $(TEST_STAMP)
	$(BIN)/ruff check .

# mypy cannot follow setuptools' editable mapping, so it reads the packages
# through a tree of links shaped like the installed namespace.
typecheck: $(TEST_STAMP)
	rm -rf build/typecheck && mkdir -p build/typecheck/opsledger
	ln -s ../../../server build/typecheck/opsledger/server
	ln -s ../../../client build/typecheck/opsledger/client
	ln -s ../../../generated/opsledger/v1 build/typecheck/opsledger/v1
	touch build/typecheck/opsledger/__init__.py
	$(BIN)/mypy

lint: drift buf ruff typecheck

clean:
	rm -rf build .pytest_cache

# mlctl: two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all system install demo test test-fast test-integration lint generate sandbox sandbox-down bench bench-train bench-sync bench-artifacts bench-notebook bench-serve clean

all: test

## The Debian packages (Kerberos, Java, Maven, man); prints the command to run when not root.
system:
	bash scripts/system-packages.sh

# The editable install is a plain path entry (setuptools' compat mode): its default, an import finder,
# costs every mlctl start about 15 ms (pathlib, importlib.util, urllib.parse) that an installed wheel does not.
$(STAMP): pyproject.toml Makefile | system
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

## Builds (once, cached under ~/.cache/mlctl) and starts the sandbox, then runs the main job end to end.
demo: system install
	PATH=$(CURDIR)/$(BIN):$$PATH sh examples/demo.sh

## Everything: lint, unit and command tests, then integration tests against the sandbox.
test: system install
	$(BIN)/ruff check mlctl tests bench
	$(BIN)/python -m mlctl.docgen --check
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest $(PYTEST_ARGS)

test-fast: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

test-integration: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest -m integration $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check mlctl tests bench

## Rewrites completions/ and man/ from the command tree.
generate: install
	$(BIN)/python -m mlctl.docgen

sandbox: install
	$(BIN)/mlctl sandbox up

sandbox-down: install
	$(BIN)/mlctl sandbox down

## Start-up ratios (no sandbox needed); bench-train and bench-sync need `make sandbox`.
bench: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/startup.py

bench-train: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/train.py

bench-sync: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/admin_sync.py

bench-notebook: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/notebook.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache

## mlctl artifacts get/put against aws s3 cp (awscli in its own venv under the cache); needs `make sandbox`,
## `mlctl admin sync` and `mlctl sandbox s3-secrets`.
bench-artifacts: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/artifacts.py

## mlctl serve load against hey and serve predict against curl on one endpoint; needs `make sandbox` (with
## KServe), `mlctl admin sync` and `mlctl sandbox s3-secrets`.
bench-serve: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/serve.py

# CIFT Markets — the README's two commands are `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup up test check lint typecheck gen gen-check lint-protos unit integration bench mutation clean web-test

# The trading dashboard (web/): its npm packages, and its build, which the gateway serves.
WEB_STAMP := web/node_modules/.installed
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/docs.html \
	web/vite.config.ts web/tsconfig.json web/served-files.json

$(STAMP): pyproject.toml package.json
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	npm ci --silent --no-audit --no-fund
	# promtool checks the alert rules; chromium runs the dashboard's browser tests.
	bash tools/apt_install.sh prometheus chromium
	touch $(STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	npm ci --prefix web --silent --no-audit --no-fund
	touch $(WEB_STAMP)

web/dist/index.html: $(WEB_STAMP) $(WEB_SOURCES)
	npm run --prefix web --silent build

setup: $(STAMP) web/dist/index.html  ## install everything into .venv and node_modules, build the dashboard

up: setup  ## start the whole mesh (embedded PostgreSQL, Redis, Kafka, Envoy where no address is set)
	$(BIN)/cift up

# A private temp root: pytest prunes old runs under the shared /tmp/pytest-of-$USER,
# which would delete the embedded PostgreSQL of another run in progress. Not a
# hidden directory: checkov skips paths with a dot-directory in them.
PYTEST := mkdir -p build && $(BIN)/python -m pytest -q -p no:cacheprovider --basetemp=$(CURDIR)/build/pytest

# The slowest tests are listed at the end of every run, so CI's time stays in view.
test: setup lint typecheck gen-check lint-protos web-test  ## everything CI runs
	$(PYTEST) --durations=25

check: test

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy
	npm run --prefix web --silent typecheck

web-test: setup  ## the dashboard's component tests (vitest)
	npm test --prefix web --silent

# The OpenAPI document is generated from the protos, and the Kubernetes gateway config
# embeds it: a proto comment changes all three. The dashboard's TypeScript clients too.
gen: setup  ## regenerate stubs (Python and the dashboard's TypeScript), the gateway descriptor set, OpenAPI and the k8s gateway config
	$(BIN)/python tools/gen_protos.py
	$(BIN)/python tools/gen_web.py
	$(BIN)/python tools/gen_openapi.py
	$(BIN)/python tools/render_gateway_k8s.py
	$(BIN)/python tools/gen_dashboards.py

gen-check: setup  ## fail when checked-in generated files differ from the protos
	$(BIN)/python tools/gen_protos.py --check
	$(BIN)/python tools/gen_web.py --check
	$(BIN)/python tools/gen_openapi.py --check
	$(BIN)/python tools/render_gateway_k8s.py --check
	$(BIN)/python tools/gen_dashboards.py --check

lint-protos: setup
	bash tools/lint_protos.sh

unit: setup
	$(PYTEST) tests/unit

integration: setup
	$(PYTEST) -m integration

bench: setup  ## run every benchmark here; writes bench/results/SUMMARY.md and plots (PNG)
	$(BIN)/python bench/run_all.py

# mutmut copies the sources to mutants/ and runs, per mutant, the unit tests that reach
# the mutated function; a fresh run took 8 minutes on 2 quiet cores (3,682 mutants). Progress goes to
# build/mutation/run.log; the scores and every survivor to build/mutation/REPORT.md.
mutation: setup  ## mutation-test the money and risk core; writes build/mutation/REPORT.md
	mkdir -p build/mutation
	rm -rf mutants
	@echo "mutmut run: progress in build/mutation/run.log"
	$(BIN)/mutmut run > build/mutation/run.log 2>&1 || (tail -20 build/mutation/run.log; exit 1)
	$(BIN)/python tools/mutation_report.py

clean:
	rm -rf mutants .cift gateway/build build .pytest_cache .mypy_cache .ruff_cache web/dist

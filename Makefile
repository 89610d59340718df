# modelserve: two commands for a fresh machine.
#   make serve   set everything up and serve the iris demo model on port 8000
#   make test    set everything up and run the whole test suite
# make loadtest runs the spec's locust file against a running server and prints its summary.
# XGBOOST=gpu installs the full XGBoost build (CUDA libraries) instead of xgboost-cpu.

PYTHON ?= python3
VENV ?= .venv
XGBOOST ?= cpu
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
INSTALL_INPUTS := setup.cfg pyproject.toml

.PHONY: serve serve-dev test lint demo-models install install-test clean docker-build docker-prod bench mlserver-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

# Both XGBoost distributions provide the `xgboost` module: remove the other one first.
OTHER_XGBOOST := $(if $(filter gpu,$(XGBOOST)),xgboost-cpu,xgboost)

$(VENV)/.installed-$(XGBOOST): $(PY) $(INSTALL_INPUTS)
	$(PIP) uninstall -y $(OTHER_XGBOOST) 2>/dev/null || true
	$(PIP) install -e '.[$(XGBOOST)]'
	touch $@

$(VENV)/.installed-test-$(XGBOOST): $(PY) $(INSTALL_INPUTS)
	$(PIP) uninstall -y $(OTHER_XGBOOST) 2>/dev/null || true
	$(PIP) install -e '.[$(XGBOOST),test]'
	touch $@ $(VENV)/.installed-$(XGBOOST)

install: $(VENV)/.installed-$(XGBOOST)
install-test: $(VENV)/.installed-test-$(XGBOOST)

demo-models: install
	$(VENV)/bin/flask --app app create-demo-models

serve: demo-models
	$(VENV)/bin/gunicorn -c gunicorn.conf.py "app:create_app()"

serve-dev: demo-models
	$(VENV)/bin/flask --app app run --debug --reload \
		--host "$$($(PY) -c 'from app.config import load_config; print(load_config()["api"]["host"])')" \
		--port "$$($(PY) -c 'from app.config import load_config; print(load_config()["api"]["port"])')"

lint: install-test
	$(VENV)/bin/ruff check app plugins tests gunicorn.conf.py bench load_test.py

# MLServer 1.7.1 in its own venv (var/bench/mlserver-venv, the bench's), for the V2 equality test
# (tests/integration/test_v2_mlserver.py). Installed once; when it cannot be, the test skips and says why.
mlserver-venv: install-test
	-$(PY) -c 'from bench.run import MLSERVER_VENV, ensure_mlserver; print(ensure_mlserver(MLSERVER_VENV) or "MLServer: ready")'

test: install-test lint mlserver-venv
	$(PY) -m pytest

# The documentation site (mkdocs.yml, docs/) with live reload, beside a server on :8000.
.PHONY: docs
docs: install-test
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8001

# modelserve (production stack) against the HTTP floor and MLServer 1.7.1 (installed into
# var/bench/mlserver-venv on first use), wrk from Debian's package; about 12 minutes. Not part of
# make test. OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (set on some machines for old OpenBLAS builds)
# slow a current numpy: unset here only. BENCH_ARGS="--rounds 5 --duration 10" for longer runs.
# Then bench.memory_sharing (docs/shared-memory.md): total PSS for 1, 2, 4, 8 workers, shared and
# unshared, on a 176 MB forest trained once into var/bench/memory-sharing/; MEMORY_BENCH_ARGS adds options.
bench: install-test
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) -m bench.run $(BENCH_ARGS)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) -m bench.memory_sharing $(MEMORY_BENCH_ARGS)

# The spec's locust file (load_test.py), headless against a server already running (make serve in
# another terminal), then locust's summary: requests, failures, p50 to p99, req/s. LOADTEST_HOST,
# LOADTEST_USERS, LOADTEST_SPAWN_RATE (users started a second) and LOADTEST_RUN_TIME below;
# LOADTEST_API_KEY is sent as X-API-Key; LOADTEST_ARGS adds locust options (--exclude-tags jobs).
# Exits 1 when any request failed, 429s included (docs/load-testing.md says what to expect).
LOADTEST_HOST ?= http://localhost:8000
LOADTEST_USERS ?= 10
LOADTEST_SPAWN_RATE ?= 10
LOADTEST_RUN_TIME ?= 30s

.PHONY: loadtest
$(VENV)/.installed-loadtest-$(XGBOOST): $(VENV)/.installed-$(XGBOOST)
	$(PIP) install -e '.[$(XGBOOST),loadtest]'
	touch $@

loadtest: $(VENV)/.installed-loadtest-$(XGBOOST)
	$(VENV)/bin/locust -f load_test.py --host=$(LOADTEST_HOST) --headless --only-summary \
		--users $(LOADTEST_USERS) --spawn-rate $(LOADTEST_SPAWN_RATE) --run-time $(LOADTEST_RUN_TIME) $(LOADTEST_ARGS)

# The production image (Dockerfile; needs a Docker engine). docker-prod serves ./models and
# ./config read-only, with the credentials exported in MODELSERVE_API_KEYS or MODELSERVE_JWT_SECRET
# (production refuses to start without one): see README, "Production deployment".
IMAGE ?= modelserve:latest

docker-build:
	docker build --build-arg XGBOOST=$(XGBOOST) -t $(IMAGE) .

docker-prod:
	docker run --rm -p 8000:8000 -e ENVIRONMENT=production \
		-e MODELSERVE_API_KEYS -e MODELSERVE_JWT_SECRET \
		-v "$(CURDIR)/models:/app/models:ro" -v "$(CURDIR)/config:/app/config:ro" $(IMAGE)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache build *.egg-info

# syntax=docker/dockerfile:1
# modelserve production image.
#   make docker-build   docker build -t modelserve:latest .
#   make docker-prod    serve it on :8000 with ./models mounted read-only
#
# Stage "builder" runs scripts/install.sh, the same script the test suite runs
# outside Docker (tests/deploy/test_install_script.py), so these steps cannot rot.
# Stage "runtime" is a clean slim image: the venv, the runtime tree in /app and a
# non-root user; no compiler, no pip cache, no tests, no models.
#
# Tree ensembles with "compiled_trees": true: the image has the trees extra
# (Treelite, tl2cgen: about 6 MB) but no C compiler (gcc: about 190 MB), so
# Treelite's GTIL serves them (27 us a row for RandomForest(100), against 290 us
# for the plain model); the native library (app/native_trees.py) needs a compiler
# at run time. README: "Compiled tree ensembles".

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
# cpu: xgboost-cpu (19 MB); gpu: the full xgboost with its CUDA libraries.
ARG XGBOOST=cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# .dockerignore lets in only what the install needs.
COPY . .
RUN XGBOOST="${XGBOOST}" scripts/install.sh /opt/venv /app

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 modelserve \
    && useradd --system --uid 10001 --gid modelserve --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin modelserve
# Same path in both stages: a venv's scripts name their interpreter by absolute path.
COPY --from=builder /opt/venv /opt/venv
# Code and config stay root-owned (read-only to the server); the server writes only
# the state directory (registry.state_directory = var/state) and the jobs' directories
# (jobs.data_directory, jobs.output_directory). A named volume mounted on one of these
# starts with its owner, so the server can write there too.
COPY --from=builder /app /app
RUN mkdir -p /app/models /app/var /app/data /app/predictions \
    && chown modelserve:modelserve /app/var /app/data /app/predictions
# PYTHONPATH: /app/app is the code that runs, next to /app/plugins (the built-in
# adapters are found relative to the app package; see scripts/install.sh).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    API_HOST=0.0.0.0 \
    API_PORT=8000 \
    ENVIRONMENT=production
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# Model files: mount them read-only, e.g. -v "$PWD/models:/app/models:ro"
# (models.model_directory defaults to models/trained, i.e. /app/models/trained).
VOLUME ["/app/models"]
# The slim image has no curl: Python asks the liveness endpoint.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('API_PORT', '8000') + '/api/v1/health/live', timeout=5)"]
# gunicorn is PID 1: docker stop's SIGTERM reaches the master, which stops
# accepting, lets in-flight requests finish (graceful_timeout) and exits.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]

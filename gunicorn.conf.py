"""gunicorn settings, read from the same validated configuration as the application.

Start with ``gunicorn -c gunicorn.conf.py "app:create_app()"``. The master
reads the configuration (a bad key stops it here, before any worker starts) and
imports the web stack's and modelserve's modules (``api.prefork_imports``);
each worker builds the application and loads the models after fork, never
before (``preload_app`` with OpenMP libraries can hang workers). Importing is
not creating the application: no app, no model and no thread exists
in the master, and the test suite checks that it runs one thread and maps
neither scikit-learn, OpenMP, XGBoost nor pyarrow.
"""

import gc
import os
import sys

from app.config import ConfigError, load_config
from app.security.settings import check_startup

try:
    _settings = load_config()
    check_startup(_settings, warn=False)  # e.g. production without authentication: stop the master here
except ConfigError as exc:
    sys.stderr.write(f"modelserve: {exc}\n")
    sys.exit(2)

_api = _settings["api"]
bind = f"{_api['host']}:{_api['port']}"
# Chosen from measurements (make bench; one server core, wrk on the other, iris models; the
# figures are in the performance guide):
# - worker_class gthread: keeps connections alive, which clients and load balancers use; sync
#   closes every connection and was no faster, even on loopback where reconnecting is cheap.
# - threads 16 (api.threads): a client sending its request slowly (a bad link, or slowloris)
#   holds a thread from its first byte until the request is complete: gunicorn has no read
#   timeout for a request once it started. A worker's main thread accepts connections while its
#   threads are busy, so consecutive slow connections pile up on one worker, and that worker's
#   queue waits behind them. Measured with 4 workers, 2 × workers = 8 connections trickling one
#   header line (or one body byte) a second, 10 GET /api/v1/health/live on new connections
#   (tests/chaos/slowloris.py; docs/faults.md): 1 thread 5-6 of 10 waited out a 5 s client
#   timeout (2 slow clients: 3 to 10 of 10), 4 threads 3 of 10, 8 threads 5 of 10, 16 threads
#   0 of 10 (slowest 10 ms); sync workers 10 of 10 (one slow client takes a whole worker until
#   `timeout` kills it). Idle threads blocked in a read cost no CPU, and compute stays one thread
#   per worker (runtime.compute_threads). Nor did throughput suffer: wrk, 16 connections, 10 s of
#   POST /api/v1/predict on the loaded 2-core test machine, 1 thread 511-540 req/s (p99 78-143 ms),
#   16 threads 1,810-2,028 req/s (p99 75-84 ms). Beyond 16 slow clients per worker, only a buffering
#   proxy helps: production runs behind nginx (deploy/nginx/modelserve.conf).
# - workers: one per core for this CPU-bound work (api.workers, 4 by default); on one core, more
#   workers than one gave no more throughput.
workers = _api["workers"]
worker_class = _api["worker_class"]
threads = _api["threads"]
timeout = _api["timeout"]
graceful_timeout = _api["timeout"]
keepalive = 5  # seconds an idle keep-alive connection is kept (gunicorn's default is 2)
# gunicorn answers a request line over this with its own HTML 414, before the application
# sees it; 8190 is gunicorn's maximum (the default, 4094, refused some long query strings).
limit_request_line = 8190
preload_app = False
# The heartbeat file each worker touches on every turn of its event loop, so once per request
# under load: on tmpfs that is a memory write, on a disk filesystem an inode update.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"
# gunicorn's control socket (gunicornc) is not used; several servers on one host would share its path.
control_socket_disable = True
accesslog = "-" if _settings["logging"]["access_log"] else None
errorlog = "-"
loglevel = _settings["logging"]["level"].lower()
if _settings["logging"]["format"] == "json":
    logger_class = "app.gunicorn_logging.JsonLogger"

# One compute thread per worker unless configured otherwise: set before any
# worker imports numpy, OpenMP or XGBoost.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(_settings["runtime"]["compute_threads"])


def post_worker_init(worker):
    """Load the models in each worker before it accepts requests."""
    services = getattr(worker.wsgi, "extensions", {}).get("modelserve")  # a plain WSGI app (bench) has none
    if services is not None:
        services.registry.warm()
        if services.jobs is not None:  # runs queued jobs, recovers the ones a stopped worker left running
            services.jobs.executor.start()
    # Everything loaded so far (libraries, models) lives as long as the worker: keep it out of the
    # garbage collector's full passes, which otherwise rescan it while requests wait. Start-up's
    # garbage goes first, then back to the system (each worker's own memory adds up times the workers).
    gc.collect()
    gc.freeze()
    if _settings["api"]["worker_malloc"]:  # after loading, which is quicker with glibc's adaptive thresholds
        from app.allocator import fix_thresholds, return_freed_memory

        fix_thresholds()
        return_freed_memory()
    # A 1,000-row batch parses into 1,000 lists: with the default young generation (700
    # containers) that is a collection or two in the middle of every batch. Collect the young
    # generation every 10,000 allocations instead. Request data is acyclic: it is freed by
    # reference counting as soon as the answer is sent, whatever the thresholds.
    gc.set_threshold(10_000, 50, 100)


def on_starting(server):
    """Before any worker forks: a clean Prometheus multiprocess directory for this server."""
    from app.multiprocess_metrics import prepare

    directory = prepare(_settings["monitoring"]["enable_metrics"])
    if directory is not None:
        server.log.info("Prometheus multiprocess directory: %s", directory)
    _import_before_fork(server)


#: Flask, flask-smorest, marshmallow, webargs, apispec, numpy, limits, and our modules (import does nothing).
#: app.metrics brings prometheus_client, which must come after PROMETHEUS_MULTIPROC_DIR is set (on_starting).
#: Each worker shares these modules instead of importing them again (with gc.freeze() here and
#: api.worker_malloc: bench/memory_sharing.py measures it; docs/shared-memory.md has the figures).
#: Not scikit-learn, SciPy, pandas or XGBoost: a worker serving shared forests from their layout files
#: never imports them (importing them here costs far more PSS than it saves, see the same page),
#: and they would bring OpenMP and pyarrow's allocator thread into the master.
PREIMPORTED = (
    "app.factory",
    "app.api.predictions.resources",
    "app.api.models.resources",
    "app.api.jobs.resources",
    "app.api.system.resources",
    "app.api.adapters.resources",
    "app.api.audit.resources",
    "app.api.v2.resources",
    "app.cli",
    "app.docs_assets",
    "app.fitted_columns",
    "app.jobs.backends",
    "app.native_trees_cache",
    "app.shared_forests",
    "app.metrics",
    "app.answers",
    "app.security.rate_limits",
    "limits",
    "app.pipeline",
    "flask_swagger_ui",
    "threadpoolctl",
    "app.allocator",
    "app.provenance",
    "concurrent.futures.thread",  # gthread's pool, imported when a worker starts it
    "encodings.idna",  # the idna codec, imported on a worker's first requests
)


def _import_before_fork(server):
    """Import the web stack once in the master, so that the workers share it instead of importing it again.

    This is not the application: no app is created, no model loaded, no thread or thread pool
    started (BLAS was limited to one thread above; scikit-learn, XGBoost and their OpenMP load in
    the workers). It brings a new worker's first prediction forward, and the modules' objects
    stay in pages the workers share copy-on-write. Frozen out of the garbage collector, the
    workers' collections do not write to (and so copy) every page of them. What is installed (the
    plugin packages, the library versions) is read here too, once, instead of in every worker.
    api.prefork_imports turns it off (docs/shared-memory.md has the measurements).
    """
    if not _settings["api"]["prefork_imports"]:
        return
    import importlib

    for module in PREIMPORTED:
        importlib.import_module(module)
    # What is installed, read once: the plugin packages, the library versions the adapters compare with.
    from app.plugin_manager import list_package_plugins
    from app.provenance import running_versions

    list_package_plugins()
    running_versions()
    gc.collect()
    gc.freeze()
    server.log.info("imported %d modules before fork (api.prefork_imports)", len(sys.modules))


def child_exit(server, worker):
    """A worker exited: its live gauges (memory, CPU, active models) stop counting."""
    from app.multiprocess_metrics import worker_exited

    worker_exited(worker.pid)


def on_exit(server):
    from app.multiprocess_metrics import cleanup

    cleanup()

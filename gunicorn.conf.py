"""gunicorn settings, read from the same validated configuration as the application.

Start with ``gunicorn -c gunicorn.conf.py "app:create_app()"``. The master only
reads the configuration (a bad key stops it here, before any worker starts);
each worker builds the application and loads the models after fork, never
before (``preload_app`` with OpenMP libraries can hang workers).
"""

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
workers = _api["workers"]
worker_class = _api["worker_class"]
threads = _api["threads"]
timeout = _api["timeout"]
graceful_timeout = _api["timeout"]
keepalive = 5
# gunicorn answers a request line over this with its own HTML 414, before the application
# sees it; 8190 is gunicorn's maximum (the default, 4094, refused some long query strings).
limit_request_line = 8190
preload_app = False
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
    extensions = getattr(worker.wsgi, "extensions", {})  # a plain WSGI app (bench/http_floor.py) has none
    services = extensions.get("modelserve")
    if services is not None:
        services.registry.warm()
    jobs = extensions.get("modelserve_jobs")
    if jobs is not None:  # runs queued jobs, recovers the ones a stopped worker left running
        jobs.executor.start()


def on_starting(server):
    """Before any worker forks: a clean Prometheus multiprocess directory for this server."""
    from app.multiprocess_metrics import prepare

    directory = prepare(_settings["monitoring"]["enable_metrics"])
    if directory is not None:
        server.log.info("Prometheus multiprocess directory: %s", directory)


def child_exit(server, worker):
    """A worker exited: its live gauges (memory, CPU, active models) stop counting."""
    from app.multiprocess_metrics import worker_exited

    worker_exited(worker.pid)


def on_exit(server):
    from app.multiprocess_metrics import cleanup

    cleanup()

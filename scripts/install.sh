#!/bin/sh
# Install modelserve as the Docker image runs it, in two places:
#
#   scripts/install.sh VENV APP_DIR
#
# VENV     a new virtual environment holding modelserve (a normal, non-editable
#          install of this source tree, XGBoost extra "$XGBOOST", default cpu)
#          and all its dependencies.
# APP_DIR  the runtime tree the server starts in: app/, plugins/, config/ and
#          gunicorn.conf.py, copied from this source tree and byte-compiled.
#
# Why both: the built-in adapter plugins (plugins/*.py) and the default config
# are found next to the app package (app.config.PROJECT_ROOT), and the wheel
# ships only the app package. So the server runs with PYTHONPATH=APP_DIR and
# its working directory in APP_DIR: APP_DIR/app is the code that runs, and
# APP_DIR/plugins sits next to it. The installed copy in VENV provides the
# dependencies, the distribution metadata and the `modelserve` command.
#
# The Dockerfile RUNs this script; tests/deploy/test_install_script.py runs it
# outside Docker and serves a prediction from the result, so the image's
# install steps are tested on every CI run.
#
# Environment: PYTHON (default python3), XGBOOST (cpu | gpu, default cpu).
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 VENV APP_DIR" >&2
    exit 2
fi
venv=$1
app_dir=$2
src=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
extra=${XGBOOST:-cpu}

case "$extra" in
    cpu | gpu) ;;
    *) echo "$0: XGBOOST must be cpu or gpu, not '$extra'" >&2; exit 2 ;;
esac

"$python" -m venv "$venv"
# trees: Treelite's GTIL for "compiled_trees" models (about 6 MB; see the Dockerfile).
"$venv/bin/python" -m pip install --disable-pip-version-check -q "$src[$extra,trees]"

mkdir -p "$app_dir"
for item in app plugins config gunicorn.conf.py; do
    cp -R "$src/$item" "$app_dir/"
done
find "$app_dir" -name __pycache__ -type d -prune -exec rm -rf {} +
"$venv/bin/python" -m compileall -q "$app_dir"

# Fail the build, not the first request: the runtime tree must import, and
# every built-in plugin must load from APP_DIR/plugins.
cd "$app_dir"
PYTHONPATH="$app_dir" "$venv/bin/python" - <<'PY'
import sys
from pathlib import Path

from app.config import PROJECT_ROOT
from app.adapters import AdapterSettings
from app.plugin_manager import build_plugin_manager

assert PROJECT_ROOT == Path.cwd().resolve(), f"app imported from {PROJECT_ROOT}, not {Path.cwd()}"
plugins = build_plugin_manager(None, AdapterSettings(compute_threads=1))
failed = [f"{p.name}: {p.error}" for p in plugins.plugins if p.source == "builtin" and p.status != "active"]
if failed:
    sys.exit("modelserve install: plugins failed to load: " + "; ".join(failed))
print("modelserve install: adapters " + ", ".join(sorted(plugins.adapters)) + f" from {PROJECT_ROOT}")
PY

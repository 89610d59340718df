"""Helpers for the deployment-file tests: Dockerfile parsing, the Docker build
context, PromQL metric names, external tools and a real Prometheus process."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.helpers import PROJECT_ROOT, free_port, poll_until, stop_process_group

DEPLOY_DIR = PROJECT_ROOT / "deploy"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
INSTALL_SCRIPT = PROJECT_ROOT / "scripts" / "install.sh"
PROMETHEUS_CONFIG = DEPLOY_DIR / "prometheus" / "prometheus.yml"
ALERT_RULES = DEPLOY_DIR / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY_DIR / "grafana" / "dashboards" / "modelserve.json"
COMPOSE_FILE = DEPLOY_DIR / "docker-compose.yml"
K8S_DIR = DEPLOY_DIR / "k8s"
NGINX_CONFIG = DEPLOY_DIR / "nginx" / "modelserve.conf"


# --- external tools ---------------------------------------------------------------------------


def tool(name: str, package: str) -> str:
    """The path of ``name`` (the venv's bin first, then PATH), or skip naming ``package`` to install."""
    path = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if path is None:
        pytest.skip(f"{name} not installed: install {package} (.ci/run does)")
    return path


def run_tool(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


# --- Dockerfile ---------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of ``CMD ["a", "b"]``, or None for shell form."""
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        return value if isinstance(value, list) else None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """The stage's ``ENV key=value`` pairs (``$PATH``-style references left as written)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for token in shlex.split(instruction.args):
                key, sep, value = token.partition("=")
                assert sep, f"ENV {instruction.args!r}: use the key=value form"
                values[key] = value
        return values


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions: comments dropped, ``\\`` continuations joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            keyword, _, args = line.partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def dockerfile_stages(path: Path = DOCKERFILE) -> tuple[dict[str, str], list[Stage]]:
    """The global ``ARG`` defaults and the build stages, ``${ARG}`` in ``FROM`` expanded."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in dockerfile_instructions(path.read_text(encoding="utf-8")):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            assert instruction.keyword == "ARG", f"{instruction.keyword} before the first FROM"
            key, _, value = instruction.args.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append(instruction)
    return args, stages


# --- the Docker build context (.dockerignore) -----------------------------------------------------


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: ``*`` and ``?`` stay inside one path element, ``**`` crosses them."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_rules(root: Path = PROJECT_ROOT) -> list[tuple[bool, re.Pattern[str], str]]:
    rules = []
    for line in (root / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rules.append((negated, _dockerignore_regex(pattern), pattern))
    return rules


def _excluded(relative: str, rules: list[tuple[bool, re.Pattern[str], str]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, regex, _ in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def build_context_files(root: Path = PROJECT_ROOT) -> Iterator[str]:
    """The relative paths ``docker build`` would send as its context."""
    rules = dockerignore_rules(root)
    for directory, subdirs, files in os.walk(root):
        rel_dir = os.path.relpath(directory, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # Prune a directory when it is excluded and no "!" pattern could bring back something below it.
        subdirs[:] = [
            d
            for d in subdirs
            if not _excluded(rel_dir + d, rules)
            or any(neg and pattern.startswith(rel_dir + d + "/") for neg, _, pattern in rules)
        ]
        for name in files:
            if not _excluded(rel_dir + name, rules):
                yield rel_dir + name


def copy_build_context(destination: Path, root: Path = PROJECT_ROOT) -> Path:
    for relative in build_context_files(root):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    return destination


# --- PromQL ---------------------------------------------------------------------------------------

#: Words in a PromQL expression that are not metric names.
PROMQL_WORDS = {
    # aggregation operators and their modifiers
    *"sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio".split(),
    *"by without on ignoring group_left group_right bool and or unless offset".split(),
    # functions (https://prometheus.io/docs/prometheus/latest/querying/functions/)
    *"""abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week
    day_of_year days_in_month delta deriv exp floor histogram_avg histogram_count histogram_fraction
    histogram_quantile histogram_stddev histogram_stdvar histogram_sum holt_winters double_exponential_smoothing
    hour idelta increase irate label_join label_replace ln log2 log10 minute month predict_linear rate resets
    round scalar sgn sort sort_desc sort_by_label sort_by_label_desc sqrt time timestamp vector year
    avg_over_time min_over_time max_over_time sum_over_time count_over_time quantile_over_time
    stddev_over_time stdvar_over_time last_over_time present_over_time mad_over_time
    acos acosh asin asinh atan atanh cos cosh sin sinh tan tanh deg rad pi""".split(),
    "inf",
    "nan",
}

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w$.:])[a-zA-Z_:][a-zA-Z0-9_:]*")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (Grafana's ``$variables`` ignored)."""
    text = _STRINGS.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = _GROUPING.sub("", text)
    text = re.sub(r"\$\w+", "", text)  # Grafana variables such as $__rate_interval
    text = re.sub(r"\boffset\s+-?\w+", "", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if word.lower() in PROMQL_WORDS or text[match.end() :].lstrip().startswith("("):
            continue  # a keyword, or a function call
        names.add(word)
    return names


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERT_RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable["query"]["query"] if isinstance(variable.get("query"), dict) else variable.get("query", "")
        # Grafana's label_values(selector, label): the selector is PromQL, the label is not a metric.
        exprs.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", query))
    return exprs


# --- a real Prometheus ----------------------------------------------------------------------------


class PrometheusServer:
    """``prometheus`` on a free loopback port with its own storage, using ``config``."""

    def __init__(self, binary: str, tmp_path: Path, config: dict[str, Any]):
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_file = tmp_path / "prometheus.yml"
        self.config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.storage = tmp_path / "prometheus-data"
        self.log_path = tmp_path / "prometheus.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> PrometheusServer:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.storage}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            poll_until(self._ready, "Prometheus to be ready", timeout=30)
        except Exception:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{self.log()}")
        try:
            return requests.get(self.url + "/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process_group(self.process, timeout=20)
        if hasattr(self, "_log"):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, path: str, **params: str) -> Any:
        response = requests.get(self.url + "/api/v1/" + path, params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]


# --- nginx --------------------------------------------------------------------------------------


class Directives(dict):
    """nginx directives by name (the last value wins, as for nginx's own one-value directives)."""

    def __init__(self, pairs: list[tuple[str, str]]):
        super().__init__(pairs)
        self.pairs = pairs

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


def nginx_directives(text: str) -> Directives:
    """The simple ``name value;`` directives of an nginx config, wherever they are (comments dropped)."""
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    pairs = re.findall(r"(?m)^\s*([a-z_]+)\s+([^;{}]*?)\s*;", body)
    return Directives(pairs)

"""Medians of the rounds, ratios within each round, the issue's targets, and the Markdown table."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

#: The servers measured in the floor's cells (LogisticRegression's row only).
PLAIN = ("floor", "bare", "flask")
#: The same prediction with no production stack: a raw WSGI callable, and one Flask route.
BARE = ("bare", "flask")
BARE_TITLES = {"bare": "raw WSGI (orjson + NumPy)", "flask": "minimal Flask route (orjson + NumPy)"}
#: The issue's speed targets: modelserve's req/s (rows/s for batches) against MLServer's, within rounds.
SINGLE_ROW_TARGET = 1.75
FOREST_TARGET = 10.0
BATCH_TARGET = 1.5
#: The same protocol on both sides: modelserve's /v2 against MLServer, the very same request bytes.
V2_TARGET = 2.0
V2 = "modelserve_v2"
SERVERS = ("modelserve", V2, "mlserver", *PLAIN)
MODEL_TITLES = {
    "iris_lr": "LogisticRegression",
    "iris_rf": "RandomForest(100)",
    "iris_xgb": "XGBoost(100)",
    "penguins": "penguins Pipeline (DataFrame)",
}
#: The penguins Pipeline against MLServer's pd codec: req/s and rows/s.
PENGUINS_TARGET = 1.5


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(rows: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """Per cell and server: median req/s, p50, p99 over rounds; per cell: median of per-round ratios."""
    by: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for row in rows:
        by[(row["kind"], row["model"], row["connections"], row["server"])][row["round"]] = row
    cells: list[dict[str, Any]] = []
    keys = sorted({(k, m, c) for k, m, c, s in by if s not in PLAIN}, key=lambda t: (t[0] != "single", t[1], t[2]))
    for kind, model, connections in keys:
        cell: dict[str, Any] = {"kind": kind, "model": model, "connections": connections}
        rows_per_request = 1000 if kind == "batch" else 1
        for server in SERVERS:
            source_model = "floor" if server in PLAIN else model
            runs = by.get((kind, source_model, connections, server), {})
            if server in PLAIN and kind == "batch" or server in BARE and model != "iris_lr":
                continue
            if runs:
                cell[server] = {
                    "rps": _median([r["rps"] for r in runs.values()]),
                    "rows_per_s": _median([r["rps"] * rows_per_request for r in runs.values()]),
                    "p50_ms": _median([r["p50_ms"] for r in runs.values()]),
                    "p99_ms": _median([r["p99_ms"] for r in runs.values()]),
                    "rps_rounds": [round(r["rps"], 1) for r in runs.values()],
                    "errors": sum(r["errors"] for r in runs.values()),
                }
        ours = by.get((kind, model, connections, "modelserve"), {})
        floor = by.get((kind, "floor", connections, "floor"), {})
        pairs = [
            ("x_mlserver", ours, by.get((kind, model, connections, "mlserver"), {})),
            ("x_floor", ours, floor),
            (
                "v2_x_mlserver",
                by.get((kind, model, connections, V2), {}),
                by.get((kind, model, connections, "mlserver"), {}),
            ),
        ]
        if model == "iris_lr":
            pairs += [(f"{bare}_x_floor", by.get((kind, "floor", connections, bare), {}), floor) for bare in BARE]
        for label, numerators, denominators in pairs:
            ratios = [
                numerators[r]["rps"] / denominators[r]["rps"]
                for r in numerators
                if r in denominators and denominators[r]["rps"] > 0
            ]
            if ratios:
                cell[label] = _median(ratios)
                cell[label + "_rounds"] = [round(x, 2) for x in ratios]
        cells.append(cell)
    summary = {"meta": meta, "cells": cells}
    summary["targets"] = targets(summary)
    return summary


def _cell(summary: dict[str, Any], kind: str, model: str, connections: int) -> dict[str, Any] | None:
    return next(
        (c for c in summary["cells"] if (c["kind"], c["model"], c["connections"]) == (kind, model, connections)),
        None,
    )


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    found: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: float, higher_is_better: bool = True) -> None:
        if value is None:
            found.append({"target": name, "value": None, "goal": goal, "met": None})
            return
        met = value >= goal if higher_is_better else value <= goal
        found.append({"target": name, "value": round(value, 3), "goal": goal, "met": met})

    for model in ("iris_lr", "iris_xgb"):
        for connections in (1, 8):
            cell = _cell(summary, "single", model, connections) or {}
            name = f"{model} c={connections}: req/s vs MLServer >= {SINGLE_ROW_TARGET}x"
            add(name, cell.get("x_mlserver"), SINGLE_ROW_TARGET)
    for connections in (1, 8, 64):
        cell = _cell(summary, "single", "iris_rf", connections) or {}
        add(f"iris_rf c={connections}: req/s vs MLServer >= {FOREST_TARGET:g}x", cell.get("x_mlserver"), FOREST_TARGET)
    for connections in (1, 8):
        cell = _cell(summary, "single", "penguins", connections) or {}
        add(
            f"penguins c={connections}: req/s vs MLServer >= {PENGUINS_TARGET}x",
            cell.get("x_mlserver"),
            PENGUINS_TARGET,
        )
    for cell in summary["cells"]:
        if cell["kind"] == "batch":
            goal = PENGUINS_TARGET if cell["model"] == "penguins" else BATCH_TARGET
            name = f"batch 1000 rows {_short(cell['model'])} c={cell['connections']}: rows/s vs MLServer >= {goal}x"
            add(name, cell.get("x_mlserver"), goal)
    for cell in summary["cells"]:
        ours, theirs = cell.get("modelserve"), cell.get("mlserver")
        what = f"batch 1000 rows {_short(cell['model'])}" if cell["kind"] == "batch" else cell["model"]
        ratio = ours["p99_ms"] / theirs["p99_ms"] if ours and theirs else None
        add(f"{what} c={cell['connections']}: p99 / MLServer p99 <= 1", ratio, 1.0, higher_is_better=False)
    for cell in summary["cells"]:
        v2, theirs = cell.get(V2), cell.get("mlserver")
        if cell["kind"] == "single" and cell["model"] == "iris_rf" or cell["connections"] not in (1, 8):
            continue
        what = f"batch 1000 rows {_short(cell['model'])}" if cell["kind"] == "batch" else cell["model"]
        unit = "rows/s" if cell["kind"] == "batch" else "req/s"
        # The DataFrame model's target is /api/v1's against MLServer's pd codec: its cost is the Pipeline's.
        goal = PENGUINS_TARGET if cell["model"] == "penguins" else V2_TARGET
        add(f"V2 {what} c={cell['connections']}: {unit} vs MLServer >= {goal:g}x", cell.get("v2_x_mlserver"), goal)
        ratio = v2["p99_ms"] / theirs["p99_ms"] if v2 and theirs else None
        add(f"V2 {what} c={cell['connections']}: p99 / MLServer p99 <= 1", ratio, 1.0, higher_is_better=False)
    foot = summary["meta"]["footprint"]
    for where, title in (("one_core", "one core"), ("two_cores", "two cores")):
        startup = foot[f"startup_median_s_{where}"]["modelserve"]
        add(f"start-up to first prediction, demo models, {title}: <= 2 s", startup, 2.0, higher_is_better=False)
    return found


def _short(model: str) -> str:
    return "LR" if model == "iris_lr" else model


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def markdown(summary: dict[str, Any]) -> str:
    meta = summary["meta"]
    lines = [
        f"Measured {meta['date']} with `{meta['command']}` (git {meta['git']}); {meta['machine']}.",
        f"Servers pinned to one core, wrk to the other; {meta['rounds']} interleaved rounds of "
        f"{meta['duration_s']:g} s per run; medians of the rounds, ratios taken within each round. "
        f"gunicorn: {meta['gunicorn']['workers']} workers × {meta['gunicorn']['threads']} threads "
        f"({meta['gunicorn']['worker_class']}). Load average before/after: "
        f"{meta['loadavg_before'][0]:.2f} / {meta['loadavg_after'][0]:.2f}. MLServer: {meta['mlserver']}. "
        f"modelserve serves {', '.join(meta['compiled_trees']) or 'no model'} through Treelite "
        '(sidecar "compiled_trees": true); MLServer gets the same files.',
        "",
        "| model | conns | modelserve req/s | p50 / p99 ms | MLServer req/s | p50 / p99 ms | HTTP floor req/s "
        "| × MLServer | × floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in summary["cells"]:
        if cell["kind"] != "single":
            continue
        ms, ml, fl = cell.get("modelserve", {}), cell.get("mlserver", {}), cell.get("floor", {})
        lines.append(
            f"| {MODEL_TITLES[cell['model']]} | {cell['connections']} | {_num(ms.get('rps'))} "
            f"| {_num(ms.get('p50_ms'), 2)} / {_num(ms.get('p99_ms'), 2)} | {_num(ml.get('rps'))} "
            f"| {_num(ml.get('p50_ms'), 2)} / {_num(ml.get('p99_ms'), 2)} | {_num(fl.get('rps'))} "
            f"| {_ratio(cell.get('x_mlserver'))} | {_ratio(cell.get('x_floor'))} |"
        )
    lines += _floor_budget(summary)
    lines += [
        "",
        "| 1,000-row batch | conns | modelserve rows/s | p50 / p99 ms | MLServer rows/s | p50 / p99 ms | × MLServer |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in summary["cells"]:
        if cell["kind"] != "batch":
            continue
        ms, ml = cell.get("modelserve", {}), cell.get("mlserver", {})
        lines.append(
            f"| {MODEL_TITLES[cell['model']]} | {cell['connections']} | {_num(ms.get('rows_per_s'))} "
            f"| {_num(ms.get('p50_ms'), 2)} / "
            f"{_num(ms.get('p99_ms'), 2)} | {_num(ml.get('rows_per_s'))} | {_num(ml.get('p50_ms'), 2)} / "
            f"{_num(ml.get('p99_ms'), 2)} | {_ratio(cell.get('x_mlserver'))} |"
        )
    lines += v2_table(summary)
    foot = meta["footprint"]
    mem = foot.get("memory_modelserve_4_workers", {})
    ml_mem = foot.get("memory_mlserver")
    lines += [
        "",
        "| | modelserve | MLServer |",
        "|---|---:|---:|",
        *(
            f"| start-up to first prediction, demo models, {title}, s (median; runs) | "
            f"{_num(foot[f'startup_median_s_{where}']['modelserve'], 2)} "
            f"({', '.join(str(t) for t in foot[f'startup_s_{where}']['modelserve'])}) | "
            f"{_num(foot[f'startup_median_s_{where}']['mlserver'], 2)}"
            + (
                f" ({', '.join(str(t) for t in foot[f'startup_s_{where}']['mlserver'])})"
                if foot[f"startup_s_{where}"]["mlserver"]
                else ""
            )
            + " |"
            for where, title in (("one_core", "one core"), ("two_cores", "both cores"))
        ),
        f"| RSS per worker, 4 workers, 3 models, MiB (PSS) | "
        f"{_num(statistics.median(mem['rss_mb']), 0) if mem else '–'} "
        f"({_num(statistics.median(mem['pss_mb']), 0) if mem else '–'}); master {_num(mem.get('master_rss_mb'))} "
        f"| {_num(ml_mem['rss_mb'][0]) if ml_mem else '–'} (one process) |",
        "",
        f"Errors (non-2xx, socket) across all runs: "
        f"{sum(c.get(s, {}).get('errors', 0) for c in summary['cells'] for s in SERVERS)}."
        f" Compute threads inside a modelserve worker (threadpoolctl): {meta['compute_threads']}.",
        "",
        *_path_costs(meta),
        "| target | measured | met |",
        "|---|---:|:---:|",
    ]
    for target in summary["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[target["met"]]
        lines.append(f"| {target['target']} | {_num(target['value'], 2)} | {met} |")
    return "\n".join(lines) + "\n"


def v2_table(summary: dict[str, Any]) -> list[str]:
    """modelserve's /v2 against MLServer, the same protocol and the very same request bytes."""
    lines = [
        "",
        "| Open Inference Protocol (V2), same request bytes | conns | modelserve V2 req/s (rows/s) | p50 / p99 ms "
        "| MLServer req/s (rows/s) | p50 / p99 ms | × MLServer |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in summary["cells"]:
        v2, ml = cell.get(V2, {}), cell.get("mlserver", {})
        if not v2:
            continue
        batch = cell["kind"] == "batch"
        what = f"1,000-row batch, {MODEL_TITLES[cell['model']]}" if batch else MODEL_TITLES[cell["model"]]
        rate = "rows_per_s" if batch else "rps"
        lines.append(
            f"| {what} | {cell['connections']} | {_num(v2.get(rate))} | {_num(v2.get('p50_ms'), 2)} / "
            f"{_num(v2.get('p99_ms'), 2)} | {_num(ml.get(rate))} | {_num(ml.get('p50_ms'), 2)} / "
            f"{_num(ml.get('p99_ms'), 2)} | {_ratio(cell.get('v2_x_mlserver'))} |"
        )
    equality = summary["meta"].get("v2_equality")
    if equality is not None:
        problems = {
            f"{model}, {title}: {'; '.join(found)}"
            for model, titles in equality.items()
            for title, found in titles.items()
            if found
        }
        verdict = "the same" if not problems else "**different**: " + " / ".join(sorted(problems))
        lines += [
            "",
            f"Outputs of the same V2 requests (names, datatypes, shapes, values to 1e-6) against MLServer's: "
            f"{verdict}.",
        ]
    return lines


def _path_costs(meta: dict[str, Any]) -> list[str]:
    """The one path's pieces, µs per request, sampled in a worker under load (:mod:`bench.path_costs`)."""
    found = meta.get("path_costs") or []
    if not found:
        return []
    from bench.path_costs import markdown as pieces_table

    lines = [
        "Where a worker's time goes, piece by piece (py-spy samples of one worker under wrk; "
        "`python -m bench.path_costs`):",
        "",
    ]
    for run in found:
        lines += [pieces_table(run), ""]
    return lines


def _floor_budget(summary: dict[str, Any]) -> list[str]:
    """Server-core µs per LogisticRegression row: the floor's, and what each server adds to it.

    The raw WSGI callable and the minimal Flask route make the same prediction
    with no production stack: modelserve's µs above the Flask route are what
    its stack (schema, access check, rate limit, metrics, logs, headers) costs.
    """
    titles = " | ".join(f"{BARE_TITLES[bare]}: req/s, µs above floor" for bare in BARE)
    lines = [
        "",
        f"| LogisticRegression, one row | conns | HTTP floor µs/request | {titles} | modelserve "
        "| modelserve µs above the Flask route |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in summary["cells"]:
        floor = cell.get("floor", {})
        if (cell["kind"], cell["model"]) != ("single", "iris_lr") or not floor.get("rps"):
            continue
        floor_us = 1e6 / floor["rps"]
        columns = [_above(cell, bare, f"{bare}_x_floor", floor_us) for bare in BARE]
        columns.append(_above(cell, "modelserve", "x_floor", floor_us))
        ours, flask = cell.get("modelserve", {}).get("rps"), cell.get("flask", {}).get("rps")
        stack = f"+{_num(1e6 / ours - 1e6 / flask, 0)} µs" if ours and flask else "–"
        lines.append(f"| | {cell['connections']} | {_num(floor_us, 0)} | {' | '.join(columns)} | {stack} |")
    return lines


def _above(cell: dict[str, Any], server: str, ratio: str, floor_us: float) -> str:
    """``req/s, +µs (x floor)`` for one server of a cell."""
    rps = cell.get(server, {}).get("rps")
    if not rps:
        return "–"
    return f"{_num(rps)}, +{_num(1e6 / rps - floor_us, 0)} µs ({_ratio(cell.get(ratio))})"

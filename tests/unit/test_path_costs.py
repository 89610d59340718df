"""make bench's pieces of the request path: each py-spy sample goes to the innermost piece on its stack."""

from __future__ import annotations

import pytest

from bench.path_costs import KERNEL, OUTSIDE, costs, piece_of, top

WSGI = "Flask.wsgi_app (flask/app.py:1511)"
VIEW = "Flask.dispatch_request (flask/app.py:902)"
PARSE = "Parser.parse (webargs/core.py:437)"
FIELD = "FeatureRow._deserialize (app/api/fields.py:31)"
MODEL = "run_model (app/inference.py:169)"
IDLE = "EpollSelector.select (selectors.py:468)"


def test_the_innermost_piece_on_the_stack_wins():
    assert piece_of([WSGI, VIEW, PARSE, FIELD, "check_row (app/features.py:65)"]) == "features checked as one array"
    assert piece_of([WSGI, VIEW, PARSE, "Schema.load (marshmallow/schema.py:734)"]).startswith("request schema")
    assert piece_of([WSGI, VIEW, MODEL]) == "the model"
    assert piece_of(["ThreadWorker.handle (gunicorn/workers/gthread.py:553)"]) == OUTSIDE


def test_shares_and_microseconds_come_from_the_busy_samples(tmp_path):
    stacks = tmp_path / "stacks.txt"
    lines = [f"{WSGI};{VIEW};{MODEL} 30", f"{WSGI};{VIEW};{PARSE} 10", f"main;{IDLE} 500", "a torn line"]
    stacks.write_text("\n".join(lines) + "\n")
    found = {piece["piece"]: piece for piece in costs(stacks, user_us_per_request=200.0, system_us_per_request=50.0)}
    assert found["the model"]["us"] == pytest.approx(150) and found["the model"]["share"] == pytest.approx(0.6)
    assert found["request schema (webargs, marshmallow)"]["us"] == pytest.approx(50)
    assert found[KERNEL]["us"] == pytest.approx(50) and found[KERNEL]["share"] == pytest.approx(0.2)
    assert "40 busy samples" in top(stacks, 3)

"""A minimal Flask application: one route making :mod:`bench.bare_server`'s prediction (orjson, NumPy).

No schema, access check, rate limit, metrics, logs, request id or registry:
Flask's own dispatch around the same prediction. Beside the raw WSGI callable
it shows what Flask itself costs, and beside modelserve what modelserve's
stack costs over Flask. ``BARE_MODEL`` names the joblib file.
"""

from __future__ import annotations

from flask import Flask, Response, request

from bench.bare_server import predict_body

app = Flask("minimal")


@app.post("/api/v1/predict/<model_name>")
def predict(model_name: str) -> Response:
    return Response(predict_body(request.get_data()), mimetype="application/json")

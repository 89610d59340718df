"""OpenAPI links: which later calls take their parameters from an answer (a new job's id, a listed model's name).

Clients and tools that follow links (schemathesis' stateful tests among them)
learn from the document how one call leads to the next.
"""

from __future__ import annotations

from typing import Any


def operation_ref(path: str, method: str) -> str:
    """A JSON pointer to an operation of this document (``/`` in the path written ``~1``)."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def link(path: str, method: str, **parameters: str) -> dict[str, Any]:
    return {"operationRef": operation_ref(path, method), "parameters": parameters}


#: From a job's answer (``POST /predict-async``, ``GET /jobs/{job_id}``) to what can be asked of it.
JOB_LINKS = {
    "JobStatus": link("/api/v1/jobs/{job_id}/status", "get", job_id="$response.body#/job_id"),
    "Job": link("/api/v1/jobs/{job_id}", "get", job_id="$response.body#/job_id"),
    "JobResult": link("/api/v1/jobs/{job_id}/result", "get", job_id="$response.body#/job_id"),
    "CancelJob": link("/api/v1/jobs/{job_id}", "delete", job_id="$response.body#/job_id"),
}


def model_links(name: str) -> dict[str, Any]:
    """From an answer that names a model (at the runtime expression ``name``) to the calls about that model."""
    return {
        "ModelInfo": link("/api/v1/models/{model_name}/info", "get", model_name=name),
        "PredictWithModel": link("/api/v1/predict/{model_name}", "post", model_name=name),
        "SetAlias": link("/api/v1/models/{model_name}/alias", "post", model_name=name),
        "Rollback": link("/api/v1/models/{model_name}/rollback", "post", model_name=name),
        "DeleteModel": link("/api/v1/models/{model_name}", "delete", model_name=name),
    }

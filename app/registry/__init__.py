"""The model registry: each worker's cache of loaded models, converging on the shared desired state.

Contract (README, "Several workers, one set of models"): once a load, alias
change or rollback returns, every later request on any worker or replica
sees it (a worker that has not loaded the model yet loads it before
answering); once a delete returns, no worker serves the model. A change is
committed only after this worker loaded the model and a trial prediction
passed, so a broken file never replaces a working version.

Memory: at most ``models.max_models`` model versions are held per worker; the
least recently used is evicted and reloaded on next use, and models idle for
``models.model_timeout`` seconds are unloaded (the default model excepted).

The modules, from a request's side to an admin's:

- :mod:`~app.registry.served`: :class:`ServedModel`, one version in memory, and its :data:`Key`;
- :mod:`~app.registry.serving`: the hot path (a name or alias to a loaded version) and what keeps it right;
- :mod:`~app.registry.cache`: the per-worker LRU of served versions;
- :mod:`~app.registry.sync`: following the shared desired state;
- :mod:`~app.registry.loading`: a file to a checked, loaded model (adapter, provenance, trial prediction);
- :mod:`~app.registry.trust`: which code-running files may load;
- :mod:`~app.registry.auto_load`: the model directory scan at start-up;
- :mod:`~app.registry.idle`: the thread that unloads idle models;
- :mod:`~app.registry.management`: :class:`ModelRegistry`, adding load, delete, alias, rollback and trust;
- :mod:`~app.registry.audit`: the audit trail of those actions;
- :mod:`~app.registry.info`: what the API and the ``model_loaded`` hook say about a version.
"""

from __future__ import annotations

from app.registry.management import ModelRegistry
from app.registry.served import Key, ServedModel
from app.registry.trust import TrustPolicy, UntrustedModel

__all__ = ["Key", "ModelRegistry", "ServedModel", "TrustPolicy", "UntrustedModel"]

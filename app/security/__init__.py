"""Authentication (API keys, JWT), roles, rate limits and model trust.

What modelserve refuses, and where:

- a request without valid credentials on a protected endpoint: 401; with
  credentials but without the endpoint's role: 403 (:mod:`app.security.policy`);
- more requests than ``security.rate_limits`` allow: 429 (:mod:`app.security.rate_limits`);
- a model file that runs code when loaded (pickle, joblib, custom ``.py``)
  whose sha256 is not trusted: 403 (:mod:`app.security.trust`);
- starting in production without authentication, unless anonymous access is
  explicitly allowed (:func:`app.security.settings.check_startup`).
"""

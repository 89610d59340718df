"""``/health``, ``/health/live``, ``/health/ready``, ``/status`` and ``/metrics``."""

"""The run tracker: one training run's lifecycle with no framework in it (``RunTracker``).

Modules: ``run`` (the lifecycle), ``progress`` (log keys and the projection while it runs),
``outcome`` (the job root's part and the ledger row when it ends).
"""

from otel_energy.tracker.progress import ALL_LOG_KEYS, JOB_LOG_KEYS, LOG_KEYS
from otel_energy.tracker.run import RunTracker

__all__ = ["ALL_LOG_KEYS", "JOB_LOG_KEYS", "LOG_KEYS", "RunTracker"]

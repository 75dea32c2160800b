"""Layer: worker. The Celery worker: the change hook, drains, rebuild, reconcile, the IdP
pull (docs/worker.md)."""

"""Layers: pure (``models.access``), store (``models.db``, ``models.cache``) and support
(settings, metrics, tracing, embedded Redis, redaction); see docs/architecture.md."""

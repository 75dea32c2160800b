"""Layer: store. Alembic migrations for the idsync schema (run them via `models.db.migrate`)."""

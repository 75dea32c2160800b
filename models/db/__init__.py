"""Layer: store. Persistence: SQLAlchemy 2 tables, the session factory and migrations."""

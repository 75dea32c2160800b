"""Layer: store. Alembic environment for idsync.

The database comes from the caller, never from import-time state. In order:
1. `config.attributes["connection"]`: an open connection (models.db.migrate uses this);
2. `config.attributes["url"]`, then `-x url=...`, then DATABASE_URL, then
   `sqlalchemy.url` from the ini file (developers' `alembic` command line).

Autogenerate always renders batch operations (`render_as_batch=True`), so every
revision runs on SQLite (which cannot ALTER most things) as well as on PostgreSQL,
where batch operations are plain ALTER statements.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from models.db.migrate import configure_options, migration_engine
from models.db.session import normalize_url

config = context.config


def _url() -> str:
    url: str | None = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set DATABASE_URL")
    return normalize_url(url)


def run_offline() -> None:
    context.configure(
        url=_url(),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **configure_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_with(connection: Connection) -> None:
    # SQLite DDL is transactional under our explicit BEGIN (models.db.migrate): a failed
    # revision rolls back completely there too, as on PostgreSQL.
    context.configure(connection=connection, transactional_ddl=True, **configure_options())
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    engine = migration_engine(_url())
    try:
        with engine.connect() as conn:
            _run_with(conn)
            conn.commit()
    finally:
        engine.dispose()


if config.config_file_name is not None:  # developers' alembic CLI; never in the service
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_offline()
else:
    run_online()

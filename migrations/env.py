"""Alembic environment: the domain schema (SQLModel metadata) on the configured URL."""
from alembic import context
from sqlmodel import SQLModel

from models.db import engine
from models.schema import import_all_tables

import_all_tables()
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connectable = context.config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    with engine(context.config.get_main_option("sqlalchemy.url") or None).connect() as conn:
        _run(conn)


def _run(conn) -> None:
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        render_as_batch=conn.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()

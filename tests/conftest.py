"""Shared fixtures.

Every test gets a fresh domain database: a SQLite file in its tmp dir, or — when
``DUTYFLOW_TEST_POSTGRES_URL`` is set — a fresh PostgreSQL schema in a database created
for this pytest run.
"""
from __future__ import annotations

import os
import uuid

import pytest

PG_URL = os.environ.get("DUTYFLOW_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def pg_database():
    """A fresh PostgreSQL database for this run (dropped at the end), or None."""
    if not PG_URL:
        yield None
        return
    import sqlalchemy as sa

    name = f"dutyflow_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    from models.db import dispose_all

    dispose_all()
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def db(tmp_path, monkeypatch, pg_database):
    """Point dutyflow at a fresh, migrated database; yields its URL."""
    from models.db import dispose_all

    monkeypatch.setenv("DUTYFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DUTYFLOW_NOW", raising=False)
    if pg_database:
        import sqlalchemy as sa

        schema = f"t_{uuid.uuid4().hex[:12]}"
        eng = sa.create_engine(pg_database)
        with eng.begin() as c:
            c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        eng.dispose()
        url = sa.engine.make_url(pg_database).update_query_dict({"options": f"-csearch_path={schema}"})
        url = url.render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp_path / 'dutyflow.db'}"
    monkeypatch.setenv("DUTYFLOW_DATABASE_URL", url)
    from models.schema import init_schema

    init_schema()
    yield url
    dispose_all()

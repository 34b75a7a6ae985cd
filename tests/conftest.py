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
    monkeypatch.delenv("DUTYFLOW_APPRISE_CONFIG", raising=False)
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


# ---------------------------------------------------------------- notification sink


class Sink:
    """A local HTTP server standing in for every notification channel (json://)."""

    def __init__(self):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.messages: list[dict] = []
        self.fail_paths: set[str] = set()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.strip("/")
                if path in sink.fail_paths:
                    self.send_response(500)
                    self.end_headers()
                    return
                try:
                    payload = json.loads(body or b"{}")
                except ValueError:
                    payload = {"raw": body.decode(errors="replace")}
                payload["_path"] = path
                sink.messages.append(payload)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def to(self, person: str) -> list[dict]:
        return [m for m in self.messages if m["_path"] == person]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


DEMO_ORG_FILE = __import__("pathlib").Path(__file__).resolve().parent.parent / "deployments" / "demo_org.yaml"


def demo_org_text(port: int) -> str:
    """The shipped demo org with every channel pointed at the local sink."""
    return DEMO_ORG_FILE.read_text(encoding="utf-8").replace("127.0.0.1:9000", f"127.0.0.1:{port}")


@pytest.fixture
def org(db, sink, tmp_path):
    """Fresh database + the demo org (channels → the sink). Yields the org file path."""
    import yaml

    from models.db import session
    from models.org import load_org

    raw = demo_org_text(sink.port)
    path = tmp_path / "org.yaml"
    path.write_text(raw, encoding="utf-8")
    with session() as s:
        load_org(s, yaml.safe_load(raw), raw)
    return path


@pytest.fixture
def clock(monkeypatch):
    """Pin the one clock: ``clock("2026-11-28T10:00:00+08:00")``."""

    def set_to(value: str) -> None:
        monkeypatch.setenv("DUTYFLOW_NOW", value)

    return set_to


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness per pytest run (≈10 s to start), offline like the service
    (no analytics: its server would otherwise try to reach the internet)."""
    from prefect.testing.utilities import prefect_test_harness

    from deployments.settings import apply_offline_settings

    apply_offline_settings()

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def harness_env(prefect_harness):
    """Environment for a ``dutyflow`` subprocess that talks to the session's Prefect harness."""
    from prefect.settings import PREFECT_API_URL

    return {"PREFECT_API_URL": PREFECT_API_URL.value()}


def db_state() -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row's content, per domain table.

    "Nothing written" checks compare these: an in-place UPDATE (a state, a due time, a
    counter) shows as well as an INSERT or DELETE.
    """
    import hashlib

    import sqlalchemy as sa
    from sqlmodel import SQLModel

    from models.db import engine

    state = {}
    with engine().connect() as c:
        for name, table in SQLModel.metadata.tables.items():
            order = list(table.primary_key.columns) or list(table.columns)
            rows = c.execute(sa.select(table).order_by(*order)).all()
            digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()[:16]
            state[name] = (len(rows), digest)
    return state

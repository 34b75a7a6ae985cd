"""Shared fixtures.

Every test gets a fresh domain database, a copy of one migrated once per pytest run: a
SQLite file in its tmp dir, or — when ``DUTYFLOW_TEST_POSTGRES_URL`` is set — a PostgreSQL
database created from the run's template (``CREATE DATABASE … TEMPLATE``).
"""
from __future__ import annotations

import os
import uuid

import pytest

PG_URL = os.environ.get("DUTYFLOW_TEST_POSTGRES_URL")

#: The longest tests (the topology with its crash waits, a served instance, the browser, the
#: CLI in subprocesses) start first: with parallel workers (tests/run.sh, pytest-xdist) none
#: of them is left running alone at the end.
LONGEST_FIRST = ("test_topology.py", "test_browser.py", "test_gateway.py", "test_serve.py", "test_cli.py",
                 "test_bad_input.py", "test_documents.py")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


def _admin():
    import sqlalchemy as sa

    return sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def template_database(tmp_path_factory):
    """The schema migrated once for this pytest run (and the working-day calendar seeded):
    a SQLite file, or a PostgreSQL database ``dutyflow_tmpl_*`` (dropped at the end). Each
    test's database is a copy of it (``db``), so no test pays for the migrations."""
    import sqlalchemy as sa

    from models.db import dispose_all
    from models.schema import init_schema

    home = tmp_path_factory.mktemp("template-home")
    if PG_URL:
        name = f"dutyflow_tmpl_{uuid.uuid4().hex[:10]}"
        with _admin().connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    else:
        name = str(tmp_path_factory.mktemp("template") / "dutyflow.db")
        url = f"sqlite:///{name}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DUTYFLOW_HOME", str(home))
        mp.setenv("DUTYFLOW_DATABASE_URL", url)
        mp.delenv("DUTYFLOW_NOW", raising=False)
        init_schema()
        dispose_all()  # no connection left: PostgreSQL copies a template nobody is connected to
    yield name
    if PG_URL:
        with _admin().connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _copy_database(template: str) -> tuple[str, str | None]:
    """A new database copied from ``template``: (its URL, the PostgreSQL name to drop or None)."""
    import shutil

    if PG_URL:
        import sqlalchemy as sa

        name = f"dutyflow_test_{uuid.uuid4().hex[:12]}"
        with _admin().connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False), name
    path = os.path.join(os.path.dirname(template), f"copy-{uuid.uuid4().hex[:12]}.db")
    shutil.copyfile(template, path)
    return f"sqlite:///{path}", None


def _drop_database(name: str | None) -> None:
    if name:
        with _admin().connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_database(tmp_path, monkeypatch, template: str):
    """Point dutyflow at a copy of ``template`` for one test (a file in its tmp dir, or a database)."""
    import shutil

    from models.db import dispose_all

    monkeypatch.setenv("DUTYFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DUTYFLOW_NOW", raising=False)
    monkeypatch.delenv("DUTYFLOW_APPRISE_CONFIG", raising=False)
    name = None
    if PG_URL:
        url, name = _copy_database(template)
    else:
        path = tmp_path / "dutyflow.db"
        shutil.copyfile(template, path)
        url = f"sqlite:///{path}"
    monkeypatch.setenv("DUTYFLOW_DATABASE_URL", url)
    yield url
    dispose_all()
    _drop_database(name)


@pytest.fixture
def db(tmp_path, monkeypatch, template_database):
    """A fresh, migrated database (a copy of the run's template); yields its URL."""
    yield from _fresh_database(tmp_path, monkeypatch, template_database)


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


@pytest.fixture(scope="session")
def session_sink():
    sink = Sink()
    yield sink
    sink.close()


@pytest.fixture
def sink(session_sink):
    """The run's notification sink, emptied for this test (the demo org's channels point at it)."""
    session_sink.messages.clear()
    session_sink.fail_paths.clear()
    return session_sink


DEMO_ORG_FILE = __import__("pathlib").Path(__file__).resolve().parent.parent / "deployments" / "demo_org.yaml"


def demo_org_text(port: int) -> str:
    """The shipped demo org with every channel pointed at the local sink."""
    return DEMO_ORG_FILE.read_text(encoding="utf-8").replace("127.0.0.1:9000", f"127.0.0.1:{port}")


@pytest.fixture(scope="session")
def org_template(template_database, session_sink):
    """The migrated template with the demo org loaded (channels → the run's sink), once per run."""
    import yaml

    from models.db import dispose_all, session
    from models.org import load_org

    url, name = _copy_database(template_database)
    raw = demo_org_text(session_sink.port)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DUTYFLOW_DATABASE_URL", url)
        mp.delenv("DUTYFLOW_NOW", raising=False)
        with session() as s:
            load_org(s, yaml.safe_load(raw), raw)
        dispose_all()
    yield name or url.removeprefix("sqlite:///")
    _drop_database(name)


@pytest.fixture
def org(sink, tmp_path, monkeypatch, org_template):
    """A fresh database with the demo org (channels → the sink). Yields the org file path."""
    path = tmp_path / "org.yaml"
    path.write_text(demo_org_text(sink.port), encoding="utf-8")
    fresh = _fresh_database(tmp_path, monkeypatch, org_template)
    next(fresh)
    yield path
    next(fresh, None)


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

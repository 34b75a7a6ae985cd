"""The domain database: engine, sessions and column types.

SQLite file under ``DUTYFLOW_HOME`` by default; any SQLAlchemy URL through
``DUTYFLOW_DATABASE_URL`` (``postgresql+psycopg://…`` in production).
"""
from __future__ import annotations

import fcntl
import logging
import os
import random
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlalchemy import JSON, DateTime, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, create_engine

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("dutyflow.db")
T = TypeVar("T")


def home() -> Path:
    """``DUTYFLOW_HOME`` (default ``./.dutyflow``), created on first use."""
    path = Path(os.environ.get("DUTYFLOW_HOME", ".dutyflow")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    return os.environ.get("DUTYFLOW_DATABASE_URL") or f"sqlite:///{home() / 'dutyflow.db'}"


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes stored in UTC; SQLite's naive values normalised on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} refused: store aware UTC times")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


JSONDict = MutableDict.as_mutable(JSON().with_variant(JSONB(), "postgresql"))
JSONList = MutableList.as_mutable(JSON().with_variant(JSONB(), "postgresql"))

_engines: dict[str, Engine] = {}


def _sqlite_setup(engine: Engine) -> None:
    """Serialise writers: every transaction starts with BEGIN IMMEDIATE (no upgrade deadlocks)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages (default 2 MiB): large indexes stay cached
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _postgresql_setup(engine: Engine) -> None:
    """Plan every execution with the tables as they are now. A generic plan cached while a
    table was empty (a fresh database) keeps scanning it sequentially as it grows: the
    foreign-key check of each new notification read the whole ``notice`` table."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        with dbapi_connection.cursor() as cur:
            cur.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_connection.commit()


def engine(url: str | None = None) -> Engine:
    """One engine per database URL (tests switch ``DUTYFLOW_DATABASE_URL`` freely)."""
    url = url or database_url()
    if url not in _engines:
        if url.startswith("sqlite"):
            eng = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
            _sqlite_setup(eng)
        else:
            eng = create_engine(url, pool_pre_ping=True)
            _postgresql_setup(eng)
        _engines[url] = eng
    return _engines[url]


def dispose_all() -> None:
    for eng in _engines.values():
        eng.dispose()
    _engines.clear()


@contextmanager
def session() -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any error."""
    with Session(engine(), expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


#: PostgreSQL errors after which the whole transaction was rolled back and may simply run
#: again: two transactions waited on each other's row locks (counters taken in different
#: orders by a sweep and a flow), or a serialisation failure.
RETRYABLE_SQLSTATES = {"40P01": "deadlock detected", "40001": "serialization failure"}


@contextmanager
def only_one(name: str) -> Iterator[bool]:
    """A named lock held by one process at a time across every machine on the database:
    yields True to the holder, False at once to anyone else (who skips its turn). PostgreSQL:
    a session advisory lock; SQLite (one machine): an exclusive lock on a file beside it."""
    eng = engine()
    if eng.dialect.name == "postgresql":
        with eng.connect() as c:
            got = c.execute(text("SELECT pg_try_advisory_lock(hashtext(:n))"), {"n": name}).scalar()
            c.commit()
            try:
                yield bool(got)
            finally:
                if got:
                    c.execute(text("SELECT pg_advisory_unlock(hashtext(:n))"), {"n": name})
                    c.commit()
        return
    with open(home() / f"{name}.lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def retryable(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def run_retrying(fn: Callable[[], T], what: str, attempts: int = 5) -> T:
    """Run ``fn`` (one whole transaction) again after a deadlock or serialisation failure,
    with a short random back-off; other errors, and the last attempt's, propagate."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except DBAPIError as exc:
            if attempt == attempts or not retryable(exc):
                raise
            log.warning("%s: %s, attempt %d of %d, running it again", what,
                        RETRYABLE_SQLSTATES[exc.orig.sqlstate], attempt, attempts)
            time.sleep(random.uniform(0.005, 0.05) * attempt)
    raise AssertionError("unreachable")


def utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)

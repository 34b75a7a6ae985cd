"""Batch mode (models.batch): a sweep batch writes with few statements and loses nothing.

Rules tested without Prefect: counters stay gapless, deferred rows are written with the
batch (and taken back with a rolled-back savepoint), versioned rows are updated in bulk
and a moved version is detected.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm.exc import StaleDataError

from models import batch
from models.case import Case, Counter, Obligation, next_number
from models.db import session
from models.notice import Notice
from models.org import OrgUnit

T = datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
def unit(db):
    with session() as s:
        s.add(OrgUnit(code="SQ01", name="一社区", kind="community"))
        s.flush()
        for i in (1, 2):
            s.add(Case(id=f"RECT-2026-000{i}", kind="rectification", state="notified", unit="SQ01",
                       created_at=T, updated_at=T))
        s.flush()
        for i in (1, 2):
            s.add(Obligation(case_id=f"RECT-2026-000{i}", unit="SQ01", kind="rectify", due_at=T, next_action_at=T))
    return "SQ01"


def notice_row(n: int) -> dict:
    return dict(id=f"NTC-2026-{n:06d}", case_id="RECT-2026-0001", kind="rectification_reminder",
                doc_number=None, title=f"通知{n}", issuer_unit="SQ01", recipients=[], classified=False,
                context={}, html="<p/>", text="t", issued_at=T)


def counter(name: str) -> int | None:
    with session() as s:
        return s.execute(select(Counter.value).where(Counter.name == name)).scalar()


def notices() -> list[str]:
    with session() as s:
        return list(s.execute(select(Notice.id).order_by(Notice.id)).scalars())


def test_counters_in_memory_are_written_back_gapless(unit):
    with session() as s:
        s.info["batch"] = True
        assert [next_number(s, "notice", 2026) for _ in range(5)] == [1, 2, 3, 4, 5]
        batch.finish(s)
    assert counter("notice") == 5
    with session() as s:  # outside batch mode the database row goes on from there
        assert next_number(s, "notice", 2026) == 6


def test_rolled_back_batch_writes_nothing(unit):
    with pytest.raises(RuntimeError):
        with session() as s:
            s.info["batch"] = True
            next_number(s, "notice", 2026)
            batch.defer(s, Notice.__table__, [notice_row(1)])
            batch.finish(s)
            raise RuntimeError("a later step failed")
    assert counter("notice") is None and notices() == []


def test_deferred_rows_are_written_by_the_next_flush(unit):
    with session() as s:
        s.info["batch"] = True
        assert batch.defer(s, Notice.__table__, [notice_row(1), notice_row(2)])
        assert s.execute(text("SELECT count(*) FROM notice")).scalar() == 0  # kept in memory
        ob = s.execute(select(Obligation).where(Obligation.case_id == "RECT-2026-0001")).scalar_one()
        ob.step = 1
        s.flush()  # a flush inside the batch writes them (a later query in the batch sees them)
        assert s.execute(text("SELECT count(*) FROM notice")).scalar() == 2
        batch.defer(s, Notice.__table__, [notice_row(3)])
        batch.finish(s)  # nothing left for the ORM to write: finish still writes the rows
    assert notices() == ["NTC-2026-000001", "NTC-2026-000002", "NTC-2026-000003"]
    with session() as s:
        assert not batch.defer(s, Notice.__table__, [notice_row(4)])  # outside batch mode


def test_savepoint_rollback_takes_back_rows_and_numbers(unit):
    with session() as s:
        s.info["batch"] = True
        assert next_number(s, "notice", 2026) == 1
        batch.defer(s, Notice.__table__, [notice_row(1)])
        with pytest.raises(RuntimeError):
            with s.begin_nested():
                assert next_number(s, "notice", 2026) == 2
                assert next_number(s, "doc:X街网安", 2026) == 1
                batch.defer(s, Notice.__table__, [notice_row(2)])
                raise RuntimeError("this step is undone")
        assert next_number(s, "notice", 2026) == 2  # the number comes back: no gap
        batch.defer(s, Notice.__table__, [notice_row(3)])
        batch.finish(s)
    assert notices() == ["NTC-2026-000001", "NTC-2026-000003"]
    assert counter("notice") == 2 and counter("doc:X街网安") is None


def test_versioned_rows_are_updated_in_bulk(unit):
    from sqlalchemy import event

    statements = []

    def seen(conn, cursor, statement, params, context, executemany):
        statements.append((" ".join(statement.split()[:2]), executemany))

    with session() as s:
        s.info["batch"] = True
        event.listen(s.connection().engine, "before_cursor_execute", seen)
        try:
            case = s.get(Case, "RECT-2026-0001")
            case.state = "acknowledged"
            obs = list(s.execute(select(Obligation).order_by(Obligation.id)).scalars())  # autoflush: the case
            for i, ob in enumerate(obs):
                ob.step, ob.data = i + 1, {"ladder": [i]}
            batch.finish(s)
        finally:
            event.remove(s.connection().engine, "before_cursor_execute", seen)
        assert [st for st in statements if st[0].startswith("UPDATE")] == [
            ('UPDATE "case"', False), ("UPDATE obligation", True)]  # two obligations: one executemany
        assert not s.dirty
    with session() as s:
        obs = list(s.execute(select(Obligation).order_by(Obligation.id)).scalars())
        assert [(o.step, o.data, o.version_id) for o in obs] == [(1, {"ladder": [0]}, 2), (2, {"ladder": [1]}, 2)]
        assert s.get(Case, "RECT-2026-0001").state == "acknowledged"
        assert s.get(Case, "RECT-2026-0001").version_id == 2 and s.get(Case, "RECT-2026-0002").version_id == 1


def test_moved_version_is_detected(unit):
    with pytest.raises(StaleDataError):
        with session() as s:
            s.info["batch"] = True
            ob = s.execute(select(Obligation).order_by(Obligation.id)).scalars().first()
            ob.step = 3
            with s.no_autoflush:  # another writer moved the version meanwhile
                s.execute(text("UPDATE obligation SET version_id = version_id + 1 WHERE id = :i"), {"i": ob.id})
            batch.finish(s)
    with session() as s:
        ob = s.execute(select(Obligation).order_by(Obligation.id)).scalars().first()
        assert ob.step == 0 and ob.version_id == 1  # nothing written

"""The audit chain against the attacks of issue #13 (SPEC §1 decision 6, ``dutyflow audit``).

Each attack is run on the backend where it applies: it is refused by the database, or
``dutyflow audit verify`` exits 1 naming the problem; the untouched chain still verifies.
The scenario (``_scenario`` of test_cli) leaves 3 events: INC-2026-0001 seq 1 (event 1),
INC-2026-0002 seq 1 and 2 (events 2 and 3).
"""
from __future__ import annotations

import json
import logging
import os
import stat

import pytest
import sqlalchemy as sa
from test_cli import _scenario, cli

T0 = "2026-11-28T10:30:00+08:00"

# every trigger guarding the log (an attacker with enough rights drops them first)
GUARD = {
    "sqlite": [f"DROP TRIGGER IF EXISTS {name}" for name in (
        "audit_event_no_update", "audit_event_no_delete", "audit_event_no_replace",
        "audit_head_no_delete", "audit_head_forward_only", "audit_head_no_replace")],
    "postgresql": [f"DROP TRIGGER IF EXISTS {name}" for name in (
        "audit_event_no_change ON audit_event", "audit_event_no_truncate ON audit_event",
        "audit_head_no_delete ON audit_head", "audit_head_no_truncate ON audit_head",
        "audit_head_forward_only ON audit_head")],
}


def dialect() -> str:
    from models.db import engine

    return engine().dialect.name


def only_on(name: str, why: str) -> None:
    """Skip (with the reason printed) unless the test database is ``name``."""
    if dialect() != name:
        reason = f"{name} only: {why} (this run: {dialect()})"
        print(reason)
        pytest.skip(reason)


def refused(sql: str, match: str = "append-only", params: dict | None = None) -> None:
    """``sql`` is refused by the database (its transaction is rolled back)."""
    from models.db import engine

    with pytest.raises(sa.exc.DatabaseError, match=match):
        with engine().begin() as c:
            c.execute(sa.text(sql), params or {})


def attack(*statements: str) -> None:
    """Run ``statements`` as an attacker who first dropped every guard trigger."""
    from models.db import engine

    with engine().begin() as c:
        for stmt in GUARD[c.dialect.name]:
            c.exec_driver_sql(stmt)
        for stmt in statements:
            c.execute(sa.text(stmt))


def rewrite_event(event_id: int, payload: dict) -> None:
    """The attack no hash chain alone can see: edit one event, compute its hash and every later
    hash again, and move the head to the new last hash (triggers dropped first)."""
    from models.audit import AuditEvent, AuditHead, _digest
    from models.db import engine

    events, head = AuditEvent.__table__, AuditHead.__table__
    with engine().begin() as c:
        for stmt in GUARD[c.dialect.name]:
            c.exec_driver_sql(stmt)
        rows = [dict(r._mapping) for r in c.execute(
            sa.select(events).where(events.c.id >= event_id).order_by(events.c.id))]
        prev = rows[0]["prev_hash"]
        for row in rows:
            if row["id"] == event_id:
                row["payload"] = payload
            row["prev_hash"] = prev
            row["hash"] = prev = _digest(row)
            c.execute(events.update().where(events.c.id == row["id"])
                      .values(payload=row["payload"], prev_hash=row["prev_hash"], hash=row["hash"]))
        c.execute(head.update().where(head.c.id == 1).values(last_hash=prev))


def verify(*anchors) -> tuple[bool, str]:
    from models.audit import verify as audit_verify
    from models.db import session

    with session() as s:
        return audit_verify(s, anchors)


def anchors_dir():
    from models.audit import anchor_dir

    return anchor_dir()


@pytest.fixture
def chain(org, monkeypatch):
    """The demo org and the 3-event scenario, clock pinned."""
    monkeypatch.setenv("DUTYFLOW_NOW", T0)
    monkeypatch.delenv("DUTYFLOW_AUDIT_KEY", raising=False)
    _scenario()
    assert verify()[0]


# ---------------------------------------------------------------- 1. TRUNCATE (PostgreSQL)


def test_truncate_of_the_log_or_its_head_is_refused_on_postgresql(chain):
    """Row triggers do not fire on TRUNCATE: statement-level ones refuse it, also when it
    comes as the CASCADE of truncating the cases; the head can be neither truncated nor
    deleted (the next append would restart the chain at genesis)."""
    only_on("postgresql", "SQLite has no TRUNCATE (its DELETE without WHERE fires the row triggers)")
    refused("TRUNCATE audit_event")
    refused('TRUNCATE "case" CASCADE')
    refused("TRUNCATE audit_head", match="audit_head cannot be deleted")
    refused("DELETE FROM audit_head", match="audit_head cannot be deleted")
    ok = cli("audit", "verify")
    assert "审计链完整：3 条事件" in ok.stdout, ok.stdout


def test_the_head_only_moves_forward(chain):
    """The head can be neither deleted nor set back (nor given another hash at the same
    event): that is how a deleted tail would be hidden."""
    refused("DELETE FROM audit_head", match="audit_head cannot be deleted")
    refused("UPDATE audit_head SET last_id = 2, last_hash = (SELECT hash FROM audit_event WHERE id = 2)",
            match="audit_head only moves forward")
    refused("UPDATE audit_head SET last_hash = :h", params={"h": "0" * 64}, match="audit_head only moves forward")
    if dialect() == "sqlite":  # REPLACE deletes without the delete trigger: the insert is ignored
        from models.db import engine

        with engine().begin() as c:
            c.exec_driver_sql("REPLACE INTO audit_head (id, last_id, last_hash) VALUES (1, 0, '0')")
    ok, message = verify()
    assert ok and "3 条事件" in message, message


def test_verify_reports_a_missing_head(chain):
    attack("DELETE FROM audit_head")
    ok, message = verify()
    assert not ok and "audit_head" in message and "缺失" in message, message


def test_migration_0009_adds_the_guard_to_an_existing_database(chain):
    """A database made before 0009 lacks the new triggers: the upgrade installs them."""
    from alembic import command

    from models.db import engine
    from models.schema import alembic_config

    def migrate(fn, rev):
        with engine().begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            fn(cfg, rev)

    replace = ("INSERT OR REPLACE INTO audit_event SELECT * FROM audit_event WHERE id = 2" if dialect() == "sqlite"
               else "TRUNCATE audit_event")
    migrate(command.downgrade, "0008")
    with engine().connect() as c:  # without 0009 the attack goes through (rolled back here)
        c.execute(sa.text(replace))
        c.rollback()
    migrate(command.upgrade, "head")
    refused(replace)
    refused("DELETE FROM audit_head", match="audit_head cannot be deleted")
    assert verify()[0]


# ---------------------------------------------------------------- 2. tail deleted, head moved back


def test_verify_detects_last_events_deleted_with_the_head_moved_back(chain):
    """Events 3 (INC-2026-0002 seq 2) deleted and the head set back to event 2: the chain is
    consistent, but the case still counts 2 events."""
    attack("DELETE FROM audit_event WHERE id = 3",
           "UPDATE audit_head SET last_id = 2, last_hash = (SELECT hash FROM audit_event WHERE id = 2)")
    bad = cli("audit", "verify", check=1)
    assert bad.stdout.count("\n") == 1, bad.stdout
    assert "案件 INC-2026-0002 记录有 2 条审计事件，审计链中实有 1 条" in bad.stdout, bad.stdout


def test_verify_detects_a_case_count_that_disagrees(chain):
    """A case whose count was lowered is reported too, and such a state is never signed."""
    from models.audit import AnchorRefused, write_anchor
    from models.db import session

    attack("UPDATE \"case\" SET event_count = 1 WHERE id = 'INC-2026-0002'")
    ok, message = verify()
    assert not ok and "案件 INC-2026-0002 记录有 1 条审计事件，审计链中实有 2 条" in message, message
    with pytest.raises(AnchorRefused, match="事件数之和"), session() as s:  # nothing inconsistent is signed
        write_anchor(s)
    assert not anchors_dir().exists()


# ---------------------------------------------------------------- 3. INSERT OR REPLACE (SQLite)


def test_insert_or_replace_is_refused_on_sqlite(chain):
    """REPLACE deletes the conflicting row without firing the delete trigger: the insert
    trigger refuses any row whose id, or (case_id, seq), exists already; the upsert form
    fires the update trigger."""
    only_on("sqlite", "INSERT OR REPLACE is SQLite syntax; PostgreSQL's ON CONFLICT is tested separately")
    columns = ("case_id, seq, type, from_state, to_state, actor, effective_at, recorded_at, flow_run_id, "
               "payload, prev_hash, hash")
    refused(f"INSERT OR REPLACE INTO audit_event (id, {columns}) "
            f"SELECT id, case_id, seq, type, from_state, to_state, 'p-someone', effective_at, recorded_at, "
            f"flow_run_id, payload, prev_hash, hash FROM audit_event WHERE id = 2")
    refused(f"INSERT OR REPLACE INTO audit_event (id, {columns}) "  # a new id over an existing (case, seq)
            f"SELECT 99, {columns} FROM audit_event WHERE id = 2")
    refused(f"INSERT INTO audit_event (id, {columns}) SELECT id, {columns} FROM audit_event WHERE id = 2 "
            f"ON CONFLICT (id) DO UPDATE SET actor = 'p-someone'")
    ok = cli("audit", "verify")
    assert "审计链完整：3 条事件" in ok.stdout, ok.stdout


def test_on_conflict_do_update_fires_the_update_trigger_on_postgresql(chain):
    only_on("postgresql", "PostgreSQL has no REPLACE; its ON CONFLICT DO UPDATE is an UPDATE")
    refused("INSERT INTO audit_event SELECT * FROM audit_event WHERE id = 2 "
            "ON CONFLICT (id) DO UPDATE SET actor = 'p-someone'")
    refused("INSERT INTO audit_event SELECT * FROM audit_event WHERE id = 2 "
            "ON CONFLICT (case_id, seq) DO UPDATE SET actor = 'p-someone'")
    assert verify()[0]


def test_appends_and_sweep_batches_still_work_and_the_sweep_anchors_once_a_day(chain, monkeypatch):
    """The insert trigger lets normal appends through: one by one (a flow) and in bulk (a
    sweep batch, ``models.batch``). The sweep writes an anchor at most once per
    ``sweep.audit_anchor_hours`` and only when events were appended since."""
    from models import incident
    from models.audit import AuditEvent
    from models.db import session
    from models.requests import validate_request
    from models.sweep import sweep

    def events() -> int:
        with session() as s:
            return s.execute(sa.select(sa.func.count()).select_from(AuditEvent)).scalar_one()

    incident.update(validate_request(incident.UpdateIncidentRequest,
                                     {"actor": "p-guo-tao", "case_id": "INC-2026-0001", "note": "续报"}))
    assert events() == 4
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-12-02T10:30:00+08:00")  # INC-2026-0001's handling overdue
    result = sweep()
    assert result["acted"] >= 1 and result["errors"] == 0, result
    first = sorted(anchors_dir().glob("*.json"))
    assert [p.name for p in first] == [f"audit-anchor-{events()}.json"]
    incident.update(validate_request(incident.UpdateIncidentRequest,
                                     {"actor": "p-guo-tao", "case_id": "INC-2026-0001", "note": "再续报"}))
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-12-03T09:00:00+08:00")  # 22.5 h later: not yet
    sweep()
    assert sorted(anchors_dir().glob("*.json")) == first
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-12-03T11:00:00+08:00")  # a day later, new events
    sweep()
    assert len(list(anchors_dir().glob("*.json"))) == 2
    sweep()  # nothing new since: no third anchor
    assert len(list(anchors_dir().glob("*.json"))) == 2
    ok, message = verify()
    assert ok and "已核对 2 个外部锚点" in message, message


def test_an_anchor_failure_never_fails_the_sweep(chain, monkeypatch, caplog):
    from models.sweep import sweep

    anchors_dir().parent.mkdir(parents=True, exist_ok=True)
    anchors_dir().write_text("not a directory")  # the anchor cannot be written
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-12-02T10:30:00+08:00")
    with caplog.at_level(logging.WARNING, logger="dutyflow.sweep"):
        result = sweep()
    assert result["acted"] >= 1 and result["errors"] == 0, result
    assert any("外部锚点" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


# ---------------------------------------------------------------- 4. recomputed chain, external anchor


def test_a_recomputed_chain_is_caught_only_by_an_anchor(chain, tmp_path):
    made = cli("audit", "anchor")
    path = anchors_dir() / "audit-anchor-3.json"
    assert str(path) in made.stdout and "另存" in made.stdout, made.stdout
    anchor = json.loads(path.read_text(encoding="utf-8"))
    assert set(anchor) == {"last_id", "last_hash", "events", "cases", "made_at", "database", "signature"}
    assert (anchor["last_id"], anchor["events"], anchor["made_at"]) == (3, 3, T0)
    key = anchors_dir().parent / "audit.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().strip() not in made.stdout + made.stderr
    copy = tmp_path / "kept-by-the-operator.json"
    copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")

    ok = cli("audit", "verify", "--anchor", str(copy))
    assert "审计链完整：3 条事件；已核对 2 个外部锚点（最近：事件 3" in ok.stdout, ok.stdout

    rewrite_event(2, {"note": "改写"})
    path.unlink()  # the attacker also removes the anchor he can reach
    ok, message = verify()
    assert ok and "没有外部锚点" in message, message  # what verify cannot see without an anchor
    bad = cli("audit", "verify", "--anchor", str(copy), check=1)
    assert bad.stdout.count("\n") == 1, bad.stdout
    assert "事件 3" in bad.stdout and "外部锚点" in bad.stdout and "重新计算" in bad.stdout, bad.stdout


def test_an_anchor_catches_a_deleted_tail_with_the_case_count_fixed(chain):
    """The attacker deletes the last event, moves the head back and corrects the case's
    count: only the anchor still knows event 3."""
    from models.audit import write_anchor
    from models.db import session

    with session() as s:
        write_anchor(s)
    attack("DELETE FROM audit_event WHERE id = 3",
           "UPDATE audit_head SET last_id = 2, last_hash = (SELECT hash FROM audit_event WHERE id = 2)",
           "UPDATE \"case\" SET event_count = 1 WHERE id = 'INC-2026-0002'")
    ok, message = verify()
    assert not ok and "记录到事件 3，审计链只到事件 2" in message, message


def test_a_forged_anchor_is_reported(chain):
    """An anchor edited without the key (to match a rewritten chain) has a bad signature."""
    from models.audit import AuditHead
    from models.db import session

    cli("audit", "anchor")
    path = anchors_dir() / "audit-anchor-3.json"
    rewrite_event(2, {"note": "改写"})
    forged = json.loads(path.read_text(encoding="utf-8"))
    with session() as s:
        forged["last_hash"] = s.get(AuditHead, 1).last_hash
    path.write_text(json.dumps(forged), encoding="utf-8")
    bad = cli("audit", "verify", check=1)
    assert f"外部锚点 {path} 的签名无效" in bad.stdout, bad.stdout


def test_an_anchor_checked_with_the_wrong_key_is_reported(chain, monkeypatch):
    from models.audit import write_anchor
    from models.db import session

    monkeypatch.setenv("DUTYFLOW_AUDIT_KEY", "the-right-key")
    with session() as s:
        path, _ = write_anchor(s)
    assert not (anchors_dir().parent / "audit.key").exists()  # the environment's key is used
    assert verify()[0]
    monkeypatch.setenv("DUTYFLOW_AUDIT_KEY", "another-key")
    ok, message = verify()
    assert not ok and "签名无效" in message, message
    monkeypatch.delenv("DUTYFLOW_AUDIT_KEY")  # and with no key at all
    ok, message = verify()
    assert not ok and "没有签名密钥" in message, message


def test_anchor_files_are_checked_for_shape_and_database(chain, tmp_path):
    """A given file that is missing or not an anchor is a problem; a file in the anchor
    directory made for another database (same home, same key) is counted, not checked."""
    from models.audit import _sign, audit_key, write_anchor
    from models.db import session

    ok, message = verify(tmp_path / "nope.json")
    assert not ok and "不存在" in message, message
    (tmp_path / "bad.json").write_text('{"last_id": 3}', encoding="utf-8")
    ok, message = verify(tmp_path / "bad.json")
    assert not ok and "格式不符" in message and "last_hash" in message, message
    with session() as s:
        _, anchor = write_anchor(s, tmp_path / "other.json")
    anchor.update(database="sqlite:////elsewhere/dutyflow.db", last_hash="f" * 64)
    anchor["signature"] = _sign(anchor, audit_key())
    anchors_dir().mkdir(parents=True, exist_ok=True)
    (anchors_dir() / "audit-anchor-other.json").write_text(json.dumps(anchor), encoding="utf-8")
    ok, message = verify()
    assert ok and "另有 1 个锚点属于其他数据库" in message and "没有外部锚点" in message, message


def test_an_empty_log_has_nothing_to_anchor(db):
    from models.audit import write_anchor
    from models.db import session

    with session() as s:
        assert write_anchor(s) is None
    ok, message = verify()
    assert ok and message.startswith("审计链完整：0 条事件"), message
    assert not os.path.exists(anchors_dir())

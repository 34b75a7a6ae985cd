"""A flow run started again after a crash (same flow-run id, same parameters) does not apply
its action twice: the second attempt replays the outcome the first one committed."""
from __future__ import annotations

import threading

import pytest
from conftest import db_state
from support import refused, run_flow

from models.db import session

OFFICER, LEAD, PRINCIPAL = "p-guo-tao", "p-hu-haiyan", "p-zhu-hongwei"  # SQ03
OFFICE_HEAD = "p-sun-jianhua"  # 街道网信办主任: issues 整改通知, receives 事件报告
REPORTED_TO = sorted([OFFICER, LEAD, PRINCIPAL, OFFICE_HEAD])
RUN = "0b6a4d8e-5f0e-4c55-9f4e-6c1d2b7a9e01"


def report(flow_run_id: str | None, **over):
    from models import incident
    from models.requests import validate_request

    params = dict(actor=OFFICER, unit="SQ03", category="defacement", level="relatively_major",
                  title="社区门户网站首页被篡改", description="首页被植入有害信息，已断开外网",
                  discovered_at="2026-11-28T10:00:00+08:00")
    params.update(over)
    return incident.report(validate_request(incident.ReportIncidentRequest, params), flow_run_id)


def update(flow_run_id: str | None, case_id: str, **over):
    from models import incident
    from models.requests import validate_request

    params = dict(actor=OFFICER, case_id=case_id, note="已恢复页面", **over)
    return incident.update(validate_request(incident.UpdateIncidentRequest, params), flow_run_id)


def rect(action: str, flow_run_id: str | None, **params):
    from models import rectification as r
    from models.requests import validate_request

    fn, model = {"notify": (r.notify, r.NotifyRiskRequest), "acknowledge": (r.acknowledge, r.AcknowledgeRiskRequest),
                 "submit": (r.submit, r.SubmitRectificationRequest)}[action]
    return fn(validate_request(model, params), flow_run_id)


def count(model, **where) -> int:
    from sqlmodel import func, select

    q = select(func.count()).select_from(model)
    for name, value in where.items():
        q = q.where(getattr(model, name) == value)
    with session() as s:
        return s.exec(q).one()


def dialect() -> str:
    from models.db import engine

    return engine().dialect.name


def deliver_for(notice_ids: list[str]) -> dict:
    """What run_action does after the core: deliver the notices' notifications."""
    from tasks.notify import deliver_notifications

    return deliver_notifications.fn(notice_ids)


# ---------------------------------------------------------------- replay


def test_report_twice_in_one_run_makes_one_case_and_replays_the_second(org, clock):
    from models.audit import AuditEvent
    from models.case import ActionRun, Case

    clock("2026-11-28T10:30:00+08:00")
    first = report(RUN)
    assert not first.replayed and "replayed" not in first.summary()
    before = db_state()
    clock("2026-11-28T10:45:00+08:00")  # the worker died; the run starts again later
    second = report(RUN)
    assert db_state() == before, "a replay writes nothing"
    assert second.replayed and second.summary()["replayed"] is True
    assert second.case.id == first.case.id and second.event_seq == first.event_seq == 1
    assert [n.id for n in second.notices] == [n.id for n in first.notices] and first.notices
    assert [n.doc_number for n in second.notices] == [n.doc_number for n in first.notices]
    assert count(Case) == 1 and count(AuditEvent) == 1
    with session() as s:
        row = s.get(ActionRun, RUN)
        assert (row.case_id, row.seq, row.action, row.notice_ids) == (
            first.case.id, 1, "incident.report", [n.id for n in first.notices])


def test_a_step_replayed_after_the_case_moved_on_is_not_refused(org, clock):
    clock("2026-11-02T10:00:00+08:00")
    case_id = rect("notify", "run-notify", actor=OFFICE_HEAD, unit="SQ03", source="X区网安〔2026〕3号通报",
                   risk_level="medium", problem="后台弱口令", problem_code="WEAK-PWD", requirement="修改口令").case.id
    clock("2026-11-02T11:00:00+08:00")
    ack = rect("acknowledge", "run-ack", actor=OFFICER, case_id=case_id)
    clock("2026-11-03T09:00:00+08:00")
    rect("submit", "run-submit", actor=OFFICER, case_id=case_id, measures="改口令", evidence=["截图"])
    before = db_state()
    again = rect("acknowledge", "run-ack", actor=OFFICER, case_id=case_id)  # not "acknowledged" any more
    assert db_state() == before
    assert again.replayed and again.case.id == case_id and again.event_seq == ack.event_seq == 2
    assert again.case.state == "submitted" and again.notices == []
    # without the run's record the same request is refused: the case has moved on
    refused(rect, "acknowledge", "run-ack-2", actor=OFFICER, case_id=case_id, contains="当前状态为")


def test_separate_runs_and_no_run_are_not_deduplicated(org, clock):
    from models.case import ActionRun, Case

    clock("2026-11-28T10:30:00+08:00")
    ids = {report(run).case.id for run in ("run-1", "run-2", None, None)}
    assert len(ids) == 4 and count(Case) == 4
    assert count(ActionRun) == 2  # a call outside any flow run is not recorded


def test_another_action_in_the_same_run_is_refused(org, clock):
    clock("2026-11-28T10:30:00+08:00")
    case_id = report(RUN).case.id
    clock("2026-11-28T11:00:00+08:00")
    err = refused(update, RUN, case_id, contains=f"本次运行（{RUN}）已办理过其他操作，不能再办理此操作")
    assert "\n" not in err.message
    # the same action on another case is another action too
    other = report("run-other", title="另一事件").case.id
    assert not update("run-upd", case_id).replayed
    refused(update, "run-upd", other, contains="已办理过其他操作")


def test_system_steps_are_not_keyed_by_the_run(org, clock):
    """The sweep takes many steps in one run (actor system): none is recorded or replayed."""
    from models.case import ActionRun
    from models.sweep import sweep

    clock("2026-09-18T10:00:00+08:00")
    for i in (1, 2, 3):
        rect("notify", f"run-n{i}", actor=OFFICE_HEAD, unit=f"SQ0{i}", source="通报", risk_level="medium",
             problem="弱口令", problem_code=f"P{i}", requirement="修改口令")
    clock("2026-10-30T09:00:00+08:00")
    out = sweep(flow_run_id="sweep-run")
    assert out["acted"] >= 3 and out["errors"] == 0, out
    assert count(ActionRun) == 3  # the three notify runs only


# ---------------------------------------------------------------- two attempts at once


def race(monkeypatch, n: int, fn):
    """Run ``fn`` in ``n`` threads at once. On PostgreSQL every thread first passes the
    action_run lookup before any goes on (SQLite serialises writers from the lookup on)."""
    from models import statemachine

    real = real_check = statemachine.check_effective_at
    if dialect() == "postgresql":
        gate, seen = threading.Barrier(n, timeout=30), set()

        def held(*args, **kwargs):
            me = threading.get_ident()
            if me not in seen:
                seen.add(me)
                gate.wait()
            return real(*args, **kwargs)

        monkeypatch.setattr(statemachine, "check_effective_at", held)
    results, errors = [], []
    start = threading.Barrier(n)

    def worker():
        try:
            start.wait()
            results.append(fn())
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.setattr(statemachine, "check_effective_at", real_check)
    assert not errors, errors
    return results


def test_two_attempts_of_one_report_at_once_make_one_case(org, clock, monkeypatch):
    from models.audit import AuditEvent, verify
    from models.case import Case

    clock("2026-11-28T10:30:00+08:00")
    results = race(monkeypatch, 2, lambda: report(RUN))
    assert count(Case) == 1 and count(AuditEvent) == 1
    assert {r.case.id for r in results} == {"INC-2026-0001"}
    assert sorted(r.replayed for r in results) == [False, True]
    assert len({tuple(n.id for n in r.notices) for r in results}) == 1
    with session() as s:
        assert verify(s)[0]
    assert report("run-next").case.id == "INC-2026-0002"  # the loser's number was given back


def test_two_attempts_of_one_step_at_once_apply_it_once(org, clock, monkeypatch):
    from models.audit import AuditEvent

    clock("2026-11-28T10:30:00+08:00")
    case_id = report("run-report").case.id
    clock("2026-11-28T11:00:00+08:00")
    results = race(monkeypatch, 2, lambda: update(RUN, case_id))
    assert count(AuditEvent, case_id=case_id) == 2
    assert sorted(r.replayed for r in results) == [False, True]
    assert {r.event_seq for r in results} == {2}


# ---------------------------------------------------------------- notifications


def test_a_replay_delivers_what_the_crashed_attempt_never_sent_once(org, sink, clock):
    clock("2026-11-28T10:30:00+08:00")
    first = report(RUN)  # committed; the worker died before delivering
    assert sink.messages == []
    again = report(RUN)
    assert again.replayed
    out = deliver_for([n.id for n in again.notices])
    assert out["sent"] == 4, out
    assert sorted(m["_path"] for m in sink.messages) == REPORTED_TO
    doc = first.notices[0].doc_number
    assert all(doc in m["title"] + m["message"] for m in sink.messages)
    third = report(RUN)  # crashed again after delivering: nothing is sent twice
    out = deliver_for([n.id for n in third.notices])
    assert out["sent"] == 0 and out["skipped"] == 4, out
    assert len(sink.messages) == 4


@pytest.mark.usefixtures("prefect_harness")
def test_a_rerun_flow_replays_and_sends_the_rest(org, sink, clock, monkeypatch, caplog):
    """Through the flow: one recipient had been sent before the crash, the re-run sends the
    other three and returns the same case, marked replayed."""
    import logging

    import flows.common
    from models.notice import Notification, NotificationStatus

    clock("2026-11-28T10:30:00+08:00")
    first = report(RUN)
    with session() as s:  # the first attempt got one message out before the worker died
        from sqlmodel import select

        row = s.exec(select(Notification).where(Notification.person == LEAD)).one()
        row.status, row.next_attempt_at = NotificationStatus.sent, None
        s.add(row)
    monkeypatch.setattr(flows.common, "flow_run_id", lambda: RUN)
    caplog.set_level(logging.INFO)
    out = run_flow("report-incident", actor=OFFICER, unit="SQ03", category="defacement", level="relatively_major",
                   title="社区门户网站首页被篡改", description="首页被植入有害信息，已断开外网",
                   discovered_at="2026-11-28T10:00:00+08:00")
    assert out["case_id"] == first.case.id and out["replayed"] is True
    assert out["notices"] == [n.id for n in first.notices]
    assert out["delivery"]["sent"] == 3 and out["delivery"]["skipped"] == 1, out["delivery"]
    assert sorted(m["_path"] for m in sink.messages) == sorted([OFFICER, PRINCIPAL, OFFICE_HEAD])
    assert f"本次运行在中断前已办理（案件 {first.case.id}），不重复办理；补发未发出的通知" in caplog.text


# ---------------------------------------------------------------- the migration


def test_migration_0011_creates_action_run_and_matches_the_model(db):
    import sqlalchemy as sa
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlmodel import SQLModel

    from models.db import engine
    from models.schema import alembic_config, import_all_tables

    import_all_tables()
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == "0012"  # 0012: account

    def migrate(fn, rev):
        with engine().begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            fn(cfg, rev)

    def tables():
        with engine().connect() as conn:
            return set(sa.inspect(conn).get_table_names())

    with engine().connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0012"
        mc = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = [d for d in compare_metadata(mc, SQLModel.metadata) if "action_run" in repr(d) or "account" in repr(d)]
    assert diffs == []
    assert "action_run" in tables()
    migrate(command.downgrade, "0010")
    assert "action_run" not in tables() and "account" not in tables()
    migrate(command.upgrade, "head")
    assert {"action_run", "account"} <= tables()

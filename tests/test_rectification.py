"""限期整改 (SPEC 3.2) and the full deadline sweep (SPEC 3.5): scenarios and rules."""
from __future__ import annotations

import json
import os
import threading

import pytest

from models.db import session
from models.errors import DomainError

OFFICE = "p-sun-jianhua"  # 网信办主任 (issuer)
OFFICER, LEAD, PRINCIPAL, OLD_PRINCIPAL = "p-guo-tao", "p-hu-haiyan", "p-zhu-hongwei", "p-ma-yumei"
STREET_PRINCIPAL, DISCIPLINE = "p-wang-zhiqiang", "p-zheng-xiaoyan"
SUPERVISOR_HEAD = "p-huang-guoqing"  # 综治办主任: SQ01–SQ06's supervising department


def notify_params(**over):
    p = dict(actor=OFFICE, unit="SQ03", source="X区网安〔2026〕3号通报", risk_level="medium",
             problem="社区门户网站后台存在弱口令", problem_code="WEAK-PWD", requirement="修改口令并启用双因素认证")
    p.update(over)
    return p


def core(action: str, **params):
    from models import rectification as r
    from models.requests import validate_request

    fn, model = {
        "notify": (r.notify, r.NotifyRiskRequest), "acknowledge": (r.acknowledge, r.AcknowledgeRiskRequest),
        "submit": (r.submit, r.SubmitRectificationRequest), "verify": (r.verify, r.VerifyRectificationRequest),
        "request_extension": (r.request_extension, r.RequestExtensionRequest),
        "decide_extension": (r.decide_extension, r.DecideExtensionRequest),
    }[action]
    return fn(validate_request(model, params))


def show(case_id: str) -> dict:
    from models.case_view import case_json, load_case

    with session() as s:
        return case_json(s, load_case(s, case_id))


def rectify(case: dict) -> dict:
    return [o for o in case["obligations"] if o["kind"] == "rectify"][-1]


def sweep_at(when: str) -> dict:
    from tasks.notify import deliver
    from models.sweep import sweep

    os.environ["DUTYFLOW_NOW"] = when
    result = sweep()
    result["delivery"] = deliver()
    return result


def notices(case_id: str, kind: str | None = None) -> list[dict]:
    return [n for n in show(case_id)["notices"] if kind is None or n["kind"] == kind]


def stage_of(notice_id: str) -> str:
    from models.notice import Notice

    with session() as s:
        return s.get(Notice, notice_id).context["stage"]


def proposals(source: str) -> list[dict]:
    from sqlmodel import select

    from models.case import Case
    from models.case_view import case_json

    with session() as s:
        return [case_json(s, c) for c in s.exec(select(Case).where(Case.proposed_from == source)).all()]


# ---------------------------------------------------------------- through the flows


@pytest.mark.usefixtures("prefect_harness")
def test_high_risk_over_the_make_up_sunday_closed_in_time(org, clock):
    from support import run_flow

    clock("2026-09-18T10:00:00+08:00")  # a Friday
    out = run_flow("notify-risk", **notify_params(risk_level="高风险（3个工作日）"))
    case_id = out["case_id"]
    case = show(case_id)
    ack = [o for o in case["obligations"] if o["kind"] == "acknowledge"][0]
    assert ack["due_at"] == "2026-09-21T00:00:00+08:00"  # the make-up Sunday 9/20 is a working day
    assert rectify(case)["due_at"] == "2026-09-23T00:00:00+08:00"  # 9/20, 9/21, 9/22
    [notice] = case["notices"]
    assert notice["kind"] == "rectification_notice" and notice["doc_number"].startswith("X街网安〔2026〕")
    assert sorted(notice["recipients"]) == sorted([OFFICER, LEAD, PRINCIPAL, SUPERVISOR_HEAD])  # 抄送 综治办
    from models.notice import Notice

    with session() as s:
        assert "抄送：街道综合治理办公室。" in s.get(Notice, notice["id"]).text
    clock("2026-09-20T09:00:00+08:00")
    assert run_flow("acknowledge-risk", actor=OFFICER, case_id=case_id)["state"] == "acknowledged"
    clock("2026-09-22T15:00:00+08:00")
    out = run_flow("submit-rectification", actor=OFFICER, case_id=case_id, measures="已改口令，启用双因素",
                   evidence=["整改截图-1", "复测报告-2"])
    assert out["state"] == "submitted"
    verify = [o for o in show(case_id)["obligations"] if o["kind"] == "verify"][0]
    assert verify["due_at"] == "2026-09-29T00:00:00+08:00"  # 9/23, 9/24, then 9/25–27 off → 9/28
    clock("2026-09-23T10:00:00+08:00")
    assert run_flow("verify-rectification", actor=OFFICE, case_id=case_id, passed=True, opinion="复测通过")["state"] == "closed"
    case = show(case_id)
    assert {o["kind"]: o["status"] for o in case["obligations"]} == {"acknowledge": "met", "rectify": "met", "verify": "met"}
    from tasks.ledger import ledger_rows

    with session() as s:
        assert [r for r in ledger_rows(s) if r["case"] == case_id] == []
    # the same rule across the National Day break: notified Tue 9/29, acknowledge by the end
    # of 9/30; rectify over 9/30, (10/1–10/7 off), 10/8, 10/9 → 10/10 00:00
    clock("2026-09-29T10:00:00+08:00")
    case = show(run_flow("notify-risk", **notify_params(risk_level="high", problem_code="WEAK-PWD-2"))["case_id"])
    ack = [o for o in case["obligations"] if o["kind"] == "acknowledge"][0]
    assert (ack["due_at"], rectify(case)["due_at"]) == ("2026-10-01T00:00:00+08:00", "2026-10-10T00:00:00+08:00")


@pytest.mark.usefixtures("prefect_harness")
def test_sweep_flow_refreshes_the_overdue_ledger_artifact(org, clock):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort
    from support import run_flow

    clock("2026-09-18T10:00:00+08:00")
    case_id = core("notify", **notify_params(risk_level="high")).case.id
    clock("2026-09-24T10:00:00+08:00")
    result = run_flow("sweep-deadlines")
    assert result["acted"] == 2  # acknowledge urge + rectify urge
    assert result["overdue"] == 2

    def latest(key: str):
        with get_client(sync_client=True) as client:
            [artifact] = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                sort=ArtifactSort.CREATED_DESC, limit=1)
        return artifact.data

    rows = json.loads(latest("overdue-ledger"))
    assert [(r["案件"], r["义务"], r["时限"], r["阶梯"]) for r in rows] == [
        (case_id, "acknowledge", "2026年9月20日（星期日）24时前", 1),  # the last day, never the next 00:00
        (case_id, "rectify", "2026年9月22日（星期二）24时前", 2)]
    assert {r["单位"] for r in rows} == {"SQ03 建设社区"}
    assert all("郭涛" in r["责任人"] for r in rows)
    from tasks.ledger import ledger_rows

    with session() as s:  # the same rows as `dutyflow ledger --overdue --json`
        cli_rows = ledger_rows(s, overdue=True)
    assert [r["due"] for r in cli_rows] == ["2026-09-21T00:00:00+08:00", "2026-09-23T00:00:00+08:00"]  # JSON: ISO
    assert [(r["case"], r["obligation"], r["due_text"], r["overdue_by"], r["step"]) for r in cli_rows] == \
        [(r["案件"], r["义务"], r["时限"], r["逾期"], r["阶梯"]) for r in rows]
    assert [r["逾期"] for r in rows] == ["3天10小时", "1天10小时"]
    summary = latest("overdue-summary")
    assert "逾期事项 2 项" in summary
    assert "| 建设社区 | 签收整改通知 | 1 催签收 | 1 |" in summary and "| 建设社区 | 完成整改并报送整改报告 | 2 催办 | 1 |" in summary
    assert [(r["督办环节"], r["义务名称"]) for r in rows] == [("催签收", "签收整改通知"), ("催办", "完成整改并报送整改报告")]


# ---------------------------------------------------------------- the ladder


def test_a_medium_risk_left_alone_climbs_the_ladder_once_per_step(org, sink, clock, tmp_path):
    clock("2026-09-18T10:00:00+08:00")
    case_id = core("notify", **notify_params()).case.id
    assert rectify(show(case_id))["due_at"] == "2026-10-10T00:00:00+08:00"  # 10 working days over 国庆
    # SQ03 gets a new principal before the 约谈: the notice goes to whoever holds the post then
    import yaml

    from models.org import load_org

    new = {"units": [], "persons": [{"id": "p-new-principal", "name": "新书记",
                                     "channels": [f"json://127.0.0.1:{sink.port}/p-new-principal"]}],
           "posts": [{"unit": "SQ03", "person": "p-new-principal", "role": "principal", "valid_from": "2026-10-12"}]}
    with session() as s:
        load_org(s, new, yaml.safe_dump(new, allow_unicode=True))
    steps = {}
    for when in ["2026-09-19T10:00", "2026-09-21T01:00", "2026-09-30T12:00", "2026-10-09T00:30",
                 "2026-10-09T09:00", "2026-10-10T01:00", "2026-10-10T18:00", "2026-10-13T12:00",
                 "2026-10-14T00:30", "2026-10-20T12:00", "2026-10-23T00:30", "2026-10-23T08:00",
                 "2026-11-02T08:00"]:
        sweep_at(when + ":00+08:00")
        steps[when] = rectify(show(case_id))["step"]
    # due 10/10 00:00: reminder from 10/9 00:00 (1 working day before), 催办 once overdue,
    # 约谈 at overdue + 3 working days (10/10 make-up Sat, 10/12, 10/13 → 10/14 00:00),
    # proposal at overdue + 10 working days (→ 10/23 00:00); never a step early
    assert steps == {
        "2026-09-19T10:00": 0, "2026-09-21T01:00": 0, "2026-09-30T12:00": 0,
        "2026-10-09T00:30": 1, "2026-10-09T09:00": 1,
        "2026-10-10T01:00": 2, "2026-10-10T18:00": 2, "2026-10-13T12:00": 2,
        "2026-10-14T00:30": 3, "2026-10-20T12:00": 3,
        "2026-10-23T00:30": 4, "2026-10-23T08:00": 4, "2026-11-02T08:00": 4,
    }
    reminders = notices(case_id, "rectification_reminder")
    by_stage = {}
    for n in reminders:
        by_stage.setdefault(stage_of(n["id"]), []).append(n)
    assert sorted(by_stage) == ["acknowledge", "reminder", "urge"]
    assert [n["recipients"] for n in by_stage["reminder"]] == [[OFFICER]]
    assert [sorted(n["recipients"]) for n in by_stage["urge"]] == [sorted([OFFICER, LEAD])]
    assert [n["recipients"] for n in by_stage["acknowledge"]] == [[OFFICER]]
    assert [n["recipients"] for n in notices(case_id, "interview_notice")] == [["p-new-principal"]]
    [proposal] = proposals(case_id)
    assert proposal["state"] == "proposed" and proposal["kind"] == "accountability"
    assert proposal["data"]["circumstance"] == "c4_concealment_or_unrectified"
    assert proposal["data"]["facts"].endswith("仍未完成整改。经催办、约谈后仍未整改到位。")
    [pnotice] = proposal["notices"]  # a draft for the 网信办 to confirm: no 文号
    assert pnotice["kind"] == "accountability_proposal" and pnotice["doc_number"] is None
    assert sorted(pnotice["recipients"]) == sorted([OFFICE, "p-liu-jianguo"])
    # every notice went out once to each of its recipients
    sent = [(m["_path"], m["title"]) for m in sink.messages]
    assert len(sent) == len(set(sent))
    for n in [*reminders, *notices(case_id, "interview_notice"), pnotice]:
        for p in n["recipients"]:
            got = [m for m in sink.to(p) if (n["doc_number"] or n["title"]) in m["title"] + m["message"]]
            assert len(got) == 1, (n["kind"], p, len(got))
    assert len(sink.to("p-new-principal")) == 1
    assert rectify(show(case_id))["status"] == "missed"


def test_after_15_working_days_down_one_sweep_takes_the_latest_step_only(org, sink, clock):
    clock("2026-09-18T10:00:00+08:00")
    case_id = core("notify", **notify_params()).case.id
    sweep_at("2026-09-18T10:00:00+08:00")  # delivers the 整改通知; nothing is due yet
    before = len(sink.messages)
    sweep_at("2026-10-30T09:00:00+08:00")  # due 10/10 00:00; 15 working days later, no sweep meanwhile
    case = show(case_id)
    ob = rectify(case)
    assert ob["step"] == 4 and ob["status"] == "missed"
    kinds = [n["kind"] for n in case["notices"]]
    assert kinds.count("interview_notice") == 0
    assert [stage_of(n["id"]) for n in case["notices"] if n["kind"] == "rectification_reminder"] == ["acknowledge"]
    [proposal] = proposals(case_id)
    assert len(proposal["notices"]) == 1
    # the proposal does not claim a 催办 or 约谈 that never happened
    assert "经催办" not in proposal["data"]["facts"]
    assert "催办、约谈环节因督办巡检未运行未能按时进行（已记入督办记录）" in proposal["data"]["facts"]
    assert [e["type"] for e in case["events"]].count("rectify_proposal") == 1
    ladder = _rectify_ladder_data(case_id)
    assert [(x["name"], x["implied"]) for x in ladder] == [
        ("reminder", True), ("urge", True), ("interview", True), ("proposal", False)]
    assert len(sink.messages) - before == 1 + 2  # 催签收 to the officer, the proposal to two decision-makers
    sweep_at("2026-10-30T10:00:00+08:00")
    assert len(show(case_id)["notices"]) == len(case["notices"])
    assert len(proposals(case_id)) == 1


def _rectify_ladder_data(case_id: str) -> list[dict]:
    from sqlmodel import select

    from models.case import Obligation

    with session() as s:
        ob = s.exec(select(Obligation).where(Obligation.case_id == case_id, Obligation.kind == "rectify")).one()
        return list(ob.data["ladder"])


@pytest.mark.parametrize("batch_sizes", [(2, 2), (1, 2, 3, 5)])
def test_concurrent_sweeps_take_each_step_once(org, clock, batch_sizes):
    """Sweeps started together (different batch sizes interleave their row and counter locks
    differently; on PostgreSQL a deadlock between them is retried) take each step once."""
    from models.sweep import sweep

    clock("2026-09-18T10:00:00+08:00")
    ids = [core("notify", **notify_params(unit=f"SQ{i:02d}", problem_code=f"P{i}")).case.id for i in range(1, 13)]
    os.environ["DUTYFLOW_NOW"] = "2026-10-30T09:00:00+08:00"
    results, errors = [], []
    barrier = threading.Barrier(len(batch_sizes))

    def worker(size: int):
        try:
            barrier.wait()
            results.append(sweep(batch_size=size))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(size,)) for size in batch_sizes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(r["acted"] for r in results) == 24  # 12 × (acknowledge urge + rectify proposal)
    for cid in ids:
        assert len(proposals(cid)) == 1
        assert len(notices(cid)) == 2  # the 整改通知 and one 催签收
    from models.audit import verify

    with session() as s:
        assert verify(s)[0]


def test_a_sweep_batch_that_deadlocks_is_run_again(org, clock, monkeypatch, caplog):
    import psycopg
    from sqlalchemy.exc import OperationalError

    from models import sweep as sweep_module

    clock("2026-09-18T10:00:00+08:00")
    case_id = core("notify", **notify_params()).case.id
    clock("2026-10-30T09:00:00+08:00")
    real, calls = sweep_module._act_on_batch, []

    def deadlock_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # what PostgreSQL raises when it breaks a lock cycle (after rolling back)
            raise OperationalError("INSERT INTO counter …", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "_act_on_batch", deadlock_once)
    assert sweep_module.sweep()["acted"] == 2
    assert len(calls) == 2 and "deadlock detected, attempt 1 of 5" in caplog.text
    assert len(proposals(case_id)) == 1 and len(notices(case_id)) == 2


# ---------------------------------------------------------------- verification, extensions, recurrence


def test_failed_verification_returns_to_acknowledged_with_a_new_deadline(org, clock):
    clock("2026-11-02T10:00:00+08:00")
    case_id = core("notify", **notify_params(risk_level="high")).case.id
    core("acknowledge", actor=OFFICER, case_id=case_id)
    core("submit", actor=OFFICER, case_id=case_id, measures="改口令", evidence=["截图"])
    clock("2026-11-04T10:00:00+08:00")
    assert core("verify", actor=OFFICE, case_id=case_id, passed=False, opinion="复测仍可登录").case.state == "acknowledged"
    case = show(case_id)
    rects = [o for o in case["obligations"] if o["kind"] == "rectify"]
    assert [o["status"] for o in rects] == ["met", "open"]
    assert rects[-1]["due_at"] == "2026-11-10T00:00:00+08:00"  # 3 working days from Wed 11/4
    assert rects[-1]["step"] == 0
    core("submit", actor=OFFICER, case_id=case_id, measures="重置全部账号", evidence=["复测报告"])
    assert core("verify", actor=OFFICE, case_id=case_id, passed=True, opinion="通过").case.state == "closed"


def test_extension_approved_moves_the_deadline_and_resets_the_ladder(org, clock):
    clock("2026-11-02T10:00:00+08:00")
    case_id = core("notify", **notify_params(risk_level="high")).case.id  # rectify due 11/6 00:00
    clock("2026-11-05T10:00:00+08:00")  # asked for in time …
    core("request_extension", actor=OFFICER, case_id=case_id, reason="需采购设备",
         new_due_at="2026-11-20T00:00:00+08:00")
    assert rectify(show(case_id))["due_at"] == "2026-11-06T00:00:00+08:00"  # unchanged until decided
    sweep_at("2026-11-06T10:00:00+08:00")  # … decided after the old deadline: the 催办 went out meanwhile
    assert rectify(show(case_id))["step"] == 2
    core("decide_extension", actor=OFFICE, case_id=case_id, approved=True, opinion="同意")
    ob = rectify(show(case_id))
    assert (ob["due_at"], ob["step"], ob["status"]) == ("2026-11-20T00:00:00+08:00", 0, "open")
    assert ob["next_action_at"] == "2026-11-19T00:00:00+08:00"  # reminder 1 working day before
    events = [e["type"] for e in show(case_id)["events"]]
    assert events[-4:] == ["request_extension", "acknowledge_urge", "rectify_urge", "decide_extension"]


def test_extension_asked_after_the_deadline_or_approved_too_late_is_refused(org, clock):
    clock("2026-11-02T10:00:00+08:00")
    case_id = core("notify", **notify_params(risk_level="high")).case.id  # rectify due 11/6 00:00
    clock("2026-11-06T09:00:00+08:00")
    refused("request_extension", field="case_id", contains="已过", actor=OFFICER, case_id=case_id,
            reason="来不及", new_due_at="2026-11-20T00:00:00+08:00")
    clock("2026-11-05T10:00:00+08:00")
    core("request_extension", actor=OFFICER, case_id=case_id, reason="需采购设备", new_due_at="2026-11-09T00:00:00+08:00")
    clock("2026-11-10T10:00:00+08:00")  # the date asked for has passed before anyone decided
    refused("decide_extension", field="approved", contains="2026年11月9日", actor=OFFICE, case_id=case_id,
            approved=True, opinion="同意")
    core("decide_extension", actor=OFFICE, case_id=case_id, approved=False, opinion="期限已过，请重新申请")
    assert rectify(show(case_id))["due_at"] == "2026-11-06T00:00:00+08:00"


def test_failed_verification_with_the_issuers_new_deadline(org, clock):
    clock("2026-11-02T10:00:00+08:00")
    case_id = core("notify", **notify_params(risk_level="high")).case.id
    core("acknowledge", actor=OFFICER, case_id=case_id)
    core("submit", actor=OFFICER, case_id=case_id, measures="改口令", evidence=["截图"])
    refused("verify", field="new_due_at", actor=OFFICE, case_id=case_id, passed=True, opinion="通过",
            new_due_at="2026-12-01T18:00:00+08:00")
    refused("verify", field="new_due_at", actor=OFFICE, case_id=case_id, passed=False, opinion="未改",
            new_due_at="2026-11-01T18:00:00+08:00")
    core("verify", actor=OFFICE, case_id=case_id, passed=False, opinion="仍有弱口令", new_due_at="2026-12-01T18:00:00+08:00")
    ob = rectify(show(case_id))
    assert (ob["due_at"], ob["status"], ob["calendar_unconfirmed"]) == ("2026-12-01T18:00:00+08:00", "open", False)


def test_a_pending_extension_lapses_when_the_report_is_submitted(org, clock):
    """The report is in: the request is no longer decided (it would otherwise survive a failed
    verification and move the new deadline back to the date asked for before)."""
    clock("2026-11-02T10:00:00+08:00")
    case_id = core("notify", **notify_params(risk_level="high")).case.id  # rectify due 11/6 00:00
    clock("2026-11-05T10:00:00+08:00")
    core("request_extension", actor=OFFICER, case_id=case_id, reason="需采购设备", new_due_at="2026-11-09T18:00:00+08:00")
    core("acknowledge", actor=OFFICER, case_id=case_id)
    core("submit", actor=OFFICER, case_id=case_id, measures="改口令", evidence=["截图"])
    assert [(e["status"], e["note"]) for e in show(case_id)["data"]["extensions"]] == [
        ("lapsed", "已报送整改报告，延期申请不再审批")]
    clock("2026-11-06T10:00:00+08:00")
    core("verify", actor=OFFICE, case_id=case_id, passed=False, opinion="仍有弱口令")
    due = rectify(show(case_id))["due_at"]
    assert due == "2026-11-12T00:00:00+08:00"  # 3 working days from the failed verification
    refused("decide_extension", field="case_id", contains="没有待审批的延期申请", actor=OFFICE, case_id=case_id,
            approved=True, opinion="同意")
    # a new request for the new deadline may be made and decided
    core("request_extension", actor=OFFICER, case_id=case_id, reason="仍需采购", new_due_at="2026-11-20T00:00:00+08:00")
    core("decide_extension", actor=OFFICE, case_id=case_id, approved=True, opinion="同意")
    assert rectify(show(case_id))["due_at"] == "2026-11-20T00:00:00+08:00"


def test_the_unit_cannot_issue_verify_or_extend_its_own_rectification(org, clock):
    """下发、复核验收、延期审批 are the issuing side's: SQ03's own officer is refused (field actor,
    nothing written); the street's party secretary (up the 网信办's territorial line) may act."""
    clock("2026-11-02T10:00:00+08:00")
    refused("notify", field="actor", contains="建设社区网络安全负责人", **notify_params(actor=OFFICER))
    refused("notify", field="issuer", contains="不能是责任单位本身或平级单位", **notify_params(issuer="SQ03"))
    case_id = core("notify", **notify_params(risk_level="high", actor=STREET_PRINCIPAL)).case.id
    core("request_extension", actor=OFFICER, case_id=case_id, reason="需采购设备", new_due_at="2026-11-20T00:00:00+08:00")
    refused("decide_extension", field="actor", contains="无权办理 decide-extension", actor=OFFICER, case_id=case_id, approved=True,
            opinion="同意")
    core("decide_extension", actor=STREET_PRINCIPAL, case_id=case_id, approved=True, opinion="同意")
    core("acknowledge", actor=OFFICER, case_id=case_id)
    core("submit", actor=OFFICER, case_id=case_id, measures="改口令", evidence=["截图"])
    refused("verify", field="actor", contains="无权办理 verify-rectification", actor=LEAD, case_id=case_id, passed=True, opinion="已整改")
    assert core("verify", actor=OFFICE, case_id=case_id, passed=True, opinion="通过").case.state == "closed"


def test_extension_rejected_changes_nothing_but_the_record(org, clock):
    clock("2026-11-02T10:00:00+08:00")
    case_id = core("notify", **notify_params(risk_level="high")).case.id
    core("request_extension", actor=OFFICER, case_id=case_id, reason="人手不足", new_due_at="2026-11-30T00:00:00+08:00")
    before = rectify(show(case_id))
    core("decide_extension", actor=OFFICE, case_id=case_id, approved=False, opinion="不同意")
    after = show(case_id)
    assert rectify(after) == before
    assert [e["status"] for e in after["data"]["extensions"]] == ["rejected"]


def test_recurrence_within_12_months_is_flagged_on_the_case_and_the_notice(org, clock):
    from models.notice import Notice

    clock("2026-03-02T10:00:00+08:00")
    first = core("notify", **notify_params()).case.id
    clock("2026-11-02T10:00:00+08:00")
    second = core("notify", **notify_params())
    other_unit = core("notify", **notify_params(unit="SQ04"))
    assert second.case.data["recurrence"] == [first]
    assert any("重复发生" in w for w in second.case.warnings)
    assert other_unit.case.data["recurrence"] == [] and not other_unit.case.warnings
    with session() as s:
        text = s.get(Notice, second.notices[0].id).text
    assert "重复发生" in text and "12个月内" in text and "上次：《关于建设社区限期整改网络安全问题的通知》（X街网安〔2026〕1号）" in text
    assert first not in text.split("（事项编号")[0]  # the case id only in the 附注
    clock("2027-03-02T10:00:00+08:00")  # twelve months after the first, to the day: still within
    assert core("notify", **notify_params(unit="SQ05")).case.data["recurrence"] == []
    with session() as s:
        from models.rectification import recurrence
        from models.clock import parse_time

        assert [c.id for c in recurrence(s, "SQ03", "WEAK-PWD", parse_time("2027-03-02T09:00:00+08:00"))] == [first, second.case.id]
        assert [c.id for c in recurrence(s, "SQ03", "WEAK-PWD", parse_time("2027-03-03T09:00:00+08:00"))] == [second.case.id]


# ---------------------------------------------------------------- refusals


def refused(action: str, field: str | None = None, contains: str = "", **params) -> DomainError:
    from support import refused as refused_

    return refused_(core, action, field=field, contains=contains, **params)


class TestRefusals:
    @pytest.fixture
    def case_id(self, org, clock):
        clock("2026-11-02T10:00:00+08:00")
        return core("notify", **notify_params(risk_level="high")).case.id

    def test_action_in_the_wrong_state_names_state_and_allowed_actions(self, case_id):
        err = refused("submit", actor=OFFICER, case_id=case_id, measures="修改口令", evidence=["x"])
        assert "notified（已下发整改通知）" in err.message
        assert "acknowledge" in err.message and "request_extension" in err.message
        refused("verify", actor=OFFICE, case_id=case_id, passed=True, opinion="x", contains="notified")

    def test_bad_fields(self, case_id):
        refused("notify", field="unit", **notify_params(unit="SQ99"))
        refused("notify", field="risk_level", contains="high", **notify_params(risk_level="severe"))
        refused("notify", field="due_at", **notify_params(due_at="2026-11-01T00:00:00+08:00"))
        refused("notify", field="effective_at", **notify_params(effective_at="2026-11-03T00:00:00+08:00"))
        refused("notify", field="issuer", **notify_params(issuer="NOPE"))
        refused("submit", field="evidence", actor=OFFICER, case_id=case_id, measures="修改口令", evidence=[])
        refused("request_extension", field="new_due_at", actor=OFFICER, case_id=case_id, reason="理由",
                new_due_at="2026-11-03T00:00:00+08:00")

    def test_decision_without_a_pending_request(self, case_id):
        refused("decide_extension", field="case_id", contains="没有待审批", actor=OFFICE, case_id=case_id,
                approved=True, opinion="x")

    def test_override_deadline_in_a_year_without_calendar_is_flagged(self, org, clock):
        clock("2026-11-02T10:00:00+08:00")
        result = core("notify", **notify_params(due_at="2027-01-20T00:00:00+08:00"))
        assert rectify(show(result.case.id))["calendar_unconfirmed"] is True
        assert any("尚未公布" in w for w in result.case.warnings)
        # 2027-01-01 00:00 is 24:00 of 2026-12-31: a day whose calendar is known
        result = core("notify", **notify_params(unit="SQ04", due_at="2027-01-01T00:00:00+08:00"))
        assert rectify(show(result.case.id))["calendar_unconfirmed"] is False


def test_a_failing_step_in_a_batch_leaves_the_other_steps_taken(org, clock, monkeypatch):
    """The fast batch path is redone step by step when one step fails: the failing one is
    logged and left for the next sweep, the others are taken once."""
    import models.sweep as sweep_module
    from models import rectification as r

    clock("2026-09-18T10:00:00+08:00")
    ids = [core("notify", **notify_params(unit=f"SQ0{i}", problem_code=f"B{i}")).case.id for i in (1, 2, 3)]
    real = sweep_module.escalators

    def failing():
        handlers = real()

        def rect(ob_id, case_id, flow_run_id=None, session=None):
            if case_id == ids[1]:
                raise DomainError("模拟：该单位的网信办岗位空缺")
            return r.escalate(ob_id, case_id, flow_run_id, session=session)

        return {**handlers, "rectification": rect}

    monkeypatch.setattr(sweep_module, "escalators", failing)
    result = sweep_at("2026-09-21T09:00:00+08:00")  # the acknowledge deadlines have passed
    assert (result["acted"], result["errors"]) == (2, 1)
    assert [len(notices(cid)) for cid in ids] == [2, 1, 2]
    monkeypatch.setattr(sweep_module, "escalators", real)
    assert sweep_at("2026-09-21T09:05:00+08:00")["acted"] == 1  # taken on the next sweep
    from models.audit import verify

    with session() as s:
        assert verify(s)[0]


def test_refs_name_the_problem_code_and_the_cases_a_rectification_cites(org, clock):
    """Recurrence and tracing look rectifications up by these refs (one index range)."""
    from sqlmodel import select

    from models.case import CaseRef, rectification_refs

    assert rectification_refs({"source": "INC-2026-0001事件暴露的问题（另见RECT-2026-0012）", "problem_code": " WEAK ",
                               "problem": "INC-2026-00011 不是 INC-2026-0001"}) == {
        "code:WEAK", "case:INC-2026-0001", "case:RECT-2026-0012", "case:INC-2026-00011"}
    assert rectification_refs({"source": "X区网安〔2026〕3号通报", "problem_code": "", "problem": "弱口令"}) == set()
    clock("2026-11-02T10:00:00+08:00")
    case_id = core("notify", **notify_params(source="INC-2026-0007事件暴露的问题")).case.id
    with session() as s:
        refs = sorted(r.ref for r in s.exec(select(CaseRef).where(CaseRef.case_id == case_id)).all())
    assert refs == ["case:INC-2026-0007", "code:WEAK-PWD"]


def test_migration_gives_existing_rectifications_their_refs(db):
    """Upgrading a database made before case_ref (revision 0006) fills it from the cases' data."""
    import sqlalchemy as sa
    from alembic import command

    from models.db import engine
    from models.schema import alembic_config

    def run(fn, *args):
        with engine().begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            fn(cfg, *args)

    run(command.downgrade, "0006")
    with engine().begin() as conn:
        conn.execute(sa.text("INSERT INTO org_unit (code, name, kind, doc_prefix) VALUES ('U1', '单位', 'community', 'U')"))
        for cid, data in [("RECT-2026-0001", '{"problem_code": "P1", "source": "INC-2026-0003事件"}'),
                          ("RECT-2026-0002", '{"problem_code": "", "source": "通报"}')]:
            conn.execute(sa.text(
                "INSERT INTO \"case\" (id, kind, state, unit, title, classified, data, warnings, created_at, updated_at,"
                " event_count, version_id) VALUES (:id, 'rectification', 'notified', 'U1', '', false, :data, '[]',"
                " :t, :t, 0, 1)"), {"id": cid, "data": data, "t": "2026-11-02 02:00:00"})
    run(command.upgrade, "head")
    with engine().connect() as conn:
        rows = conn.execute(sa.text("SELECT case_id, ref FROM case_ref ORDER BY case_id, ref")).all()
    assert [tuple(r) for r in rows] == [("RECT-2026-0001", "case:INC-2026-0003"), ("RECT-2026-0001", "code:P1")]

"""涉密 cases leave no free text in Prefect (issue #13 item 4): not in the flow run's
parameters (replaced by a redacted copy once the core stored the request), not in the
artifacts, not in the run logs. Runs the flows against the session's Prefect harness and
reads back what the Prefect API holds."""
from __future__ import annotations

import json
import time

import pytest
from support import run_flow

from models.db import session
from models.errors import DomainError

OFFICER, OFFICE_HEAD = "p-guo-tao", "p-sun-jianhua"
MARK = "（涉密内容不在 Prefect 中保存）"
# distinctive strings an operator types for a classified incident and its follow-ups
TITLE, DESCRIPTION, MEASURES = "甲乙丙机要室终端外联", "机要室第三号终端向境外地址外联丁戊己", "已拔除网线封存庚辛"
NOTE, CAUSE, HANDLING, HARM, LESSONS = "续报壬癸子丑", "原因寅卯辰巳", "处置午未申酉", "危害戌亥天地", "教训玄黄宇宙"
SECRETS = (TITLE, DESCRIPTION, MEASURES, NOTE, CAUSE, HANDLING, HARM, LESSONS)


def report_params(**over):
    params = dict(actor=OFFICER, unit="SQ03", category="secret_leak", level="relatively_major", title=TITLE,
                  description=DESCRIPTION, measures=MEASURES, discovered_at="2026-11-28T10:00:00+08:00",
                  classified=True)
    params.update(over)
    return params


def show(case_id: str) -> dict:
    from models.case_view import case_json, load_case

    with session() as s:
        return case_json(s, load_case(s, case_id))


def run_ids(case_id: str) -> list[str]:
    """The flow runs that acted on a case, from its audit events."""
    return list(dict.fromkeys(e["flow_run_id"] for e in show(case_id)["events"] if e["flow_run_id"]))


def drain_logs() -> None:
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)


def prefect_record(run_id: str, expect_log: str = "") -> dict:
    """What the Prefect API holds about one flow run: the run (parameters, state),
    its artifacts and its log lines (waiting for ``expect_log`` to arrive)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

    drain_logs()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)])))
        for _ in range(50):
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)])))
            if any(expect_log in log.message for log in logs):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"log line {expect_log!r} never arrived: {[log.message for log in logs]}")
    return {"run": run.model_dump(mode="json"), "parameters": run.parameters,
            "artifacts": [{"description": a.description, "data": a.data} for a in artifacts],
            "logs": [log.message for log in logs]}


def assert_no_secrets(record: dict) -> None:
    text = json.dumps(record, ensure_ascii=False)
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{leaked} found in what Prefect keeps"


@pytest.mark.usefixtures("prefect_harness")
def test_a_classified_incident_leaves_no_free_text_in_prefect(org, clock):
    clock("2026-11-28T10:30:00+08:00")
    case_id = run_flow("report-incident", **report_params())["case_id"]
    [report_run] = run_ids(case_id)
    record = prefect_record(report_run, expect_log=f"事件报告 → {case_id}")
    assert_no_secrets(record)
    request = record["parameters"]["request"]
    assert (request["title"], request["description"], request["measures"]) == (MARK, MARK, MARK)
    assert request["classified"] is True and request["unit"] == "SQ03" and request["actor"] == OFFICER
    assert request["discovered_at"].startswith("2026-11-28T")  # ids, choices and times are kept
    [artifact] = [a for a in record["artifacts"] if a["description"].startswith("事件报告")]
    assert f"**{case_id}** （涉密事项）" in artifact["data"]
    assert any("发出公文：" in line and line.endswith("（涉密事项）") for line in record["logs"]), record["logs"]
    # the domain database keeps what was typed
    case = show(case_id)
    assert case["title"] == TITLE and case["data"]["description"] == DESCRIPTION

    # follow-ups on the classified case: a 续报, the resolution and the summary (whose 公文 title
    # carries the case title)
    clock("2026-11-28T11:00:00+08:00")
    run_flow("update-incident", actor=OFFICER, case_id=case_id, note=NOTE, resolved=True)
    out = run_flow("submit-incident-summary", actor=OFFICER, case_id=case_id, cause=CAUSE, handling=HANDLING,
                   harm=HARM, lessons=LESSONS)
    assert out["state"] == "closed"
    summary = [n for n in show(case_id)["notices"] if n["kind"] == "incident_summary"]
    assert TITLE in summary[0]["title"]  # in the domain database the 总结报告 names the incident
    _, update_run, summary_run = run_ids(case_id)
    record = prefect_record(update_run, expect_log=f"事件续报 → {case_id}")
    assert_no_secrets(record)
    assert record["parameters"]["request"]["note"] == MARK
    record = prefect_record(summary_run, expect_log=f"事件处置总结报告 → {case_id}")
    assert_no_secrets(record)
    assert {k: record["parameters"]["request"][k] for k in ("cause", "handling", "harm", "lessons")} == dict.fromkeys(
        ("cause", "handling", "harm", "lessons"), MARK)

    # the accountability proposal (c2: a secret leak) inherits 涉密: dismissing it with a reason
    proposal = _proposals_of(case_id)[0]
    reason = "不予问责理由乾坤"
    run_flow("dismiss-accountability", actor=OFFICE_HEAD, case_id=proposal, reason=reason)
    dismiss_run = run_ids(proposal)[-1]
    record = prefect_record(dismiss_run, expect_log=f"→ {proposal}")
    assert reason not in json.dumps(record, ensure_ascii=False)
    assert record["parameters"]["request"]["reason"] == MARK


def _proposals_of(case_id: str) -> list[str]:
    from sqlmodel import select

    from models.case import Case

    with session() as s:
        rows = s.exec(select(Case).where(Case.proposed_from == case_id)).all()
        assert rows and all(c.classified for c in rows)
        return [c.id for c in rows]


@pytest.mark.usefixtures("prefect_harness")
def test_a_refused_classified_report_keeps_no_free_text_either(org, clock):
    """Refused (a discovery time in the future): nothing is stored in the domain database, and
    what the operator typed does not stay in Prefect."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    clock("2026-11-28T10:30:00+08:00")
    with pytest.raises(DomainError):
        run_flow("report-incident", **report_params(discovered_at="2026-11-28T11:00:00+08:00"))
    with get_client(sync_client=True) as client:
        [run] = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["report-incident"])),
                                      sort=FlowRunSort.START_TIME_DESC, limit=1)
    assert run.state.is_failed()
    record = prefect_record(str(run.id), expect_log="未办理")
    assert_no_secrets(record)
    assert record["parameters"]["request"]["title"] == MARK


@pytest.mark.usefixtures("prefect_harness")
def test_a_case_that_is_not_classified_keeps_its_parameters(org, clock):
    clock("2026-11-28T10:30:00+08:00")
    params = report_params(classified=False, category="ransomware")
    case_id = run_flow("report-incident", **params)["case_id"]
    [run_id] = run_ids(case_id)
    record = prefect_record(run_id, expect_log=f"事件报告 → {case_id}")
    request = record["parameters"]["request"]
    assert (request["title"], request["description"], request["measures"]) == (TITLE, DESCRIPTION, MEASURES)
    assert any(TITLE in a["data"] for a in record["artifacts"])


@pytest.mark.usefixtures("prefect_harness")
def test_the_sweep_of_a_classified_case_shows_no_title(org, clock):
    """The sweep's 催报通知 on a classified incident: its run log and the 督办台账 carry no title."""
    clock("2026-11-28T10:30:00+08:00")
    case_id = run_flow("report-incident", **report_params())["case_id"]
    clock("2026-11-28T14:05:00+08:00")  # external report due 14:00
    assert run_flow("sweep-deadlines")["acted"] >= 1
    sweep_run = run_ids(case_id)[-1]
    record = prefect_record(sweep_run, expect_log="巡检完成")
    assert_no_secrets(record)
    assert any(case_id in a["data"] for a in record["artifacts"])  # the ledger lists the case, by its id


def test_redaction_reaches_nested_free_text_and_keeps_ids():
    """Accepting a classified proposal: the reasons given for chain edits are free text too."""
    from flows.common import redacted
    from models.accountability import OpenAccountabilityRequest

    req = OpenAccountabilityRequest.model_validate({
        "actor": OFFICE_HEAD, "case_id": "ACC-2026-0001", "weak_supervision": True,
        "chain_add": [{"person": OFFICER, "reason": "理由甲"}], "chain_remove": []})
    out = redacted(req)
    assert out["chain_add"] == [{"person": OFFICER, "reason": MARK, "role": out["chain_add"][0]["role"]}]
    assert (out["actor"], out["case_id"], out["weak_supervision"], out["facts"]) == (
        OFFICE_HEAD, "ACC-2026-0001", True, "")  # empty text stays empty: nothing to hide
    assert OpenAccountabilityRequest.model_validate(out).chain_add[0].person == OFFICER  # still a valid request

"""The public CLI surface of SPEC §5, driven as a user would: ``dutyflow …`` in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import db_state

DUTYFLOW = [sys.executable, "-m", "deployments.cli"]


def cli(*args: str, env: dict | None = None, check: int | None = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([*DUTYFLOW, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
    return proc


def cli_json(*args: str, **kw):
    return json.loads(cli(*args, **kw).stdout)


def test_init_is_idempotent_and_org_show_round_trips(db, tmp_path):
    cli("init", "--demo")
    first = db_state()
    cli("init", "--demo")
    assert db_state() == first
    org = cli_json("org", "show", "--json")
    assert {u["code"] for u in org["units"]} >= {"JD01", "WXB", "JGW", *(f"SQ{i:02d}" for i in range(1, 13))}
    assert set(org["posts"][0]) == {"unit", "person", "role", "valid_from", "valid_to"}
    dumped = tmp_path / "org.json"
    dumped.write_text(json.dumps(org, ensure_ascii=False), encoding="utf-8")
    cli("org", "load", str(dumped))
    assert db_state() == first


def test_org_load_refuses_a_bad_file_whole(db, tmp_path):
    cli("init", "--demo")
    before = db_state()
    bad = tmp_path / "bad.yaml"
    bad.write_text("units: []\npersons:\n  - {id: p-new, name: 新人}\nposts:\n"
                   "  - {unit: SQ99, person: p-new, role: principal, valid_from: 2026-01-01}\n", encoding="utf-8")
    proc = cli("org", "load", str(bad), check=2)
    assert "SQ99" in proc.stderr and "第 5 行" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert db_state() == before


def test_calendar_show_and_load(db, tmp_path):
    cli("init")
    out = cli("calendar", "show", "2026").stdout
    assert "2026-02-14  上班" in out and "2026-10-10  上班" in out
    assert "无工作日历数据" in cli("calendar", "show", "2027").stdout
    f = tmp_path / "2027.yaml"
    f.write_text("year: 2027\nsource: test\nholidays:\n  - {name: 元旦, days: [2027-01-01]}\nworkdays: []\n",
                 encoding="utf-8")
    cli("calendar", "load", str(f))
    assert "2027-01-01  休息  元旦" in cli("calendar", "show", "2027").stdout


def test_criteria_per_year_load_show_and_use(db, tmp_path, monkeypatch):
    """`dutyflow criteria load FILE --year Y`: checked (a bad file refused whole, exit 2, with the
    items named), stored for that year only, copied by that year's start, then fixed."""
    import yaml

    from models.scoring import DEFAULT_CATALOGUE as DEFAULT_CRITERIA

    cli("init", "--demo")
    data = yaml.safe_load(DEFAULT_CRITERIA.read_text(encoding="utf-8"))
    items = {it["id"]: it for it in data["items"]}
    items["training"]["max_points"], items["publicity"]["max_points"] = 8, 2  # same total, other weights
    good, bad = tmp_path / "c2026.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    items["publicity"]["max_points"] = 3
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    before = db_state()
    proc = cli("criteria", "load", str(bad), "--year", "2026", check=2)
    assert "合计 101 分" in proc.stderr and "publicity 3" in proc.stderr
    assert db_state() == before
    assert cli_json("criteria", "load", str(good), "--year", "2026") == {
        "year": 2026, "source": "c2026.yaml", "items": len(items), "total": 100}
    shown = cli_json("criteria", "show", "--year", "2026", "--json")
    assert {it["id"]: it["max_points"] for it in shown["items"]}["training"] == 8
    assert "c2026.yaml" in shown["source"]
    assert {it["id"]: it["max_points"] for it in cli_json("criteria", "show", "--year", "2027", "--json")["items"]
            }["training"] == 6  # other years keep the default
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-12-01T10:00:00+08:00")
    from models import assessment as a
    from models.requests import validate_request

    cycle = a.start(validate_request(a.StartAssessmentRequest, {"actor": "system", "year": 2026, "units": ["SQ01"]})).case
    assert {it["id"]: it["max_points"] for it in cycle.data["catalogue"]["items"]}["training"] == 8
    proc = cli("criteria", "load", str(good), "--year", "2026", check=2)
    assert "已启动" in proc.stderr and cycle.id in proc.stderr


def test_report_show_ledger_sweep_audit(db, harness_env, sink, tmp_path):
    from conftest import demo_org_text

    env = {**harness_env, "DUTYFLOW_NOW": "2026-11-28T10:30:00+08:00"}
    cli("init", env=env)
    org = tmp_path / "org.yaml"
    org.write_text(demo_org_text(sink.port), encoding="utf-8")
    cli("org", "load", str(org), env=env)
    params = {"actor": "p-guo-tao", "unit": "SQ03", "category": "defacement", "level": "较大（Ⅲ级）",
              "title": "门户网站被篡改", "description": "首页被篡改", "discovered_at": "2026-11-28T10:00:00+08:00"}
    proc = cli("run", "report-incident", "--params", json.dumps(params, ensure_ascii=False), env=env)
    result = json.loads(proc.stdout)
    assert result["state"] == "reported" and result["case_id"] == "INC-2026-0001"
    assert harness_env["PREFECT_API_URL"] in proc.stderr  # says which Prefect API it used

    case = cli_json("show", "INC-2026-0001", "--json", env=env)
    assert {"id", "kind", "state", "unit", "obligations", "events", "notices", "notifications",
            "proposed_from", "warnings"} <= set(case)
    assert case["kind"] == "incident" and case["unit"] == "SQ03"
    assert set(case["obligations"][0]) >= {"kind", "due_at", "status", "step", "calendar_unconfirmed"}
    assert set(case["events"][0]) >= {"seq", "type", "from_state", "to_state", "actor", "effective_at", "recorded_at"}
    assert case["events"][0]["flow_run_id"]
    assert set(case["notices"][0]) >= {"id", "kind", "doc_number", "title", "recipients"}
    assert {n["status"] for n in case["notifications"]} == {"sent"}
    assert [c["id"] for c in cli_json("cases", "--kind", "incident", "--json", env=env)] == ["INC-2026-0001"]
    assert cli_json("cases", "--state", "closed", "--json", env=env) == []

    ledger = cli_json("ledger", "--json", env=env)
    assert [r["obligation"] for r in ledger] == ["external_report", "handling"]  # soonest first
    assert cli_json("ledger", "--overdue", "--json", env=env) == []

    later = {**env, "DUTYFLOW_NOW": "2026-11-28T15:00:00+08:00"}
    swept = cli_json("sweep", env=later)
    assert swept["acted"] == 1 and swept["at"] == "2026-11-28T15:00:00+08:00"  # shown in Beijing time
    assert cli_json("sweep", env=later)["acted"] == 0
    overdue = cli_json("ledger", "--overdue", "--json", env=later)
    assert [(r["case"], r["obligation"], r["step"]) for r in overdue] == [("INC-2026-0001", "external_report", 1)]
    assert [(r["case_id"], r["kind"], r["due_at"], r["status"]) for r in overdue] == [  # the keys of show
        ("INC-2026-0001", "external_report", "2026-11-28T14:00:00+08:00", "missed")]
    assert cli_json("ledger", "--unit", "SQ03", "--json", env=later) == cli_json("ledger", "--json", env=later)
    assert overdue[0]["responsible"][0]["person"] == "p-guo-tao"

    notice_id = case["notices"][0]["id"]
    out = tmp_path / "notice.html"
    cli("notice", "render", notice_id, "--format", "html", "--out", str(out), env=env)
    assert case["notices"][0]["doc_number"] in out.read_text(encoding="utf-8")
    assert "审计链完整" in cli("audit", "verify", env=env).stdout


def test_cases_lists_the_four_processes_and_activities_only_when_asked(db, harness_env):
    cli("init", "--demo")
    env = {**harness_env, "DUTYFLOW_NOW": "2026-11-28T10:30:00+08:00"}
    activity = {"actor": "p-guo-tao", "unit": "SQ03", "kind": "meeting", "date": "2026-11-20",
                "title": "网络安全专题会议", "participants": ["p-zhu-hongwei"]}
    act_id = cli_json("run", "record-activity", "--params", json.dumps(activity, ensure_ascii=False), env=env)["case_id"]
    risk = {"actor": "p-sun-jianhua", "unit": "SQ03", "source": "X区网安〔2026〕3号通报", "risk_level": "low",
            "problem": "弱口令", "requirement": "修改口令"}
    rct_id = cli_json("run", "notify-risk", "--params", json.dumps(risk, ensure_ascii=False), env=env)["case_id"]
    listed = cli_json("cases", "--json", env=env)
    assert [c["id"] for c in listed] == [rct_id]  # 工作记录 are records, not cases of SPEC §5
    assert {c["kind"] for c in listed} <= {"incident", "rectification", "accountability", "assessment"}
    assert [c["id"] for c in cli_json("cases", "--kind", "activity", "--json", env=env)] == [act_id]


def test_run_bad_input_exits_2_with_one_line_and_writes_nothing(db, harness_env):
    cli("init", "--demo")
    before = db_state()
    env = {**harness_env, "DUTYFLOW_NOW": "2026-11-28T10:30:00+08:00"}
    base = {"actor": "p-guo-tao", "unit": "SQ03", "category": "defacement", "level": "relatively_major",
            "title": "标题", "description": "描述", "discovered_at": "2026-11-28T10:00:00+08:00"}
    for params, needle in [
        ({**base, "level": "huge"}, "level"),
        ({**base, "unit": "SQ99"}, "unit"),
        ({**base, "effective_at": "2026-11-29T10:00:00+08:00"}, "effective_at"),
    ]:
        proc = cli("run", "report-incident", "--params", json.dumps(params), env=env, check=2)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("错误：") and needle in lines[0], proc.stderr
        assert proc.stdout == ""
    assert cli("run", "no-such-flow", env=env, check=2).stderr.count("\n") == 1
    for params, needle in [  # the sweep's request: actor (default system), nothing else but batch_size
        ({"bogus": 1}, "bogus"),
        ({"effective_at": "2026-11-28T09:00:00+08:00"}, "effective_at"),
        ({"actor": "p-nobody"}, "actor"),
        ({"batch_size": 0}, "batch_size"),
    ]:
        proc = cli("run", "sweep-deadlines", "--params", json.dumps(params), env=env, check=2)
        assert proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
    for args, needle in [
        (("cases", "--kind", "incidents", "--json"), "--kind"),
        (("cases", "--state", "nope", "--json"), "--state"),
        (("cases", "--kind", "incident", "--state", "published", "--json"), "reported（已报告）"),
        (("cases", "--unit", "SQ99", "--json"), "--unit"),
        (("ledger", "--unit", "SQ99", "--json"), "--unit"),
    ]:
        proc = cli(*args, check=2)
        assert proc.stderr.count("\n") == 1 and needle in proc.stderr and proc.stdout == "", proc.stderr
    assert db_state() == before


def _tamper(sql: str) -> None:
    """Edit the audit log behind the application's back (the trigger dropped first)."""
    from models.db import engine

    eng = engine()
    with eng.begin() as c:
        if eng.dialect.name == "sqlite":
            c.exec_driver_sql("DROP TRIGGER audit_event_no_update")
            c.exec_driver_sql("DROP TRIGGER audit_event_no_delete")
        else:
            c.exec_driver_sql("DROP TRIGGER audit_event_no_change ON audit_event")
        c.exec_driver_sql(sql)


def _scenario() -> None:
    from models import incident
    from models.requests import validate_request

    os.environ["DUTYFLOW_NOW"] = "2026-11-28T10:30:00+08:00"
    params = {"actor": "p-guo-tao", "unit": "SQ03", "category": "malware", "level": "general",
              "title": "病毒", "description": "终端感染", "discovered_at": "2026-11-28T10:00:00+08:00"}
    for _ in range(2):
        case = incident.report(validate_request(incident.ReportIncidentRequest, params)).case
    incident.update(validate_request(incident.UpdateIncidentRequest,
                                     {"actor": "p-guo-tao", "case_id": case.id, "note": "清除", "resolved": True}))


@pytest.mark.parametrize("sql,needle", [
    ("UPDATE audit_event SET actor = 'p-someone' WHERE id = 2", "事件 2"),
    ("DELETE FROM audit_event WHERE id = 2", "事件 2 缺失"),
    ("DELETE FROM audit_event WHERE id = 3", "末尾"),
])
def test_audit_verify_detects_tampering(org, monkeypatch, sql, needle):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T10:30:00+08:00")
    _scenario()
    ok = cli("audit", "verify")
    assert "3 条事件" in ok.stdout
    _tamper(sql)
    bad = cli("audit", "verify", check=1)
    assert needle in bad.stdout, bad.stdout


def test_audit_rows_cannot_be_changed_through_the_db(org, monkeypatch):
    import sqlalchemy as sa

    from models.db import engine

    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T10:30:00+08:00")
    _scenario()
    for sql in ("UPDATE audit_event SET actor = 'x' WHERE id = 1", "DELETE FROM audit_event WHERE id = 1"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with engine().begin() as c:
                c.exec_driver_sql(sql)
    assert "审计链完整" in cli("audit", "verify").stdout

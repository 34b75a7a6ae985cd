"""Issue #13 item 6: a hostile request gives one Chinese line naming the field, exit 2, and
writes nothing — the same on SQLite and PostgreSQL — and every JSON the CLI prints is strict.

Most cases drive ``deployments.cli.main`` in-process (the request is refused before any flow
run); a few go through the real ``dutyflow`` subprocess, and some reach the request models
and the flows directly (a deployment run validates the same model).
"""
from __future__ import annotations

import json
import os
import re

import pytest
from conftest import db_state
from test_cli import cli

NOW = "2026-11-28T10:30:00+08:00"
INCIDENT = {"actor": "p-guo-tao", "unit": "SQ03", "category": "defacement", "level": "relatively_major",
            "title": "门户网站被篡改", "description": "首页被篡改", "discovered_at": "2026-11-28T10:00:00+08:00"}
RISK = {"actor": "p-sun-jianhua", "unit": "SQ03", "source": "X区网安〔2026〕3号通报", "risk_level": "low",
        "problem": "弱口令", "requirement": "修改口令"}
ACCOUNTABILITY = {"actor": "p-sun-jianhua", "unit": "SQ03", "circumstance": "c6_other", "facts": "违规外联",
                  "facts_date": "2026-11-10", "involved_persons": ["p-guo-tao"]}
BASES = {"report-incident": INCIDENT, "notify-risk": RISK, "open-accountability": ACCOUNTABILITY}


def params_text(flow: str, field: str, raw: str) -> str:
    """The flow's good request with ``field`` set to the raw JSON text ``raw`` (so NaN,
    Infinity and 1e309 reach the CLI as they would be typed)."""
    head = re.split(r"[.\[]", field)[0]
    body = {k: v for k, v in BASES[flow].items() if k != head}
    text = json.dumps(body, ensure_ascii=False)
    return f'{text[:-1]}, "{head}": {raw}}}'


def run(capsys, *args: str) -> tuple[int, str, str]:
    """``dutyflow ARGS`` in-process: (exit status, stdout, stderr)."""
    from deployments.cli import main

    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def env_kept():
    """`dutyflow run` sets Prefect environment defaults in-process: undone after the test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def ready(org, clock, env_kept, prefect_harness):
    """The demo org, the clock pinned, a Prefect API for the rare request that gets through."""
    clock(NOW)


def assert_refused(rc: int, out: str, err: str, field: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and out == "", err
    assert len(lines) == 1 and lines[0].startswith("错误："), err
    assert field in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


YEAR_RANGE = "2000年1月1日 至 2099年12月31日"
FINITE = "不是有效数字"
TOO_BIG = "绝对值不超过 9007199254740991"
CONTROL = "含有控制字符"

BAD = [
    # 1. times: year 1 (underflows converting to UTC), year 9999 west of Greenwich (overflows),
    #    and far before any sensible time
    ("report-incident", "discovered_at", '"0001-01-01T00:00:00+08:00"', [YEAR_RANGE]),
    ("report-incident", "discovered_at", '"9999-12-31T23:00:00-08:00"', [YEAR_RANGE]),
    ("report-incident", "discovered_at", '"1900-01-01T00:00:00+08:00"', [YEAR_RANGE]),
    ("report-incident", "occurred_at", '"0001-01-01T00:00:00+08:00"', [YEAR_RANGE]),
    ("report-incident", "effective_at", '"0001-01-01T00:00:00+08:00"', [YEAR_RANGE]),
    ("notify-risk", "due_at", '"0001-01-01T00:00:00+08:00"', [YEAR_RANGE]),
    ("notify-risk", "due_at", '"9999-12-31T23:59:59-12:00"', [YEAR_RANGE]),
    ("open-accountability", "facts_date", '"0001-01-01"', [YEAR_RANGE]),
    ("open-accountability", "collective_decision.date",
     '{"date": "0001-01-01", "participants": ["p-zhu-hongwei"]}', [YEAR_RANGE]),
    # 2. NUL and other control characters (long text keeps line breaks and tabs; one-line fields do not)
    ("report-incident", "title", '"门户\\u0000网站"', [CONTROL, "U+0000"]),
    ("report-incident", "description", '"首页\\u0000被篡改"', [CONTROL, "U+0000"]),
    ("report-incident", "description", '"响铃\\u0007"', [CONTROL, "U+0007"]),
    ("report-incident", "title", '"两行\\n标题"', [CONTROL, "一行"]),
    ("report-incident", "description", '"孤立代理项\\ud800"', ["U+D800"]),
    ("report-incident", "involved_persons[0]", '["p-guo\\u0000tao"]', [CONTROL]),
    ("notify-risk", "problem", '"弱口令\\u0000"', [CONTROL]),
    ("notify-risk", "problem_code", '"W\\u001bP"', [CONTROL]),
    ("open-accountability", "facts", '"\\u0000"', [CONTROL]),
    ("open-accountability", "chain_add[0].reason",
     '[{"person": "p-he-xiaoli", "reason": "分管\\u0000"}]', [CONTROL]),
    # 3. numbers: NaN and ±Infinity (not JSON), 1e309 (→ inf), integers beyond any column
    ("report-incident", "downtime_hours", "NaN", [FINITE]),
    ("report-incident", "downtime_hours", "Infinity", [FINITE]),
    ("report-incident", "direct_loss_yuan", "-Infinity", [FINITE]),
    ("report-incident", "direct_loss_yuan", "1e309", [FINITE]),
    ("report-incident", "downtime_hours", str(10**30), [TOO_BIG]),
    ("report-incident", "direct_loss_yuan", str(10**30), [TOO_BIG]),
    ("report-incident", "spread_views", str(10**30), [TOO_BIG]),
    ("report-incident", "affected_persons", str(2**63), [TOO_BIG]),
    ("report-incident", "classified", "NaN", [FINITE]),
    ("open-accountability", "weak_supervision", "Infinity", [FINITE]),
    # 5. unknown choices: the field, and what is allowed
    ("report-incident", "level", '"huge"', ["relatively_major", "较大（Ⅲ级）"]),
    ("report-incident", "category", '"meteor"', ["defacement", "cii_attack"]),
    ("report-incident", "reporter_path", '"nobody"', ["cii_operator", "central_organ", "other"]),
    ("notify-risk", "risk_level", '"critical"', ["high", "medium", "low"]),
    ("open-accountability", "circumstance", '"c99"', ["c1_defacement_unreported", "c6_other"]),
    ("open-accountability", "circumstance", "NaN", [FINITE]),
    ("open-accountability", "chain_add.0.role",
     '[{"person": "p-he-xiaoli", "reason": "分管", "role": "组长"}]', ["involved", "当事人"]),
]


@pytest.mark.parametrize("flow,field,raw,needles", BAD, ids=[f"{f}:{x}:{r[:24]}" for f, x, r, _ in BAD])
def test_bad_request_is_one_line_exit_2_and_writes_nothing(ready, capsys, flow, field, raw, needles):
    before = db_state()
    rc, out, err = run(capsys, "run", flow, "--params", params_text(flow, field, raw))
    assert_refused(rc, out, err, f"错误：{field}: ", *needles)
    assert db_state() == before


def test_unknown_case_ids_are_refused_naming_the_field(ready, capsys):
    """A case id that names no case (or a case of another process) reaches the flow and is refused there."""
    before = db_state()
    for flow, params in [
        ("open-accountability", {"actor": "p-sun-jianhua", "case_id": "ACC-2026-9999"}),
        ("acknowledge-risk", {"actor": "p-guo-tao", "case_id": "INC-2026-0001"}),
        ("update-incident", {"actor": "p-guo-tao", "case_id": "RECT-2026-0001", "note": "进展"}),
    ]:
        rc, out, err = run(capsys, "run", flow, "--params", json.dumps(params))
        assert_refused(rc, out, err, "case_id", params["case_id"])
    assert db_state() == before


def test_params_larger_than_the_policy_limit_are_refused(ready, capsys):
    from models import policy

    assert policy.get("requests", "max_kb") == 512
    before = db_state()
    big = dict(INCIDENT, description="很" * (200 * 1024))  # 600 KB of UTF-8
    rc, out, err = run(capsys, "run", "report-incident", "--params", json.dumps(big, ensure_ascii=False))
    assert_refused(rc, out, err, "--params", "请求过大", "超过 512 KB")
    deep = "[" * 5000 + "]" * 5000  # nested past json's recursion limit (still small)
    assert_refused(*run(capsys, "run", "report-incident", "--params", deep), "--params", "嵌套过深")
    assert db_state() == before


def test_a_field_or_a_request_too_large_is_refused_when_the_flow_is_called_directly(ready):
    """A deployment run (or a Python caller) gets no --params check: the request model refuses."""
    from models.errors import DomainError
    from models.incident import ReportIncidentRequest
    from models.requests import validate_request

    with pytest.raises(DomainError) as info:
        validate_request(ReportIncidentRequest, dict(INCIDENT, description="x" * (513 * 1024)))
    assert info.value.field == "description" and "超过 512 KB" in info.value.message
    with pytest.raises(DomainError) as info:  # each field under the limit, the whole over it
        validate_request(ReportIncidentRequest, dict(INCIDENT, description="x" * (300 * 1024), measures="y" * (300 * 1024)))
    assert info.value.field == "request" and "请求过大" in info.value.message


def test_long_text_keeps_line_breaks_and_tabs(ready):
    from models.incident import ReportIncidentRequest
    from models.requests import validate_request

    req = validate_request(ReportIncidentRequest, dict(INCIDENT, description="第一行\n\t第二行\r\n第三行"))
    assert req.description == "第一行\n\t第二行\r\n第三行"


@pytest.mark.parametrize("flow,params,field", [
    ("report-incident", dict(INCIDENT, title="门户\x00网站"), "title"),
    ("report-incident", dict(INCIDENT, downtime_hours=float("nan")), "downtime_hours"),
    ("report-incident", dict(INCIDENT, spread_views=10**30), "spread_views"),
    ("report-incident", dict(INCIDENT, discovered_at="0001-01-01T00:00:00+08:00"), "discovered_at"),
    ("notify-risk", dict(RISK, due_at="9999-12-31T23:59:59-12:00"), "due_at"),
    ("open-accountability", dict(ACCOUNTABILITY, circumstance="c99"), "circumstance"),
])
def test_flows_called_directly_refuse_before_writing(ready, flow, params, field):
    """The same bad requests given to the flow itself (as a deployment run gives them): the
    request model refuses during parameter validation, before the run writes anything."""
    from prefect.exceptions import ParameterTypeError

    from flows.registry import flows

    before = db_state()
    with pytest.raises(ParameterTypeError) as info:
        flows()[flow](request=params)
    assert field in str(info.value)
    assert db_state() == before


@pytest.mark.parametrize("flow,field,raw", [
    ("report-incident", "downtime_hours", "NaN"),
    ("report-incident", "discovered_at", '"0001-01-01T00:00:00+08:00"'),
    ("open-accountability", "circumstance", '"c99"'),
])
def test_the_real_cli_gives_one_line(db, flow, field, raw):
    """The console script itself (a subprocess): no traceback, one line, exit 2, nothing written."""
    cli("init", "--demo")
    before = db_state()
    proc = cli("run", flow, "--params", params_text(flow, field, raw), env={"DUTYFLOW_NOW": NOW}, check=2)
    assert_refused(proc.returncode, proc.stdout, proc.stderr, f"{field}: ")
    assert db_state() == before


@pytest.mark.parametrize("name,text,field", [
    ("org.json", '{"units": [], "persons": [{"id": "p-new", "name": "新\\u0000人"}], "posts": []}', "persons[0].name"),
    ("org.json", '{"units": [], "persons": [{"id": "p-new", "name": NaN}], "posts": []}', "persons[0].name"),
    ("org.yaml", "units: []\npersons:\n  - {id: p-new, name: .inf}\nposts: []\n", "persons[0].name"),
])
def test_an_org_file_with_nul_or_nan_is_refused_whole(ready, capsys, tmp_path, name, text, field):
    """`org load` reads a file, not a request, but PostgreSQL refuses NUL all the same."""
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    before = db_state()
    assert_refused(*run(capsys, "org", "load", str(f)), f"错误：{field}: {name}")
    assert db_state() == before


# ---------------------------------------------------------------- strict JSON output


def _no_constants(name: str):
    raise AssertionError(f"not JSON: {name}")


def strict(text: str):
    return json.loads(text, parse_constant=_no_constants)


def test_every_json_the_cli_prints_is_strict(ready, capsys, monkeypatch):
    """NaN/Infinity become null; times, dates, Decimals and enums become JSON values."""
    from datetime import date, datetime, timezone
    from decimal import Decimal

    import models.case_view
    import tasks.ledger
    from models import incident
    from models.requests import validate_request

    case = incident.report(validate_request(incident.ReportIncidentRequest, INCIDENT)).case
    odd = {"nan": float("nan"), "inf": float("inf"), "when": datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc),
           "day": date(2026, 11, 28), "money": Decimal("1.50"), "count": Decimal("3"),
           "level": incident.IncidentLevel.relatively_major, "tags": {"a"}}
    real_case_json, real_ledger = models.case_view.case_json, tasks.ledger.ledger_rows
    monkeypatch.setattr(models.case_view, "case_json", lambda *a, **k: {**real_case_json(*a, **k), "odd": odd})
    monkeypatch.setattr(tasks.ledger, "ledger_rows", lambda *a, **k: [{**r, "odd": odd} for r in real_ledger(*a, **k)])

    rc, out, _ = run(capsys, "show", case.id, "--json")
    assert rc == 0
    shown = strict(out)
    assert shown["id"] == case.id and shown["odd"] == {
        "nan": None, "inf": None, "when": "2026-11-28T10:00:00+08:00", "day": "2026-11-28",
        "money": 1.5, "count": 3, "level": "relatively_major", "tags": ["a"]}
    for args in (("cases", "--json"), ("ledger", "--json"), ("org", "show", "--json")):
        rc, out, _ = run(capsys, *args)
        assert rc == 0 and strict(out), args
    assert strict(run(capsys, "cases", "--json")[1])[0]["odd"]["nan"] is None
    assert strict(run(capsys, "ledger", "--json")[1])[0]["odd"]["inf"] is None


@pytest.mark.skipif(bool(os.environ.get("DUTYFLOW_TEST_POSTGRES_URL")),
                    reason="PostgreSQL's JSONB cannot hold NaN: only SQLite may have kept one from before the check")
def test_a_nan_stored_before_the_check_shows_as_null(ready, capsys):
    from models import incident
    from models.case import Case
    from models.db import session
    from models.requests import validate_request

    case_id = incident.report(validate_request(incident.ReportIncidentRequest, INCIDENT)).case.id
    with session() as s:  # as an unchecked run of an older version would have stored it
        case = s.get(Case, case_id)
        case.data = {**case.data, "figures": {**case.data["figures"], "downtime_hours": float("inf")}}
        s.add(case)
        s.commit()
    rc, out, _ = run(capsys, "show", case_id, "--json")
    assert rc == 0 and strict(out)["data"]["figures"]["downtime_hours"] is None

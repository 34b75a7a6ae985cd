"""The login gateway in front of the served Prefect API (issue 18, deployments/gateway.py),
driven through ``dutyflow serve`` as a browser or a script would: anonymous requests get 401
on every API path (health stays open); a person's run acts as that person (naming someone
else is refused, no run created); a bad request — a classified one included — is refused at
``create_flow_run`` with the CLI's one Chinese line and nothing of it reaches Prefect or the
console; a person may not touch the server's settings, deployments or another's run; wrong
passwords lock the account; a disabled account is refused at once."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.error

import pytest

from deployments.serve import api_json
from support import final_run, serving

PASSWORD = {"p-liu-jianguo": "liu-jianguo-pw-1", "p-liu-ting": "liu-ting-pw-22", "p-wu-jing": "wu-jing-pw-333"}
TOKEN = "gateway-test-service-token"


def _status(url: str, data=None, auth: str | None = "") -> tuple[int, dict]:
    try:
        return 200, api_json(url, data, auth=auth or "nobody:")
    except urllib.error.HTTPError as exc:
        import json

        return exc.code, json.loads(exc.read() or b"{}")


def _as(person: str) -> str:
    return f"{person}:{PASSWORD[person]}"


@pytest.fixture
def served(org, tmp_path, monkeypatch):
    from models import account
    from models.db import session

    with session() as s:
        for person, password in PASSWORD.items():
            account.set_password(s, person, password)
    with serving(tmp_path, monkeypatch, TOKEN) as (base, log_path):
        yield f"{base}/api", log_path


def _runs(base: str) -> list[dict]:
    return api_json(f"{base}/flow_runs/filter", {"flow_runs": {"tags": {"all_": ["业务办理"]}}})


REPORT = {"unit": "SQ01 东风社区", "category": "恶意程序感染", "level": "一般（Ⅳ级）", "title": "终端感染",
          "description": "一台办公终端感染病毒", "discovered_at": "2026-12-07T08:00:00+08:00"}


def test_the_gateway_logs_in_binds_the_actor_and_stores_nothing_it_refuses(served, monkeypatch):
    from conftest import db_state
    from deployments import doctor

    from models.case_view import case_json, load_case
    from models.db import session

    base, log_path = served
    # anonymous: 401 on every API path; the health probe stays open
    for path, data in (("/flow_runs/filter", {}), ("/deployments/filter", {}), ("/admin/settings", None),
                       ("/flows/filter", {}), ("/artifacts/filter", {})):
        assert _status(f"{base}{path}", data, auth="")[0] == 401, path
        assert _status(f"{base}{path}", data, auth="p-nobody:wrong-password")[0] == 401, path
    assert api_json(f"{base}/health", auth="") is True
    monkeypatch.setenv("PREFECT_API_URL", base)
    assert doctor._login() == doctor.Finding("登录", doctor.OK, f"{base} 拒绝匿名请求（401），须登录后办理")
    # a person reads, but not the server's settings
    assert _status(f"{base}/deployments/filter", {}, auth=_as("p-liu-ting"))[0] == 200
    assert _status(f"{base}/admin/settings", auth=_as("p-liu-ting"))[0] == 403
    deps = {d["name"]: d for d in api_json(f"{base}/deployments/filter", {})}
    dep = deps["report-incident"]["id"]
    assert "actor" not in deps["report-incident"]["parameter_openapi_schema"]["definitions"][
        "ReportIncidentRequest"]["properties"]  # the form no longer asks who you are
    # a person cannot change a deployment (its schedule, its parameters)
    assert _status(f"{base}/deployments/{dep}/pause_deployment", {}, auth=_as("p-liu-jianguo"))[0] == 403

    # 1. the 网信办's 刘建国 reports for SQ01: the run acts as him, and says how he logged in
    run = api_json(f"{base}/deployments/{dep}/create_flow_run", {"parameters": {"request": REPORT}},
                   auth=_as("p-liu-jianguo"))
    assert run["parameters"]["request"]["actor"] == "p-liu-jianguo"
    assert run["created_by"]["type"] == "dutyflow:password:p-liu-jianguo"
    assert final_run(base, run["id"])["state_type"] == "COMPLETED"
    with session() as s:
        from models.case import Case
        from sqlmodel import select

        [case_id] = s.exec(select(Case.id)).all()
        case = case_json(s, load_case(s, case_id))
    [event] = case["events"]
    assert event["actor"] == "p-liu-jianguo"
    from models.audit import AuditEvent

    with session() as s:
        [row] = s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id)).all()
        assert row.payload["login"] == {"person": "p-liu-jianguo", "method": "password"}
    artifacts = api_json(f"{base}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    assert any("办理人：刘建国" in (a["data"] or "") for a in artifacts if a["type"] == "markdown")
    # the ids of SPEC §5 are accepted as well as the form's labels (the domain's model checks them)
    by_ids = {**REPORT, "unit": "SQ01", "category": "malware", "level": "general", "title": "以编号填写的报告"}
    run = api_json(f"{base}/deployments/{dep}/create_flow_run", {"parameters": {"request": by_ids}},
                   auth=_as("p-liu-jianguo"))
    assert final_run(base, run["id"])["state_type"] == "COMPLETED"

    # 2. naming someone else is refused before Prefect stores anything
    before, state = len(_runs(base)), db_state()
    code, body = _status(f"{base}/deployments/{dep}/create_flow_run",
                         {"parameters": {"request": {**REPORT, "actor": "p-sun-jianhua"}}}, auth=_as("p-liu-ting"))
    assert code == 403 and "不能代他人（p-sun-jianhua）办理" in body["detail"], body
    # 3. a classified request Prefect's own check would keep in clear: refused with the CLI's line
    secret = {**REPORT, "classified": True, "title": "机密标题\u0000甲", "description": "涉密内容乙丙丁"}
    code, body = _status(f"{base}/deployments/{dep}/create_flow_run", {"parameters": {"request": secret}},
                         auth=_as("p-liu-ting"))
    cli = subprocess.run([sys.executable, "-m", "deployments.cli", "run", "report-incident", "--params",
                          __import__("json").dumps({**secret, "actor": "p-liu-ting", "unit": "SQ01"})],
                         capture_output=True, text=True, env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9"})
    assert code == 422 and body["detail"] == cli.stderr.strip().splitlines()[-1], (body, cli.stderr)
    old = {**REPORT, "classified": True, "description": "涉密内容乙丙丁", "discovered_at": "1926-12-07T08:00:00+08:00"}
    code, body = _status(f"{base}/deployments/{dep}/create_flow_run", {"parameters": {"request": old}},
                         auth=_as("p-liu-ting"))
    assert code == 422 and "discovered_at" in body["detail"] and "涉密内容" not in body["detail"], body
    assert len(_runs(base)) == before and db_state() == state  # no run, nothing in the domain either
    flows = api_json(f"{base}/flow_runs/filter", {})
    assert not any("涉密内容" in str(r["parameters"]) or "机密标题" in str(r["parameters"]) for r in flows)
    console = log_path.read_text()
    assert "涉密内容" not in console and "机密标题" not in console

    # 4. a person without the authority: the run fails with the core's Chinese line
    other = api_json(f"{base}/deployments/{dep}/create_flow_run", {"parameters": {"request": REPORT}},
                     auth=_as("p-wu-jing"))  # 红旗社区's liaison reporting for 东风社区
    failed = final_run(base, other["id"])
    assert failed["state_type"] == "FAILED"
    assert failed["state"]["message"].startswith("未办理（操作人）：无权办理 report-incident"), failed["state"]
    # another person may not retry or cancel it; its creator may
    code, _ = _status(f"{base}/flow_runs/{other['id']}/set_state",
                      {"state": {"type": "SCHEDULED"}, "force": True}, auth=_as("p-liu-ting"))
    assert code == 403

    # 5. wrong passwords lock the account (policy login.max_failures), the right one then fails too
    for _ in range(5):
        assert _status(f"{base}/flow_runs/filter", {}, auth="p-liu-ting:not-her-password")[0] == 401
    assert _status(f"{base}/flow_runs/filter", {}, auth=_as("p-liu-ting"))[0] == 401
    # 6. a disabled account is refused at once
    out = subprocess.run([sys.executable, "-m", "deployments.cli", "account", "disable", "p-wu-jing"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert _status(f"{base}/flow_runs/filter", {}, auth=_as("p-wu-jing"))[0] == 401
    assert "liu-jianguo-pw-1" not in log_path.read_text()  # passwords never logged


def test_account_commands(org):
    """account add reads the password from stdin only, refuses a short one and an unknown
    person (exit 2, nothing written); list never shows a hash."""
    import json

    from conftest import db_state

    cli = [sys.executable, "-m", "deployments.cli", "account"]
    before = db_state()
    short = subprocess.run([*cli, "add", "p-liu-ting", "--password-stdin"], input="short\n", capture_output=True, text=True)
    ghost = subprocess.run([*cli, "add", "p-ghost", "--password-stdin"], input="long-enough-pw\n", capture_output=True, text=True)
    no_stdin = subprocess.run([*cli, "add", "p-liu-ting"], capture_output=True, text=True)
    assert (short.returncode, ghost.returncode, no_stdin.returncode) == (2, 2, 2)
    assert "口令过短" in short.stderr and "p-ghost" in ghost.stderr and "--password-stdin" in no_stdin.stderr
    assert db_state() == before
    ok = subprocess.run([*cli, "add", "p-liu-ting", "--password-stdin"], input="long-enough-pw\n",
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    listed = subprocess.run([*cli, "list", "--json"], capture_output=True, text=True)
    [row] = json.loads(listed.stdout)
    assert row["person"] == "p-liu-ting" and row["disabled"] is False and "argon2" not in listed.stdout


def test_a_trusted_reverse_proxy_names_the_person_and_no_other_address_may(org, monkeypatch):
    """The street's unified login in front: its identity header is believed only from the
    addresses in DUTYFLOW_TRUSTED_PROXIES; from anywhere else it is refused (401), and it
    cannot name someone who may not log in."""
    import asyncio

    import httpx

    from deployments.gateway import Gateway
    from models import account
    from models.db import session

    seen = []

    async def prefect(scope, receive, send):  # stands in for Prefect's app: records who came through
        seen.append(scope.get("dutyflow.login"))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"[]"})

    monkeypatch.setenv("DUTYFLOW_TRUSTED_PROXIES", "10.1.2.3, 10.1.2.4")
    monkeypatch.setenv("DUTYFLOW_PROXY_HEADER", "X-Street-User")
    gateway = Gateway(prefect)
    with session() as s:
        account.set_password(s, "p-wu-jing", "wu-jing-pw-333")
        account.disable(s, "p-wu-jing")

    async def ask(client_ip: str, person: str) -> int:
        transport = httpx.ASGITransport(app=gateway, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            return (await c.post("/api/flow_runs/filter", json={}, headers={"X-Street-User": person})).status_code

    assert asyncio.run(ask("10.1.2.4", "p-liu-ting")) == 200
    assert (seen[-1].person, seen[-1].method) == ("p-liu-ting", "proxy")
    assert asyncio.run(ask("10.9.9.9", "p-liu-ting")) == 401  # the header from an address not configured
    assert asyncio.run(ask("127.0.0.1", "p-sun-jianhua")) == 401  # not even from this machine
    assert asyncio.run(ask("10.1.2.3", "p-nobody")) == 401  # no such person
    assert asyncio.run(ask("10.1.2.3", "p-wu-jing")) == 401  # a disabled account
    assert len(seen) == 1


def test_a_deployment_registered_through_the_gateway_gets_a_form_without_actor(org, monkeypatch):
    """``prefect deploy`` (the production topology) computes the form from the flow's signature,
    ``actor`` included: the gateway takes it out on the way in, so no form asks who you are."""
    import asyncio
    import json

    import httpx

    from deployments.gateway import Gateway
    from flows.registry import flows
    from prefect.utilities.callables import parameter_schema

    received = []

    async def prefect(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        received.append(json.loads(body))
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    monkeypatch.setenv("DUTYFLOW_SERVICE_TOKEN", TOKEN)
    schema = parameter_schema(flows()["report-incident"]).model_dump(exclude_unset=True)
    assert "actor" in schema["definitions"]["ReportIncidentRequest"]["properties"]

    async def register(path: str, method: str) -> int:
        transport = httpx.ASGITransport(app=Gateway(prefect), client=("10.0.0.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", auth=("service", TOKEN)) as c:
            r = await c.request(method, path, json={"name": "report-incident", "parameter_openapi_schema": schema})
            return r.status_code

    assert asyncio.run(register("/api/deployments/", "POST")) == 201
    assert asyncio.run(register("/api/deployments/0b6b8bb4-2f0e-4f47-a2a5-7a8a3d1f6c11", "PATCH")) == 201
    for body in received:
        form = body["parameter_openapi_schema"]["definitions"]["ReportIncidentRequest"]
        assert "actor" not in form["properties"] and "actor" not in form.get("required", [])
        assert "title" in form["properties"]

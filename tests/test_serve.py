"""Prefect-level checks: deployment forms (Chinese titles) and `dutyflow serve` as a process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from flows.registry import flows
from deployments.serve import api_json, free_port

#: Every flow = deployment = `dutyflow run` name of SPEC §5.
SPEC_FLOWS = {
    "report-incident", "update-incident", "submit-incident-summary", "notify-risk",
    "acknowledge-risk", "submit-rectification", "verify-rectification", "request-extension",
    "decide-extension", "open-accountability", "record-accountability-decision",
    "file-appeal", "decide-appeal", "dismiss-accountability", "start-annual-assessment", "record-activity",
    "submit-self-assessment", "score-assessment", "publish-assessment", "sweep-deadlines",
}


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text or "")


def test_every_flow_is_registered():
    assert set(flows()) == SPEC_FLOWS


def test_each_flow_takes_the_request_model_that_names_it():
    """The domain's list of actions (the CLI checks a request with it before loading Prefect)
    is the flows' own: the same names, in the same order, each with its flow's model."""
    from flows.registry import request_model
    from models.processes import requests

    assert list(requests()) == list(flows())
    assert all(requests()[name] is request_model(fl) for name, fl in flows().items())


def test_deployment_forms_carry_chinese_titles_and_descriptions(org):
    """Every field of every form (nested models included) has a Chinese title; units,
    persons and open cases are selects of Chinese labels from the registry, and the core
    takes the label as it takes the id."""
    from deployments.deployments import build
    from models.incident import ReportIncidentRequest

    deps = {d.name: d for d in build()}
    assert set(deps) == SPEC_FLOWS
    for name, dep in deps.items():
        assert _has_cjk(dep.description), name
        schema = dep._parameter_openapi_schema.model_dump()
        assert list(schema["properties"]) == ["request"], name
        for model, definition in schema["definitions"].items():
            for field, spec in definition.get("properties", {}).items():
                assert _has_cjk(spec.get("title", "")), f"{name}: {model}.{field} has no Chinese title: {spec}"
    report = deps["report-incident"]._parameter_openapi_schema.model_dump()["definitions"]
    assert "较大（Ⅲ级）" in report["IncidentLevel"]["enum"]  # operators pick Chinese labels
    fields = report["ReportIncidentRequest"]["properties"]
    assert "SQ03 建设社区" in fields["unit"]["enum"] and "actor" not in fields  # the login gateway binds who acts
    assert "孙建华（街道网络安全和信息化领导小组办公室（网信办） 主要负责人、网信办）" in fields["involved_persons"]["items"]["enum"]
    assert "刘婷（东风社区 网络安全联络员）" in fields["involved_persons"]["items"]["enum"]
    assert fields["discovered_at"]["format"] == fields["occurred_at"]["format"] == "date-time"  # pickers
    assert fields["effective_at"]["format"] == "date-time" and "default" not in fields["effective_at"]  # '' is no date
    req = ReportIncidentRequest.model_validate({
        "actor": "刘婷（东风社区 网络安全联络员）", "unit": "SQ01 东风社区", "category": "malware", "level": "general",
        "title": "t", "description": "d", "discovered_at": "2026-11-28T09:00:00+08:00",
        "involved_persons": ["王磊（东风社区 网络安全负责人）"]})
    assert (req.actor, req.unit, req.involved_persons) == ("p-liu-ting", "SQ01", ["p-wang-lei"])
    assert deps["sweep-deadlines"].schedules, "the sweep runs on a schedule"
    interval = deps["sweep-deadlines"].schedules[0].schedule.interval
    assert interval.total_seconds() == 60
    # the every-minute sweep runs keep to their own tag; the operators' runs to theirs
    assert deps["sweep-deadlines"].tags == ["dutyflow", "到期巡检"]
    assert {tuple(d.tags) for n, d in deps.items() if n != "sweep-deadlines"} == {("dutyflow", "业务办理")}


def test_serve_polls_every_second_and_prefect_keeps_runs_for_the_retention_period():
    from deployments.settings import serve_settings

    settings = serve_settings()
    assert settings["PREFECT_RUNNER_POLL_FREQUENCY"] == "1"  # a run submitted in the UI starts at once
    assert "flow_runs" in settings["PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED"].split(",")
    assert settings["PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD"] == str(90 * 86400)


def test_prefect_yaml_is_current_and_names_every_flow_with_its_schedule():
    """deployments/prefect.yaml (work-pool deployments, SPEC §6) is the generated file, its
    entrypoints load the flows of the same names, and its schedules are serve's."""
    import yaml
    from prefect.flows import load_flow_from_entrypoint

    from deployments import prefect_yaml

    committed = prefect_yaml.FILE.read_text(encoding="utf-8")
    assert committed == prefect_yaml.render(), "regenerate: python -m deployments.prefect_yaml > deployments/prefect.yaml"
    deps = {d["name"]: d for d in yaml.safe_load(committed)["deployments"]}
    assert set(deps) == SPEC_FLOWS
    for name, dep in deps.items():
        assert load_flow_from_entrypoint(str(prefect_yaml.ROOT / dep["entrypoint"])).name == name
        assert dep["work_pool"]["name"] == "dutyflow" and _has_cjk(dep["description"])
    assert deps["sweep-deadlines"]["schedules"] == [{"interval": 60}]
    assert deps["start-annual-assessment"]["schedules"] == [{"cron": "0 9 1 12 *", "timezone": "Asia/Shanghai"}]
    assert sum(bool(d["schedules"]) for d in deps.values()) == 2




def test_serve_starts_lists_deployments_and_stops_on_sigint(db, tmp_path, monkeypatch):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(DUTYFLOW_HOME=str(tmp_path / "serve-home"), DUTYFLOW_SERVICE_TOKEN="serve-test-token")
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "service:serve-test-token")  # this test's API calls
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "deployments.cli", "serve", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        names: set[str] = set()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and names != SPEC_FLOWS:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                names = {d["name"] for d in api_json(f"{api}/deployments/filter", {})}
            except OSError:
                pass
            time.sleep(1)
        assert names == SPEC_FLOWS, (tmp_path / "serve.log").read_text()
        assert api_json(f"{api}/health") is True
        assert api_json(f"http://127.0.0.1:{port}/ui-settings")["api_url"] == api  # UI calls this port
        printed = (tmp_path / "serve.log").read_text()
        assert f"http://127.0.0.1:{port}" in printed
        deps = {d["name"]: d for d in api_json(f"{api}/deployments/filter", {})}
        defs = deps["report-incident"]["parameter_openapi_schema"]["definitions"]
        assert defs["ReportIncidentRequest"]["properties"]["unit"]["title"] == "发生单位"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        with pytest.raises(OSError):
            api_json(f"{api}/health")
        assert not (tmp_path / "serve-home" / "serve.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_the_served_prefect_sqlite_queues_writers_instead_of_answering_busy(tmp_path, monkeypatch):
    """Prefect's DEFERRED SQLite transactions that read, then write while another connection
    wrote, fail at once ("database is locked": a 503 and an error toast in the UI). The server
    of `dutyflow serve` begins them IMMEDIATE (deployments/prefect_server.py): they queue."""
    import asyncio

    from sqlalchemy import text
    from prefect.server.database import configurations as conf

    from deployments.prefect_server import writers_queue_on_sqlite

    def scenario(name: str) -> tuple[int, list[str]]:
        async def run():
            config = conf.AioSqliteConfiguration(connection_url=f"sqlite+aiosqlite:///{tmp_path / name}",
                                                 timeout=30)
            engine = await config.engine()
            async with engine.begin() as c:
                await c.execute(text("CREATE TABLE t (x INTEGER)"))
            errors: list[str] = []

            async def writer(i: int):
                session = await config.session(engine)
                try:
                    async with session:
                        async with config.begin_transaction(session):
                            await session.execute(text("SELECT count(*) FROM t"))
                            await asyncio.sleep(0.05)  # the others read meanwhile
                            await session.execute(text("INSERT INTO t VALUES (:i)"), {"i": i})
                except Exception as exc:  # noqa: BLE001 - what the API would answer 503 for
                    errors.append(str(exc).splitlines()[0])

            await asyncio.gather(*(writer(i) for i in range(6)))
            async with engine.connect() as c:
                rows = (await c.execute(text("SELECT count(*) FROM t"))).scalar_one()
            await engine.dispose()
            return rows, errors

        return asyncio.run(run())

    rows, errors = scenario("as-prefect-has-it.db")
    assert errors and all("database is locked" in e for e in errors) and rows == 6 - len(errors)
    # restore Prefect's own method when the test ends: the test harness's server shares the class
    monkeypatch.setattr(conf.AioSqliteConfiguration, "begin_transaction",
                        conf.AioSqliteConfiguration.begin_transaction)
    writers_queue_on_sqlite()
    assert scenario("served.db") == (6, [])

"""The production topology (SPEC §6): a Prefect server on PostgreSQL, the domain database on
PostgreSQL, deployments from ``deployments/prefect.yaml`` on a ``process`` work pool, and two
workers (``dutyflow worker --pool dutyflow``: Prefect's process worker, runs forked) taking runs at once — the sweep's schedule
and manual sweeps on both. Incidents and risks are submitted together while a seeded
schedule kills a worker with kill -9 (the worker and every flow run it started, as when its
machine dies) and starts another in its place: 10 + 10 runs and 5 kills here, 50 + 50 and 20
kills in ``benchmarks/soak_topology.py``. In the end every request is applied exactly once, every step of the sweep is taken once, every recipient
holds every message once (a message whose sender died mid-request is 结果不明, held at most
once and never resent), and the audit chain verifies.

PostgreSQL only (``DUTYFLOW_TEST_POSTGRES_URL``): the topology is PostgreSQL's.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import PG_URL, Sink, demo_org_text
from deployments.serve import api_json, free_port

#: The service credential of this topology's server, workers and CLI (behind the login gateway).
SERVICE_TOKEN = "topology-service-token-for-tests"

pytestmark = pytest.mark.skipif(not PG_URL, reason="生产拓扑测试需要 PostgreSQL：设置 DUTYFLOW_TEST_POSTGRES_URL 后运行")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SEED = int(os.environ.get("DUTYFLOW_TOPOLOGY_SEED", "20261203"))
BEIJING = timezone(timedelta(hours=8))
#: CI's size proves crash recovery (20 runs, 5 kills); ``benchmarks/soak_topology.py`` runs the
#: full soak (50 + 50 runs, 20 kills) through the same test by these variables.
INCIDENTS = RISKS = int(os.environ.get("DUTYFLOW_TOPOLOGY_RUNS", "10"))
KILLS = int(os.environ.get("DUTYFLOW_TOPOLOGY_KILLS", "5"))
#: a run without a heartbeat for this long is taken as dead (policy runs.stall_seconds);
#: the workers send one every 30 s, Prefect's shortest interval
STALL_SECONDS = 75


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first found, then theirs), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(proc: subprocess.Popen) -> int:
    """kill -9 a worker and every process it started (its flow runs), as a dead machine would."""
    victims = [proc.pid, *_descendants(proc.pid)]
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    return len(victims)


class Topology:
    """The processes and addresses of one production-like installation on this machine."""

    def __init__(self, tmp: Path, sink: Sink):
        import sqlalchemy as sa
        import yaml

        self.tmp, self.sink = tmp, sink
        suffix = uuid.uuid4().hex[:8]
        self.databases = [f"dutyflow_topo_prefect_{suffix}", f"dutyflow_topo_domain_{suffix}"]
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            for name in self.databases:
                c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        base = sa.engine.make_url(PG_URL)
        prefect_db = base.set(drivername="postgresql+asyncpg", database=self.databases[0])
        self.domain_url = base.set(database=self.databases[1]).render_as_string(hide_password=False)
        port = free_port()
        self.api = f"http://127.0.0.1:{port}/api"
        policy = yaml.safe_load((ROOT / "deployments" / "policy.yaml").read_text(encoding="utf-8"))
        policy["runs"]["stall_seconds"] = STALL_SECONDS
        (tmp / "policy.yaml").write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
        (tmp / "org.yaml").write_text(demo_org_text(sink.port), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DUTYFLOW_"))}
        env.update({
            "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_API_URL": self.api,
            "DUTYFLOW_SERVICE_TOKEN": SERVICE_TOKEN, "PREFECT_API_AUTH_STRING": f"service:{SERVICE_TOKEN}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
            "DUTYFLOW_HOME": str(tmp / "home"), "DUTYFLOW_DATABASE_URL": self.domain_url,
            "DUTYFLOW_CODE_DIR": str(ROOT), "DUTYFLOW_POLICY": str(tmp / "policy.yaml"),
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30", "PREFECT_WORKER_QUERY_SECONDS": "1",
        })
        self.env = env
        self.server = subprocess.Popen(
            [sys.executable, "-m", "deployments.prefect_server", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)], cwd=ROOT, start_new_session=True,
            env={**env, "PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_db.render_as_string(hide_password=False),
                 "PREFECT_UI_ENABLED": "false"},
            stdout=open(tmp / "server.log", "wb"), stderr=subprocess.STDOUT)
        self.workers: dict[str, subprocess.Popen] = {}
        deadline = time.monotonic() + 120
        while True:
            try:
                api_json(f"{self.api}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    raise RuntimeError("Prefect server did not start: " + (tmp / "server.log").read_text()[-2000:])
                time.sleep(0.5)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """A command line of the installation (dutyflow, prefect), as the operator types it."""
        proc = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        assert proc.returncode == 0, f"{args}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        return proc

    #: What a client of this installation (this test, a benchmark) takes from its environment.
    CLIENT_KEYS = ("DUTYFLOW_DATABASE_URL", "DUTYFLOW_POLICY", "DUTYFLOW_HOME", "PREFECT_API_URL",
                   "DUTYFLOW_SERVICE_TOKEN", "PREFECT_API_AUTH_STRING")

    def install(self) -> None:
        """The README's once-only steps: schema, organisation, work pool, deployments."""
        self.run("dutyflow", "init")
        self.run("dutyflow", "org", "load", str(self.tmp / "org.yaml"))
        self.run("prefect", "work-pool", "create", "dutyflow", "--type", "process")
        self.run("prefect", "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml")

    def start_worker(self, name: str) -> None:
        self.workers[name] = subprocess.Popen(
            [str(BIN / "dutyflow"), "worker", "--pool", "dutyflow", "--name", name, "--limit", "4"],
            cwd=ROOT, env=self.env, start_new_session=True,
            stdout=open(self.tmp / f"{name}.log", "wb"), stderr=subprocess.STDOUT)

    def close(self) -> None:
        import sqlalchemy as sa

        for proc in [*self.workers.values(), self.server]:
            if proc.poll() is None:
                kill_tree(proc)
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            for name in self.databases:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def topology(tmp_path, monkeypatch):
    sink = Sink()
    topo = Topology(tmp_path, sink)
    try:
        topo.install()
        for key in Topology.CLIENT_KEYS:
            monkeypatch.setenv(key, topo.env[key])  # this process reads the same databases
        monkeypatch.delenv("DUTYFLOW_NOW", raising=False)
        yield topo
    finally:
        from models.db import dispose_all

        dispose_all()
        topo.close()
        sink.close()


@contextmanager
def api_client(api: str):
    """A Prefect client of the topology's server, whatever Prefect settings this thread has
    (the suite's test harness may be active: the environment alone would not win over it)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        yield client


def _ago(hours: float) -> str:
    return (datetime.now(BEIJING) - timedelta(hours=hours)).isoformat(timespec="seconds")


def incident_request(i: int) -> dict:
    """A 较大 incident found five hours ago: its external report (4 h) is overdue, so sweeps act on it."""
    return {"actor": "p-liu-ting", "unit": "SQ01", "category": "门户网站/平台被攻击篡改", "level": "较大（Ⅲ级）",
            "title": f"门户网站首页被篡改（{i:02d}）", "description": "首页被植入有害信息，已断开外网",
            "discovered_at": _ago(5)}


def risk_request(i: int) -> dict:
    """A high risk notified three days ago (back-dated): its 签收 day is past, so sweeps act on it."""
    return {"actor": "p-sun-jianhua", "unit": "SQ03", "source": "X区网安〔2026〕3号通报",
            "risk_level": "高风险（3个工作日）", "problem": f"后台弱口令（{i:02d}）", "requirement": "修改口令并启用双因素认证",
            "effective_at": _ago(72)}


def _submit_all(api: str, names_params: list[tuple[str, dict]]) -> list:
    from concurrent.futures import ThreadPoolExecutor

    with api_client(api) as client:
        ids = {name: client.read_deployment_by_name(f"{name}/{name}").id for name, _ in names_params}

    def submit(item):
        name, params = item
        with api_client(api) as c:
            return c.create_flow_run_from_deployment(ids[name], parameters={"request": params}).id

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(submit, names_params))


def _states(client, run_ids) -> dict:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    out = {}
    ids = list(run_ids)
    for i in range(0, len(ids), 100):
        for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids[i:i + 100])),
                                         limit=100):
            out[run.id] = run
    return out


def test_two_workers_incidents_and_risks_with_seeded_kills(topology):
    from sqlmodel import select

    from models.audit import AuditEvent
    from models.case import ActionRun, Case
    from models.db import session
    from models.notice import Notice, Notification, NotificationStatus
    from tasks.notify import _message
    from tasks.recovery import REDRIVE_PREFIX

    with api_client(topology.api) as client:  # `prefect deploy` through the login gateway: no form asks who you are
        form = client.read_deployment_by_name("report-incident/report-incident").parameter_openapi_schema
        assert "actor" not in form["definitions"]["ReportIncidentRequest"]["properties"]
    rng = random.Random(SEED)
    print(f"\ntopology seed {SEED} (DUTYFLOW_TOPOLOGY_SEED)")
    generation = {"w1": 0, "w2": 0}
    topology.start_worker("w1-0")
    topology.start_worker("w2-0")
    requests = [("report-incident", incident_request(i)) for i in range(INCIDENTS)] + \
               [("notify-risk", risk_request(i)) for i in range(RISKS)]
    rng.shuffle(requests)
    stop = threading.Event()
    sweeps: list = []

    def sweep_now_and_then():  # manual sweeps besides the every-minute schedule: both workers take them
        with api_client(topology.api) as c:
            dep = c.read_deployment_by_name("sweep-deadlines/sweep-deadlines").id
            while not stop.wait(15):
                sweeps.append(c.create_flow_run_from_deployment(dep).id)

    sweeper = threading.Thread(target=sweep_now_and_then, daemon=True)
    with api_client(topology.api) as client:
        run_ids = _submit_all(topology.api, requests)
        sweeper.start()
        killed_processes = 0
        for trial in range(KILLS):  # the seeded kill -9 trials
            time.sleep(rng.uniform(4.0, 9.0))
            slot = rng.choice(["w1", "w2"])
            name = f"{slot}-{generation[slot]}"
            killed_processes += kill_tree(topology.workers.pop(name))
            generation[slot] += 1
            topology.start_worker(f"{slot}-{generation[slot]}")
        started_drain = time.monotonic()
        deadline = started_drain + 900
        while True:
            states = _states(client, run_ids)
            pending = [r for r in states.values() if not r.state.is_final() or r.state.is_crashed()]
            if not pending:
                break
            assert time.monotonic() < deadline, f"{len(pending)} runs never finished: " + \
                ", ".join(f"{r.name} {r.state.name}" for r in pending[:10])
            time.sleep(3)
        drained = time.monotonic() - started_drain
        stop.set()
        sweeper.join()
        redriven = {rid for rid in run_ids
                    if any((st.message or "").startswith(REDRIVE_PREFIX) for st in client.read_flow_run_states(rid))}
    for proc in topology.workers.values():  # the last sweeps finish, then the installation stops
        proc.send_signal(signal.SIGINT)
    for proc in topology.workers.values():
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
    topology.run("dutyflow", "sweep")  # one more sweep, as the schedule would: delivers what is left

    assert {r.state.name for r in states.values()} == {"Completed"}, (
        Counter(r.state.name for r in states.values()),
        Counter(f"{r.name.split('-')[0]}: {r.state.message}" for r in states.values() if r.state.name != "Completed"))
    assert redriven, "no kill hit a running action: the trials proved nothing"
    with session() as s:
        cases = s.exec(select(Case)).all()
        incidents = sorted(c.title for c in cases if c.kind == "incident")
        risks = sorted(c.title for c in cases if c.kind == "rectification")
        applied = s.exec(select(ActionRun)).all()
        events = s.exec(select(AuditEvent)).all()
        notices = {n.id: n for n in s.exec(select(Notice)).all()}
        rows = s.exec(select(Notification)).all()
        expected_messages = {r.id: (lambda m: (m.title, m.text.rstrip()))(_message(notices[r.notice_id], r.person))
                             for r in rows}
    # every request applied exactly once: one case each, one applied action per submitted run
    assert incidents == sorted(incident_request(i)["title"] for i in range(INCIDENTS))
    assert len(risks) == RISKS and len(set(risks)) == RISKS
    assert sorted(a.flow_run_id for a in applied) == sorted(str(r) for r in run_ids)
    # every step once: no case has the same step (type and what it acted on) twice
    steps = Counter((e.case_id, e.type, json.dumps(e.payload, sort_keys=True, ensure_ascii=False))
                    for e in events if e.actor == "system")
    assert not [k for k, n in steps.items() if n > 1], "a sweep step was taken twice"
    swept = [e for e in events if e.actor == "system" and e.type != "propose"]
    assert swept, "the sweeps took no step: the requests were not overdue"
    # every message once: sent rows exactly once at the sink, 结果不明 at most once, nothing left
    # (Apprise drops a message's trailing newline on the way)
    received = Counter((m["_path"], m.get("title"), (m.get("message") or "").rstrip()) for m in topology.sink.messages)
    status = Counter(r.status for r in rows)
    assert set(status) <= {NotificationStatus.sent, NotificationStatus.unconfirmed}, status
    sent = Counter((r.person, *expected_messages[r.id]) for r in rows if r.status == NotificationStatus.sent)
    unknown = Counter((r.person, *expected_messages[r.id]) for r in rows if r.status == NotificationStatus.unconfirmed)
    for key in set(received) | set(sent) | set(unknown):
        assert sent[key] <= received[key] <= sent[key] + unknown[key], (key[:2], sent[key], unknown[key], received[key])
    # both workers took actions and sweeps (the worker's and the engine's lines are in its log; an
    # action a kill cut short before its engine spoke is still one the worker took)
    for slot in ("w1", "w2"):
        logs = "".join(p.read_text(errors="replace") for p in topology.tmp.glob(f"{slot}-*.log"))
        assert "for flow 'sweep-deadlines'" in logs, f"{slot} ran no sweep"
        assert "for flow 'report-incident'" in logs or "for flow 'notify-risk'" in logs or any(
            f"submitting flow run '{run_id}'" in logs for run_id in run_ids), f"{slot} took no action"
    replays = sum(p.read_text(errors="replace").count("本次运行在中断前已办理") for p in topology.tmp.glob("w*.log"))
    verified = topology.run("dutyflow", "audit", "verify")
    print(f"topology: {len(run_ids)} actions, {len(sweeps)} manual sweeps, {KILLS} kills "
          f"({killed_processes} processes), {len(redriven)} runs re-driven ({replays} replayed a committed action), "
          f"{len(events)} audit events "
          f"({len(swept)} sweep steps), {len(rows)} messages ({status[NotificationStatus.unconfirmed]} 结果不明); "
          f"{verified.stdout.strip().splitlines()[-1]}; every run final {drained:.0f} s after the last kill")

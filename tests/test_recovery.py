"""中断运行的恢复 (tasks/recovery.py) against the session's Prefect server: runs left Running or
Pending without a heartbeat are marked Crashed; Crashed operator actions are scheduled again,
the same run, at most ``runs.redrive_max`` times; sweeps and fresh runs are left alone.
(The whole story, with real workers killed by kill -9, is tests/test_topology.py.)"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from tasks.recovery import ACTION_TAG, REDRIVE_PREFIX, recover_interrupted_runs


@pytest.fixture
def stall_policy(tmp_path, monkeypatch):
    """The shipped policy with a three-second stall time and two re-runs at most."""
    shipped = Path(__file__).resolve().parent.parent / "deployments" / "policy.yaml"
    policy = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    policy["runs"].update(stall_seconds=3, redrive_max=2)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("DUTYFLOW_POLICY", str(path))


def _deployment(client, name: str, tags: list[str]):
    flow_id = client.create_flow_from_name(f"recovery-{name}")
    return client.create_deployment(flow_id=flow_id, name=name, tags=tags)


def _history(client, run_id) -> list[str]:
    return [f"{st.type.value}:{st.message or ''}" for st in client.read_flow_run_states(run_id)]


def test_dead_runs_are_crashed_and_actions_run_again_within_the_limit(prefect_harness, stall_policy, db):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed, Pending, Running

    with get_client(sync_client=True) as client:
        action = _deployment(client, "action", ["dutyflow", ACTION_TAG])
        sweep = _deployment(client, "sweep", ["dutyflow", "到期巡检"])
        other = _deployment(client, "other", ["someone-else"])
        dead_running = client.create_flow_run_from_deployment(action)
        dead_pending = client.create_flow_run_from_deployment(action)
        dead_sweep = client.create_flow_run_from_deployment(sweep)
        foreign = client.create_flow_run_from_deployment(other)
        for run, state in [(dead_running, Running()), (dead_pending, Pending()), (dead_sweep, Running()),
                           (foreign, Running())]:
            client.set_flow_run_state(run.id, state, force=True)
        time.sleep(3.5)  # past the stall time, and no heartbeat was sent
        fresh = client.create_flow_run_from_deployment(action)
        client.set_flow_run_state(fresh.id, Running(), force=True)

        first = recover_interrupted_runs()

        assert first == {"crashed": 3, "rescheduled": 2, "given_up": 0}
        state = {r.name: client.read_flow_run(r.id).state for r in (dead_running, dead_pending, dead_sweep, foreign, fresh)}
        assert state[dead_running.name].type == state[dead_pending.name].type == StateType.SCHEDULED  # the same run, again
        assert state[dead_running.name].message.startswith(f"{REDRIVE_PREFIX}（第 1 次）")
        assert state[dead_sweep.name].type == StateType.CRASHED  # the next sweep comes within the minute
        assert "没有心跳" in state[dead_sweep.name].message
        assert state[foreign.name].type == StateType.RUNNING  # not dutyflow's
        assert state[fresh.name].type == StateType.RUNNING  # younger than the stall time
        crashed_then_scheduled = _history(client, dead_running.id)[-2:]
        assert crashed_then_scheduled[0].startswith("CRASHED:运行中断") and crashed_then_scheduled[1].startswith("SCHEDULED:")

        for round_ in (2, 3):  # dies again each time it is taken: re-run twice, then left for a person
            client.set_flow_run_state(dead_running.id, Crashed(message="worker died again"), force=True)
            out = recover_interrupted_runs()
            assert out["rescheduled"] == (1 if round_ == 2 else 0), out
            assert out["given_up"] == (0 if round_ == 2 else 1), out
        assert client.read_flow_run(dead_running.id).state.type == StateType.CRASHED
        assert sum(REDRIVE_PREFIX in h for h in _history(client, dead_running.id)) == 2

        again = recover_interrupted_runs()  # nothing new: nothing done
        assert again == {"crashed": 0, "rescheduled": 0, "given_up": 1}


def test_stall_time_defaults_to_three_heartbeats(monkeypatch, tmp_path):
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from tasks.recovery import stall_seconds

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        assert stall_seconds() == 90
    policy = tmp_path / "policy.yaml"
    policy.write_text("runs:\n  stall_seconds: 75\n", encoding="utf-8")
    monkeypatch.setenv("DUTYFLOW_POLICY", str(policy))
    assert stall_seconds() == 75


def test_now_is_the_real_clock_not_the_drill_clock(prefect_harness, stall_policy, monkeypatch, db):
    """A pinned drill clock a year ahead does not make every run look dead."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Running

    monkeypatch.setenv("DUTYFLOW_NOW", datetime(2027, 12, 1, tzinfo=timezone.utc).isoformat())
    monkeypatch.setenv("DUTYFLOW_POLICY", str(Path(__file__).resolve().parent.parent / "deployments" / "policy.yaml"))
    with get_client(sync_client=True) as client:
        dep = _deployment(client, "drill", ["dutyflow", ACTION_TAG])
        run = client.create_flow_run_from_deployment(dep)
        client.set_flow_run_state(run.id, Running(), force=True)
        out = recover_interrupted_runs()
        assert client.read_flow_run(run.id).state.type == StateType.RUNNING
        assert out["crashed"] == 0


def test_one_sweep_recovers_at_a_time(prefect_harness, stall_policy, db):
    """Sweeps on several workers at once: while one holds the recovery, the others skip it
    (two would each count the same re-run, and a run would be given up too soon)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Running

    from models.db import only_one

    with get_client(sync_client=True) as client:
        dep = _deployment(client, "locked", ["dutyflow", ACTION_TAG])
        run = client.create_flow_run_from_deployment(dep)
        client.set_flow_run_state(run.id, Running(), force=True)
        time.sleep(3.5)
        with only_one("dutyflow-run-recovery") as mine:
            assert mine
            assert recover_interrupted_runs()["skipped"] is True
            assert client.read_flow_run(run.id).state.type == StateType.RUNNING
        out = recover_interrupted_runs()
        assert out["crashed"] >= 1 and "skipped" not in out
        assert client.read_flow_run(run.id).state.type == StateType.SCHEDULED


def test_doctor_points_out_actions_left_crashed_after_their_reruns(prefect_harness, stall_policy, org, capsys,
                                                                    monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL
    from prefect.states import AwaitingRetry, Crashed

    from deployments.cli import main

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())

    def prefect_line() -> str:
        assert main(["doctor"]) == 0
        return next(line for line in capsys.readouterr().out.splitlines() if "Prefect API" in line)

    with get_client(sync_client=True) as client:
        dep = _deployment(client, "doctor", ["dutyflow", ACTION_TAG])
        run = client.create_flow_run_from_deployment(dep)
        for i in range(1, 3):  # crashed, re-run twice (the limit here), crashed again each time
            client.set_flow_run_state(run.id, Crashed(message="worker died"), force=True)
            before = prefect_line()
            assert run.name not in before
            client.set_flow_run_state(run.id, AwaitingRetry(message=f"{REDRIVE_PREFIX}（第 {i} 次）"), force=True)
        client.set_flow_run_state(run.id, Crashed(message="worker died"), force=True)
    line = prefect_line()
    assert line.startswith("⚠ Prefect API") and run.name in line and "重新调度仍未完成" in line, line

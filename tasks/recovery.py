"""中断运行的恢复 — flow runs whose worker died, found and run again by the sweep.

A worker machine that dies (power, kill -9, OOM) leaves its flow runs in Prefect as
Running or Pending for ever: nobody is left to report the crash. On a work pool of
several machines no machine can look at another's processes, so the evidence is Prefect's
own: every flow run's engine sends a heartbeat event (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``,
180 s by default), the first at once. The sweep, on whichever worker runs it:

1. marks **Crashed** every dutyflow run that has been Running or Pending for longer than
   the stall time (policy ``runs.stall_seconds``; unset: three heartbeats) and sent no
   heartbeat within it;
2. schedules again every Crashed **operator action** (tag 业务办理; a sweep needs no
   re-run, the next one comes within the minute), with the same flow-run id and
   parameters, at most policy ``runs.redrive_max`` times and within policy
   ``runs.redrive_hours`` of its creation. The domain core applies an action at most once
   per flow-run id (``models.statemachine.transition``), so a re-run whose first attempt
   had committed replays its result (and delivers what was not yet sent) instead of acting
   twice; one that had not committed acts now.

Times here are the machine's real clock, never the pinned drill clock (``DUTYFLOW_NOW``):
heartbeats are real. Runs past the limit stay Crashed and are logged for a person.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from uuid import UUID

from prefect import task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.settings import get_current_settings
from prefect.states import AwaitingRetry, Crashed

from models import policy
from models.db import only_one
from tasks.runs import flow_run_id

log = logging.getLogger("dutyflow.recovery")

#: Tag of the operator actions (every deployment but the sweep): see deployments.deployments.tag
ACTION_TAG = "业务办理"
#: How a re-run's Scheduled state is told from others in the run's history.
REDRIVE_PREFIX = "系统重新调度"


def stall_seconds() -> int:
    """How long a run may go without a heartbeat before it is taken as dead."""
    configured = policy.get("runs", "stall_seconds")
    if configured:
        return int(configured)
    return 3 * int(get_current_settings().flows.heartbeat_frequency or 180)


def _runs(client, state_types, tags: list[str], created_after: datetime | None = None) -> list:
    flt = FlowRunFilter(tags=FlowRunFilterTags(all_=tags),
                        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(state_types))))
    if created_after is not None:
        flt.expected_start_time = FlowRunFilterExpectedStartTime(after_=created_after)
    out, offset = [], 0
    while True:
        page = client.read_flow_runs(flow_run_filter=flt, limit=200, offset=offset)
        out += page
        if len(page) < 200:
            return out
        offset += len(page)


def _heartbeats_since(client, run_ids: list[UUID], since: datetime) -> set[str]:
    """The ids (as text) of the runs among ``run_ids`` that sent a heartbeat since ``since``."""
    if not run_ids:
        return set()
    alive: set[str] = set()
    flt = EventFilter(occurred=EventOccurredFilter(since=since, until=datetime.now(timezone.utc) + timedelta(minutes=5)),
                      event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
                      resource=EventResourceFilter(id=[f"prefect.flow-run.{i}" for i in run_ids]))
    page = client.read_events(flt, limit=50)  # the API's largest page
    while True:
        alive |= {e.resource.id.removeprefix("prefect.flow-run.") for e in page.events}
        if not page.next_page:
            return alive
        page = client.read_events_page(page.next_page)


def crash_stalled(client, now: datetime, own_run: str | None = None) -> list:
    """Mark Crashed the dutyflow runs Running/Pending past the stall time without a heartbeat."""
    stall = stall_seconds()
    cutoff = now - timedelta(seconds=stall)
    old = [r for r in _runs(client, (StateType.RUNNING, StateType.PENDING), ["dutyflow"])
           if str(r.id) != own_run and r.state is not None and r.state.timestamp <= cutoff]
    alive = _heartbeats_since(client, [r.id for r in old], cutoff)
    crashed = []
    for run in old:
        if str(run.id) in alive:
            continue
        client.set_flow_run_state(run.id, Crashed(message=f"运行中断：{stall} 秒没有心跳，执行它的工作节点已失联"), force=True)
        log.warning("运行 %s（%s）%s 秒没有心跳，已标记为中断（Crashed）", run.name, run.id, stall)
        crashed.append(run)
    return crashed


def _redrives(client, run_id: UUID) -> int:
    return sum(1 for st in client.read_flow_run_states(run_id) if (st.message or "").startswith(REDRIVE_PREFIX))


def _crashed_actions(client, now: datetime) -> list[tuple]:
    """(run, re-runs so far) of the Crashed operator actions created within ``runs.redrive_hours``."""
    window = timedelta(hours=float(policy.get("runs", "redrive_hours", default=24)))
    return [(run, _redrives(client, run.id))
            for run in _runs(client, (StateType.CRASHED,), ["dutyflow", ACTION_TAG], created_after=now - window)]


def _most() -> int:
    return int(policy.get("runs", "redrive_max", default=3))


def given_up_runs() -> list:
    """The operator actions left Crashed after ``runs.redrive_max`` re-runs (for ``dutyflow doctor``)."""
    with get_client(sync_client=True) as client:
        return [run for run, done in _crashed_actions(client, datetime.now(timezone.utc)) if done >= _most()]


def redrive_crashed(client, now: datetime) -> tuple[list, list]:
    """Schedule again the Crashed operator actions within the limits; (re-scheduled, given up)."""
    most = _most()
    again, given_up = [], []
    for run, done in _crashed_actions(client, now):
        if done >= most:
            given_up.append(run)
            continue
        client.set_flow_run_state(run.id, AwaitingRetry(
            scheduled_time=now, message=f"{REDRIVE_PREFIX}（第 {done + 1} 次）：上次运行中断，"
                                        "同一运行再次执行；已办理的不会重复办理"), force=True)
        log.warning("运行 %s（%s）中断，已重新调度（第 %d 次）", run.name, run.id, done + 1)
        again.append(run)
    for run in given_up:
        log.error("运行 %s（%s）已中断 %d 次，不再自动重新调度：请核实后在 Prefect 中重试或重新提交", run.name, run.id, most)
    return again, given_up


def recover_interrupted_runs(own_run: str | None = None) -> dict:
    """Both steps above, once, by one sweep at a time (sweeps on other workers meanwhile
    skip them: two would count one re-run twice); counts of what was done."""
    with only_one("dutyflow-run-recovery") as mine:
        if not mine:
            return {"crashed": 0, "rescheduled": 0, "given_up": 0, "skipped": True}
        now = datetime.now(timezone.utc)
        with get_client(sync_client=True) as client:
            crashed = crash_stalled(client, now, own_run)
            again, given_up = redrive_crashed(client, now)
    return {"crashed": len(crashed), "rescheduled": len(again), "given_up": len(given_up)}


@task(name="recover-interrupted-runs")
def recover_runs() -> dict:
    """找出工作节点失联而中断的运行（超过时限没有心跳），标记为中断并重新调度其中的业务办理；
    同一运行再次执行时，已办理的不会重复办理（见 tasks/recovery.py）。"""
    return recover_interrupted_runs(flow_run_id())

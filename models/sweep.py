"""The deadline sweep core (SPEC 3.5), without Prefect.

Selects obligations whose ``next_action_at`` has come (indexed: the cost follows what is
due, not what is open), in batches, and hands each to its process's escalation step.
A batch runs in one transaction: its obligations are locked first (PostgreSQL: rows another
sweep holds are skipped; SQLite: writers are serialised) and each step re-checks its
obligation, so re-running the sweep, or two sweeps at once, never repeats a step. A step
that fails has the batch redone step by step, each in a savepoint, so it alone is left
out; a batch that meets a PostgreSQL deadlock (another sweep or a flow took the same
counters in the other order) is rolled back whole and run again. Inside a batch the writes are kept
and written back in bulk at its end (``models.batch``: counters, versioned rows, notices,
notifications and audit events with one statement per table and shape).
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from datetime import datetime
from typing import ClassVar

from pydantic import Field, field_validator
from sqlalchemy import tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import select

from models import batch, policy
from models.audit import anchor_if_due
from models.case import Case, Obligation
from models.clock import iso, local, now
from models.db import run_retrying, session
from models.errors import DomainError
from models.org import prefetch_org
from models.processes import escalators
from models.requests import Request
from models.statemachine import Skip

log = logging.getLogger("dutyflow.sweep")


class SweepRequest(Request):
    """到期巡检参数（一般无需填写）。"""

    FLOW: ClassVar[str] = "sweep-deadlines"

    actor: str = Field(default="system", title="操作人", description="定时巡检为 system；手动发起时可填写本人人员编号")
    batch_size: int = Field(default=200, ge=1, le=10000, title="每批处理条数")

    @field_validator("effective_at")
    @classmethod
    def _now_only(cls, value: str) -> str:
        if value:
            raise ValueError("巡检总按当前时间执行，不能补录（请留空）")
        return value


def due_query(at: datetime, limit: int, after: tuple | None = None):
    """The due-selection statement: soonest first, ``limit`` rows after the keyset ``after``
    = (next_action_at, id) of the previous batch's last row (index ix_obligation_next_action)."""
    q = (
        select(Obligation.next_action_at, Obligation.id, Obligation.case_id, Case.kind)
        .join(Case, Case.id == Obligation.case_id)
        .where(Obligation.next_action_at.is_not(None), Obligation.next_action_at <= at)
    )
    if after is not None:
        q = q.where(tuple_(Obligation.next_action_at, Obligation.id) > tuple_(after[0], after[1]))
    return q.order_by(Obligation.next_action_at, Obligation.id).limit(limit)


def due(at: datetime, limit: int, after: tuple | None = None) -> list[tuple]:
    """(next_action_at, obligation id, case id, case kind) of due obligations, soonest first."""
    with session() as s:
        return [tuple(r) for r in s.exec(due_query(at, limit, after)).all()]


def _act_on_batch(rows: list[tuple], at: datetime, handlers: dict, flow_run_id: str | None,
                  careful: bool = False) -> tuple[int, int, int]:
    """One transaction for the batch. The fast path flushes once at the end; if a step fails
    midway, the batch is rolled back and redone carefully: one savepoint per step, so the
    failing step alone is left out (and logged)."""
    acted = skipped = errors = 0
    try:
        with session() as s:
            s.info["batch"] = not careful
            ids = [r[1] for r in rows]
            obligations = {o.id: o for o in s.exec(  # locked, and kept for the steps (no select per step)
                select(Obligation).where(Obligation.id.in_(ids), Obligation.next_action_at <= at)
                .with_for_update(skip_locked=True)
            ).all()}
            cases = list(s.exec(select(Case).where(Case.id.in_({o.case_id for o in obligations.values()}))).all())
            s.info["locked_obligations"], s.info["batch_cases"] = obligations, cases
            prefetch_org(s, {c.unit for c in cases} | {o.unit for o in obligations.values()}, local(at).date())
            locked = set(obligations)
            fast = nullcontext() if careful else s.no_autoflush  # fast: one flush for the whole batch
            with fast:
                for row in rows:
                    a, sk, e = _act_on_one(s, row, locked, handlers, flow_run_id, careful)
                    acted, skipped, errors = acted + a, skipped + sk, errors + e
            if careful:
                s.flush()
            else:
                batch.finish(s)
    except (_Redo, StaleDataError, IntegrityError):
        if careful:
            raise
        return _act_on_batch(rows, at, handlers, flow_run_id, careful=True)
    return acted, skipped, errors


def _act_on_one(s, row: tuple, locked: set, handlers: dict, flow_run_id, careful: bool) -> tuple[int, int, int]:
    _next_at, ob_id, case_id, kind = row
    handler = handlers.get(kind)
    if handler is None or ob_id not in locked:
        return 0, 1, 0
    try:
        if careful:
            with s.begin_nested():
                result = handler(ob_id, case_id, flow_run_id, session=s)
        else:
            result = handler(ob_id, case_id, flow_run_id, session=s)
    except Skip:  # raised before anything was written
        return 0, 1, 0
    except DomainError as exc:
        if not careful:
            raise _Redo from exc
        log.error("sweep: obligation %s of %s: %s", ob_id, case_id, exc)
        return 0, 0, 1
    return (0, 1, 0) if result is None else (1, 0, 0)


class _Redo(Exception):
    """A step failed in a fast batch: redo the batch step by step."""


def sweep(batch_size: int | None = None, flow_run_id: str | None = None) -> dict:
    """Act on every due obligation once. Returns counts."""
    at = now()
    batch_size = batch_size or policy.get("sweep", "batch_size", default=200)
    handlers = escalators()
    acted = skipped = errors = 0
    after = None
    while True:
        rows = due(at, batch_size, after)
        if not rows:
            break
        a, sk, e = run_retrying(lambda: _act_on_batch(rows, at, handlers, flow_run_id), "sweep batch")
        acted, skipped, errors = acted + a, skipped + sk, errors + e
        after = (rows[-1][0], rows[-1][1])
        if len(rows) < batch_size:
            break
    anchor_audit()
    return {"at": iso(at), "acted": acted, "skipped": skipped, "errors": errors}


def anchor_audit() -> None:
    """The sweep's daily job: sign the audit chain's head into an external anchor file
    (``models.audit.anchor_if_due``, policy ``sweep.audit_anchor_hours``). It never fails the
    sweep: an error is logged as a warning and the next sweep tries again."""
    try:
        path = anchor_if_due()
    except Exception as exc:  # noqa: BLE001 — the sweep's own work is done and must stand
        log.warning("巡检未能生成审计链外部锚点（下次巡检重试）：%s", exc)
        return
    if path is not None:
        log.info("巡检已生成审计链外部锚点：%s（请另行备份）", path)

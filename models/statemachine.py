"""State machines as data, and the one generic :func:`transition`.

Each process declares a :class:`Machine`: its states and a table of rules
``action: (source states) -> target state`` plus the obligation kinds the action meets.
:func:`transition` applies one action in ONE database transaction: it validates the
action against the table, checks the actor and the effective time, runs the process's
effect (which opens obligations and issues notices), meets obligations, moves the state
with optimistic locking (``version_id``), and appends the hash-chained audit event.
Any error rolls everything back: a refused action writes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, select

from models import audit, authority
from models.case import ActionRun, Case, Obligation, ObligationStatus, next_number
from models.clock import beijing, deadline_text, iso, local, now, parse_time
from models.db import run_retrying, session as db_session
from models.deadlines import overdue_by
from models.errors import ConcurrentUpdate, DomainError
from models.notice import Notice
from models.notices import issue_notice
from models.org import get_person, get_unit
from models.processes import kind_label, obligation_label

SYSTEM = "system"


@dataclass(frozen=True)
class Rule:
    """One row of a transition table."""

    action: str
    label: str  # Chinese name shown to operators
    source: tuple[str, ...]  # states the action is allowed in; () = creates the case
    target: str | None  # None: the state does not change
    meets: tuple[str, ...] = ()  # obligation kinds this action fulfils
    system_only: bool = False  # taken by the sweep, not offered to operators
    alternatives: tuple[str, ...] = ()  # other states the effect may choose (Step.next_state)


@dataclass(frozen=True)
class Machine:
    kind: str
    id_prefix: str
    states: dict[str, str]  # id -> Chinese label
    rules: tuple[Rule, ...]

    def rule(self, action: str) -> Rule:
        for r in self.rules:
            if r.action == action:
                return r
        raise KeyError(f"{self.kind}: no rule for action {action!r}")

    def allowed(self, state: str) -> list[Rule]:
        return [r for r in self.rules if state in r.source and not r.system_only]

    def state_label(self, state: str) -> str:
        return f"{state}（{self.states.get(state, state)}）"

    def refuse(self, case: Case, rule: Rule) -> DomainError:
        allowed = "、".join(f"{r.action}（{r.label}）" for r in self.allowed(case.state)) or "无（已办结）"
        return DomainError(
            f"案件 {case.id} 当前状态为 {self.state_label(case.state)}，不能执行 "
            f"{rule.action}（{rule.label}）；当前允许的操作：{allowed}"
        )


class Skip(Exception):
    """Raised by an effect when there is nothing to do (e.g. another sweep took the step)."""


@dataclass
class Step:
    """What an effect sees and may do inside the transaction."""

    s: Session
    machine: Machine
    case: Case
    rule: Rule
    actor: str
    effective_at: datetime
    recorded_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    notices: list = field(default_factory=list)
    event_type: str | None = None
    next_state: str | None = None  # set by the effect to one of rule.alternatives
    backdated: bool = False  # the action carries its own effective_at (补录)

    # -- obligations
    def obligations(self, kind: str | None = None) -> list[Obligation]:
        self.s.flush()  # effects run without autoflush: include what this step opened
        q = select(Obligation).where(Obligation.case_id == self.case.id)
        if kind:
            q = q.where(Obligation.kind == kind)
        return list(self.s.exec(q.order_by(Obligation.id)).all())

    def obligation(self, kind: str) -> Obligation | None:
        rows = self.obligations(kind)
        return rows[-1] if rows else None

    def open(self, kind: str, deadline, *, role: str = "", unit: str | None = None,
             data: dict | None = None, next_action_at: datetime | None | bool = True) -> Obligation:
        """Open an obligation; ``deadline`` is a ``models.deadlines.Deadline``."""
        ob = Obligation(
            case_id=self.case.id, unit=unit or self.case.unit, kind=kind, role=role,
            next_action_at=deadline.due_at if next_action_at is True else (next_action_at or None),
            # when it began to run (the opening action's effective time): no action meets it earlier
            data={**(data or {}), "opened_at": iso(self.effective_at)},
        )
        ob.set_deadline(deadline)
        self.s.add(ob)
        self.payload.setdefault("opened", []).append(
            {"kind": kind, "due_at": local(deadline.due_at).isoformat()}
        )
        return ob

    def meet(self, ob: Obligation, at: datetime | None = None) -> None:
        """Fulfil an obligation at ``at`` (default: the step's effective time).

        Met on time only when ``at`` is not after its due time AND the miss had not been
        recorded yet (status still ``open``). Otherwise it is met late and stays ``missed``:
        fulfilled after the due time, ``met_at`` is ``at``; back-dated to before the due time
        but recorded after the sweep recorded the miss, ``met_at`` is the recording time and
        the time the action claims is kept in ``claimed_at`` — a 补录 never turns a recorded
        miss into met. A back-dated step may not meet an obligation before it was opened."""
        at = at or self.effective_at
        if self.backdated:
            opened = parse_opened_at(ob)
            if opened is not None and self.effective_at < floor_minute(opened):

                raise DomainError(
                    f"生效时间 {beijing(self.effective_at)} 早于案件 {self.case.id} “{obligation_label(ob.kind)}”"
                    f"时限的开启时间：补录的时间不得早于 {beijing(opened)}",
                    "effective_at",
                )
        recorded_missed = ob.status == ObligationStatus.missed
        late = recorded_missed or at > ob.due_at
        met = {"kind": ob.kind, "late": late}
        if not late:
            ob.status, ob.met_at = ObligationStatus.met, at
            if self.recorded_at > ob.due_at:  # a 补录 of a timely act, entered after the due time
                met["recorded_after_due"] = True
        else:
            ob.status = ObligationStatus.missed
            ob.met_at = at if at > ob.due_at else self.recorded_at
            claimed = {} if at > ob.due_at else {"claimed_at": iso(at)}
            ob.data = {**ob.data, "late_minutes": max(0, int((ob.met_at - ob.due_at).total_seconds() // 60)),
                       **claimed}
            met.update(claimed)
        ob.next_action_at = None
        self.s.add(ob)
        self.payload.setdefault("met", []).append(met)

    def miss(self, ob: Obligation, note: str = "") -> None:
        ob.status = ObligationStatus.missed
        ob.data = {**ob.data, "missed_at": local(self.recorded_at).isoformat(), **({"note": note} if note else {})}
        self.s.add(ob)
        self.payload.setdefault("missed", []).append(ob.kind)

    def warn(self, message: str) -> None:
        if message not in self.case.warnings:
            self.case.warnings = [*self.case.warnings, message]
        self.payload.setdefault("warnings", []).append(message)

    # -- notices
    def notice(self, kind: str, **kwargs):

        n = issue_notice(self.s, case=self.case, kind=kind, **kwargs)
        self.notices.append(n)
        self.payload.setdefault("notices", []).append({"id": n.id, "kind": kind, "doc_number": n.doc_number})
        return n

    def remind(self, ob: Obligation, *, issuer, recipients: list[str], unit_name: str, label: str,
               requirement: str, title: str = "", explain: str = "", warning: str = "",
               internal: bool = False, subject: str = ""):
        """A reminder of one obligation, true at its time: before the due time it says the
        time limit has not yet passed, after it how far overdue; ``count`` is the reminders on
        this obligation actually sent (steps skipped while the sweep was down are not counted).

        - a 催报通知 (``report_reminder``) addressed to ``unit_name``, the unit that owes it,
          with ``explain`` (what to explain when late) and ``warning`` (the consequence the
          rules attach to this obligation: 迟报 … only for reporting obligations);
        - ``internal``: a 督办提醒 (``internal_reminder``, unnumbered, not a 公文) to the
          ``recipients`` of the body that owes an action of its own (``issuer``), about
          ``subject``."""

        count = 1 + sum(1 for e in ob.data.get("ladder", []) if not e.get("implied"))
        late = overdue_by(ob.due_at, self.recorded_at)
        context = {"obligation_label": label, "due_at": deadline_text(ob.due_at), "overdue_by": late,
                   "requirement": requirement, "count": count}
        if internal:
            names = "、".join(f"{get_person(self.s, p).name}同志" for p in recipients) or issuer.name
            return self.notice("internal_reminder", issuer=issuer, recipients=recipients, numbered=False,
                               title=title or f"关于{subject}{label}的督办提醒", main_to=names,
                               context={**context, "subject": subject})
        remaining = "" if late else overdue_by(self.recorded_at, ob.due_at)
        return self.notice(
            "report_reminder", issuer=issuer, recipients=recipients,
            title=title or (f"关于督促{unit_name}{label}的通知" if late else f"关于提醒{unit_name}按时{label}的通知"),
            main_to=unit_name,
            context={**context, "unit_name": unit_name, "remaining": remaining, "explain": explain,
                     "warning": warning, "calendar_unconfirmed": ob.calendar_unconfirmed},
        )


@dataclass
class Result:
    case: Case
    notices: list
    event_seq: int
    skipped: bool = False
    replayed: bool = False  # this flow run had applied the action before: its recorded outcome

    def summary(self) -> dict[str, Any]:
        out = {"case_id": self.case.id, "state": self.case.state, "notices": [n.id for n in self.notices]}
        if self.replayed:
            out["replayed"] = True
        return out


def floor_minute(dt: datetime) -> datetime:
    """``dt`` to its minute: times are shown (and typed in the form) to the minute."""
    return dt.replace(second=0, microsecond=0)


def parse_opened_at(ob: Obligation) -> datetime | None:
    """When an obligation began to run (``data.opened_at``; None for rows opened in bulk)."""
    value = (ob.data or {}).get("opened_at")
    return parse_time(value) if value else None


def case_began(s: Session, case: Case) -> datetime:
    """When a case began: the effective time of its first event (a case reported by 补录
    began at that earlier time), else its creation."""
    first = s.exec(select(audit.AuditEvent.effective_at).where(
        audit.AuditEvent.case_id == case.id, audit.AuditEvent.seq == 1)).first()
    return first or case.created_at


def check_not_before_case(s: Session, case: Case, effective_at: datetime) -> None:
    """A back-dated action on a case is not dated before the case began (to the minute)."""
    began = case_began(s, case)
    if effective_at < floor_minute(began):
        raise DomainError(
            f"生效时间 {beijing(effective_at)} 早于案件 {case.id} 的开始时间：补录的时间不得早于 {beijing(began)}",
            "effective_at",
        )


def check_effective_at(effective_at: datetime, current: datetime) -> None:
    if effective_at > current + timedelta(seconds=1):
        raise DomainError(
            f"生效时间 {beijing(effective_at)} 晚于现在 {beijing(current)}：只能补录过去的时间，不能填写将来的时间",
            "effective_at",
        )


def transition(
    machine: Machine,
    action: str,
    *,
    actor: str,
    case_id: str | None = None,
    unit: str | None = None,
    effective_at: datetime | None = None,
    effect: Callable[[Step], None] | None = None,
    payload: dict[str, Any] | None = None,
    flow_run_id: str | None = None,
    title: str = "",
    classified: bool = False,
    scope: dict[str, Any] | None = None,
    session: Session | None = None,
) -> Result | None:
    """Apply ``action`` to a case (or create one when the rule has no source states).

    Returns None when the effect raised :class:`Skip` (nothing was written).

    Who may take the action is checked against the authority table (``models/authority.py``,
    SPEC §3.6) before anything else is done: ``scope`` names what the request concerns where
    the case does not say it (the unit of a self-assessment, the issuer of a 整改通知, the
    deciding organisation, the appellant, the units scored).

    An operator's action (``flow_run_id`` given, actor not ``system``) is applied at most once
    per flow run: it is recorded in ``action_run`` in the same transaction, and a flow run
    started again after a crash (same id, same parameters) gets the recorded outcome back
    (``replayed``: the case, the same notices, nothing written, no check repeated), while a
    different action in the same run is refused. Of two attempts racing, the one that loses on
    the ``action_run`` key or the case version replays the winner's outcome.
    """
    what = f"{machine.kind}.{action}"
    once = once_per_run(actor, flow_run_id)
    if session is None:
        def attempt() -> Result:
            with db_session() as s:
                return transition(machine, action, actor=actor, case_id=case_id, unit=unit,
                                  effective_at=effective_at, effect=effect, payload=payload,
                                  flow_run_id=flow_run_id, title=title, classified=classified,
                                  scope=scope, session=s)

        def attempt_or_replay() -> Result:
            try:
                return attempt()
            except (IntegrityError, ConcurrentUpdate, StaleDataError) as exc:
                if isinstance(exc, IntegrityError) and "action_run" not in str(exc.orig):
                    raise
                with db_session() as s:  # lost the race to another attempt of this run?
                    recorded = s.get(ActionRun, flow_run_id) is not None
                if not recorded:
                    raise
                return attempt()  # finds the winner's row: replays it

        try:
            return run_retrying(attempt_or_replay if once else attempt, what)
        except Skip:
            return None
    s = session
    if once:  # first: a replay is not refused because the case has moved on since
        done = s.get(ActionRun, flow_run_id)
        if done is not None:
            return replay(s, done, what, case_id)
    rule = machine.rule(action)
    recorded = now()
    eff = effective_at or recorded
    check_effective_at(eff, recorded)
    login = authority.check_login(actor)
    authority.check_actor(s, actor, eff, post=False)
    if rule.source:
        case = s.get(Case, case_id) if case_id else None
        if case is None or case.kind != machine.kind:
            raise DomainError(f"未找到{kind_label(machine.kind)}案件 '{case_id}'", "case_id")
        authority.check(authority.scope_of(s, actor=actor, on=local(eff).date(), kind=case.kind, unit=case.unit,
                                           data=case.data, given=scope), machine.kind, action, rule.label)
        if case.state not in rule.source:
            raise machine.refuse(case, rule)
        if effective_at is not None:
            check_not_before_case(s, case, eff)
        from_state = case.state
    else:
        owner = get_unit(s, unit or "", "unit")
        authority.check(authority.scope_of(s, actor=actor, on=local(eff).date(), kind=machine.kind, unit=owner.code,
                                           data={}, given=scope), machine.kind, action, rule.label)
        year = local(eff).year
        number = next_number(s, f"case:{machine.id_prefix}", year)
        case = Case(id=f"{machine.id_prefix}-{year}-{number:04d}", kind=machine.kind,
                    state=rule.target, unit=owner.code, title=title, classified=classified,
                    created_at=recorded, updated_at=recorded)
        s.add(case)
        s.flush()
        from_state = None
    step = Step(s=s, machine=machine, case=case, rule=rule, actor=actor, effective_at=eff,
                recorded_at=recorded, payload={**(payload or {}), **({"login": login} if login else {})},
                backdated=effective_at is not None)
    case_ref = case.id  # the instance is unusable after a failed flush: name the case from here
    try:
        with s.no_autoflush:  # one flush at the end instead of one per query
            if effect is not None:
                effect(step)
            for kind in rule.meets:
                ob = step.obligation(kind)
                if ob is not None and ob.met_at is None and ob.status in (ObligationStatus.open, ObligationStatus.missed):
                    step.meet(ob)
        if step.next_state is not None:
            if step.next_state not in (rule.target, *rule.alternatives):
                raise RuntimeError(f"{machine.kind}.{action}: {step.next_state!r} is not a declared target")
            case.state = step.next_state
        elif rule.target:
            case.state = rule.target
        case.updated_at = recorded
        case.event_count = (case.event_count or 0) + 1
        s.add(case)
        seq = audit.append(
            s, case_id=case.id, type=step.event_type or action, from_state=from_state,
            to_state=case.state, actor=actor, effective_at=eff, recorded_at=recorded,
            payload=step.payload, flow_run_id=flow_run_id, seq=case.event_count,
        )
        if once:
            s.add(ActionRun(flow_run_id=flow_run_id, case_id=case.id, seq=seq, action=what,
                            notice_ids=[n.id for n in step.notices], recorded_at=recorded))
        if not s.info.get("batch"):  # a sweep batch flushes once, at its end
            s.flush()
    except StaleDataError:
        raise ConcurrentUpdate(f"案件 {case_ref} 刚被其他操作修改，请刷新后重试") from None
    return Result(case=case, notices=step.notices, event_seq=seq)


def once_per_run(actor: str, flow_run_id: str | None) -> bool:
    """An operator's action in a flow run, applied at most once per run. The sweep's
    escalations and automatic proposals (actor ``system``) take many steps per run."""
    return bool(flow_run_id) and actor != SYSTEM


def replay(s: Session, done: ActionRun, what: str, case_id: str | None) -> Result:
    """The recorded outcome of the action this flow run applied before (nothing written):
    the case as it is now, the notices it issued, in their order. Another action (or another
    case) in the same run is refused."""
    if done.action != what or (case_id and case_id != done.case_id):
        raise DomainError(f"本次运行（{done.flow_run_id}）已办理过其他操作，不能再办理此操作")

    ids = list(done.notice_ids)
    found = {n.id: n for n in s.exec(select(Notice).where(Notice.id.in_(ids))).all()} if ids else {}
    return Result(case=s.get(Case, done.case_id), notices=[found[i] for i in ids], event_seq=done.seq,
                  replayed=True)


def lock_due_obligation(step: Step, ob_id: int) -> Obligation:
    """Re-read an obligation under a row lock inside the sweep's transaction; raise
    :class:`Skip` when it is no longer due (met meanwhile, or another sweep took the step)."""
    ob = step.s.info.get("locked_obligations", {}).get(ob_id)  # a sweep batch locked it already
    if ob is None:
        ob = step.s.exec(
            select(Obligation).where(Obligation.id == ob_id).with_for_update()
            .execution_options(populate_existing=True)
        ).first()
    if ob is None or ob.case_id != step.case.id or ob.met_at is not None \
            or ob.next_action_at is None or ob.next_action_at > step.recorded_at:
        raise Skip
    return ob

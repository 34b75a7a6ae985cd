"""What every action flow does around the domain core: pass the flow-run id, deliver the
queued notifications, publish the case as an artifact, and return the JSON result."""
from __future__ import annotations

import logging
import sys
from typing import Any, Callable

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Failed

from models.clock import local, pinned_note
from models.errors import DomainError
from models.statemachine import Result


class _RefusalFilter(logging.Filter):
    """Drops Prefect's "Engine execution exited with unexpected exception" traceback for a
    refused action: the run's own log already has the refusal as one Chinese line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DomainError))


def _refusal_exit(kind, exc, tb, _default=sys.excepthook) -> None:
    """A deployment's flow-run process ends on a refusal with one line, not a traceback."""
    if isinstance(exc, DomainError):
        print(f"未办理：{exc.message}", file=sys.stderr)
        return
    _default(kind, exc, tb)


logging.getLogger("prefect.flow_runs").addFilter(_RefusalFilter())
sys.excepthook = _refusal_exit


def flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


@task(name="deliver-notifications", retries=0)
def deliver_notifications(notice_ids: list[str]) -> dict:
    """按通知单发送（Apprise）；结果逐人记录，失败的由定时巡检按退避重发。
    待发消息多于 policy ``notifications.inline_max`` 时（如发给全部社区的通知）不在流程内等待，
    由每分钟的到期巡检分批发送（``queued``）。"""
    from sqlmodel import select

    from models import policy
    from models.db import session
    from models.notice import Notification
    from tasks.notify import deliver

    counts = {"sent": 0, "failed": 0, "skipped": 0}
    if not notice_ids:
        return counts
    with session() as s:
        ids = list(s.exec(select(Notification.id).where(Notification.notice_id.in_(notice_ids))).all())
    if len(ids) > policy.get("notifications", "inline_max", default=200):
        get_run_logger().info("%d 条消息已排队，由到期巡检（sweep-deadlines）分批发送", len(ids))
        return {**counts, "queued": len(ids)}
    return deliver(ids)


def when_text(dt) -> str:
    """A moment in an artifact: ``2026年12月3日 18:20`` (Beijing time)."""
    d = local(dt)
    return f"{d.year}年{d.month}月{d.day}日 {d:%H:%M}"


def _consequences(case) -> tuple[list[str], list[str]]:
    """What the case owes next (open obligations with their last day) and the automatic
    问责建议 it gave rise to, as artifact lines."""
    from sqlmodel import select

    from models.case import Case, Obligation, ObligationStatus
    from models.clock import deadline_text
    from models.db import session
    from models.org import OrgUnit
    from models.processes import machines, obligation_label

    with session() as s:
        open_obs = s.exec(select(Obligation, OrgUnit.name).join(OrgUnit, OrgUnit.code == Obligation.unit)
                          .where(Obligation.case_id == case.id, Obligation.met_at.is_(None),
                                 Obligation.status.in_([ObligationStatus.open, ObligationStatus.missed]))
                          .order_by(Obligation.due_at)).all()
        proposals = s.exec(select(Case.id, Case.state).where(Case.proposed_from == case.id)).all()
    states = machines()["accountability"].states
    deadlines = [f"- {obligation_label(o.kind)}（{unit}）：{deadline_text(o.due_at)}前"
                 + ("（已逾期）" if o.status == ObligationStatus.missed else "") for o, unit in open_obs]
    return deadlines, [f"- 问责建议 {pid}（{states.get(state, state)}）" for pid, state in proposals]


def publish_case(result: Result, headline: str) -> None:
    """The case as a markdown artifact an operator reads: state by its Chinese name, times in
    Beijing time, what the action caused (notices with their 文号 and addressees, the next
    deadlines, an automatic 问责建议), and each notice's text wrapped as prose. A classified
    case shows no title and no content."""
    from models.processes import machines

    case = result.case
    state = machines()[case.kind].states.get(case.state, case.state)
    lines = [f"# {headline}", "", f"- 案件：**{case.id}** {'（涉密事项）' if case.classified else case.title}",
             f"- 状态：{state}", f"- 办理时间：{when_text(case.updated_at)}"]
    if pinned_note():
        lines.append(f"- {pinned_note()}")
    for w in ([] if case.classified else case.warnings):
        lines.append(f"- ⚠ {w}")
    deadlines, proposals = _consequences(case)
    if result.notices:
        lines += ["", "## 发出的公文", ""]
        lines += [f"- {n.doc_number or '（不编号）'} {n.title}，发送{len(n.recipients)}人" for n in result.notices]
    if deadlines:
        lines += ["", "## 待办时限", "", *deadlines]
    if proposals:
        lines += ["", "## 自动提出的问责建议", "", *proposals]
    for n in result.notices:
        lines += ["", f"## {n.title}", ""]
        if n.classified:
            lines.append("（涉密，内容不在此显示）")
        else:  # one quoted paragraph per line of the notice: wraps on screen, keeps its line breaks
            lines += [f"> {line.strip()}  " if line.strip() else ">" for line in n.text.splitlines()]
    numbers = "、".join(n.doc_number for n in result.notices if n.doc_number)
    create_markdown_artifact("\n".join(lines), description=f"{headline}：{case.id}" + (f"（{numbers}）" if numbers else ""))
    log = get_run_logger()
    for line in [*(f"发出公文：{n.doc_number or '（不编号）'} {n.title}" for n in result.notices),
                 *(f"待办时限：{d[2:]}" for d in deadlines), *(f"自动提出{p[2:]}" for p in proposals)]:
        log.info("%s%s", pinned_note(), line)


def refusal(request: Any, exc: DomainError) -> str:
    """A refused action as one Chinese line: the field by its form title (or the current
    state and the allowed actions, as the core words it), no traceback."""
    field = exc.field or ""
    info = getattr(type(request), "model_fields", {}).get(field.split(".")[0].split("[")[0])
    where = f"（{info.title}）" if info is not None and info.title else (f"（{field}）" if field else "")
    text = exc.message.removeprefix(f"{field}: ") if field else exc.message
    return f"未办理{where}：{text}"


def refused(out: Any) -> bool:
    """The outcome of :func:`run_action` was a refusal (a Failed state, not a result)."""
    return isinstance(out, State)


def run_action(core: Callable[..., Result | None], request: Any, headline: str) -> dict[str, Any]:
    """Apply one domain action, deliver its notifications, publish, return the result. A
    refusal ends the run Failed with one Chinese line (the caller of the flow gets the
    DomainError back); nothing was written."""
    log = get_run_logger()
    try:
        result = core(request, flow_run_id())
    except DomainError as exc:
        message = refusal(request, exc)
        log.error("%s%s", pinned_note(), message)
        return Failed(message=message, data=exc)
    out: dict[str, Any] = result.summary()
    out["warnings"] = list(result.case.warnings)
    note = pinned_note()
    log.info("%s%s → %s %s", note, headline, result.case.id, result.case.state)
    for w in result.case.warnings:
        log.warning("%s%s", note, w)
    out["delivery"] = deliver_notifications([n.id for n in result.notices])
    publish_case(result, headline)
    return out

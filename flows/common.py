"""What every action flow does around the domain core: pass the flow-run id, deliver the
queued notifications, publish the case as an artifact, and return the JSON result."""
from __future__ import annotations

import logging
import sys
from typing import Any, Callable, get_args, get_origin
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Failed
from pydantic import BaseModel
from pydantic.functional_validators import BeforeValidator
from sqlmodel import select

from models import authority
from models.case import Case, Obligation, ObligationStatus
from models.choices import CHOICE_KEY
from models.clock import deadline_text, local, pinned_note
from models.db import session
from models.errors import DomainError
from models.org import OrgUnit, Person
from models.processes import machines, obligation_label
from models.statemachine import Result
from tasks.notify import deliver_notifications
from tasks.runs import flow_run_id


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


def run_login() -> tuple[str, str] | None:
    """Who started this flow run through the login gateway, and how (Prefect's ``created_by``
    of the run); None for a run the gateway did not create (the schedule, the CLI in-process)."""
    ctx = FlowRunContext.get()
    created = getattr(getattr(ctx, "flow_run", None), "created_by", None)
    return authority.login_from_created_by(getattr(created, "type", None))


# ---------------------------------------------------------------- classified (涉密) cases in Prefect

#: What Prefect keeps instead of the free text of a classified case's request.
CLASSIFIED_TEXT = "（涉密内容不在 Prefect 中保存）"
#: What artifacts and run logs show instead of a classified case's or notice's title.
CLASSIFIED_TITLE = "（涉密事项）"


def free_text(info: Any) -> bool:
    """A request field holds free text (a title, facts, an opinion, …): a ``str`` or
    ``list[str]`` field that is neither a pick (unit, person, case: its id) nor a time or date."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if CHOICE_KEY in extra or "format" in extra or any(isinstance(m, BeforeValidator) for m in info.metadata):
        return False
    ann = info.annotation
    return ann is str or (get_origin(ann) is list and get_args(ann) == (str,))


def redacted(request: Any) -> dict[str, Any]:
    """The request as JSON with every free-text value (nested ones too) replaced by
    :data:`CLASSIFIED_TEXT`; ids, choices, times, figures and flags are kept."""
    out = request.model_dump(mode="json")
    for name, info in type(request).model_fields.items():
        value = getattr(request, name)
        if isinstance(value, BaseModel):
            out[name] = redacted(value)
        elif isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
            out[name] = [redacted(v) if isinstance(v, BaseModel) else j for v, j in zip(value, out[name])]
        elif free_text(info) and value:
            out[name] = CLASSIFIED_TEXT if isinstance(value, str) else [CLASSIFIED_TEXT] * len(value)
    return out


def classified_request(request: Any, result: Result | None = None) -> bool:
    """The action concerns a classified case: its result is one, or (refused) the request
    says so (``classified``) or names a classified case (``case_id``)."""
    if result is not None:
        return bool(result.case.classified)
    if getattr(request, "classified", False):
        return True
    case_id = getattr(request, "case_id", "")
    if not case_id:
        return False
    with session() as s:
        case = s.get(Case, case_id)
        return bool(case is not None and case.classified)


def redact_run_parameters(request: Any) -> None:
    """Replace this flow run's parameters in Prefect (what the operator typed in the form)
    by :func:`redacted`: the domain database keeps the request, Prefect keeps no free text
    of a classified case. Outside a flow run there is nothing to replace."""
    run_id = flow_run_id()
    if not run_id:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(UUID(run_id), parameters={"request": redacted(request)})
    except Exception as exc:  # the action is done: say so (without content) rather than fail it
        get_run_logger().error("%s：未能清除本次运行参数中的涉密内容（%s），请管理员在 Prefect 中删除本次运行记录",
                               CLASSIFIED_TITLE, type(exc).__name__)


def shown_title(item: Any) -> str:
    """A case's or a notice's title as artifacts and run logs show it (hidden when classified)."""
    return CLASSIFIED_TITLE if item.classified else item.title


def when_text(dt) -> str:
    """A moment in an artifact: ``2026年12月3日 18:20`` (Beijing time)."""
    d = local(dt)
    return f"{d.year}年{d.month}月{d.day}日 {d:%H:%M}"


def _consequences(case) -> tuple[list[str], list[str]]:
    """What the case owes next (open obligations with their last day) and the automatic
    问责建议 it gave rise to, as artifact lines."""
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


def actor_line(actor: str) -> str:
    """Who acted, for the artifact: the person's name and id, and how they logged in."""
    if not actor or actor == "system":
        return "定时任务（system）"
    with session() as s:
        person = s.get(Person, actor)
    login = run_login()
    how = authority.LOGIN_METHODS.get(login[1], login[1]) if login else authority.LOGIN_METHODS["local"]
    return f"{person.name if person else actor}（{actor}，{how}）"


def publish_case(result: Result, headline: str, actor: str = "") -> None:
    """The case as a markdown artifact an operator reads: state by its Chinese name, times in
    Beijing time, what the action caused (notices with their 文号 and addressees, the next
    deadlines, an automatic 问责建议), and each notice's text wrapped as prose. A classified
    case shows no title and no content."""
    case = result.case
    state = machines()[case.kind].states.get(case.state, case.state)
    lines = [f"# {headline}", "", f"- 案件：**{case.id}** {shown_title(case)}",
             f"- 状态：{state}", f"- 办理时间：{when_text(case.updated_at)}", f"- 办理人：{actor_line(actor)}"]
    if pinned_note():
        lines.append(f"- {pinned_note()}")
    for w in ([] if case.classified else case.warnings):
        lines.append(f"- ⚠ {w}")
    deadlines, proposals = _consequences(case)
    if result.notices:
        lines += ["", "## 发出的公文", ""]
        lines += [f"- {n.doc_number or '（不编号）'} {shown_title(n)}，发送{len(n.recipients)}人" for n in result.notices]
    if deadlines:
        lines += ["", "## 待办时限", "", *deadlines]
    if proposals:
        lines += ["", "## 自动提出的问责建议", "", *proposals]
    for n in result.notices:
        lines += ["", f"## {n.doc_number + ' ' if n.classified and n.doc_number else ''}{shown_title(n)}", ""]
        if n.classified:
            lines.append("（涉密，内容不在此显示）")
        else:  # one quoted paragraph per line of the notice: wraps on screen, keeps its line breaks
            lines += [f"> {line.strip()}  " if line.strip() else ">" for line in n.text.splitlines()]
    numbers = "、".join(n.doc_number for n in result.notices if n.doc_number)
    create_markdown_artifact("\n".join(lines), description=f"{headline}：{case.id}" + (f"（{numbers}）" if numbers else ""))
    log = get_run_logger()
    for line in [*(f"发出公文：{n.doc_number or '（不编号）'} {shown_title(n)}" for n in result.notices),
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
    DomainError back); nothing was written. An action on a classified case (or a refused
    one that says it is classified) leaves no free text in Prefect: the run's parameters
    are replaced by a redacted copy as soon as the core has stored the request, and the
    artifact and the log lines show no title, content or warning text. A flow run started
    again after a crash gets the outcome its first attempt committed (``replayed``): nothing
    is applied twice, and only the notifications not yet sent are delivered."""
    log = get_run_logger()
    token = authority.LOGIN.set(run_login())
    try:
        result = core(request, flow_run_id())
    except DomainError as exc:
        message = refusal(request, exc)
        log.error("%s%s", pinned_note(), message)
        if classified_request(request):
            redact_run_parameters(request)
        return Failed(message=message, data=exc)
    finally:
        authority.LOGIN.reset(token)
    if classified_request(request, result):  # stored in the domain database: Prefect keeps none of it
        redact_run_parameters(request)
    out: dict[str, Any] = result.summary()
    out["warnings"] = list(result.case.warnings)
    note = pinned_note()
    if result.replayed:  # a re-run of this flow run after a crash: the action stands, notices not yet sent go out
        log.info("%s本次运行在中断前已办理（案件 %s），不重复办理；补发未发出的通知", note, result.case.id)
    log.info("%s%s → %s %s", note, headline, result.case.id, result.case.state)
    if result.case.classified and result.case.warnings:
        log.warning("%s%s：有 %d 条提示，请登录系统查看", note, CLASSIFIED_TITLE, len(result.case.warnings))
    else:
        for w in result.case.warnings:
            log.warning("%s%s", note, w)
    out["delivery"] = deliver_notifications([n.id for n in result.notices])
    publish_case(result, headline, actor=getattr(request, "actor", ""))
    return out

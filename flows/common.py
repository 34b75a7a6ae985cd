"""What every action flow does around the domain core: pass the flow-run id, deliver the
queued notifications, publish the case as an artifact, and return the JSON result."""
from __future__ import annotations

from typing import Any, Callable

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from models.clock import iso, pinned_note
from models.statemachine import Result


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


def publish_case(result: Result, headline: str) -> None:
    lines = [f"# {headline}", "", f"- 案件：**{result.case.id}** {result.case.title}",
             f"- 状态：`{result.case.state}`", f"- 时间：{iso(result.case.updated_at)}"]
    if pinned_note():
        lines.append(f"- {pinned_note()}")
    for w in result.case.warnings:
        lines.append(f"- ⚠ {w}")
    for n in result.notices:
        lines += ["", f"## {n.title}", f"发文字号：{n.doc_number or '—'}", "", "```", n.text if not n.classified else "（涉密，内容不在此显示）", "```"]
    create_markdown_artifact("\n".join(lines), description=headline)


def run_action(core: Callable[..., Result | None], request: Any, headline: str) -> dict[str, Any]:
    """Apply one domain action, deliver its notifications, publish, return the result."""
    log = get_run_logger()
    result = core(request, flow_run_id())
    out: dict[str, Any] = result.summary()
    out["warnings"] = list(result.case.warnings)
    note = pinned_note()
    log.info("%s%s → %s %s", note, headline, result.case.id, result.case.state)
    for w in result.case.warnings:
        log.warning("%s%s", note, w)
    out["delivery"] = deliver_notifications([n.id for n in result.notices])
    publish_case(result, headline)
    return out

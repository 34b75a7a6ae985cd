"""到期巡检 — the deadline sweep (SPEC 3.5), scheduled every minute by ``dutyflow serve``."""

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from flows.common import flow_run_id
from models.clock import pinned_note


class SweepRequest(BaseModel):
    """到期巡检参数（一般无需填写）。"""

    batch_size: int = Field(default=200, ge=1, le=10000, title="每批处理条数")


@task(name="act-on-due-obligations")
def act_on_due(batch_size: int) -> dict:
    """逐条处理到期义务：标记逾期，按阶梯催报/催办，每一步只做一次。"""
    from tasks.sweep import sweep

    return sweep(batch_size, flow_run_id())


@task(name="retry-notifications")
def retry_notifications() -> dict:
    """发送待发通知、重发到期的失败通知（退避）；每次巡检最多用 policy
    ``notifications.sweep_delivery_seconds`` 秒，未发完的下次巡检继续。"""
    from models import policy
    from tasks.notify import deliver_due

    return deliver_due(policy.get("notifications", "sweep_delivery_seconds", default=40))


@task(name="refresh-overdue-ledger")
def refresh_ledger() -> int:
    """刷新督办台账（表格）和汇总（Markdown）。"""
    from collections import Counter

    from models.db import session
    from tasks.ledger import ledger_rows

    with session() as s:
        rows = ledger_rows(s, overdue=True, limit=1000)
    table = [
        {"单位": f"{r['unit']} {r['unit_name']}", "案件": r["case"], "义务": r["obligation"],
         "时限": r["due"], "逾期": r["overdue_by"], "阶梯": r["step"],
         "责任人": "、".join(p["name"] for p in r["responsible"]),
         "日历未确认": "是" if r["calendar_unconfirmed"] else ""}
        for r in rows
    ]
    create_table_artifact(table, key="overdue-ledger", description=f"督办台账（逾期事项）{pinned_note()}")
    per_unit = Counter((r["unit_name"], r["step"]) for r in rows)
    md = ["# 督办台账汇总", "", f"逾期事项 {len(rows)} 项。{pinned_note()}", "", "| 单位 | 阶梯 | 数量 |", "|---|---|---|"]
    md += [f"| {u} | {st} | {n} |" for (u, st), n in sorted(per_unit.items())]
    create_markdown_artifact("\n".join(md), key="overdue-summary", description="督办台账汇总")
    return len(rows)


@flow(name="sweep-deadlines")
def sweep_deadlines(request: SweepRequest = SweepRequest()) -> dict:
    """到期巡检（每分钟）：找出到期的义务，标记逾期并按阶梯督办（每步只做一次，停机后自动补做），
    重发失败的通知，刷新督办台账。"""
    log = get_run_logger()
    result = act_on_due(request.batch_size)
    result["delivery"] = retry_notifications()
    result["overdue"] = refresh_ledger()
    log.info("%s巡检完成：%s", pinned_note(), result)
    return result

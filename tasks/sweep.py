"""The sweep's Prefect task: the due obligations acted on in batches (``models/sweep.py``)."""
from __future__ import annotations

from prefect import task

from models.sweep import sweep
from tasks.runs import flow_run_id


@task(name="act-on-due-obligations")
def act_on_due(batch_size: int) -> dict:
    """逐条处理到期义务：标记逾期，按阶梯催报/催办，每一步只做一次。"""
    return sweep(batch_size, flow_run_id())

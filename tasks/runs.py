"""The flow run a task works for, as Prefect knows it."""
from __future__ import annotations

from prefect.runtime import flow_run


def flow_run_id() -> str | None:
    return str(flow_run.id) if flow_run.id else None

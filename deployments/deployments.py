"""One Prefect deployment per flow, with its schedule (the sweep every minute)."""
from __future__ import annotations

from datetime import timedelta

INTERVALS = {"sweep-deadlines": timedelta(minutes=1)}


def assessment_cron() -> str:
    """When the yearly 年度检查考核 starts (policy ``assessment.cron``, Beijing time)."""
    from models import policy

    return policy.get("assessment", "cron", default="0 9 1 12 *")


def build() -> list:
    """Deployments of every flow; names equal the flow names (SPEC §5)."""
    import inspect

    from flows.registry import flows

    out = []
    for name, fl in flows().items():
        kwargs = {}
        if name in INTERVALS:
            kwargs["interval"] = INTERVALS[name]
        if name == "start-annual-assessment":  # once a year, Beijing time
            from prefect.schedules import Cron

            kwargs["schedule"] = Cron(assessment_cron(), timezone="Asia/Shanghai")
        out.append(fl.to_deployment(
            name=name, description=inspect.getdoc(fl.fn), tags=["dutyflow"], **kwargs,
        ))
    return out

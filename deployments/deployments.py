"""One Prefect deployment per flow, with its schedule (the sweep every minute)."""
from __future__ import annotations

from datetime import timedelta

INTERVALS = {"sweep-deadlines": timedelta(minutes=1)}


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

            from models import policy

            kwargs["schedule"] = Cron(policy.get("assessment", "cron", default="0 9 1 12 *"), timezone="Asia/Shanghai")
        out.append(fl.to_deployment(
            name=name, description=inspect.getdoc(fl.fn), tags=["dutyflow"], **kwargs,
        ))
    return out

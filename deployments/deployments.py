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
        out.append(fl.to_deployment(
            name=name, description=inspect.getdoc(fl.fn), tags=["dutyflow"], **kwargs,
        ))
    return out

"""Offline settings (LIBRARIES.md): a government network has no internet."""
from __future__ import annotations

import os

from models import policy

OFFLINE = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
}


def apply_offline_settings() -> None:
    for key, value in OFFLINE.items():
        os.environ.setdefault(key, value)


def serve_settings() -> dict[str, str]:
    """What ``dutyflow serve`` adds (policy ``prefect``): the served runner looks for new runs
    every second (a run submitted in the UI starts at once), and the server deletes flow runs
    older than the retention period (a year of every-minute sweeps must not grow its database
    without bound; the domain database, not Prefect, keeps the record)."""
    days = float(policy.get("prefect", "run_retention_days", default=90))
    return {
        "PREFECT_RUNNER_POLL_FREQUENCY": str(policy.get("prefect", "runner_poll_seconds", default=1)),
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(int(days * 86400)),
    }


# ---------------------------------------------------------------- login (deployments/gateway.py)

#: Addresses of this machine: the service credential may name a person only from one of them.
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def login_required() -> bool:
    """Login is on unless ``DUTYFLOW_LOGIN=off`` says otherwise (doctor warns about that)."""
    return os.environ.get("DUTYFLOW_LOGIN", "on").strip().lower() not in ("off", "0", "false", "no")


def without_actor(definitions: dict) -> None:
    """The forms no longer ask who you are: the gateway binds ``request.actor`` to the
    logged-in person, then validates the whole request with the domain's model, ``actor``
    included. Takes the field out of a form's request definitions, in place."""
    for definition in (definitions or {}).values():
        props = definition.get("properties") or {}
        if "actor" in props and "effective_at" in props:  # a flow's request (models.requests.Request)
            del props["actor"]
            definition["required"] = [r for r in definition.get("required", []) if r != "actor"]
            definition.pop("additionalProperties", None)

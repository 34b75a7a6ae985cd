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

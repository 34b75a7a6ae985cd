"""Offline settings (LIBRARIES.md): a government network has no internet."""
from __future__ import annotations

import os

OFFLINE = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
}


def apply_offline_settings() -> None:
    for key, value in OFFLINE.items():
        os.environ.setdefault(key, value)

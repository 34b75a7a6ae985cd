"""The policy file: default figures of SPEC §3 that operators may change.

``DUTYFLOW_POLICY`` names another file; the default is ``deployments/policy.yaml``.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from models.db import ROOT

DEFAULT = ROOT / "deployments" / "policy.yaml"


def path() -> Path:
    return Path(os.environ.get("DUTYFLOW_POLICY") or DEFAULT)


@lru_cache(maxsize=8)
def _load(p: str, mtime: float) -> dict[str, Any]:
    with open(p, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def policy() -> dict[str, Any]:
    p = path()
    return _load(str(p), p.stat().st_mtime)


def get(*keys: str, default: Any = None) -> Any:
    node: Any = policy()
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return default
        node = node[k]
    return node

"""The registry of processes: the one list of every process of SPEC §3, read by everything
that works across them — the state machine (case labels, obligation labels), the sweep (each
process's ``escalate``), the schema (their tables), the flows and their deployments, and the
fork server's preload.

A process named ``X`` is, by convention, ``models/X.py`` (its requests, state machines as
data — ``MACHINE``, and ``ACTIVITY`` for the assessment's 工作记录 — ``OBLIGATION_LABELS``,
``ladders()`` and ``escalate()``), ``flows/X.py`` (its Prefect flows), ``templates/X_*.j2``
and ``tests/test_X.py``. Adding a process touches its own files and :data:`PROCESSES` only.
"""
from __future__ import annotations

import importlib
from functools import lru_cache
from types import ModuleType
from typing import Callable

#: Every process, in the order of SPEC §5: name (its modules' name = its case kind) → the
#: short Chinese name its cases go by (事件 INC-…, 整改 RECT-…).
PROCESSES: dict[str, str] = {
    "incident": "事件",
    "rectification": "整改",
    "accountability": "问责",
    "assessment": "考核",
}
#: The case kinds of SPEC §5; 工作记录 (``activity``, record-activity) come after.
PROCESS_KINDS = tuple(PROCESSES)


def module(name: str) -> ModuleType:
    """The domain module of a process (``models.<name>``). Loaded by name, not imported at the
    top: the processes import the core (state machine, notices), which reads this registry."""
    return importlib.import_module(f"models.{name}")


def modules() -> list[ModuleType]:
    return [module(name) for name in PROCESSES]


def requests() -> dict[str, type]:
    """Every action's name (SPEC §5) → its request model: each process's and the sweep's. The
    CLI checks a request with it before it loads Prefect; the flows take the same models."""
    found: dict[str, type] = {}
    for mod in (*modules(), module("sweep")):
        for value in vars(mod).values():
            if isinstance(value, type) and value.__module__ == mod.__name__ and getattr(value, "FLOW", ""):
                found[value.FLOW] = value
    return found


def machines() -> dict:
    """case kind → its :class:`models.statemachine.Machine` (the assessment's 工作记录 too)."""
    out = {}
    for mod in modules():
        for machine in (getattr(mod, "MACHINE", None), getattr(mod, "ACTIVITY", None)):
            if machine is not None:
                out[machine.kind] = machine
    return out


def escalators() -> dict[str, Callable]:
    """case kind → its escalation step ``(obligation id, case id, flow_run_id, session) -> Result | None``."""
    return {name: mod.escalate for name, mod in zip(PROCESSES, modules())}


def kind_label(kind: str) -> str:
    """The short Chinese name of a case kind (事件, 整改 …); the kind itself for any other."""
    return PROCESSES.get(kind, kind)


@lru_cache(maxsize=1)
def _step_labels() -> dict[tuple[str, int], str]:
    """(obligation kind, step) → label, from every process's ladders (read once: labels are code)."""
    return {(kind, ls.step): ls.label for mod in modules() if hasattr(mod, "ladders")
            for kind, ladder in mod.ladders().items() for ls in ladder}


def step_label(kind: str, step: int) -> str:
    """Chinese name of ladder step ``step`` of an obligation kind (催办, 约谈 …); '未督办' before
    the first step, '逾期' for a kind without a ladder."""
    return "未督办" if step <= 0 else _step_labels().get((kind, step), "逾期")


def obligation_label(kind: str) -> str:
    """Chinese name of an obligation kind (the id itself when no process names it)."""
    for mod in modules():
        if kind in mod.OBLIGATION_LABELS:
            return mod.OBLIGATION_LABELS[kind]
    return kind

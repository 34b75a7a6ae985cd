"""Every flow of dutyflow by its deployment name (= ``dutyflow run`` name): each process's
flows (``flows/<process>.py`` for the processes of ``models/processes.py``) and the deadline
sweep (``flows/watchdog.py``). Deployments, ``prefect.yaml``, the CLI, the login gateway and
the fork server's preload all read this."""
from __future__ import annotations

import importlib
import typing
from types import ModuleType

from prefect import Flow

from models.processes import PROCESSES

#: The flow modules: one per process, and the sweep's.
FLOW_MODULES = (*PROCESSES, "watchdog")


def modules() -> list[ModuleType]:
    """The flow modules, loaded by name (a flow module imports the domain, not this registry)."""
    return [importlib.import_module(f"flows.{name}") for name in FLOW_MODULES]


def flows() -> dict[str, Flow]:
    """deployment name → flow, each process's flows in the order its module defines them."""
    return {value.name: value for mod in modules() for value in vars(mod).values()
            if isinstance(value, Flow) and value.fn.__module__ == mod.__name__}


def request_model(flow) -> type:
    """The pydantic model of a flow's single ``request`` parameter."""
    return typing.get_type_hints(flow.fn)["request"]

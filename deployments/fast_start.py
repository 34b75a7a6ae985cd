"""Runs served by ``dutyflow serve`` (and taken by ``dutyflow worker``: ``deployments/worker.py``)
start from a preloaded interpreter.

``prefect.serve`` starts every run of a deployment with ``python -m prefect.engine``: a fresh
interpreter that imports Prefect (≈1.5 s), then loads the flow from its entrypoint (≈1 s)
before the run begins, and an operator who submits a form waits for that every time. Here:

- the runner is told which flow object serves each deployment (what ``Runner.add_flow``
  does), so it starts runs by Prefect's direct path, ``run_flow_in_subprocess``;
- that path starts its process from a ``forkserver`` which has imported Prefect, every flow
  and what a run uses once and compiled the templates (``deployments/preload.py``): each run is
  a fork of it, a process of its own, in milliseconds.

Everything else (environment, settings, control channel, cancellation) is Prefect's code.
"""
from __future__ import annotations

# Imports inside functions: the fork server imports what PRELOAD names, itself, in its own
# process; the serving process imports the runner only when it serves.

import multiprocessing
import types

#: What the fork server imports once, so a run does not (``deployments/preload.py``).
PRELOAD = ["deployments.preload"]


def serve(deployments: list, pause_on_shutdown: bool = False) -> None:
    """``prefect.serve(*deployments)``, each run started from the preloaded fork server."""
    import asyncio

    from prefect.exceptions import TerminationSignal
    from prefect.flows import _display_serve_start_message
    from prefect.runner import Runner

    from flows.registry import flows

    install()
    by_name = flows()
    runner = Runner(pause_on_shutdown=pause_on_shutdown)
    for deployment in deployments:
        deployment_id = runner.add_deployment(deployment)
        runner._deployment_registry.register_flow(deployment_id, by_name[deployment.name])
    _display_serve_start_message(*deployments)
    try:
        asyncio.run(runner.start())
    except TerminationSignal:  # SIGTERM: stop as on Ctrl-C
        pass


def install() -> None:
    """Make the runner of this process start flow runs from a preloaded fork server."""
    import prefect.flow_engine as engine

    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()  # imports now, while the runner registers: the first run is quick too
    # run_flow_in_subprocess asks its ``multiprocessing`` module for the "spawn" context; it is
    # the only use of that module in the engine, so a stand-in answering the fork server serves.
    engine.multiprocessing = types.SimpleNamespace(get_context=lambda method=None: context,
                                                   context=multiprocessing.context)

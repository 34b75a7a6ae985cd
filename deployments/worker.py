"""``dutyflow worker --pool dutyflow``: a process worker whose runs start from a preloaded process.

Prefect's process worker starts every flow run as ``python -m prefect.engine``: a fresh
interpreter that imports Prefect and loads the flow from its entrypoint, about 5 CPU-s
and 6 s before the run's first step (``benchmarks/bench_worker.py``). This worker is Prefect's own (the same pool, polling,
heartbeats, cancellation, crash reporting — ``prefect.workers.process.ProcessWorker``); it
only starts each run the way ``dutyflow serve`` does: the flow is taken from our registry
(``flows/registry.py``, by the run's flow name) and the run is a fork of the fork server that
imported Prefect, every flow and the libraries once (``deployments/fast_start.py``).

A run of a flow that is not ours (another deployment on the same pool) starts as the stock
worker starts it.
"""
from __future__ import annotations

# Imports inside functions: ``dutyflow worker`` loads the worker when it is started, and the
# fork server starts before the worker connects.

import os
from typing import Any


def _starter_class():
    """The starter that forks a registered flow's run (``DirectSubprocessStarter`` with the
    pool's environment)."""
    import anyio
    from prefect.flow_engine import run_flow_in_subprocess
    from prefect.runner._process_manager import ProcessHandle

    class PreloadedStarter:
        """Start ``flow``'s run as a fork of the preloaded fork server."""

        def __init__(self, flow, env: dict[str, str], control_channel) -> None:
            self._flow = flow
            self._env = env
            self._control = control_channel

        async def start(self, flow_run, task_status=anyio.TASK_STATUS_IGNORED) -> None:
            env = {**self._env, "PREFECT__DEPLOYMENT_NAME": self._flow.name}
            registered = False
            try:
                port, token = self._control.register(flow_run.id)
                env |= {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}
                registered = True
            except RuntimeError:  # no loopback listener: cancellation falls back to a kill
                pass
            started = False
            try:
                process = run_flow_in_subprocess(self._flow, flow_run=flow_run, env=env)
                task_status.started(ProcessHandle(process))
                started = True
                await anyio.to_thread.run_sync(process.join)
            except BaseException:
                if registered and not started:
                    self._control.unregister(flow_run.id)
                raise

    return PreloadedStarter


def worker_class():
    """``PreloadedProcessWorker``: Prefect's process worker, runs of our flows forked."""
    import anyio
    from prefect.runner._flow_run_executor import FlowRunExecutorContext
    from prefect.workers.process import ProcessWorker, ProcessWorkerResult

    from flows.registry import flows

    ours = flows()
    starter_class = _starter_class()

    class PreloadedProcessWorker(ProcessWorker):
        """A process worker: runs of dutyflow's flows start from the preloaded fork server."""

        async def run(self, flow_run, configuration, task_status=None):
            flow = await self._our_flow(flow_run)
            if flow is None:
                return await super().run(flow_run, configuration, task_status)
            if task_status is None:
                task_status = anyio.TASK_STATUS_IGNORED
            env = {k: v for k, v in configuration.env.items() if v is not None and os.environ.get(k) != v}
            async with FlowRunExecutorContext() as ctx:
                executor = ctx.create_executor(flow_run, starter_class(flow, env, ctx.control_channel),
                                               resolve_flow=self._resolver(flow), propose_submitting=False)
                execution = None

                async def execute(*, task_status=anyio.TASK_STATUS_IGNORED) -> None:
                    nonlocal execution
                    execution = await executor.submit(task_status=task_status)

                async with anyio.create_task_group() as group:
                    handle = await group.start(execute)
                    task_status.started(handle.pid)
            if execution is None or execution.status_code is None:
                raise RuntimeError("Failed to start flow run process.")
            return ProcessWorkerResult(status_code=execution.status_code, identifier=str(execution.handle.pid))

        async def _our_flow(self, flow_run):
            api_flow = await self.client.read_flow(flow_run.flow_id)
            return ours.get(api_flow.name)

        @staticmethod
        def _resolver(flow):
            async def resolve(_flow_run: Any):
                return flow
            return resolve

    return PreloadedProcessWorker


def start(pool: str, *, name: str | None = None, limit: int | None = None, run_once: bool = False) -> None:
    """Start the fork server, then poll ``pool`` until interrupted (Ctrl-C / SIGTERM)."""
    import asyncio

    from prefect.exceptions import TerminationSignal

    from deployments import fast_start

    fast_start.install()

    async def main() -> None:
        async with worker_class()(work_pool_name=pool, name=name, limit=limit,
                                  create_pool_if_not_found=False) as worker:
            await worker.start(run_once=run_once)

    try:
        asyncio.run(main())
    except (KeyboardInterrupt, TerminationSignal):
        pass

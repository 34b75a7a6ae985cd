"""Flow-run heartbeats that stop the moment a run ends.

Every flow run sends a heartbeat event (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``) from a thread
that the engine joins when the run ends; the recovery of dead runs (``tasks/recovery.py``)
rests on them. Prefect's thread (``prefect.flow_engine._send_heartbeats``, 3.9) sleeps in
one-second steps and the engine waits up to 2 s for it: every run of ours lasted up to a
second longer than its work (1.06 s for a 0.12 s report under the harness). Here the thread
waits on the stop event itself, so it leaves at once; what it sends and when is Prefect's
own code (``_build_heartbeat_event_template``, ``_emit_flow_run_heartbeat``).

``install()`` runs when the ``flows`` package is imported: by every process that runs our
flows (``dutyflow serve``'s fork server, ``dutyflow worker``, the CLI, the tests).
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import prefect.flow_engine as flow_engine


@contextlib.contextmanager
def send_heartbeats(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    """Heartbeats of ``engine``'s flow run while the block runs; stopped at its end."""
    seconds = engine.heartbeat_seconds
    if seconds is None:
        yield
        return
    seconds = max(seconds, flow_engine.MINIMUM_HEARTBEAT_INTERVAL)
    resource, related = engine._build_heartbeat_event_template()
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            run = engine.flow_run
            if run and run.state and run.state.is_final():
                return
            try:
                engine._emit_flow_run_heartbeat(resource, related)
            except Exception:
                engine.logger.debug("Failed to emit heartbeat", exc_info=True)
            stop.wait(seconds)

    # the thread sees this context's settings (the API address), as in Prefect's own
    thread = threading.Thread(target=contextvars.copy_context().run, args=(beat,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if join_on_exit:
            thread.join(timeout=2)


def install() -> None:
    """Make the flow engine of this process use ``send_heartbeats``."""
    flow_engine._send_heartbeats = send_heartbeats

"""Flow-run heartbeats (``flows/heartbeats.py``): sent while a run works, stopped the moment it
ends — Prefect's own thread made every run wait for its one-second sleep."""
from __future__ import annotations

import threading
import time

import prefect.flow_engine as flow_engine

import flows  # noqa: F401  (importing the package installs the heartbeats)
from flows.heartbeats import send_heartbeats


class FakeEngine:
    """What the heartbeat thread uses of a flow run engine."""

    def __init__(self, seconds):
        self.heartbeat_seconds = seconds
        self.flow_run = None
        self.beats = 0
        self.logger = __import__("logging").getLogger("test")

    def _build_heartbeat_event_template(self):
        return {"resource": 1}, []

    def _emit_flow_run_heartbeat(self, resource, related):
        self.beats += 1


def test_the_engine_uses_ours():
    assert flow_engine._send_heartbeats is send_heartbeats


def test_a_beat_at_the_start_and_none_after_the_end_without_waiting():
    engine = FakeEngine(30)
    before = threading.active_count()
    started = time.monotonic()
    with send_heartbeats(engine):
        time.sleep(0.05)
    took = time.monotonic() - started
    assert engine.beats == 1
    assert took < 0.5, f"leaving took {took:.2f} s"
    assert threading.active_count() == before  # the thread has ended
    time.sleep(0.1)
    assert engine.beats == 1


def test_beats_follow_the_interval_and_none_when_heartbeats_are_off():
    engine = FakeEngine(0.01)  # raised to Prefect's minimum interval
    flow_engine.MINIMUM_HEARTBEAT_INTERVAL, saved = 0.05, flow_engine.MINIMUM_HEARTBEAT_INTERVAL
    try:
        with send_heartbeats(engine):
            time.sleep(0.32)
    finally:
        flow_engine.MINIMUM_HEARTBEAT_INTERVAL = saved
    assert 4 <= engine.beats <= 8
    off = FakeEngine(None)
    with send_heartbeats(off):
        pass
    assert off.beats == 0

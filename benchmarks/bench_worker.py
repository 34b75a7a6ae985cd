#!/usr/bin/env python
"""How fast a work-pool run starts: Prefect's process worker against ``dutyflow worker``.

    python benchmarks/bench_worker.py [--runs 10] [--postgres URL]

The production topology of ``tests/test_topology.py`` on this machine (a Prefect server on
PostgreSQL behind the login gateway, the domain on PostgreSQL, the deployments of
``deployments/prefect.yaml`` on a ``process`` pool). Each worker in turn takes ``--runs``
report-incident runs one after the other (a warm-up run first, not counted):

- **run start**: from the worker's Pending (it took the run) to the engine's Running (the
  run's state history in Prefect), and to the flow function's first line (a probe, ``PROBE``);
- **start CPU**: the CPU seconds the run's process had used when the flow function was
  called (its whole life for ``python -m prefect.engine``, since its fork for a forked run);
- **CPU per run**: the CPU seconds of the processes that ran the runs (the worker's reaped
  children, and the fork server's for ``dutyflow worker``), per run: start, work and exit;
- **run length**: Running → Completed (the flow's work and its engine's teardown,
  heartbeats included: ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30`` as in the README).

Targets (issue 19): with ``dutyflow worker`` run start ≤ 1 s and ≤ 0.5 CPU-s per run.
Exit status 0 when both hold.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of_children(pid: int) -> float:
    """CPU seconds of ``pid``'s children it has reaped (/proc: cutime + cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / TICK


def _tree_cpu(pid: int, descendants) -> float:
    """Reaped children's CPU of ``pid`` and of every process below it (the fork server's runs)."""
    return sum(_cpu_of_children(p) for p in (pid, *descendants(pid)))


#: Written as ``sitecustomize.py`` on the workers' PYTHONPATH: every process that runs a flow
#: records its own CPU seconds (since its start, or since its fork) and the wall clock at the
#: moment the engine calls the flow's function — the run has started.
PROBE = """
import json, os, time
import prefect.flow_engine as _fe
_call = _fe.FlowRunEngine.call_flow_fn
def call_flow_fn(self):
    with open(os.path.join(os.environ["BENCH_PROBE_DIR"], f"{self.flow_run.id}.json"), "w") as fh:
        json.dump({"cpu": time.process_time(), "wall": time.time()}, fh)
    return _call(self)
_fe.FlowRunEngine.call_flow_fn = call_flow_fn
"""


def _timeline(client, run_id) -> dict[str, float]:
    """state type → its timestamp (epoch seconds), from the run's state history."""
    return {s.type.value: s.timestamp.timestamp() for s in client.read_flow_run_states(run_id)}


def measure(topo, api_client, incident_request, descendants, command: list[str], label: str, runs: int) -> dict:
    log = topo.tmp / f"{label.split()[0]}.log"
    probe = topo.tmp / "probe"
    probe.mkdir(exist_ok=True)
    (probe / "sitecustomize.py").write_text(PROBE, encoding="utf-8")
    env = {**topo.env, "PYTHONPATH": str(probe), "BENCH_PROBE_DIR": str(probe)}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        with api_client(topo.api) as client:
            dep = client.read_deployment_by_name("report-incident/report-incident").id

            def one(i: int) -> str:
                """Run ``i`` to its end; its id."""
                run = client.create_flow_run_from_deployment(dep, parameters={"request": incident_request(i)})
                deadline = time.monotonic() + 180
                while True:
                    state = client.read_flow_run(run.id).state
                    if state and state.is_final():
                        if state.type.value != "COMPLETED":
                            raise RuntimeError(f"{label}: run {run.id} ended {state.type.value}: "
                                               + log.read_text(errors="replace")[-2000:])
                        return run.id
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"{label}: run not done: " + log.read_text(errors="replace")[-2000:])
                    time.sleep(0.02)

            one(1000)  # warm-up: the worker is up, the fork server has its preload
            before = _tree_cpu(proc.pid, descendants)
            done = [one(i) for i in range(runs)]
            cpu = (_tree_cpu(proc.pid, descendants) - before) / runs
            lines = [_timeline(client, run_id) for run_id in done]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    probes = [json.loads((probe / f"{run_id}.json").read_text()) for run_id in done]
    starts = [t["RUNNING"] - t["PENDING"] for t in lines]
    to_flow = [p["wall"] - t["PENDING"] for p, t in zip(probes, lines)]
    lengths = [t["COMPLETED"] - t["RUNNING"] for t in lines]
    return {"label": label, "start_p50": statistics.median(starts), "start_max": max(starts),
            "start_cpu": statistics.median(p["cpu"] for p in probes), "to_flow_p50": statistics.median(to_flow),
            "cpu": cpu, "length_p50": statistics.median(lengths)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--postgres", default=os.environ.get("DUTYFLOW_TEST_POSTGRES_URL",
                                                         "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = ap.parse_args()
    os.environ["DUTYFLOW_TEST_POSTGRES_URL"] = args.postgres
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    from conftest import Sink  # noqa: E402  (the suite's local HTTP sink)
    from test_topology import Topology, _descendants, api_client, incident_request  # noqa: E402

    tmp = Path(tempfile.mkdtemp(prefix="dutyflow_bench_worker_"))
    sink = Sink()
    topo = Topology(tmp, sink)
    results = []
    try:
        topo.install()
        for key in Topology.CLIENT_KEYS:
            os.environ[key] = topo.env[key]  # this process is a client of the same installation
        bin_dir = Path(sys.executable).parent
        for command, label in (
            ([str(bin_dir / "prefect"), "worker", "start", "--pool", "dutyflow"], "prefect worker start (stock)"),
            ([str(bin_dir / "dutyflow"), "worker", "--pool", "dutyflow"], "dutyflow worker (fork server)"),
        ):
            results.append(measure(topo, api_client, incident_request, _descendants, command, label, args.runs))
    finally:
        topo.close()
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nwork-pool runs of report-incident, {args.runs} each, one at a time (2-core machine)")
    print(f"{'worker':31} {'start p50':>9} {'max':>6} {'to flow p50':>11} {'start CPU-s':>11} "
          f"{'run p50':>8} {'CPU-s/run':>9}")
    for r in results:
        print(f"{r['label']:31} {r['start_p50']:>8.2f}s {r['start_max']:>5.2f}s {r['to_flow_p50']:>10.2f}s "
              f"{r['start_cpu']:>11.2f} {r['length_p50']:>7.2f}s {r['cpu']:>9.2f}")
    ours = results[-1]
    ok = ours["to_flow_p50"] <= 1.0 and ours["start_cpu"] <= 0.5
    print(f"target (dutyflow worker): run start ≤ 1 s → p50 {ours['to_flow_p50']:.2f} s from Pending to the "
          f"flow's first line; ≤ 0.5 CPU-s → {ours['start_cpu']:.2f} CPU-s — {'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

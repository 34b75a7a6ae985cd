#!/usr/bin/env python
"""The full crash-recovery soak of the production topology (SPEC §6; issue 19 item 6).

    DUTYFLOW_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        python benchmarks/soak_topology.py [--runs 50] [--kills 20] [--seed N]

Runs ``tests/test_topology.py`` — a Prefect server on PostgreSQL behind the login gateway,
two process workers, the every-minute sweep and manual sweeps — at the soak's size: 50
incidents and 50 risks submitted at once, 20 seeded kill -9s of a worker and every run it
started. CI runs the same test at 10 + 10 runs and 5 kills. Prints the test's own figures
(actions, kills, re-driven runs, audit events, messages, 结果不明, time to drain) and the
wall time; exit status is pytest's (0: every request applied once, every step and message once).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50, help="incidents, and as many risks")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    env = dict(os.environ)
    env.setdefault("DUTYFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    env.update(DUTYFLOW_TOPOLOGY_RUNS=str(args.runs), DUTYFLOW_TOPOLOGY_KILLS=str(args.kills))
    if args.seed is not None:
        env["DUTYFLOW_TOPOLOGY_SEED"] = str(args.seed)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "test_topology.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall = time.monotonic() - started
    figures = [line for line in proc.stdout.splitlines() if line.startswith(("topology", "FAILED", "E  "))]
    print("\n".join(figures) or proc.stdout[-3000:])
    print(f"soak: {args.runs} + {args.runs} runs, {args.kills} kills, wall {wall:.0f} s — "
          f"{'PASS' if proc.returncode == 0 else 'FAIL'}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Sweep benchmark of dutyflow at scale: 1,000,000 open rectification obligations, 1 % due.

    python benchmarks/bench_sweep.py [--n 1000000] [--due-fraction 0.01] [--postgres URL]
                                     [--sqlite-only | --postgres-only] [--profile] [--deliver-max N]

Issue target: "Sweep with 1,000,000 open obligations, 1% due: the due-selection query under
1 s on SQLite and on PostgreSQL (index on next_action_at), acting on the 10,000 due ones in
under 30 s with notifications to a local sink."

Per backend (SQLite, then PostgreSQL when reachable; each on a fresh, migrated database
with the demo org, every channel pointing at a local HTTP sink — helpers reused from
``bench_foundation``):

* N rectification cases (state ``acknowledged``, units SQ01–SQ12, issuer WXB, risk medium,
  ``data`` as ``models.rectification.notify`` writes it), each with one outstanding
  ``rectify`` obligation (role cyber_officer), bulk-inserted in chunks of 50,000 with Core
  ``insert()`` executemany, then ``ANALYZE``. The ladder times come from the project's own
  ``models.rectification.ladders()`` and working-day calendar, so every due obligation is
  exactly one ladder step behind: reminder (step 0 → 1: due in the future, reminder time
  passed), urge (1 → 2: due just passed), interview (2 → 3) and about 1 % proposals
  (3 → 4: each creates an accountability case). Obligations past their due time carry
  status ``missed`` and their ladder history, as the sweep would have left them. The rest
  are not due (``next_action_at`` = their reminder time, in the future).
* (a) ``models.sweep.due(now, limit=200)`` (the policy batch) and ``due(now, limit=10000)``,
  first call on fresh connections and warm median, and the query plans (EXPLAIN QUERY
  PLAN / EXPLAIN (ANALYZE, BUFFERS)) of the first batch and of a keyset-continued batch.
* (b) ``models.sweep.sweep()`` on the due ones: wall time, ms per obligation, process CPU
  (and, on PostgreSQL, the CPU of this database's server backends); the split between the
  due() selections, the per-step handlers (by ladder step) and the per-batch remainder
  (lock/prefetch query, flush, commit). Checks: acted == due, no errors, each due obligation's
  step advanced exactly once (one ladder entry more, none implied), nothing else touched,
  notices created == acted (per kind), one accountability case per proposal, one audit
  event per step plus one per proposal, a second sweep acts on 0, ``models.audit.verify``.
* (c) ``tasks.notify.deliver()`` of the queued notifications to the sink (not part of
  the 30 s figure): messages/s.
* (d) peak RSS: of the whole run, and of each phase (``/proc/self/clear_refs``).

``--profile`` runs the sweep under cProfile (its wall time is then marked as profiled and
not judged) and prints the top 30 functions by cumulative and by internal time.
The clock is pinned (``DUTYFLOW_NOW``, the foundation's Saturday 2026-11-28 10:30 Beijing).
Exit status: 0 all PASS, 1 a target MISSed, 2 a correctness check failed.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter as Tally, defaultdict
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_foundation as bf  # noqa: E402  (also puts the project root on sys.path)
from bench_foundation import (  # noqa: E402
    COMMUNITIES, NOW, Databases, Sink, backend_of, check, count, fresh_db, row, say,
)

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CHUNK = 50_000
STEP_NAMES = {1: "reminder", 2: "urge", 3: "interview", 4: "proposal"}
NOTICE_OF = {1: "rectification_reminder", 2: "rectification_reminder", 3: "interview_notice",
             4: "accountability_proposal"}
SOURCE = "区委网信办《关于网络安全检查发现问题的通报》（网信通〔2026〕12号）"
REQUIREMENT = "立即修改弱口令、修复高危漏洞，关闭不必要的对外服务端口，并报送整改报告和佐证材料"


# --------------------------------------------------------------------------- memory

def _status(key: str) -> float:
    """A /proc/self/status figure in MiB (VmRSS, VmHWM); NaN when unavailable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


PEAK_SEEN = [0.0]  # the highest VmHWM read before a reset (a reset also lowers ru_maxrss)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: write 5 to clear_refs)."""
    hwm = _status("VmHWM")
    if hwm == hwm:
        PEAK_SEEN[0] = max(PEAK_SEEN[0], hwm)
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def phase_peak(label: str, backend: str, can_reset: bool) -> None:
    if can_reset:
        row("d", f"peak RSS during {label}", backend, _status("VmHWM"), "MiB", fmt="{:,.0f}")


# --------------------------------------------------------------------------- synthetic data


def ladder_plan(at, past_days: int = 45, future_days: int = 100):
    """Candidate due days per ladder position, from the project's ladder and calendar.

    Returns ``{target: [(due_at, [t1, t2, t3, t4]), …]}``: target 0 = nothing due yet
    (t1 > at), k = 1..4 = step k is the latest one whose time has come.
    """
    from models.clock import local
    from models.db import session
    from models.rectification import ladders
    from models.deadlines import calendar, end_of_day

    ladder = ladders()["rectify"]
    assert [ls.step for ls in ladder] == [1, 2, 3, 4], ladder
    plan: dict[int, list] = defaultdict(list)
    today = local(at).date()
    with session() as s:
        cal = calendar(s)
        for off in range(-past_days, future_days + 1):
            d = today + timedelta(days=off)
            if not cal.is_workday(d)[0]:
                continue  # computed deadlines end on working days
            due_at = end_of_day(d)
            ob = SimpleNamespace(due_at=due_at)
            times = [ls.when(ob, cal) for ls in ladder]
            passed = [ls.step for ls, t in zip(ladder, times) if t <= at]
            target = max(passed) if passed else 0
            plan[target].append((due_at, times))
    for k in range(5):
        if not plan.get(k):
            raise SystemExit(f"no due day puts a rectify obligation at ladder position {k} on {at}")
    return plan


def seed(total: int, due_n: int, at, rnd: random.Random,
         proposal_frac: float = 0.01) -> tuple[float, dict[int, int]]:
    """Bulk-insert ``total`` rectification cases + ``rectify`` obligations; ``due_n`` due."""
    import sqlalchemy as sa
    import yaml

    from models.case import Case, Obligation
    from models.db import engine

    plan = ladder_plan(at)
    names = {u["code"]: u["name"] for u in
             yaml.safe_load((bf.ROOT / "deployments" / "demo_org.yaml").read_text(encoding="utf-8"))["units"]}
    n_prop = min(due_n, round(due_n * proposal_frac))
    if proposal_frac > 0 and due_n >= 4:
        n_prop = max(1, n_prop)
    rest = due_n - n_prop
    targets = [4] * n_prop + [1] * (rest - 2 * (rest // 3)) + [2] * (rest // 3) + [3] * (rest // 3)
    rnd.shuffle(targets)
    due_idx = dict(zip(rnd.sample(range(total), due_n), targets))
    mix = Tally(targets)
    case_t, ob_t = Case.__table__, Obligation.__table__
    problems = ["门户网站存在弱口令", "办公电脑未安装终端防护软件", "政务服务终端操作系统存在高危漏洞",
                "居民信息台账未加密存放", "对外服务端口未按要求关闭", "网络安全日志留存不足六个月"]
    t0 = time.perf_counter()
    eng = engine()
    for start in range(0, total, CHUNK):
        cases, obs = [], []
        for i in range(start, min(start + CHUNK, total)):
            unit = COMMUNITIES[i % len(COMMUNITIES)]
            cid = f"RECT-2026-{i + 1:04d}"
            target = due_idx.get(i, 0)
            due_at, times = rnd.choice(plan[target])
            step = target - 1 if target else 0
            nxt = times[target - 1] if target else times[0]
            notified = min(due_at - timedelta(days=14), at - timedelta(hours=2)) - timedelta(
                minutes=rnd.randint(0, 7 * 24 * 60))
            acked = notified + timedelta(hours=rnd.randint(1, 20))
            acked = min(acked, at - timedelta(hours=1))
            ob_data: dict = {}
            if step:
                ob_data["ladder"] = [{"step": k, "name": STEP_NAMES[k], "at": times[k - 1].isoformat(),
                                      "implied": False} for k in range(1, step + 1)]
            if step >= 2:
                ob_data["missed_at"] = bf_local_iso(times[1])
            problem = f"{names[unit]}{problems[i % len(problems)]}（合成 {i + 1}）"
            cases.append({
                "id": cid, "kind": "rectification", "state": "acknowledged", "unit": unit,
                "title": problem[:60], "classified": False, "proposed_from": None, "dedupe_key": None,
                "data": {"source": SOURCE, "risk_level": "medium", "problem": problem, "problem_code": "",
                         "requirement": REQUIREMENT, "issuer": "WXB", "due_override": None, "extensions": [],
                         "submissions": [], "verifications": [], "recurrence": []},
                "warnings": [], "created_at": notified, "updated_at": acked, "event_count": 0, "version_id": 1,
            })
            obs.append({
                "case_id": cid, "unit": unit, "kind": "rectify", "role": "cyber_officer",
                "status": "missed" if step >= 2 else "open", "step": step, "due_at": due_at,
                "next_action_at": nxt, "met_at": None, "calendar_unconfirmed": False, "data": ob_data,
                "version_id": 1,
            })
        with eng.begin() as c:
            c.execute(sa.insert(case_t), cases)
            c.execute(sa.insert(ob_t), obs)
        done = min(start + CHUNK, total)
        if done % 200_000 == 0 or done == total:
            say(f"    … {done:,} inserted ({time.perf_counter() - t0:.0f} s)")
    return time.perf_counter() - t0, dict(mix)


def bf_local_iso(t) -> str:
    from models.clock import local

    return local(t).isoformat()


def analyze(url: str) -> float:
    from models.db import engine

    t = time.perf_counter()
    if url.startswith("sqlite"):
        with engine().begin() as c:
            c.exec_driver_sql("ANALYZE")
        raw = engine().raw_connection()  # autocommit at the driver: no BEGIN IMMEDIATE around it
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    else:
        with engine().connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("ANALYZE")
    return time.perf_counter() - t


# --------------------------------------------------------------------------- plans


def due_sql(at, limit: int, after=None):
    """The statement ``models.sweep.due`` runs."""
    from models.sweep import due_query

    return due_query(at, limit, after)


def explain(url: str, q) -> str:
    from models.db import engine

    eng = engine()
    sql = str(q.compile(dialect=eng.dialect, compile_kwargs={"literal_binds": True}))
    with eng.connect() as c:
        if url.startswith("sqlite"):
            rows = c.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
            return "\n      ".join(r[-1] for r in rows)
        rows = c.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql).all()
        return "\n      ".join(r[0] for r in rows)


# --------------------------------------------------------------------------- instrumentation


class Instrument:
    """Times due(), each handler call (by ladder step) and each batch inside sweep(), by
    wrapping the module globals ``models.sweep`` looks up at call time (no project edits)."""

    def __init__(self, step_of: dict[int, int]):
        import models.sweep as sw

        self.sw = sw
        self.step_of = step_of
        self.due_s: list[float] = []
        self.batch_s: list[float] = []
        self.handler_s: dict[str, list[float]] = defaultdict(list)
        self.orig = (sw.due, sw._act_on_batch, sw.escalators)
        self.gc_s = [0.0, 0]  # time in Python's cyclic garbage collector, collections
        self._gc_t0 = 0.0

    def _gc(self, phase, info):
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        else:
            self.gc_s[0] += time.perf_counter() - self._gc_t0
            self.gc_s[1] += 1

    def __enter__(self):
        sw, (due, act, escalators) = self.sw, self.orig

        def timed_due(*a, **k):
            t = time.perf_counter()
            try:
                return due(*a, **k)
            finally:
                self.due_s.append(time.perf_counter() - t)

        def timed_act(*a, **k):
            t = time.perf_counter()
            try:
                return act(*a, **k)
            finally:
                self.batch_s.append(time.perf_counter() - t)

        def timed_escalators():
            def wrap(fn):
                def handler(ob_id, case_id, flow_run_id, session=None):
                    t = time.perf_counter()
                    try:
                        return fn(ob_id, case_id, flow_run_id, session=session)
                    finally:
                        name = STEP_NAMES.get(self.step_of.get(ob_id, 0) + 1, "other")
                        self.handler_s[name].append(time.perf_counter() - t)
                return handler
            return {k: wrap(f) for k, f in escalators().items()}

        sw.due, sw._act_on_batch, sw.escalators = timed_due, timed_act, timed_escalators
        gc.callbacks.append(self._gc)
        return self

    def __exit__(self, *exc):
        self.sw.due, self.sw._act_on_batch, self.sw.escalators = self.orig
        gc.callbacks.remove(self._gc)
        return False


def server_cpu(pids: list[int]) -> float:
    """utime + stime (s) of these local processes (PostgreSQL backends); NaN if unreadable."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                parts = fh.read().rsplit(")", 1)[1].split()
            total += (int(parts[11]) + int(parts[12])) / tick
        except (OSError, IndexError, ValueError):
            return float("nan")
    return total


def backend_pids() -> list[int]:
    from models.db import engine

    with engine().connect() as c:
        return list(c.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()").scalars())


class SqlTiming:
    """``--sql-timing``: statements the sweep sent, grouped by their first words, with the
    time from cursor execute to its return (round trip + server work) and the rows sent."""

    def __init__(self, eng):
        import sqlalchemy as sa

        self.eng, self.stats, self._t0 = eng, defaultdict(lambda: [0, 0, 0.0]), {}
        sa.event.listen(eng, "before_cursor_execute", self._before)
        sa.event.listen(eng, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        self._t0[id(cursor)] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        head = " ".join(statement.split()[:3])[:60]
        st = self.stats[(head, executemany)]
        st[0] += 1
        st[1] += len(parameters) if executemany else 1
        st[2] += time.perf_counter() - self._t0.pop(id(cursor), time.perf_counter())

    def report(self, backend: str) -> None:
        import sqlalchemy as sa

        sa.event.remove(self.eng, "before_cursor_execute", self._before)
        sa.event.remove(self.eng, "after_cursor_execute", self._after)
        say(f"    SQL sent by the sweep on {backend} (statement head, executemany, calls, rows, seconds):")
        for (head, many), (calls, rows, secs) in sorted(self.stats.items(), key=lambda kv: -kv[1][2])[:15]:
            say(f"      {head:<60} {'many' if many else 'one ':<4} {calls:>7,} {rows:>8,} {secs:8.3f} s")
        if self.eng.dialect.name == "postgresql":  # sequential scans since the server started
            with self.eng.connect() as c:
                stats = c.exec_driver_sql(
                    "SELECT relname, seq_scan, seq_tup_read, idx_scan FROM pg_stat_user_tables "
                    "WHERE seq_tup_read > 100000 ORDER BY seq_tup_read DESC").all()
            for name, scans, read, idx in stats:
                say(f"      table {name}: {scans:,} sequential scans reading {read:,} rows; {idx or 0:,} index scans")


def run_profiled(fn):
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    result = prof.runcall(fn)
    if os.environ.get("BENCH_PROFILE_OUT"):  # raw stats for pstats drill-down
        prof.dump_stats(os.environ["BENCH_PROFILE_OUT"])
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf).strip_dirs()
    st.sort_stats("cumulative").print_stats(30)
    st.sort_stats("tottime").print_stats(30)
    return result, buf.getvalue()


def time_supervision(backend: str, at) -> None:
    """Time the accountability chain's derived-weak-supervision check once, as a proposal runs
    it (``models.tracing.supervision_was_weak``), on this database (read-only)."""
    from sqlmodel import select

    from models.case import Case
    from models.clock import local
    from models.db import session
    from models.org import get_unit
    from models.tracing import supervision_was_weak

    on = local(at).date() - timedelta(days=15)  # a facts date of the proposals (their due day)
    runs = []
    for _ in range(3):
        with session() as s:
            unit = get_unit(s, COMMUNITIES[0])
            source = s.exec(select(Case).where(Case.kind == "rectification", Case.unit == unit.code)
                            .order_by(Case.id).limit(1)).first()  # the facts a proposal traces
            t = time.perf_counter()
            answer = supervision_was_weak(s, unit, on, source)
            runs.append(time.perf_counter() - t)
    say(f"    models.tracing.supervision_was_weak({unit.code}, {on}) (part of each proposal): first "
        f"{runs[0] * 1000:,.1f} ms, median {statistics.median(runs) * 1000:,.1f} ms; answer {answer!r}")
    row("b", "  supervision_was_weak() once (part of a proposal)", backend, runs[0] * 1000, "ms", fmt="{:,.1f}")


# --------------------------------------------------------------------------- one backend


def run_backend(dbs: Databases, sink: Sink, total: int, due_frac: float, pg: bool, args) -> None:
    import sqlalchemy as sa

    from models.audit import AuditEvent, verify
    from models.case import Case, Obligation
    from models.clock import now
    from models.db import dispose_all, engine, session
    from models.notice import Notice, Notification
    from tasks.notify import deliver
    from models.sweep import due, sweep

    can_reset = reset_peak()
    due_n = round(total * due_frac)
    say(f"\n[{'PostgreSQL' if pg else 'SQLite'}] sweep over {total:,} open obligations, {due_n:,} due")
    url = fresh_db(dbs, "sweep", sink, pg)
    backend = backend_of(url)
    at = now()
    rnd = random.Random(args.seed)

    # ---------------------------------------------------------------- seed
    c0 = time.process_time()
    seed_s, mix = seed(total, due_n, at, rnd, args.proposal_fraction)
    seed_cpu = time.process_time() - c0
    say(f"    bulk insert of {total:,} cases + {total:,} obligations (chunks of {CHUNK:,}, Core executemany): "
        f"{seed_s:.1f} s ({2 * total / seed_s:,.0f} rows/s, client CPU {seed_cpu:.1f} s); due mix "
        + ", ".join(f"{STEP_NAMES[k]} {mix.get(k, 0):,}" for k in (1, 2, 3, 4)))
    an_s = analyze(url)
    say(f"    ANALYZE: {an_s:.1f} s")
    row("-", f"bulk insert {total:,} cases + obligations", backend, seed_s, "s", fmt="{:,.1f}")
    row("-", "ANALYZE after the load", backend, an_s, "s", fmt="{:,.1f}")
    if url.startswith("sqlite"):
        size = sum(p.stat().st_size for p in dbs.tmp.glob("sweep.db*")) / 2 ** 20
        say(f"    SQLite file: {size:,.0f} MiB")
    phase_peak("the bulk insert", backend, can_reset)
    can_reset = reset_peak()

    # ---------------------------------------------------------------- (a) due selection
    dispose_all()  # fresh connections: no per-connection page cache (the OS cache stays warm)
    batch = __import__("models.policy", fromlist=["get"]).get("sweep", "batch_size", default=200)
    t = time.perf_counter()
    first = due(at, limit=batch)
    cold_b = time.perf_counter() - t
    t = time.perf_counter()
    full = due(at, limit=max(due_n, 1))
    cold_f = time.perf_counter() - t
    warm_b, warm_f = [], []
    for _ in range(5):
        t = time.perf_counter()
        due(at, limit=batch)
        warm_b.append(time.perf_counter() - t)
        t = time.perf_counter()
        due(at, limit=max(due_n, 1))
        warm_f.append(time.perf_counter() - t)
    mid = full[len(full) // 2] if full else None
    t = time.perf_counter()
    if mid is not None:
        due(at, limit=batch, after=(mid[0], mid[1]))
    keyset = time.perf_counter() - t
    say(f"    due(now, limit={batch}): {len(first)} rows, first {cold_b * 1000:.1f} ms, warm median "
        f"{statistics.median(warm_b) * 1000:.1f} ms; keyset-continued batch {keyset * 1000:.1f} ms")
    say(f"    due(now, limit={due_n:,}): {len(full):,} rows, first {cold_f * 1000:.1f} ms, warm median "
        f"{statistics.median(warm_f) * 1000:.1f} ms")
    plan_b = explain(url, due_sql(at, batch))
    plan_k = explain(url, due_sql(at, batch, after=(mid[0], mid[1]))) if mid else ""
    say(f"    plan of due(now, limit={batch}):\n      {plan_b}")
    if plan_k:
        say(f"    plan of a keyset-continued batch (after=…):\n      {plan_k}")
    row("a", f"due(now, limit={batch}) first call", backend, cold_b * 1000, "ms", at_most=1000, fmt="{:,.1f}")
    row("a", f"due(now, limit={batch}) warm median", backend, statistics.median(warm_b) * 1000, "ms",
        at_most=1000, fmt="{:,.1f}")
    if due_n > batch:
        row("a", f"due(now, limit={due_n:,}) first call", backend, cold_f * 1000, "ms", at_most=1000,
            fmt="{:,.1f}")
        row("a", f"due(now, limit={due_n:,}) warm median", backend, statistics.median(warm_f) * 1000, "ms",
            at_most=1000, fmt="{:,.1f}")
    row("a", "due() keyset-continued batch (after=…)", backend, keyset * 1000, "ms", fmt="{:,.1f}")
    check(f"{backend}: due() finds every due obligation", len(full) == due_n and len(first) == min(batch, due_n),
          f"({len(full):,} of {due_n:,}; first batch {len(first)})")
    check(f"{backend}: due() plan uses ix_obligation_next_action", "ix_obligation_next_action" in plan_b, "")
    if "TEMP B-TREE" in plan_b or "Sort" in plan_b:
        say("    note: the plan sorts (ORDER BY next_action_at, id)")
    if plan_k and "Filter" in plan_k and "id >" in plan_k.split("Filter", 1)[1].split("\n", 1)[0]:
        say("    note: the keyset condition (after=…) is a Filter, not an index condition: each later batch "
            "re-reads the due range from its start")

    # ---------------------------------------------------------------- (b) sweep
    with session() as s:
        before = {r.id: (r.step, r.status, len((r.data or {}).get("ladder", []))) for r in s.exec(
            sa.select(Obligation.id, Obligation.step, Obligation.status, Obligation.data)
            .where(Obligation.next_action_at <= at)).all()}
    notices0 = dict(Tally(k for (k,) in _rows(sa.select(Notice.kind))))
    events0 = count(AuditEvent.__table__)
    acc0 = count(Case.__table__, Case.kind == "accountability")
    step_of = {i: v[0] for i, v in before.items()}
    pids = backend_pids() if pg else []
    srv0 = server_cpu(pids) if pids else float("nan")
    can_reset = reset_peak()
    label = "sweep() (under cProfile)" if args.profile else "sweep()"
    sql_timing = SqlTiming(engine()) if args.sql_timing else None
    with Instrument(step_of) as ins:
        t, c0 = time.perf_counter(), time.process_time()
        if args.profile:
            out, report = run_profiled(sweep)
        else:
            out, report = sweep(), ""
        sweep_s, sweep_cpu = time.perf_counter() - t, time.process_time() - c0
    srv = server_cpu(pids) - srv0 if pids else float("nan")
    if sql_timing is not None:
        sql_timing.report(backend)
    phase_peak("the sweep", backend, can_reset)
    acted = out["acted"]
    say(f"    {label}: {out} in {sweep_s:.2f} s ({due_n / sweep_s:,.0f} obligations/s, "
        f"{sweep_s / max(due_n, 1) * 1000:.2f} ms each), CPU {sweep_cpu:.2f} s"
        + (f", PostgreSQL backends CPU {srv:.2f} s" if pids else ""))
    handler_tot = sum(sum(v) for v in ins.handler_s.values())
    due_tot, batch_tot = sum(ins.due_s), sum(ins.batch_s)
    say(f"    split: {len(ins.due_s)} due() selections {due_tot:.2f} s; {len(ins.batch_s)} batches "
        f"{batch_tot:.2f} s, of which handlers {handler_tot:.2f} s and the rest (lock/prefetch query, flush, commit) "
        f"{batch_tot - handler_tot:.2f} s; Python's garbage collector {ins.gc_s[0]:.2f} s in {ins.gc_s[1]:,} "
        f"collections ({len(gc.get_objects()):,} objects tracked)")
    for name in ("reminder", "urge", "interview", "proposal", "other"):
        v = ins.handler_s.get(name)
        if v:
            say(f"      {name:<9} {len(v):>6,} steps, {sum(v):8.2f} s, mean {statistics.mean(v) * 1000:8.2f} ms, "
                f"max {max(v) * 1000:8.1f} ms")
            row("b", f"  {name} step mean (handler)", backend, statistics.mean(v) * 1000, "ms", fmt="{:,.2f}")
    if report:
        say(f"\n---- cProfile: sweep() on {backend} ----\n{report}")
    judged = {} if args.profile else {"at_most": 30}
    row("b", f"{label} acting on {due_n:,} due", backend, sweep_s, "s", fmt="{:,.2f}", **judged)
    row("b", "sweep() per due obligation", backend, sweep_s / max(due_n, 1) * 1000, "ms", fmt="{:,.2f}")
    row("b", "sweep() CPU time of this process", backend, sweep_cpu, "s", fmt="{:,.2f}")
    if pids:
        row("b", "sweep() CPU time of the PostgreSQL backends", backend, srv, "s", fmt="{:,.2f}")
    prop_s = sum(ins.handler_s.get("proposal", []))
    if prop_s:
        row("b", "  sweep() minus the proposal steps", backend, sweep_s - prop_s, "s", fmt="{:,.2f}")
    if ins.batch_s:
        row("b", "  longest batch transaction (locks held)", backend, max(ins.batch_s), "s", fmt="{:,.2f}")
    row("b", "  of which due() selections", backend, due_tot, "s", fmt="{:,.2f}")
    row("b", "  of which per-batch lock query, flush, commit", backend, batch_tot - handler_tot, "s", fmt="{:,.2f}")

    check(f"{backend}: sweep acted on every due obligation", acted == due_n and out["errors"] == 0
          and out["skipped"] == 0, f"(acted={acted}, skipped={out['skipped']}, errors={out['errors']})")
    with session() as s:
        after = {r.id: (r.step, r.status, (r.data or {}).get("ladder", []), r.next_action_at) for r in s.exec(
            sa.select(Obligation.id, Obligation.step, Obligation.status, Obligation.data, Obligation.next_action_at)
            .where(Obligation.step > 0)).all()}
    wrong_step = [i for i, (st, _s, _l, _n) in after.items() if i in before and st != before[i][0] + 1]
    touched = [i for i, (st, _s, _l, _n) in after.items() if i not in before and st != 0]
    # obligations not due that carried a step already (none by construction) are excluded above
    bad_ladder = [i for i, (_st, _s, lad, _n) in after.items() if i in before and (
        len(lad) != before[i][2] + 1 or lad[-1]["implied"] or lad[-1]["step"] != before[i][0] + 1)]
    still_due = [i for i, (_st, _s, _l, n) in after.items() if n is not None and n <= at]
    not_missed = [i for i, (st, status, _l, _n) in after.items() if i in before and st >= 2 and status != "missed"]
    check(f"{backend}: each due obligation's step advanced exactly once",
          not wrong_step and not bad_ladder, f"({len(wrong_step)} wrong steps, {len(bad_ladder)} bad ladder entries)")
    check(f"{backend}: no obligation that was not due was touched", not touched, f"({len(touched)})")
    check(f"{backend}: none left due; urged and later ones missed", not still_due and not not_missed,
          f"({len(still_due)} still due, {len(not_missed)} not marked missed)")
    notices1 = dict(Tally(k for (k,) in _rows(sa.select(Notice.kind))))
    new = {k: notices1.get(k, 0) - notices0.get(k, 0) for k in notices1}
    expect = Tally()
    for st, *_ in before.values():
        expect[NOTICE_OF[st + 1]] += 1
    new_total = sum(new.values())
    say(f"    notices created: {new_total:,} " + str({k: v for k, v in new.items() if v}))
    check(f"{backend}: notices created == acted (per kind)", new_total == acted and all(
        new.get(k, 0) == v for k, v in expect.items()), f"({new_total:,} == {acted:,}; expected {dict(expect)})")
    acc = count(Case.__table__, Case.kind == "accountability") - acc0
    check(f"{backend}: one accountability case per proposal", acc == mix.get(4, 0), f"({acc} == {mix.get(4, 0)})")
    events = count(AuditEvent.__table__) - events0
    check(f"{backend}: audit events == steps + proposals", events == acted + mix.get(4, 0),
          f"({events:,} == {acted:,} + {mix.get(4, 0)})")
    t = time.perf_counter()
    again = sweep()
    again_s = time.perf_counter() - t
    check(f"{backend}: second sweep acts on 0", again["acted"] == 0 and again["errors"] == 0,
          f"(acted={again['acted']}, {again_s * 1000:.0f} ms)")
    row("b", "second sweep() (nothing due)", backend, again_s * 1000, "ms", fmt="{:,.1f}")
    t = time.perf_counter()
    with session() as s:
        ok, msg = verify(s)
    verify_s = time.perf_counter() - t
    check(f"{backend}: audit chain intact", ok, f"({msg}, {verify_s:.2f} s)")

    time_supervision(backend, at)

    # ---------------------------------------------------------------- (c) delivery
    queued = count(Notification.__table__, Notification.status == "pending")
    cap = args.deliver_max if args.deliver_max is not None else queued
    if cap <= 0:
        say(f"    deliver(): skipped (--deliver-max 0); {queued:,} notifications queued")
        engine().dispose()
        return
    can_reset = reset_peak()
    before_sink = sink.count
    sent = failed = 0
    t, c0 = time.perf_counter(), time.process_time()
    while sent + failed < cap:
        res = deliver(limit=min(500, cap - sent - failed))
        sent += res["sent"]
        failed += res["failed"]
        if res["sent"] + res["failed"] == 0:
            break
    deliver_s, deliver_cpu = time.perf_counter() - t, time.process_time() - c0
    got = sink.count - before_sink
    phase_peak("delivery", backend, can_reset)
    rate = sent / deliver_s if deliver_s else 0.0
    say(f"    deliver(): {sent:,} sent, {failed} failed of {queued:,} queued (cap {cap:,}) in {deliver_s:.1f} s "
        f"({rate:,.0f} msgs/s, CPU {deliver_cpu:.1f} s); sink got {got:,}")
    row("c", f"deliver() {sent:,} of {queued:,} queued notifications", backend, deliver_s, "s", fmt="{:,.1f}")
    row("c", "deliver() messages/s (not in the 30 s)", backend, rate, "/s", at_least=50, bench_target=True)
    check(f"{backend}: delivered notifications reached the sink once", sent == got == min(cap, queued)
          and failed == 0, f"(sent {sent:,}, sink {got:,}, failed {failed})")
    left = count(Notification.__table__, Notification.status == "pending")
    if cap >= queued:
        check(f"{backend}: nothing left pending", left == 0, f"({left})")
    engine().dispose()


def _rows(q):
    from models.db import engine

    with engine().connect() as c:
        return c.execute(q).all()


# --------------------------------------------------------------------------- table


def code_version() -> str:
    """The project's commit (read-only ``git rev-parse``; others may be editing meanwhile)."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=bf.ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


CODE_AT_START = code_version()


def print_table(args, backends: list[str]) -> int:
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, PEAK_SEEN[0])
    row("d", "peak RSS of this process, whole run", "-", peak, "MiB", at_most=1024,
        bench_target=True, fmt="{:,.0f}")
    return bf.print_results(
        f"dutyflow sweep benchmark — n={args.n:,}, due fraction {args.due_fraction:g}, {', '.join(backends)}; "
        f"code at commit {CODE_AT_START} (start) / {code_version()} (end)", 56,
        "† target set by this benchmark (no SPEC figure); the foundation's part 3 runs the same "
        "sweep at 100,000 / 1,000 due (target < 10 s)")


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="open obligations (default 1,000,000)")
    ap.add_argument("--due-fraction", type=float, default=0.01, help="fraction due now (default 0.01)")
    ap.add_argument("--postgres", metavar="URL", help=f"PostgreSQL server (default {DEFAULT_PG}, when reachable)")
    ap.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    ap.add_argument("--postgres-only", action="store_true", help="skip SQLite")
    ap.add_argument("--profile", action="store_true", help="cProfile the sweep; print the top 30 (cum, tottime)")
    ap.add_argument("--deliver-max", type=int, default=None, metavar="N",
                    help="deliver at most N notifications per backend (default: all queued)")
    ap.add_argument("--proposal-fraction", type=float, default=0.01, metavar="F",
                    help="share of the due ones at the proposal step (default 0.01; 0: none, to profile "
                         "the other steps)")
    ap.add_argument("--sql-timing", action="store_true",
                    help="print the SQL the sweep sent, grouped by statement, with times")
    ap.add_argument("--seed", type=int, default=20261128)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dutyflow_bench_sweep_"))
    os.environ["DUTYFLOW_HOME"] = str(tmp / "home")
    os.environ["DUTYFLOW_NOW"] = NOW
    for var in ("DUTYFLOW_APPRISE_CONFIG", "DUTYFLOW_POLICY", "DUTYFLOW_DATABASE_URL"):
        os.environ.pop(var, None)
    os.environ["PREFECT_HOME"] = str(tmp / "prefect")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

    say(f"dutyflow sweep benchmark: n={args.n:,}, due fraction {args.due_fraction:g}; code at commit "
        f"{CODE_AT_START}; temp dir {tmp}")
    sink = Sink()
    dbs = None
    backends = []
    try:
        pg_url = None
        if not args.sqlite_only:
            pg_url = args.postgres or DEFAULT_PG
        try:
            dbs = Databases(tmp, pg_url)
        except SystemExit as exc:
            if args.postgres:
                raise
            say(f"  PostgreSQL skipped: {exc}")
            dbs = Databases(tmp, None)
        if not args.postgres_only:
            run_backend(dbs, sink, args.n, args.due_fraction, pg=False, args=args)
            backends.append("SQLite")
        if dbs.pg_db_url is not None:
            from models.db import dispose_all

            dispose_all()
            run_backend(dbs, sink, args.n, args.due_fraction, pg=True, args=args)
            backends.append("PostgreSQL")
        return print_table(args, backends)
    finally:
        try:
            if dbs is not None:
                dbs.close()
        finally:
            sink.close()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

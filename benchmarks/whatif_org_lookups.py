#!/usr/bin/env python
"""What-if: how much faster would report() and the sweep be with the fixes found by profiling?

    python benchmarks/whatif_org_lookups.py [--quick] [--postgres URL]

Runs the report() loop and the 1 %-due sweep of ``bench_foundation`` three times, each
on a fresh database, with the project code as is and with two candidate fixes patched in
*at runtime in this process only* (no project file is changed). The variants are
cumulative, each adds one fix:

- ``baseline``         : the code as it is.
- ``office_1query``    : ``models.org.office_unit`` answered by ONE query (units where an
                         ``office`` post is valid on the date) plus the ancestor walk,
                         instead of one ``holders()`` query per candidate unit (~19 for a
                         community of the demo org).
- ``+notify_prefetch`` : ``tasks.notify.queue_notifications`` with the recipients loaded
                         by one ``IN`` query and autoflush off (today each ``s.get(Person)``
                         autoflushes the previous Notification: one SELECT + one INSERT
                         per recipient).
- ``+counter_upsert``  : ``models.case.next_number`` as one
                         ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` (today 2 statements).
- ``+org_memo``        : ``holders()``/``office_unit()`` memoised per (unit, role, date) for
                         the run (what an org cache invalidated by ``load_org`` would give).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_foundation as bf  # noqa: E402


def office_unit_1query(s, code, on):
    """Same answer as models.org.office_unit: the unit itself, else its children by code,
    up the territorial line; but the office-holding units come from one query."""
    from sqlmodel import select

    from models.org import OrgUnit, Post, _valid_on, ancestors

    offices = {u.code: u for u in s.exec(
        select(OrgUnit).join(Post, Post.unit == OrgUnit.code).where(Post.role == "office", _valid_on(on))
    ).all()}
    if not offices:
        return None
    for anc in ancestors(s, code):
        if anc.code in offices:
            return anc
        kids = sorted(c for c, u in offices.items() if u.parent == anc.code)
        if kids:
            return offices[kids[0]]
    return None


def queue_prefetched(orig):
    """tasks.notify.queue_notifications with the recipients loaded by ONE query first and
    autoflush off, so the per-recipient ``s.get(Person)`` neither queries nor flushes the
    previous row (the rows then go out as one INSERT at the final flush)."""

    def wrapper(s, notice):
        from sqlmodel import select

        from models.org import Person

        ids = [str(p) for p in (notice.recipients or []) if p]
        keep = s.exec(select(Person).where(Person.id.in_(ids))).all() if ids else []  # noqa: F841 - strong refs
        with s.no_autoflush:
            rows = orig(s, notice)
        s.flush()
        return rows

    return wrapper


def next_number_upsert(s, name, year):
    """models.case.next_number in one statement (same gapless, transaction-bound sequence)."""
    from sqlalchemy import text

    return s.execute(
        text("INSERT INTO counter (name, year, value) VALUES (:n, :y, 1) "
             "ON CONFLICT (name, year) DO UPDATE SET value = counter.value + 1 RETURNING value"),
        {"n": name, "y": year},
    ).scalar_one()


#: cumulative variants: each adds one fix to the previous one
VARIANTS = {
    "baseline": set(),
    "office_1query": {"office"},
    "+notify_prefetch": {"office", "notify"},
    "+counter_upsert": {"office", "notify", "counter"},
    "+org_memo": {"office", "notify", "counter", "memo"},
}


def install(variant: str):
    """Patch the names the project modules use; returns an undo function."""
    import models.case as case
    import models.incident as inc
    import models.org as org
    import models.statemachine as sm
    import tasks.notices as notices
    import tasks.notify as notify

    feats = VARIANTS[variant]
    saved = {(m, n): getattr(m, n) for m, n in [
        (inc, "office_unit"), (inc, "holders"), (org, "office_unit"), (org, "holders"),
        (notify, "queue_notifications"), (case, "next_number"), (sm, "next_number"), (notices, "next_number"),
    ]}

    def undo():
        for (m, n), v in saved.items():
            setattr(m, n, v)

    orig_holders = org.holders
    office, hold = org.office_unit, orig_holders
    if "office" in feats:
        office = office_unit_1query
    if "memo" in feats:
        memo_h: dict = {}
        memo_o: dict = {}

        def hold(s, unit, role, on):
            key = (unit, role, on)
            if key not in memo_h:
                memo_h[key] = orig_holders(s, unit, role, on)
            return list(memo_h[key])

        def office(s, code, on):
            key = (code, on)
            if key not in memo_o:
                u = office_unit_1query(s, code, on)
                memo_o[key] = u.code if u else None
            return s.get(org.OrgUnit, memo_o[key]) if memo_o[key] else None

    for m in (inc, org):
        m.office_unit = office
        m.holders = hold
    if "notify" in feats:
        notify.queue_notifications = queue_prefetched(saved[(notify, "queue_notifications")])
    if "counter" in feats:
        for m in (case, sm, notices):
            m.next_number = next_number_upsert
    return undo


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--postgres", metavar="URL")
    args = ap.parse_args()
    n_rep, n_obl = (50, 10_000) if args.quick else (300, 100_000)

    tmp = Path(tempfile.mkdtemp(prefix="dutyflow_whatif_"))
    os.environ["DUTYFLOW_HOME"] = str(tmp / "home")
    os.environ["DUTYFLOW_NOW"] = bf.NOW
    for var in ("DUTYFLOW_APPRISE_CONFIG", "DUTYFLOW_POLICY", "DUTYFLOW_DATABASE_URL"):
        os.environ.pop(var, None)
    sink = bf.Sink()
    dbs = None
    results = []
    try:
        dbs = bf.Databases(tmp, args.postgres)
        pg = args.postgres is not None
        from models.incident import report
        from tasks.sweep import sweep

        # the one-query office_unit answers like the original for every unit and date
        bf.fresh_db(dbs, "w0_equivalence", sink, pg)
        from datetime import date

        from sqlmodel import select

        from models.db import session
        from models.org import OrgUnit, office_unit

        with session() as s:
            codes = s.exec(select(OrgUnit.code)).all()
            days = [date(2020, 1, 1), date(2024, 1, 1), date(2026, 11, 28)]
            same = all(
                (office_unit(s, c, d) or OrgUnit(code="-")).code == (office_unit_1query(s, c, d) or OrgUnit(code="-")).code
                for c in codes for d in days)
        bf.say(f"   office_unit_1query == office_unit for {len(codes)} units x {len(days)} dates: {same}")
        if not same:
            return 2
        for variant in VARIANTS:
            bf.say(f"\n== {variant}")
            url = bf.fresh_db(dbs, f"w1_{variant}", sink, pg)
            undo = install(variant)
            try:
                for r in bf.make_requests(5, "预热"):
                    report(r)
                reqs = bf.make_requests(n_rep, "基准")
                t = time.perf_counter()
                for r in reqs:
                    report(r)
                rate = n_rep / (time.perf_counter() - t)
                bf.fresh_db(dbs, f"w3_{variant}", sink, pg)
                bf.seed_obligations(n_obl, n_obl // 100)
                t = time.perf_counter()
                out = sweep()
                sweep_s = time.perf_counter() - t
            finally:
                undo()
            from models.notice import Notice, Notification

            due_n = n_obl // 100
            reminders = bf.count(Notice.__table__, Notice.kind == "report_reminder")
            queued = bf.count(Notification.__table__, Notification.status == "pending")
            ok = out["acted"] == due_n and out["errors"] == 0 and reminders == due_n and queued == 3 * due_n
            bf.say(f"   reminders {reminders}, notifications queued {queued}")
            bf.say(f"   report() {rate:.1f}/s; sweep {out} in {sweep_s:.2f} s {'OK' if ok else 'CHECK FAILED'}")
            results.append((variant, bf.backend_of(url), rate, sweep_s, n_obl // 100, ok))
    finally:
        try:
            if dbs is not None:
                dbs.close()
        finally:
            sink.close()
            shutil.rmtree(tmp, ignore_errors=True)
    bf.say(f"\n{'variant':<18} {'backend':<11} {'report()/s':>11} {'sweep (s)':>10} {'due':>6} {'ms/due':>7}")
    for v, b, rate, s, n, ok in results:
        bf.say(f"{v:<18} {b:<11} {rate:>11.1f} {s:>10.2f} {n:>6} {s / n * 1000:>7.2f}{'' if ok else '  CHECK FAILED'}")
    return 0 if all(r[-1] for r in results) else 2


if __name__ == "__main__":
    sys.exit(main())

"""Deadlines: clock hours, calendar days/months and working days — never mixed up.

Pure functions over an in-memory :class:`Calendar` (no Prefect, no query per call).
Inputs are timezone-aware datetimes (any offset); results are aware UTC. Days are the
local dates of Asia/Shanghai; "24:00 of day D" is the instant ``D+1 00:00+08:00``.

* :func:`add_hours` — clock hours, 24×7 (incident reports).
* :func:`add_days`, :func:`add_months` — calendar periods (民法典 arts. 201–203): the day of
  ``start`` is not counted, the period ends at 24:00 of its last day, and a last day that is
  not a working day moves to the first working day after it.
* :func:`add_working_days` — working days (rectification).

A day in a year without a full calendar (e.g. 2027 before the State Council's notice is
loaded) is taken as Monday–Friday and the result is flagged ``calendar_unconfirmed``.
"""
from __future__ import annotations

import calendar as _stdcal
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta
from typing import Mapping

from sqlmodel import Session, select

from models import calendar as calendar_table
from models.calendar import WorkDay
from models.clock import TZ, UTC

ONE_DAY = timedelta(days=1)
#: A process re-reads the table at most this often (another process may have loaded a year).
CACHE_SECONDS = 300.0
#: Safety stop for scans over days (a calendar with no working day at all).
_MAX_SCAN_DAYS = 3660


# --------------------------------------------------------------------------- the calendar


class Calendar:
    """Working days in memory: ``{date: workday}`` plus the years with a full set of rows."""

    __slots__ = ("_days", "known_years")

    def __init__(self, days: Mapping[date, bool] | None = None, known_years=None):
        self._days: dict[date, bool] = dict(days or {})
        if known_years is None:
            counts: dict[int, int] = {}
            for d in self._days:
                counts[d.year] = counts.get(d.year, 0) + 1
            known_years = {
                y for y, n in counts.items() if n == (366 if _stdcal.isleap(y) else 365)
            }
        self.known_years: frozenset[int] = frozenset(known_years)

    @classmethod
    def load(cls, s: Session) -> "Calendar":
        """Read the whole ``work_day`` table (≈8,400 rows, one query)."""
        rows = s.exec(select(WorkDay.day, WorkDay.workday)).all()
        return cls({d: bool(w) for d, w in rows})

    def is_workday(self, d: date) -> tuple[bool, bool]:
        """``(is a working day, confirmed)``; an unknown year falls back to Monday–Friday."""
        found = self._days.get(d)
        if found is None:
            return d.weekday() < 5, False
        return found, d.year in self.known_years

    def confirmed(self, d: date) -> bool:
        return d.year in self.known_years

    def __len__(self) -> int:
        return len(self._days)

    def __repr__(self) -> str:
        years = sorted(self.known_years)
        span = f"{years[0]}–{years[-1]}" if years else "none"
        return f"<Calendar {len(self._days)} days, known years {span}>"


_cache: dict[str, tuple[float, Calendar]] = {}
_lock = threading.Lock()


def _key(s: Session) -> str:
    return str(s.get_bind().url)


def calendar(s: Session) -> Calendar:
    """The calendar of ``s``'s database, loaded once per process (per database URL).

    Reloaded after :func:`invalidate` (called by every change through ``models.calendar``)
    or after :data:`CACHE_SECONDS`, so a year loaded by another process is seen too.
    """
    key = _key(s)
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    with _lock:
        hit = _cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        cal = Calendar.load(s)
        _cache[key] = (time.monotonic(), cal)
        return cal


def invalidate() -> None:
    """Forget every cached calendar (the next :func:`calendar` call re-reads the table)."""
    _cache.clear()


calendar_table.on_change(invalidate)


# --------------------------------------------------------------------------- deadlines


@dataclass(frozen=True)
class Deadline:
    due_at: datetime  # aware UTC
    calendar_unconfirmed: bool = False
    #: How it was computed — ``[rule, start ISO, n]`` (``working_days``, ``days``, ``months``)
    #: or ``["fixed", due ISO]`` — so that a deadline computed with a guessed calendar can be
    #: computed again once the year is loaded (:func:`recompute`).
    basis: tuple | None = field(default=None, compare=False)

    def obligation_data(self) -> dict:
        """What an obligation keeps of the deadline besides its due time: the basis, while unconfirmed."""
        return {"basis": list(self.basis)} if self.calendar_unconfirmed and self.basis else {}


def _aware(dt: datetime, name: str = "start") -> datetime:
    if not isinstance(dt, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt!r} refused: pass an aware time")
    return dt


def local_date(dt: datetime) -> date:
    """The Asia/Shanghai date of an instant."""
    return _aware(dt).astimezone(TZ).date()


def end_of_day(d: date) -> datetime:
    """24:00 of local day ``d`` (= the next local midnight), as aware UTC."""
    return datetime.combine(d + ONE_DAY, dtime(0), tzinfo=TZ).astimezone(UTC)


def due_day(due_at: datetime) -> date:
    """The local day whose 24:00 is ``due_at``: exactly local midnight counts as the day before."""
    loc = _aware(due_at, "due_at").astimezone(TZ)
    d = loc.date()
    if loc.time() == dtime(0):
        d -= ONE_DAY
    return d


def fixed_deadline(due_at: datetime, cal: Calendar) -> Deadline:
    """A due time given by a person (an issuer's override, an approved extension): flagged
    when the day it ends lies in a year whose holidays are not loaded."""
    due_at = _aware(due_at, "due_at").astimezone(UTC)
    return Deadline(due_at, not cal.confirmed(due_day(due_at)), ("fixed", due_at.isoformat()))


def add_hours(start: datetime, hours: float) -> Deadline:
    """``start`` + clock hours (24×7, holidays ignored); fractional hours allowed."""
    return Deadline(_aware(start).astimezone(UTC) + timedelta(hours=hours), False)


def _roll_to_workday(d: date, cal: Calendar) -> tuple[date, bool]:
    """``d`` or the first working day after it; and whether every day consulted is confirmed."""
    confirmed = True
    for _ in range(_MAX_SCAN_DAYS):
        work, ok = cal.is_workday(d)
        confirmed = confirmed and ok
        if work:
            return d, confirmed
        d += ONE_DAY
    raise ValueError(f"no working day within {_MAX_SCAN_DAYS} days of {d}")


def add_days(start: datetime, days: int, cal: Calendar) -> Deadline:
    """A period of ``days`` calendar days (民法典 arts. 201–203).

    The day of ``start`` (local date) is not counted; the last day is ``start's date + days``;
    if it is not a working day, the period ends on the first working day after it. Due at 24:00
    of that day.
    """
    if days < 0:
        raise ValueError("days must be >= 0")
    last = local_date(start) + timedelta(days=days)
    last, confirmed = _roll_to_workday(last, cal)
    return Deadline(end_of_day(last), not confirmed, ("days", start.isoformat(), days))


def shift_months(d: date, months: int) -> date:
    """The corresponding date ``months`` later (earlier if negative), clamped to the month's end."""
    idx = d.year * 12 + (d.month - 1) + months
    year, month = divmod(idx, 12)
    month += 1
    return date(year, month, min(d.day, _stdcal.monthrange(year, month)[1]))


def add_months(start: datetime, months: int, cal: Calendar) -> Deadline:
    """A period of ``months`` months: the last day is the corresponding date (clamped to the
    month's end: 1/31 + 1 month → 2/28 or 2/29); same holiday rule and 24:00 end as :func:`add_days`.
    """
    if months < 0:
        raise ValueError("months must be >= 0")
    last = shift_months(local_date(start), months)
    last, confirmed = _roll_to_workday(last, cal)
    return Deadline(end_of_day(last), not confirmed, ("months", start.isoformat(), months))


def add_working_days(start: datetime, n: int, cal: Calendar) -> Deadline:
    """Working-day deadlines.

    * ``n > 0``: count working days from the day after ``start``'s local date; due at 24:00
      of the n-th one (Friday 16:00 + 1 working day → 24:00 of the next working day).
    * ``n == 0``: 24:00 of ``start``'s local date if it is a working day, else 24:00 of the
      next working day.
    * ``n < 0``: ``start`` is read as a due time and its *due day* is :func:`due_day` (an
      instant at exactly local midnight is 24:00 of the day before); the result is 24:00 of
      the ``|n|``-th working day before the due day. ``add_working_days(due, -1)`` → the end
      of the working day before the due day (the "1 working day before due" reminder).

    Flagged ``calendar_unconfirmed`` when any day consulted lies in a year without data.
    """
    basis = ("working_days", start.isoformat(), n)
    if n == 0:
        d, confirmed = _roll_to_workday(local_date(start), cal)
        return Deadline(end_of_day(d), not confirmed, basis)
    step = ONE_DAY if n > 0 else -ONE_DAY
    d = local_date(start) if n > 0 else due_day(start)
    remaining = abs(n)
    confirmed = True
    scanned = 0
    while remaining:
        d += step
        work, ok = cal.is_workday(d)
        confirmed = confirmed and ok
        if work:
            remaining -= 1
        scanned += 1
        if scanned > _MAX_SCAN_DAYS + 2 * abs(n):
            raise ValueError(f"no working day found near {d}")
    return Deadline(end_of_day(d), not confirmed, basis)


def recompute(basis, cal: Calendar) -> Deadline:
    """The deadline of ``basis`` (see :attr:`Deadline.basis`) with calendar ``cal``."""
    rule, *args = basis
    if rule == "fixed":
        return fixed_deadline(datetime.fromisoformat(args[0]), cal)
    start, n = datetime.fromisoformat(args[0]), int(args[1])
    fn = {"working_days": add_working_days, "days": add_days, "months": add_months}[rule]
    return fn(start, n, cal)


def working_days_after_due(due_at: datetime, n: int, cal: Calendar) -> Deadline:
    """24:00 of the n-th working day after the due day of ``due_at`` (see :func:`due_day`).

    For ladders such as "overdue + 3 working days": due 24:00 Tuesday → the third working
    day after Tuesday, without skipping Wednesday because the due instant is Wednesday 00:00.
    """
    if n < 0:
        return add_working_days(due_at, n, cal)
    d = due_day(due_at)
    # 23:59:59 of the due day as start: its local date is the due day.
    return add_working_days(end_of_day(d) - timedelta(seconds=1), n, cal)


def overdue_by(due_at: datetime, now: datetime) -> str:
    """How long past due, in Chinese, for ledgers: '2天3小时', '5小时20分钟', '15分钟',
    '不足1分钟'; '' when not overdue (``now <= due_at``).
    """
    delta = _aware(now, "now") - _aware(due_at, "due_at")
    if delta <= timedelta(0):
        return ""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时{mins}分钟" if mins else f"{hours}小时"
    return f"{mins}分钟" if mins else "不足1分钟"

"""The working-day calendar table (工作日), seeded from chinese_calendar.

One row per calendar day: ``workday`` true or false, ``note`` (the holiday name, or
``调休上班`` for a make-up working day on a weekend) and ``source`` (``chinese_calendar`` or
the State Council notice a year was loaded from).

Seeding
    :func:`seed_from_chinese_calendar` writes every day of the years the installed
    ``chinese_calendar`` covers (1.11.0: 2004-01-01 … 2026-12-31). Days already present are
    kept (a year loaded from a file wins), so seeding is idempotent.

A new year (published by the State Council General Office around November)
    :func:`load_calendar_file` reads a YAML or JSON file (``.json`` is read as JSON,
    anything else as YAML)::

        year: 2027
        source: 国办发明电〔2026〕X号      # optional; default "文件 <file name>"
        holidays:                          # days off (放假), each with a name
          - {name: 元旦, days: [2027-01-01, 2027-01-02, 2027-01-03]}
          - {name: 春节, from: 2027-02-05, to: 2027-02-13}
        workdays: [2027-02-14]             # make-up working days (调休上班)

    A holiday gives ``days`` (a list), or ``from``/``to`` (inclusive), or both. Dates are
    ``YYYY-MM-DD``. Every day of the year is written: Monday–Friday is a working day unless
    it is a holiday; Saturday/Sunday is a day off unless listed in ``workdays``. Rows of
    that year already present are replaced.

    The whole file is refused (:class:`~models.errors.DomainError`, nothing written) when
    it has a bad date, a day outside ``year``, a day that is both holiday and workday, a day
    in two holidays, a ``from`` after its ``to``, a holiday without a name, a make-up
    workday that is a Monday–Friday anyway, or an unknown key. All problems are named.

The in-memory view used for deadlines is ``models.deadlines.Calendar``; every change made
here calls the listeners registered with :func:`on_change` (its cache invalidation), once at
once and once more when the session's transaction ends.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import chinese_calendar as cc
import sqlalchemy as sa
import yaml
from chinese_calendar import Holiday
from sqlalchemy import event
from sqlmodel import Field, Session, SQLModel, select

from models.errors import DomainError


class WorkDay(SQLModel, table=True):
    """One calendar day: a working day or not, with the holiday name or 调休 note."""

    __tablename__ = "work_day"
    day: date = Field(primary_key=True)
    workday: bool
    note: str = ""
    source: str = "chinese_calendar"


MAKEUP_NOTE = "调休上班"
SEED_SOURCE = "chinese_calendar"

#: chinese_calendar's English holiday names → the names used in State Council notices.
HOLIDAY_NAMES_ZH = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "Mid-autumn Festival": "中秋节",
    "National Day": "国庆节",
    "Anti-Fascist 70th Day": "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日",
}

_WEEKDAYS_ZH = "一二三四五六日"

# --------------------------------------------------------------------------- change hooks

_listeners: list[Callable[[], None]] = []


def on_change(fn: Callable[[], None]) -> Callable[[], None]:
    """Register ``fn`` to be called whenever the calendar table is changed here."""
    if fn not in _listeners:
        _listeners.append(fn)
    return fn


def _notify() -> None:
    for fn in list(_listeners):
        fn()


def _changed(s: Session) -> None:
    """Invalidate caches now and again when ``s``'s transaction ends (commit or rollback)."""
    _notify()
    event.listen(s, "after_transaction_end", lambda *_a: _notify(), once=True)


# --------------------------------------------------------------------------- helpers


def _year_bounds(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year, 12, 31)


def _days_in_year(year: int) -> int:
    return (date(year + 1, 1, 1) - date(year, 1, 1)).days


def _insert(s: Session, rows: list[dict[str, Any]]) -> None:
    """Bulk insert (one executemany), in ``s``'s transaction."""
    if rows:
        s.execute(sa.insert(WorkDay.__table__), rows)


# --------------------------------------------------------------------------- seeding


def _holiday_name_zh(name: str | None) -> str:
    if not name:
        return ""
    if name in HOLIDAY_NAMES_ZH:
        return HOLIDAY_NAMES_ZH[name]
    try:  # a holiday added by a later chinese_calendar: its enum carries the Chinese name
        return Holiday(name).chinese
    except Exception:
        return name


@lru_cache(maxsize=1)
def _chinese_calendar_rows() -> tuple[tuple[date, bool, str], ...]:
    """Every day chinese_calendar covers: (day, workday, note).

    Same rule as ``chinese_calendar.is_workday`` / ``get_holiday_detail`` but read straight
    from its public ``holidays`` / ``workdays`` tables: the functions re-scan the whole table
    on every call (≈0.8 s for 8,400 days).
    """
    first = min(cc.holidays).year
    last = max(cc.holidays).year
    rows = []
    d, end = date(first, 1, 1), date(last, 12, 31)
    one = timedelta(days=1)
    while d <= end:
        if d in cc.workdays:
            rows.append((d, True, MAKEUP_NOTE if d.weekday() >= 5 else ""))
        elif d in cc.holidays:
            rows.append((d, False, _holiday_name_zh(cc.holidays[d])))
        else:
            rows.append((d, d.weekday() < 5, ""))
        d += one
    return tuple(rows)


def seed_range() -> tuple[date, date]:
    """First and last day the installed chinese_calendar covers."""
    rows = _chinese_calendar_rows()
    return rows[0][0], rows[-1][0]


def seed_from_chinese_calendar(s: Session) -> int:
    """Insert every day chinese_calendar covers (2004–2026) that is not yet in the table.

    Returns the number of rows inserted (0 on a second run). Existing rows — e.g. a year
    loaded from a State Council file — are left as they are.
    """
    rows = _chinese_calendar_rows()
    first, last = rows[0][0], rows[-1][0]
    present = set(s.exec(select(WorkDay.day).where(WorkDay.day >= first, WorkDay.day <= last)).all())
    new = [
        {"day": d, "workday": w, "note": note, "source": SEED_SOURCE}
        for d, w, note in rows
        if d not in present
    ]
    if new:
        _insert(s, new)
        _changed(s)
    return len(new)


# --------------------------------------------------------------------------- loading a year


def _no_timestamps_loader():
    """A SafeLoader that leaves dates as strings, so a bad date is ours to report."""
    class _Loader(yaml.SafeLoader):
        pass

    _Loader.yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return _Loader


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DomainError(f"无法读取文件：{exc.strerror or exc}", str(path)) from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DomainError(f"不是有效的 JSON（第 {exc.lineno} 行）：{exc.msg}", str(path)) from None
    try:
        return yaml.load(text, Loader=_no_timestamps_loader())  # noqa: S506 (SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"（第 {mark.line + 1} 行）" if mark is not None else ""
        raise DomainError(f"不是有效的 YAML{where}：{exc}", str(path)) from None


def _parse_day(value: Any, where: str, errors: list[str]) -> date | None:
    if isinstance(value, datetime):
        errors.append(f"{where}: '{value}' 应为日期（YYYY-MM-DD），不带时间")
        return None
    if isinstance(value, date):
        return value
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text and len(text) == 10 and text[4] == "-" and text[7] == "-":
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    errors.append(f"{where}: '{value}' 不是有效日期（应为 YYYY-MM-DD）")
    return None


def parse_calendar(data: Any, origin: str = "") -> dict[str, Any]:
    """Validate a calendar document (the parsed file); return the plan or raise DomainError.

    The plan: ``{"year", "source", "holidays": {day: name}, "workdays": set[day]}``.
    """
    errors: list[str] = []
    if not isinstance(data, dict):
        raise DomainError("文件内容应为一个映射（year / source / holidays / workdays）", origin or None)

    unknown = sorted(set(map(str, data)) - {"year", "source", "holidays", "workdays"})
    if unknown:
        errors.append(f"未知的键：{', '.join(unknown)}（允许 year, source, holidays, workdays）")

    year = data.get("year")
    if isinstance(year, str) and year.strip().isdigit():
        year = int(year.strip())
    if not isinstance(year, int) or isinstance(year, bool) or not 2000 <= year <= 2100:
        raise DomainError(
            f"year: '{data.get('year')}' 不是有效年份（2000–2100 的整数）"
            + ("；" + "；".join(errors) if errors else ""),
            origin or None,
        )
    first, last = _year_bounds(year)

    source = data.get("source")
    if source is not None and (not isinstance(source, (str, int)) or not str(source).strip()):
        errors.append("source: 应为文号等文字，例如 国办发明电〔2026〕7号")
    source = str(source).strip() if source not in (None, "") else f"文件 {Path(origin).name or '?'}"

    def in_year(d: date, where: str) -> bool:
        if not first <= d <= last:
            errors.append(f"{where}: {d.isoformat()} 不在 {year} 年内")
            return False
        return True

    holidays: dict[date, str] = {}
    raw_holidays = data.get("holidays") or []
    if not isinstance(raw_holidays, list):
        errors.append("holidays: 应为列表，例如 - {name: 元旦, days: [2027-01-01]}")
        raw_holidays = []
    for i, item in enumerate(raw_holidays):
        where = f"holidays[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{where}: 应为 {{name, days}} 或 {{name, from, to}}")
            continue
        name = item.get("name")
        name = str(name).strip() if isinstance(name, (str, int)) and not isinstance(name, bool) else ""
        if name:
            where = f"{where}（{name}）"
        else:
            errors.append(f"{where}: 缺少假日名称 name")
        bad_keys = sorted(set(map(str, item)) - {"name", "days", "from", "to"})
        if bad_keys:
            errors.append(f"{where}: 未知的键 {', '.join(bad_keys)}（允许 name, days, from, to）")
        days: list[date] = []
        raw_days = item.get("days")
        if raw_days is not None:
            if not isinstance(raw_days, list):
                raw_days = [raw_days]
            for j, v in enumerate(raw_days):
                d = _parse_day(v, f"{where}.days[{j}]", errors)
                if d is not None:
                    days.append(d)
        has_from, has_to = "from" in item, "to" in item
        if has_from or has_to:
            if not (has_from and has_to):
                errors.append(f"{where}: from 与 to 须同时给出")
            else:
                d1 = _parse_day(item["from"], f"{where}.from", errors)
                d2 = _parse_day(item["to"], f"{where}.to", errors)
                if d1 is not None and d2 is not None:
                    if d1 > d2:
                        errors.append(f"{where}: from {d1.isoformat()} 晚于 to {d2.isoformat()}")
                    elif in_year(d1, f"{where}.from") and in_year(d2, f"{where}.to"):
                        days.extend(d1 + timedelta(days=k) for k in range((d2 - d1).days + 1))
        elif raw_days is None:
            errors.append(f"{where}: 须给出 days 或 from/to")
        for d in days:
            if not in_year(d, where):
                continue
            other = holidays.get(d)
            if other is not None and other != (name or "?"):
                errors.append(f"{d.isoformat()} 同时属于两个假日：{other}、{name or '?'}")
            holidays[d] = name or "?"

    workdays: set[date] = set()
    raw_workdays = data.get("workdays") or []
    if not isinstance(raw_workdays, list):
        raw_workdays = [raw_workdays]
    for j, v in enumerate(raw_workdays):
        d = _parse_day(v, f"workdays[{j}]", errors)
        if d is None or not in_year(d, f"workdays[{j}]"):
            continue
        if d in holidays:
            errors.append(f"{d.isoformat()} 同时列为放假（{holidays[d]}）和调休上班（workdays）")
        elif d.weekday() < 5:
            errors.append(
                f"workdays[{j}]: {d.isoformat()} 是星期{_WEEKDAYS_ZH[d.weekday()]}，"
                "本就是工作日，不应列为调休上班"
            )
        workdays.add(d)

    if errors:
        shown = errors[:12]
        more = f"；另有 {len(errors) - 12} 处" if len(errors) > 12 else ""
        raise DomainError(f"日历文件被拒绝，未写入任何数据：{'；'.join(shown)}{more}", origin or None)
    return {"year": year, "source": source, "holidays": holidays, "workdays": workdays}


def load_calendar_data(s: Session, data: Any, origin: str = "") -> dict[str, Any]:
    """Write one year from a parsed calendar document (see the module docstring)."""
    plan = parse_calendar(data, origin)
    year, source = plan["year"], plan["source"]
    holidays, workdays = plan["holidays"], plan["workdays"]
    first, last = _year_bounds(year)

    rows = []
    d = first
    while d <= last:
        if d in holidays:
            rows.append({"day": d, "workday": False, "note": holidays[d], "source": source})
        elif d in workdays:
            rows.append({"day": d, "workday": True, "note": MAKEUP_NOTE, "source": source})
        else:
            rows.append({"day": d, "workday": d.weekday() < 5, "note": "", "source": source})
        d += timedelta(days=1)

    replaced = s.exec(
        select(sa.func.count()).select_from(WorkDay).where(WorkDay.day >= first, WorkDay.day <= last)
    ).one()
    s.execute(sa.delete(WorkDay.__table__).where(WorkDay.__table__.c.day.between(first, last)))
    _insert(s, rows)
    s.expire_all()  # WorkDay objects already loaded in this session are stale now
    _changed(s)
    working = sum(1 for r in rows if r["workday"])
    return {
        "year": year,
        "source": source,
        "days": len(rows),
        "working_days": working,
        "days_off": len(rows) - working,
        "holiday_days": len(holidays),
        "makeup_workdays": len(workdays),
        "replaced": int(replaced),
    }


def load_calendar_file(s: Session, path: str | Path) -> dict[str, Any]:
    """Load one year published by the State Council from a YAML/JSON file (upsert).

    Returns a summary: ``year, source, days, working_days, days_off, holiday_days,
    makeup_workdays, replaced`` (rows of that year that were there before). Raises
    :class:`DomainError` naming every problem, with nothing written, when the file is wrong.
    """
    path = Path(path)
    return load_calendar_data(s, _read(path), str(path))


# --------------------------------------------------------------------------- queries


def known_years(s: Session) -> set[int]:
    """Years that have a row for every one of their days."""
    year = sa.extract("year", WorkDay.day)
    counts = s.exec(select(year, sa.func.count()).group_by(year)).all()
    return {int(y) for y, n in counts if y is not None and n == _days_in_year(int(y))}


def year_rows(s: Session, year: int) -> list[WorkDay]:
    """The rows of one year, by day."""
    first, last = _year_bounds(year)
    return list(s.exec(select(WorkDay).where(WorkDay.day >= first, WorkDay.day <= last).order_by(WorkDay.day)))

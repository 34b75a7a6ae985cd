"""The one clock of dutyflow.

All code reads the time from :func:`now`. ``DUTYFLOW_NOW`` (ISO-8601 with offset) pins
it for drills (应急演练) and tests. Times are stored in UTC and shown in Asia/Shanghai.
"""
from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from models.errors import DomainError

TZ = ZoneInfo("Asia/Shanghai")
UTC = timezone.utc


EXAMPLE_TIME = "2026-11-28T09:30:00+08:00"

#: Times and dates in requests lie in these years (Beijing time): nothing this system
#: records happened before 2000, and a date outside the range is a typing error (or a probe:
#: year 1 or 9999 with an offset does not even convert to UTC).
EARLIEST_YEAR, LATEST_YEAR = 2000, 2099
RANGE_TEXT = f"须在 {EARLIEST_YEAR}年1月1日 至 {LATEST_YEAR}年12月31日 之间（北京时间）"


def quoted(value: object, limit: int = 60) -> str:
    """A refused input as quoted in a one-line message: at most ``limit`` characters."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def listed(items, noun: str, first: int = 10, sep: str = "、") -> str:
    """Items named in one line, summarised past ``first``: ``SQ01、SQ02…等1200个单位`` —
    a line about every community names a few and counts the rest, never thousands."""
    items = list(items)
    if len(items) <= first:
        return sep.join(map(str, items))
    return sep.join(map(str, items[:first])) + f"…等{len(items)}{noun}"


def check_date(day: date, field: str = "date", value: object = None) -> date:
    """Refuse a request date (or the Beijing date of a request time) outside the sensible years."""
    if not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
        raise DomainError(f"'{day.isoformat() if value is None else quoted(value)}' 超出允许范围：{RANGE_TEXT}", field)
    return day


def parse_time(value: str | datetime, field: str = "time", require_offset: bool = False) -> datetime:
    """Parse ISO-8601 and return UTC. A time without offset is read as Beijing time, except
    where ``require_offset`` (times in requests, SPEC §5): there it is refused, since an
    operator's 09:30 may be UTC or Beijing time and the two are 8 hours apart, and a time
    outside the years :data:`EARLIEST_YEAR`–:data:`LATEST_YEAR` is refused as well. A time
    that does not convert to UTC (year 1 east of Greenwich, year 9999 west of it) is always
    refused, naming the field."""
    if isinstance(value, datetime):
        dt = value
    elif not isinstance(value, str):
        raise DomainError(f"{quoted(repr(value))} 不是 ISO-8601 时间（例如 {EXAMPLE_TIME}）", field)
    else:
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise DomainError(f"'{quoted(value)}' 不是 ISO-8601 时间（例如 {EXAMPLE_TIME}）", field) from None
    if dt.tzinfo is None:
        if require_offset:
            raise DomainError(f"'{quoted(value)}' 缺少时区，请写明偏移（例如 {EXAMPLE_TIME}）", field)
        dt = dt.replace(tzinfo=TZ)
    try:
        utc = dt.astimezone(UTC)
        beijing_day = utc.astimezone(TZ).date()
    except (OverflowError, ValueError):
        raise DomainError(f"'{quoted(value)}' 超出可表示的时间范围：{RANGE_TEXT}", field) from None
    if require_offset:
        check_date(beijing_day, field, value)
    return utc


def pinned() -> str | None:
    """The pinned clock value, or None when the clock is real."""
    return os.environ.get("DUTYFLOW_NOW") or None


def now() -> datetime:
    """Current time, timezone-aware UTC (pinned by ``DUTYFLOW_NOW``)."""
    value = pinned()
    if value:
        return parse_time(value, "DUTYFLOW_NOW")
    return datetime.now(UTC)


def real_now() -> datetime:
    """The machine's real clock (UTC), never pinned: logins and lock-outs, run recovery."""
    return datetime.now(UTC)


def today_local() -> date:
    return local(now()).date()


def local(dt: datetime) -> datetime:
    """A stored time shown in Asia/Shanghai."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(TZ)


def iso(dt: datetime | None) -> str | None:
    """ISO-8601 in Asia/Shanghai (``…+08:00``), seconds precision."""
    if dt is None:
        return None
    return local(dt).replace(microsecond=0).isoformat()


def cn_time(dt: datetime) -> str:
    """A time of day in 公文 style: ``10时30分``, ``9时`` (no leading zeros, no half-width space)."""
    d = local(dt)
    return f"{d.hour}时{d.minute}分" if d.minute else f"{d.hour}时"


def beijing(dt: datetime) -> str:
    """Human form of a moment (all times are Beijing time): ``2026年11月28日9时30分``."""
    d = local(dt)
    return f"{d.year}年{d.month}月{d.day}日{cn_time(d)}"


WEEKDAYS = "一二三四五六日"


def deadline_text(due: datetime) -> str:
    """A deadline as its last day: ``2026年10月9日（星期五）24时`` for a due time of the next
    day's 00:00, else ``2026年3月10日（星期二）12时``; callers append 前."""
    d = local(due)
    if (d.hour, d.minute, d.second) == (0, 0, 0):
        last = d.date() - timedelta(days=1)
        return f"{cn_date(last)}（星期{WEEKDAYS[last.weekday()]}）24时"
    return f"{cn_date(d)}（星期{WEEKDAYS[d.weekday()]}）{cn_time(d)}"


def cn_date(d: date | datetime) -> str:
    """成文日期 form of GB/T 9704: Arabic numerals, no leading zeros."""
    if isinstance(d, datetime):
        d = local(d).date()
    return f"{d.year}年{d.month}月{d.day}日"


def pinned_note() -> str:
    """Said by every notice and log line while the clock is pinned."""
    value = pinned()
    if not value:
        return ""
    try:
        return f"【演练时钟：{beijing(parse_time(value))}】"
    except DomainError:
        return f"【演练时钟：{value}】"


def drill_remark() -> str:
    """The drill part of a notice's 附注 while the clock is pinned (Chinese, one phrase)."""
    value = pinned()
    return f"本件为演练文书，系统时钟设定为{beijing(now())}" if value else ""

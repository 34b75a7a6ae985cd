"""Working-day calendar and deadlines (SPEC §1 decision 8, DOMAIN "Working days and periods")."""
from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

from models import db as dbm
from models.calendar import (
    WorkDay,
    known_years,
    load_calendar_file,
    seed_from_chinese_calendar,
    year_rows,
)
from models.clock import TZ, UTC
from models.errors import DomainError
from models import deadlines as dl
from models.deadlines import (
    Calendar,
    Deadline,
    add_days,
    add_hours,
    add_months,
    add_working_days,
    overdue_by,
    working_days_after_due,
)


def bj(*args) -> datetime:
    """A Beijing wall-clock time as aware UTC."""
    return datetime(*args, tzinfo=TZ).astimezone(UTC)


def midnight(y, m, d) -> datetime:
    """Local 00:00 of y-m-d (= 24:00 of the day before), as aware UTC."""
    return bj(y, m, d, 0, 0)


def count_rows(s, year: int | None = None) -> int:
    q = select(sa.func.count()).select_from(WorkDay)
    if year is not None:
        q = q.where(WorkDay.day >= date(year, 1, 1), WorkDay.day <= date(year, 12, 31))
    return s.exec(q).one()


def empty_table() -> None:
    """init_schema() seeds the calendar: start some tests from an empty table."""
    with dbm.session() as s:
        s.execute(sa.delete(WorkDay.__table__))


@pytest.fixture
def seeded(db):
    """The test database seeded from chinese_calendar; returns its cached Calendar."""
    with dbm.session() as s:
        seed_from_chinese_calendar(s)
    with dbm.session() as s:
        return dl.calendar(s)


@pytest.fixture(scope="module")
def cal(tmp_path_factory):
    """A seeded calendar shared by the pure deadline tests (seeded and loaded once)."""
    eng = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('cal') / 'cal.db'}")
    SQLModel.metadata.create_all(eng, tables=[WorkDay.__table__])
    with Session(eng) as s:
        assert seed_from_chinese_calendar(s) == 8401
        s.commit()
        loaded = Calendar.load(s)
    eng.dispose()
    assert loaded.known_years == frozenset(range(2004, 2027))
    return loaded


FILE_2027 = """\
year: 2027
source: 国办发明电〔2026〕99号（测试）
holidays:        # days off
  - {name: 元旦, days: [2027-01-01, 2027-01-02, 2027-01-03]}
  - {name: 春节, from: 2027-02-05, to: 2027-02-13}
workdays: [2027-02-14]
"""


def write(tmp_path, text, name="cal2027.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# --------------------------------------------------------------------------- seeding


def test_seed_rows_notes_and_idempotence(db, tmp_path):
    with dbm.session() as s:
        assert count_rows(s) == 8401  # init_schema() seeded already
    empty_table()
    with dbm.session() as s:
        t = time.perf_counter()
        inserted = seed_from_chinese_calendar(s)
        elapsed = time.perf_counter() - t
    assert inserted == 8401  # 23 years 2004–2026, 6 of them leap
    assert elapsed < 2.0
    with dbm.session() as s:
        assert seed_from_chinese_calendar(s) == 0
        assert count_rows(s) == 8401
        assert known_years(s) == set(range(2004, 2027))
        rows = {r.day: r for r in year_rows(s, 2026)}
    assert len(rows) == 365
    assert (rows[date(2026, 10, 1)].workday, rows[date(2026, 10, 1)].note) == (False, "国庆节")
    assert (rows[date(2026, 9, 25)].workday, rows[date(2026, 9, 25)].note) == (False, "中秋节")
    assert (rows[date(2026, 2, 15)].workday, rows[date(2026, 2, 15)].note) == (False, "春节")
    for make_up in (date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9),
                    date(2026, 9, 20), date(2026, 10, 10)):
        assert (rows[make_up].workday, rows[make_up].note) == (True, "调休上班"), make_up
    assert (rows[date(2026, 3, 7)].workday, rows[date(2026, 3, 7)].note) == (False, "")  # plain Sat
    assert (rows[date(2026, 3, 9)].workday, rows[date(2026, 3, 9)].note) == (True, "")  # plain Mon
    assert rows[date(2026, 3, 9)].source == "chinese_calendar"

    # a year loaded from a file wins over a later seeding
    text = "year: 2026\nsource: 测试\nholidays: [{name: 测试假, days: [2026-03-09]}]\n"
    with dbm.session() as s:
        assert load_calendar_file(s, write(tmp_path, text, "c2026.yaml"))["replaced"] == 365
    with dbm.session() as s:
        assert seed_from_chinese_calendar(s) == 0
    with dbm.session() as s:
        row = s.get(WorkDay, date(2026, 3, 9))
        assert (row.workday, row.note, row.source) == (False, "测试假", "测试")
        assert s.get(WorkDay, date(2026, 10, 1)).workday is True  # the file has no 国庆节
        assert count_rows(s) == 8401


def test_seed_agrees_with_chinese_calendar_functions(cal):
    import chinese_calendar as cc

    days = [date(y, 1, 1) + timedelta(days=i) for y in (2015, 2026) for i in range(365)]
    for d in days:
        assert cal.is_workday(d) == (cc.is_workday(d), True), d
    # 2026: 261 Mon–Fri − 19 of them off (1/1–2, 2/16–20, 2/23, 4/6, 5/1, 5/4–5, 6/19, 9/25,
    # 10/1–2, 10/5–7) + 6 make-up days = 248 working days
    assert sum(cal.is_workday(d)[0] for d in days if d.year == 2026) == 248


# --------------------------------------------------------------------------- working days


def test_make_up_saturday_feb_14_counts(cal):
    # Thu 2/12 → Fri 2/13 (1), Sat 2/14 调休 (2), 2/15–2/23 off, Tue 2/24 (3), 2/25 (4), 2/26 (5)
    d = add_working_days(bj(2026, 2, 12, 10, 0), 5, cal)
    assert d == Deadline(midnight(2026, 2, 27), False)
    # the make-up Saturday itself is the 2nd working day
    assert add_working_days(bj(2026, 2, 12, 10, 0), 2, cal).due_at == midnight(2026, 2, 15)


def test_make_up_saturday_oct_10_is_next_working_day_after_friday(cal):
    assert add_working_days(bj(2026, 10, 9, 15, 0), 1, cal).due_at == midnight(2026, 10, 11)
    # and an ordinary Saturday is not: Fri 10/16 + 1 → Mon 10/19
    assert add_working_days(bj(2026, 10, 16, 15, 0), 1, cal).due_at == midnight(2026, 10, 20)


def test_three_working_days_from_friday_sept_18(cal):
    # Sat 9/19 off, Sun 9/20 调休 (1), Mon 9/21 (2), Tue 9/22 (3)
    d = add_working_days(bj(2026, 9, 18, 16, 0), 3, cal)
    assert d.due_at == midnight(2026, 9, 23)
    assert d.due_at.isoformat() == "2026-09-22T16:00:00+00:00"
    assert d.due_at.tzinfo == timezone.utc
    assert d.calendar_unconfirmed is False


def test_start_date_is_the_beijing_date_not_the_utc_date(cal):
    # 2026-09-17T16:30Z is Friday 9/18 00:30 in Beijing
    start = datetime(2026, 9, 17, 16, 30, tzinfo=UTC)
    assert add_working_days(start, 3, cal).due_at == midnight(2026, 9, 23)


def test_ten_working_days_across_national_day(cal):
    # 9/20 (1) 9/21 (2) 9/22 (3) 9/23 (4) 9/24 (5); 9/25–9/27 off; 9/28 (6) 9/29 (7) 9/30 (8);
    # 10/1–10/7 off; Thu 10/8 (9), Fri 10/9 (10)
    assert add_working_days(bj(2026, 9, 18, 9, 0), 10, cal).due_at == midnight(2026, 10, 10)


def test_zero_working_days(cal):
    # Thursday 9/24 is a working day: end of that day
    assert add_working_days(bj(2026, 9, 24, 8, 0), 0, cal).due_at == midnight(2026, 9, 25)
    # Saturday 9/19 is off; Sunday 9/20 is a make-up day
    assert add_working_days(bj(2026, 9, 19, 8, 0), 0, cal).due_at == midnight(2026, 9, 21)


def test_negative_working_days_reminder_before_due(cal):
    due = add_working_days(bj(2026, 9, 18, 16, 0), 3, cal).due_at  # 24:00 of Tue 9/22
    # 1 working day before the due day (9/22) is Mon 9/21 → 24:00 of 9/21
    assert add_working_days(due, -1, cal).due_at == midnight(2026, 9, 22)
    # due 24:00 of Thu 10/8: the working day before is Wed 9/30 (10/1–10/7 off)
    assert add_working_days(midnight(2026, 10, 9), -1, cal).due_at == midnight(2026, 10, 1)
    # a due time inside a day: that day is the due day; 2 working days before Mon 9/28 → 9/23
    assert add_working_days(bj(2026, 9, 28, 12, 0), -2, cal).due_at == midnight(2026, 9, 24)


def test_working_days_after_due_does_not_skip_the_first_day(cal):
    # due 24:00 of Tue 9/22; overdue + 3 working days: 9/23, 9/24, (9/25–27 off) 9/28
    d = working_days_after_due(midnight(2026, 9, 23), 3, cal)
    assert d.due_at == midnight(2026, 9, 29)


# --------------------------------------------------------------------------- calendar days / months


def test_calendar_days_ending_on_holiday_move_to_first_working_day(cal):
    # 9/1 + 30 days → last day Thu 10/1 (国庆); 10/1–10/7 off; Thu 10/8 works
    d = add_days(bj(2026, 9, 1, 11, 0), 30, cal)
    assert d == Deadline(midnight(2026, 10, 9), False)
    # ending on a plain working day: 9/1 + 20 → Mon 9/21
    assert add_days(bj(2026, 9, 1, 11, 0), 20, cal).due_at == midnight(2026, 9, 22)
    # ending on a make-up Sunday: 9/1 + 19 → Sun 9/20 (调休上班) stays
    assert add_days(bj(2026, 9, 1, 11, 0), 19, cal).due_at == midnight(2026, 9, 21)
    # ending on a plain Saturday: 3/1 + 6 → Sat 3/7 → Mon 3/9
    assert add_days(bj(2026, 3, 1, 11, 0), 6, cal).due_at == midnight(2026, 3, 10)


def test_add_months_clamps_to_month_end(cal):
    # 1/31 + 1 month → 2/28 (a 2026 make-up Saturday: a working day)
    assert add_months(bj(2026, 1, 31, 10, 0), 1, cal).due_at == midnight(2026, 3, 1)
    # leap year: 2024-01-31 + 1 month → Thu 2024-02-29
    assert add_months(bj(2024, 1, 31, 10, 0), 1, cal).due_at == midnight(2024, 3, 1)
    # 8/31 + 1 → 9/30 (Wed)
    assert add_months(bj(2026, 8, 31, 10, 0), 1, cal).due_at == midnight(2026, 10, 1)
    # corresponding date on a holiday: 9/1 + 1 month → 10/1 → first working day 10/8
    assert add_months(bj(2026, 9, 1, 10, 0), 1, cal).due_at == midnight(2026, 10, 9)
    # 11/30 + 3 months → 2027-02-28 (unknown year: Sunday → Monday 3/1), unconfirmed
    d = add_months(bj(2026, 11, 30, 10, 0), 3, cal)
    assert d == Deadline(midnight(2027, 3, 2), True)


def test_add_hours_is_clock_hours_across_midnight_and_holidays(cal):
    d = add_hours(bj(2026, 9, 30, 22, 0), 5)
    assert d == Deadline(bj(2026, 10, 1, 3, 0), False)
    assert add_hours(bj(2026, 9, 30, 23, 30), 1.5).due_at == bj(2026, 10, 1, 1, 0)
    assert add_hours(bj(2026, 12, 31, 23, 0), 2).calendar_unconfirmed is False
    with pytest.raises(ValueError):
        add_hours(datetime(2026, 9, 30, 22, 0), 1)  # naive refused


# --------------------------------------------------------------------------- 2027 and the file


def test_deadline_into_2027_is_unconfirmed_until_the_year_is_loaded(seeded, tmp_path):
    cal = seeded
    start = bj(2026, 12, 10, 10, 0)
    # 12/11 (1), 12/14–18 (2–6), 12/21–25 (7–11), 12/28–31 (12–15); Mon–Fri guess for 2027:
    # Fri 1/1 (16), 1/4–8 (17–21), 1/11–15 (22–26), 1/18–21 (27–30)
    guess = add_working_days(start, 30, cal)
    assert guess == Deadline(midnight(2027, 1, 22), True)
    # entirely within 2026: confirmed
    assert add_working_days(start, 15, cal) == Deadline(midnight(2027, 1, 1), False)

    # the cached calendar: no query per call, however often the sweep asks
    with dbm.session() as s:
        assert 2027 not in known_years(s)
        queries = []
        sa.event.listen(dbm.engine(), "before_cursor_execute", lambda *a: queries.append(a[2]))
        for i in range(2000):
            add_working_days(start + timedelta(hours=i), 3, dl.calendar(s))
        assert queries == []
        assert dl.calendar(s) is cal
        summary = load_calendar_file(s, write(tmp_path, FILE_2027))
    assert summary["year"] == 2027 and summary["days"] == 365
    assert summary["makeup_workdays"] == 1 and summary["holiday_days"] == 12
    assert summary["replaced"] == 0
    with dbm.session() as s:
        cal2 = dl.calendar(s)
        assert cal2 is not cal  # the load invalidated the cache
        assert 2027 in known_years(s)
    # 元旦 1/1–1/3 off: 1/4–8 (16–20), 1/11–15 (21–25), 1/18–22 (26–30)
    assert add_working_days(start, 30, cal2) == Deadline(midnight(2027, 1, 23), False)
    assert cal2.is_workday(date(2027, 2, 14)) == (True, True)  # make-up Sunday
    assert cal2.is_workday(date(2027, 2, 8)) == (False, True)  # Monday in 春节
    assert cal2.is_workday(date(2028, 1, 3)) == (True, False)  # still unknown


def test_load_file_rows_and_upsert(db, tmp_path):
    with dbm.session() as s:
        load_calendar_file(s, write(tmp_path, FILE_2027))
    with dbm.session() as s:
        rows = {r.day: r for r in year_rows(s, 2027)}
        assert len(rows) == 365 and count_rows(s, 2027) == 365
        assert count_rows(s) == 8401 + 365
        assert (rows[date(2027, 1, 1)].workday, rows[date(2027, 1, 1)].note) == (False, "元旦")
        assert (rows[date(2027, 2, 13)].workday, rows[date(2027, 2, 13)].note) == (False, "春节")
        assert (rows[date(2027, 2, 14)].workday, rows[date(2027, 2, 14)].note) == (True, "调休上班")
        assert rows[date(2027, 2, 15)].workday is True  # Monday
        assert rows[date(2027, 2, 20)].workday is False  # plain Saturday
        assert rows[date(2027, 2, 15)].source == "国办发明电〔2026〕99号（测试）"
    # reload a corrected notice as JSON: replaces the year
    doc = {"year": 2027, "source": "更正", "holidays": [{"name": "元旦", "days": ["2027-01-01"]}]}
    with dbm.session() as s:
        summary = load_calendar_file(s, write(tmp_path, json.dumps(doc, ensure_ascii=False), "c.json"))
        assert summary["replaced"] == 365
    with dbm.session() as s:
        assert count_rows(s) == 8401 + 365
        assert s.get(WorkDay, date(2027, 2, 8)).workday is True
        assert s.get(WorkDay, date(2027, 2, 14)).workday is False
        assert s.get(WorkDay, date(2027, 1, 1)).source == "更正"


BAD_FILES = {
    "outside the year": ("""year: 2027
holidays: [{name: 元旦, days: [2026-12-31, 2027-01-01]}]
""", "2026-12-31 不在 2027 年内"),
    "both holiday and workday": ("""year: 2027
holidays: [{name: 春节, from: 2027-02-05, to: 2027-02-13}]
workdays: [2027-02-06]
""", "2027-02-06 同时列为放假（春节）和调休上班"),
    "bad date": ("""year: 2027
holidays: [{name: 春节, from: 2027-02-05, to: 2027-02-30}]
""", "'2027-02-30' 不是有效日期"),
    "from after to": ("""year: 2027
holidays: [{name: 春节, from: 2027-02-13, to: 2027-02-05}]
""", "晚于 to"),
    "weekday make-up": ("""year: 2027
workdays: [2027-02-15]
""", "本就是工作日"),
    "two holidays on one day": ("""year: 2027
holidays: [{name: 元旦, days: [2027-01-01]}, {name: 春节, days: [2027-01-01]}]
""", "同时属于两个假日"),
    "unknown key": ("""year: 2027
holiday: [{name: 元旦, days: [2027-01-01]}]
""", "未知的键"),
    "no year": ("holidays: []\n", "year"),
}


def test_refused_files_write_nothing(db, tmp_path):
    with dbm.session() as s:
        load_calendar_file(s, write(tmp_path, FILE_2027, "good.yaml"))
    with dbm.session() as s:
        before = [(r.day, r.workday, r.note, r.source) for r in year_rows(s, 2027)]
        total = count_rows(s)
    assert len(before) == 365 and total == 8401 + 365
    for case, (text, expected) in sorted(BAD_FILES.items()):
        with pytest.raises(DomainError) as err:
            with dbm.session() as s:
                load_calendar_file(s, write(tmp_path, text, "bad.yaml"))
        assert expected in str(err.value), case
        assert "bad.yaml" in str(err.value), case
        with dbm.session() as s:
            after = [(r.day, r.workday, r.note, r.source) for r in year_rows(s, 2027)]
            assert count_rows(s) == total, case
        assert after == before, case

    # on an empty table: still nothing written
    empty_table()
    with pytest.raises(DomainError):
        with dbm.session() as s:
            load_calendar_file(s, write(tmp_path, BAD_FILES["bad date"][0]))
    with dbm.session() as s:
        assert count_rows(s) == 0
    with pytest.raises(DomainError, match="无法读取"):
        with dbm.session() as s:
            load_calendar_file(s, tmp_path / "missing.yaml")


# --------------------------------------------------------------------------- cache, overdue


def test_unknown_year_falls_back_to_monday_to_friday():
    empty = Calendar({})
    assert empty.is_workday(date(2027, 1, 1)) == (True, False)  # Friday
    assert empty.is_workday(date(2027, 1, 2)) == (False, False)  # Saturday
    assert add_working_days(bj(2027, 1, 1, 9, 0), 1, empty) == Deadline(midnight(2027, 1, 5), True)


def test_overdue_by():
    due = midnight(2026, 9, 23)
    assert overdue_by(due, due + timedelta(days=2, hours=3, minutes=10)) == "2天3小时"
    assert overdue_by(due, due + timedelta(days=1)) == "1天"
    assert overdue_by(due, due + timedelta(hours=5, minutes=20)) == "5小时20分钟"
    assert overdue_by(due, due + timedelta(minutes=15)) == "15分钟"
    assert overdue_by(due, due + timedelta(seconds=30)) == "不足1分钟"
    assert overdue_by(due, due) == ""
    assert overdue_by(due, due - timedelta(hours=1)) == ""

"""Organisation registry (SPEC §2, §5 "Org file"), at the model level.

Loads the shipped demo org (deployments/demo_org.yaml) through ``models.org`` and checks
the post history, the 网信办 lookup, idempotent upserts, history-preserving replacement,
whole-file refusal with the line at fault, and the dump round trip.
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func
from sqlmodel import select

from models.clock import today_local
from models.db import session
from models.errors import DomainError
from models.org import OrgUnit, Person, Post, dump_org, holders, load_org, office_unit

DEMO = Path(__file__).resolve().parent.parent / "deployments" / "demo_org.yaml"
COMMUNITIES = [f"SQ{n:02d}" for n in range(1, 13)]
SINGLE = ("principal", "cyber_lead", "cyber_officer")


def load_text(raw: str) -> dict:
    with session() as s:
        return load_org(s, yaml.safe_load(raw), raw)


def load_demo() -> dict:
    return load_text(DEMO.read_text(encoding="utf-8"))


def counts() -> tuple[int, int, int]:
    with session() as s:
        return tuple(
            s.exec(select(func.count()).select_from(t)).one() for t in (OrgUnit, Person, Post)
        )


def dump() -> dict:
    with session() as s:
        return dump_org(s)


def holder(unit: str, role: str, on: date) -> list[str]:
    with session() as s:
        return holders(s, unit, role, on)


@pytest.fixture
def demo(db):
    load_demo()
    return db


# ------------------------------------------------------------------ the demo file


def test_demo_file_shape():
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    assert set(data) == {"units", "persons", "posts"}
    ids = [p["id"] for p in data["persons"]]
    assert len(ids) == len(set(ids))
    for p in data["persons"]:
        assert p["id"].startswith("p-")
        assert f"json://127.0.0.1:9000/{p['id']}" in p["channels"]
    used = {p["person"] for p in data["posts"]}
    assert used == set(ids), "every person holds (or held) a post"
    for p in data["posts"]:
        assert isinstance(p["valid_from"], date)
        assert p["valid_to"] is None or isinstance(p["valid_to"], date)


def test_demo_units(demo):
    with session() as s:
        units = {u.code: u for u in s.exec(select(OrgUnit)).all()}
    communities = sorted(c for c, u in units.items() if u.kind == "community")
    assert communities == COMMUNITIES
    assert all(units[c].parent == "JD01" for c in COMMUNITIES)
    assert {c: units[c].supervisor for c in COMMUNITIES} == {
        **{c: "ZHB" for c in COMMUNITIES[:6]}, **{c: "GGFW" for c in COMMUNITIES[6:]}
    }
    assert units["QU01"].kind == "district" and units["QU01"].parent is None
    assert units["JD01"].kind == "street" and units["JD01"].parent == "QU01"
    for code in ("WXB", "JGW", "ZHB", "GGFW"):
        assert units[code].kind == "department" and units[code].parent == "JD01"
    assert units["WXB"].doc_prefix == "X街网安"
    assert units["JD01"].doc_prefix == "X街党工"
    assert all(u.doc_prefix for u in units.values())


def test_every_community_post_filled_today(demo):
    today = today_local()
    for code in COMMUNITIES:
        for role in ("principal", "cyber_lead", "cyber_officer", "liaison"):
            assert holder(code, role, today), f"{code} {role} vacant"
        for role in SINGLE:
            assert len(holder(code, role, today)) == 1, f"{code} {role}"
        assert len(holder(code, "member", today)) == 2, code


def test_street_and_departments_filled(demo):
    today = today_local()
    for role in SINGLE:
        assert len(holder("JD01", role, today)) == 1
    assert len(holder("JD01", "member", today)) == 2
    assert len(holder("WXB", "office", today)) == 2
    assert holder("WXB", "principal", today)[0] in holder("WXB", "office", today)
    assert len(holder("JGW", "discipline", today)) == 1
    for code in ("JGW", "ZHB", "GGFW"):
        assert len(holder(code, "principal", today)) == 1


def test_single_holder_roles_never_overlap(demo):
    """At any date at most one person holds principal/cyber_lead/cyber_officer per unit."""
    with session() as s:
        posts = s.exec(select(Post).where(Post.role.in_(SINGLE))).all()
    by_key: dict[tuple[str, str], list[Post]] = {}
    for p in posts:
        by_key.setdefault((p.unit, p.role), []).append(p)
    for key, group in by_key.items():
        group.sort(key=lambda p: p.valid_from)
        for a, b in zip(group, group[1:]):
            assert a.valid_to is not None and a.valid_to < b.valid_from, key


def test_history_sq03_principal_and_sq07_officer(demo):
    old = holder("SQ03", "principal", date(2026, 2, 1))
    new = holder("SQ03", "principal", date(2026, 6, 1))
    assert len(old) == 1 and len(new) == 1 and old != new
    assert holder("SQ03", "principal", date(2026, 2, 28)) == old
    assert holder("SQ03", "principal", date(2026, 3, 1)) == new
    assert holder("SQ07", "cyber_officer", date(2025, 6, 30)) != holder(
        "SQ07", "cyber_officer", date(2025, 7, 1)
    )
    # the predecessor's post is kept, closed the day before the successor's
    with session() as s:
        rows = s.exec(
            select(Post).where(Post.unit == "SQ03", Post.role == "principal").order_by(Post.valid_from)
        ).all()
    assert [(r.person, r.valid_from, r.valid_to) for r in rows] == [
        (old[0], date(2023, 1, 1), date(2026, 2, 28)),
        (new[0], date(2026, 3, 1), None),
    ]


def test_office_unit_is_wxb(demo):
    with session() as s:
        for on in (date(2025, 1, 1), today_local()):
            for code in ("SQ05", "SQ12", "JD01"):
                unit = office_unit(s, code, on)
                assert unit is not None and unit.code == "WXB", (code, on)
        assert office_unit(s, "SQ05", date(2020, 1, 1)) is None  # before anyone held the office


# ------------------------------------------------------------------ upsert semantics


def test_loading_twice_changes_nothing(demo):
    before, snapshot = counts(), dump()
    result = load_demo()
    assert result["posts_added"] == 0
    assert counts() == before
    assert dump() == snapshot


def test_new_holder_closes_old_post_and_keeps_history(demo):
    old = holder("SQ05", "principal", date(2026, 1, 1))
    assert len(old) == 1
    before_units, before_persons, before_posts = counts()
    second = """\
persons:
  - {id: p-qin-xiaohong, name: 秦晓红, channels: ["json://127.0.0.1:9000/p-qin-xiaohong"]}
posts:
  - {unit: SQ05, person: p-qin-xiaohong, role: principal, valid_from: 2026-06-01, valid_to: null}
"""
    result = load_text(second)
    assert result["posts_added"] == 1
    assert counts() == (before_units, before_persons + 1, before_posts + 1)
    with session() as s:
        rows = s.exec(
            select(Post).where(Post.unit == "SQ05", Post.role == "principal").order_by(Post.valid_from)
        ).all()
    assert [(r.person, r.valid_from, r.valid_to) for r in rows] == [
        (old[0], date(2024, 1, 1), date(2026, 5, 31)),
        ("p-qin-xiaohong", date(2026, 6, 1), None),
    ]
    assert holder("SQ05", "principal", date(2026, 5, 31)) == old
    assert holder("SQ05", "principal", date(2026, 6, 1)) == ["p-qin-xiaohong"]
    # re-loading the demo file (which still lists the old holder as open) rewrites no history
    load_demo()
    assert holder("SQ05", "principal", date(2026, 6, 1)) == ["p-qin-xiaohong"]
    assert holder("SQ05", "principal", date(2026, 5, 31)) == old


def test_upsert_updates_unit_and_person_fields(demo):
    load_text("""\
units:
  - {code: SQ05, name: 胜利社区（新）, kind: community, parent: JD01, supervisor: GGFW, doc_prefix: 胜利社}
persons:
  - {id: p-yu-yang, name: 于洋, channels: ["mailto://yuyang@example.org"]}
""")
    with session() as s:
        unit, person = s.get(OrgUnit, "SQ05"), s.get(Person, "p-yu-yang")
        assert (unit.name, unit.supervisor) == ("胜利社区（新）", "GGFW")
        assert person.channels == ["mailto://yuyang@example.org"]
        assert holders(s, "SQ05", "cyber_officer", today_local()) == ["p-yu-yang"]


# ------------------------------------------------------------------ refusals

GOOD_HEAD = """\
units:
  - {code: SQ13, name: 新建社区, kind: community, parent: JD01, supervisor: ZHB, doc_prefix: 新建社}
persons:
  - {id: p-new-person, name: 新人, channels: ["json://127.0.0.1:9000/p-new-person"]}
posts:
  - {unit: SQ13, person: p-new-person, role: principal, valid_from: 2026-01-01, valid_to: null}
  - {unit: SQ01, person: p-new-person, role: principal, valid_from: 2026-01-01, valid_to: null}
"""


@pytest.mark.parametrize(
    "bad_line, what",
    [
        ("  - {unit: SQ99, person: p-new-person, role: liaison, valid_from: 2026-01-01, valid_to: null}", "SQ99"),
        ("  - {unit: SQ13, person: p-nobody, role: liaison, valid_from: 2026-01-01, valid_to: null}", "p-nobody"),
        ("  - {unit: SQ13, person: p-new-person, role: janitor, valid_from: 2026-01-01, valid_to: null}", "janitor"),
    ],
    ids=["unknown-unit", "unknown-person", "unknown-role"],
)
def test_bad_file_refused_whole_with_line(demo, bad_line, what):
    raw = GOOD_HEAD + bad_line + "\n"
    line_no = raw.splitlines().index(bad_line) + 1
    before, snapshot = counts(), dump()
    with pytest.raises(DomainError) as exc:
        load_text(raw)
    msg = str(exc.value)
    assert what in msg
    assert f"第 {line_no} 行" in msg
    # nothing of the file was applied: not the new unit, not the new person, not the
    # SQ01 principal change that came before the bad line
    assert counts() == before
    assert dump() == snapshot
    with session() as s:
        assert s.get(OrgUnit, "SQ13") is None
        assert s.get(Person, "p-new-person") is None
    assert holder("SQ01", "principal", today_local()) == ["p-zhang-xiuying"]


def test_unknown_parent_refused(demo):
    raw = "units:\n  - {code: SQ13, name: 新建社区, kind: community, parent: JD99, doc_prefix: 新建社}\n"
    before = counts()
    with pytest.raises(DomainError) as exc:
        load_text(raw)
    assert "JD99" in str(exc.value) and "第 2 行" in str(exc.value)
    assert counts() == before


def test_bad_file_refused_on_empty_database(db):
    """Refusal also holds for a first load: nothing half-imported."""
    raw = DEMO.read_text(encoding="utf-8") + (
        "  - {unit: SQ01, person: p-ghost, role: liaison, valid_from: 2026-01-01, valid_to: null}\n"
    )
    with pytest.raises(DomainError) as exc:
        load_text(raw)
    assert "p-ghost" in str(exc.value)
    assert f"第 {len(raw.splitlines())} 行" in str(exc.value)
    assert counts() == (0, 0, 0)


def test_bad_json_file_refused_with_line(demo):
    raw = json.dumps(
        {"posts": [{"unit": "SQ01", "person": "p-nobody", "role": "liaison",
                    "valid_from": "2026-01-01", "valid_to": None}]},
        ensure_ascii=False, indent=2,
    )
    line_no = next(n for n, l in enumerate(raw.splitlines(), 1) if "p-nobody" in l)
    with pytest.raises(DomainError) as exc:
        with session() as s:
            load_org(s, json.loads(raw), raw)
    assert f"第 {line_no} 行" in str(exc.value)


# The three below fail on the current models/org.py (single-holder roles can overlap;
# inverted dates pass); the fix is described in the org-file work report.


def test_backfilled_holder_ends_before_later_holder(demo):
    load_text("""\
persons:
  - {id: p-qian-backfill, name: 钱补录}
posts:
  - {unit: SQ04, person: p-qian-backfill, role: principal, valid_from: 2023-06-01, valid_to: null}
""")
    assert holder("SQ04", "principal", date(2023, 12, 31)) == ["p-qian-backfill"]
    assert holder("SQ04", "principal", date(2026, 1, 1)) == ["p-luo-chunmei"]


def test_same_day_second_holder_refused(demo):
    raw = """\
persons:
  - {id: p-qian-sameday, name: 钱同日}
posts:
  - {unit: SQ06, person: p-qian-sameday, role: principal, valid_from: 2024-01-01, valid_to: null}
"""
    before = counts()
    with pytest.raises(DomainError) as exc:
        load_text(raw)
    assert "第 4 行" in str(exc.value)
    assert counts() == before


def test_inverted_post_dates_refused(demo):
    raw = """\
posts:
  - {unit: SQ08, person: p-xue-mengqi, role: liaison, valid_from: 2026-01-01, valid_to: 2025-01-01}
"""
    before = counts()
    with pytest.raises(DomainError) as exc:
        load_text(raw)
    assert "第 2 行" in str(exc.value)
    assert counts() == before


# ------------------------------------------------------------------ dump round trip


def test_dump_round_trips(demo):
    # introduce a closed post as well, so the dump carries history from a later load
    load_text("""\
persons:
  - {id: p-qin-xiaohong, name: 秦晓红, channels: ["json://127.0.0.1:9000/p-qin-xiaohong"]}
posts:
  - {unit: SQ05, person: p-qin-xiaohong, role: principal, valid_from: 2026-06-01, valid_to: null}
""")
    before, snapshot = counts(), dump()
    assert len(snapshot["units"]) == before[0]
    assert len(snapshot["persons"]) == before[1]
    assert len(snapshot["posts"]) == before[2]
    # as YAML (org file) and as JSON (`dutyflow org show --json`)
    for raw in (
        yaml.safe_dump(snapshot, allow_unicode=True, sort_keys=False),
        json.dumps(snapshot, ensure_ascii=False, indent=2),
    ):
        result = load_text(raw)
        assert result["posts_added"] == 0
        assert counts() == before
        assert dump() == snapshot


def test_dump_loads_into_empty_database(db, tmp_path, monkeypatch):
    """The dump of the demo org, loaded into a fresh database, gives the same registry."""
    load_demo()
    snapshot = dump()
    from models.db import dispose_all
    from models.schema import init_schema

    dispose_all()
    monkeypatch.setenv("DUTYFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'second.db'}")
    init_schema()
    assert counts() == (0, 0, 0)
    load_text(json.dumps(snapshot, ensure_ascii=False))
    assert dump() == snapshot

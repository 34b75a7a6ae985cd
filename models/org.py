"""Organisation registry (SPEC §2): units, persons and posts with their history.

Tracing uses who held each post on the date of the facts, so a post is never
overwritten: a new holder of a single-holder role closes the old post's ``valid_to``.
"""
from __future__ import annotations

import datetime as _dt
import re
from datetime import date, timedelta
from typing import Any, Iterable

from sqlalchemy import Column, Index, or_
from sqlmodel import Field, Session, SQLModel, select

from models.db import JSONList
from models.errors import DomainError
from models.labels import LabeledEnum


class UnitKind(LabeledEnum):
    district = "区"
    street = "街道"
    community = "社区"
    department = "科室/部门"


class Role(LabeledEnum):
    principal = "主要负责人（第一责任人）"
    cyber_lead = "主管网络安全的领导班子成员（直接责任人）"
    cyber_officer = "网络安全负责人"
    liaison = "网络安全联络员"
    office = "网信办工作人员"
    discipline = "纪工委工作人员"
    member = "领导班子其他成员"


# Roles held by one person at a time in a unit: a new holder closes the old post.
SINGLE_HOLDER_ROLES = {"principal", "cyber_lead", "cyber_officer"}


class OrgUnit(SQLModel, table=True):
    __tablename__ = "org_unit"
    code: str = Field(primary_key=True)
    name: str
    kind: str
    parent: str | None = Field(default=None, foreign_key="org_unit.code")
    supervisor: str | None = Field(default=None, foreign_key="org_unit.code")
    doc_prefix: str | None = None


class Person(SQLModel, table=True):
    __tablename__ = "person"
    id: str = Field(primary_key=True)
    name: str
    channels: list[str] = Field(default_factory=list, sa_column=Column(JSONList, nullable=False))
    active: bool = True


class Post(SQLModel, table=True):
    __tablename__ = "post"
    __table_args__ = (Index("ix_post_unit_role", "unit", "role"),)
    id: int | None = Field(default=None, primary_key=True)
    unit: str = Field(foreign_key="org_unit.code")
    person: str = Field(foreign_key="person.id", index=True)
    role: str
    valid_from: date
    valid_to: date | None = None


def get_unit(s: Session, code: str, field: str = "unit") -> OrgUnit:
    unit = _cached_get(s, OrgUnit, code) if code else None
    if unit is None:
        known = ", ".join(s.exec(select(OrgUnit.code).order_by(OrgUnit.code).limit(20)).all())
        raise DomainError(f"未知单位 '{code}'（已登记：{known}…）", field)
    return unit


def get_person(s: Session, pid: str, field: str = "person") -> Person:
    person = _cached_get(s, Person, pid) if pid else None
    if person is None:
        raise DomainError(f"未知人员 '{pid}'", field)
    return person


def _valid_on(on: date):
    return (Post.valid_from <= on) & or_(Post.valid_to.is_(None), Post.valid_to >= on)


def _cached_get(s: Session, cls, key: str):
    """``s.get`` that keeps a strong reference for the transaction (the identity map is weak,
    so a unit or person looked up again would otherwise be selected again)."""
    memo = _memo(s)
    if (cls, key) not in memo:
        memo[(cls, key)] = s.get(cls, key)
    return memo[(cls, key)]


def _memo(s: Session) -> dict:
    """Org lookups cached for the life of one transaction (a sweep batch asks the same
    questions hundreds of times); ``load_org`` clears it."""
    return s.info.setdefault("org_memo", {})


def holders(s: Session, unit: str, role: str, on: date) -> list[str]:
    """Person ids holding ``role`` at ``unit`` on ``on`` (post history, not today's)."""
    return holders_many(s, [unit], role, on)[unit]


IN_CHUNK = 5000  # ids per IN (…) list: well under SQLite's bound-parameter limit


def _chunks(items: list[str]):
    for i in range(0, len(items), IN_CHUNK):
        yield items[i:i + IN_CHUNK]


def holders_many(s: Session, units: Iterable[str], role: str, on: date) -> dict[str, list[str]]:
    """:func:`holders` for many units with one query per few thousand units (an annual
    assessment of every community); the answers are memoised like single lookups."""
    units = list(dict.fromkeys(units))
    _load_holders(s, units, [role], on)
    memo = _memo(s)
    return {u: list(memo[("holders", u, role, on)]) for u in units}


def prefetch_org(s: Session, units: Iterable[str], on: date) -> None:
    """Load what a batch of steps at ``units`` will ask, in a few queries: the units with
    their parents and supervisors, and who holds every role there on ``on`` (with the persons)."""
    memo = _memo(s)
    units = list(dict.fromkeys(u for u in units if u))
    wanted = [u for u in units if (OrgUnit, u) not in memo]
    while wanted:
        found = {u.code: u for chunk in _chunks(wanted)
                 for u in s.exec(select(OrgUnit).where(OrgUnit.code.in_(chunk))).all()}
        for code in wanted:
            memo[(OrgUnit, code)] = found.get(code)
        wanted = list(dict.fromkeys(c for u in found.values() for c in (u.parent, u.supervisor)
                                    if c and (OrgUnit, c) not in memo))
    _load_holders(s, units, [r.name for r in Role], on)


def _load_holders(s: Session, units: list[str], roles: list[str], on: date) -> None:
    """Memoise the holders of ``roles`` at ``units`` on ``on`` (one query per chunk of units),
    and load those persons."""
    memo = _memo(s)
    wanted = [u for u in units if any(("holders", u, r, on) not in memo for r in roles)]
    if not wanted:
        return
    found: dict[tuple[str, str], list[str]] = {(u, r): [] for u in wanted for r in roles}
    for chunk in _chunks(wanted):
        for unit, role, person in s.exec(select(Post.unit, Post.role, Post.person).where(
                Post.unit.in_(chunk), Post.role.in_(roles), _valid_on(on)).order_by(Post.id)).all():
            found[(unit, role)].append(person)
    for (u, r), people in found.items():
        memo[("holders", u, r, on)] = list(dict.fromkeys(people))
    prefetch_persons(s, (p for people in found.values() for p in people))


def prefetch_persons(s: Session, ids: Iterable[str]) -> None:
    """Load many persons into the transaction's memo at once (then :func:`get_person` is free)."""
    memo = _memo(s)
    wanted = [p for p in dict.fromkeys(ids) if (Person, p) not in memo]
    for chunk in _chunks(wanted):
        for person in s.exec(select(Person).where(Person.id.in_(chunk))).all():
            memo[(Person, person.id)] = person


def posts_of(s: Session, person: str, on: date) -> list[Post]:
    return list(s.exec(select(Post).where(Post.person == person, _valid_on(on))).all())


def ancestors(s: Session, code: str) -> list[OrgUnit]:
    """The unit and its territorial parents, nearest first."""
    out, seen = [], set()
    while code and code not in seen:
        seen.add(code)
        unit = _cached_get(s, OrgUnit, code)
        if unit is None:
            break
        out.append(unit)
        code = unit.parent
    return out


def role_unit(s: Session, code: str, role: str, on: date) -> OrgUnit | None:
    """The nearest unit up the territorial line (itself or a child of an ancestor) where
    someone holds ``role``: the 网信办 (``office``) or 纪工委 (``discipline``) serving ``code``."""
    key = ("role_unit", code, role, on)
    memo = _memo(s)
    if key not in memo:
        held = set(s.exec(select(Post.unit).where(Post.role == role, _valid_on(on))).all())
        memo[key] = None
        for anc in ancestors(s, code):
            if anc.code in held:
                memo[key] = anc.code
                break
            child = s.exec(select(OrgUnit.code).where(OrgUnit.parent == anc.code, OrgUnit.code.in_(held))
                           .order_by(OrgUnit.code).limit(1)).first() if held else None
            if child:
                memo[key] = child
                break
    return _cached_get(s, OrgUnit, memo[key]) if memo[key] else None


def office_unit(s: Session, code: str, on: date) -> OrgUnit | None:
    """The street 网信办 serving ``code``."""
    return role_unit(s, code, "office", on)


def committee_unit(s: Session, code: str) -> OrgUnit | None:
    """The 党工委 over ``code``: the nearest street up the territorial line."""
    return next((u for u in ancestors(s, code) if u.kind == "street"), None)


# ---------------------------------------------------------------- org file


def _line_of(raw: str, needle: str) -> int | None:
    """First line holding ``needle`` (``key: value``), in YAML (plain or quoted) or JSON."""
    pattern = re.compile(re.escape(needle) + r"(?![\w-])")
    for n, line in enumerate(raw.splitlines(), 1):
        if pattern.search(line.replace('"', "").replace("'", "")):
            return n
    return None


def load_org(s: Session, data: dict[str, Any], raw: str = "") -> dict[str, int]:
    """Upsert units, persons and posts from an org file; refuse the whole file on any error."""
    def refuse(msg: str, needle: str) -> None:
        line = _line_of(raw, needle) if raw else None
        raise DomainError(f"{msg}" + (f"（第 {line} 行）" if line else ""), "org file")

    _memo(s).clear()
    units = data.get("units") or []
    persons = data.get("persons") or []
    posts = data.get("posts") or []
    unit_codes = {u.get("code") for u in units} | set(s.exec(select(OrgUnit.code)).all())
    person_ids = {p.get("id") for p in persons} | set(s.exec(select(Person.id)).all())
    kinds = set(UnitKind.ids())
    for u in units:
        if not u.get("code") or not u.get("name"):
            refuse(f"单位缺少 code 或 name：{u}", str(u.get("code") or u.get("name")))
        if u.get("kind") not in kinds:
            refuse(f"单位 {u['code']} 的 kind '{u.get('kind')}' 无效（允许：{', '.join(sorted(kinds))}）", f"{u['code']}")
        for ref in ("parent", "supervisor"):
            if u.get(ref) and u[ref] not in unit_codes:
                refuse(f"单位 {u['code']} 的 {ref} 指向未知单位 '{u[ref]}'", f"{ref}: {u[ref]}")
    for p in persons:
        if not p.get("id") or not p.get("name"):
            refuse(f"人员缺少 id 或 name：{p}", str(p.get("id") or p.get("name")))
    roles = set(Role.ids())
    parsed_posts = []
    for p in posts:
        needle = f"person: {p.get('person')}"
        if p.get("unit") not in unit_codes:
            refuse(f"岗位指向未知单位 '{p.get('unit')}'", f"unit: {p.get('unit')}")
        if p.get("person") not in person_ids:
            refuse(f"岗位指向未知人员 '{p.get('person')}'", needle)
        if p.get("role") not in roles:
            refuse(f"未知岗位角色 '{p.get('role')}'（允许：{', '.join(Role.ids())}）", f"role: {p.get('role')}")
        try:
            vf = _dt.date.fromisoformat(str(p.get("valid_from")))
            vt = _dt.date.fromisoformat(str(p["valid_to"])) if p.get("valid_to") else None
        except ValueError:
            refuse(f"岗位日期无效：{p}", needle)
        if vt is not None and vt < vf:
            refuse(f"岗位 valid_to {vt} 早于 valid_from {vf}：{p}", needle)
        parsed_posts.append((p["unit"], p["person"], p["role"], vf, vt))

    # Units: insert parents first (two passes keep foreign keys valid).
    for u in units:
        row = s.get(OrgUnit, u["code"]) or OrgUnit(code=u["code"], name=u["name"], kind=u["kind"])
        row.name, row.kind, row.doc_prefix = u["name"], u["kind"], u.get("doc_prefix")
        s.add(row)
    s.flush()
    for u in units:
        row = s.get(OrgUnit, u["code"])
        row.parent, row.supervisor = u.get("parent"), u.get("supervisor")
    for p in persons:
        row = s.get(Person, p["id"]) or Person(id=p["id"], name=p["name"])
        row.name = p["name"]
        row.channels = list(p.get("channels") or [])
        row.active = bool(p.get("active", True))
        s.add(row)
    s.flush()
    added = 0
    for unit, person, role, vf, vt in sorted(parsed_posts, key=lambda t: t[3]):
        existing = s.exec(
            select(Post).where(Post.unit == unit, Post.person == person, Post.role == role, Post.valid_from == vf)
        ).first()
        if existing:
            if vt is not None:
                existing.valid_to = vt
            continue
        if role in SINGLE_HOLDER_ROLES:
            clash = s.exec(select(Post).where(Post.unit == unit, Post.role == role, Post.person != person,
                                              Post.valid_from == vf)).first()
            if clash:
                refuse(f"{unit} 的 {role} 自 {vf} 起已由 {clash.person} 担任，同一日期不能再任命 {person}",
                       f"person: {person}")
            nxt = s.exec(select(Post.valid_from).where(Post.unit == unit, Post.role == role, Post.person != person,
                                                       Post.valid_from > vf).order_by(Post.valid_from)).first()
            if nxt is not None and (vt is None or vt >= nxt):
                vt = nxt - timedelta(days=1)
            for old in s.exec(
                select(Post).where(Post.unit == unit, Post.role == role, Post.person != person,
                                   Post.valid_from < vf, or_(Post.valid_to.is_(None), Post.valid_to >= vf))
            ).all():
                old.valid_to = vf - timedelta(days=1)
        s.add(Post(unit=unit, person=person, role=role, valid_from=vf, valid_to=vt))
        added += 1
    s.flush()
    return {"units": len(units), "persons": len(persons), "posts_added": added}


def dump_org(s: Session) -> dict[str, Any]:
    """The org registry in the org-file shape (``dutyflow org show --json``)."""
    return {
        "units": [
            {"code": u.code, "name": u.name, "kind": u.kind, "parent": u.parent,
             "supervisor": u.supervisor, "doc_prefix": u.doc_prefix}
            for u in s.exec(select(OrgUnit).order_by(OrgUnit.code)).all()
        ],
        "persons": [
            {"id": p.id, "name": p.name, "channels": list(p.channels), "active": p.active}
            for p in s.exec(select(Person).order_by(Person.id)).all()
        ],
        "posts": [
            {"unit": p.unit, "person": p.person, "role": p.role,
             "valid_from": p.valid_from.isoformat(),
             "valid_to": p.valid_to.isoformat() if p.valid_to else None}
            for p in s.exec(select(Post).order_by(Post.unit, Post.role, Post.valid_from)).all()
        ],
    }

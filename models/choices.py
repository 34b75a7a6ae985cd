"""Pickers of the operators' forms: units, persons and open cases as readable Chinese labels.

The Prefect UI renders an ``enum`` as a select of its raw values (LIBRARIES.md), so the
values offered are the labels themselves — ``SQ03 建设社区``, ``刘婷（东风社区 网络安全联络员）``,
``RECT-2026-0003 社区门户网站后台存在弱口令`` — and every request field that takes a unit, a
person or a case accepts either the id or its label (:func:`unit_code`, :func:`person_id`,
:func:`case_id`). A request field names its picker with ``json_schema_extra`` key
:data:`CHOICE_KEY`; :func:`apply_choices` fills the deployment schema's ``enum`` from the
registry when deployments are registered (``dutyflow serve``, again after ``org load``).
"""
from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlmodel import Session, select

from models.case import Case
from models.clock import today_local
from models.db import session
from models.org import OrgUnit, Person, Post, _valid_on

#: JSON-schema key of a request field that picks a unit (``unit``), a person (``person``) or
#: an open case of one process (``case:incident`` …).
CHOICE_KEY = "x-dutyflow-choices"

#: Short role names for person labels (the registry's labels are long).
SHORT_ROLES = {
    "principal": "主要负责人", "cyber_lead": "主管网络安全领导", "cyber_officer": "网络安全负责人",
    "liaison": "网络安全联络员", "office": "网信办", "discipline": "纪工委", "member": "班子成员",
}
#: States in which a case takes no more operator actions: not offered in the pickers.
FINISHED = ("closed", "dismissed")

_ID_FIRST = re.compile(r"^(\S+)\s")


def first_token(value: Any) -> Any:
    """``SQ03 建设社区`` → ``SQ03`` (an id alone is returned as it is)."""
    if isinstance(value, str):
        m = _ID_FIRST.match(value.strip() + " ")
        return m.group(1) if m else value.strip()
    return value


def unit_code(value: Any) -> Any:
    """A unit given by its code or its label."""
    return first_token(value)


def case_id(value: Any) -> Any:
    """A case given by its id or its label."""
    return first_token(value)


def person_id(value: Any) -> Any:
    """A person given by id or by label (a label is looked up in the registry; an unknown
    label is returned as it is, and the core refuses it naming the field)."""
    if not isinstance(value, str) or "（" not in value:
        return value.strip() if isinstance(value, str) else value
    with session() as s:
        return person_labels(s, today_local()).get(value.strip(), value.strip())


def person_labels(s: Session, on: date) -> dict[str, str]:
    """label → person id of everyone holding a post on ``on`` (a name held twice with the
    same posts gets its id appended, so every label is unique)."""
    rows = s.exec(select(Post.person, Person.name, OrgUnit.name, Post.role, Post.unit)
                  .join(Person, Person.id == Post.person).join(OrgUnit, OrgUnit.code == Post.unit)
                  .where(_valid_on(on), Person.active).order_by(Post.unit, Post.role, Post.person)).all()
    order = list(SHORT_ROLES)
    rows = sorted(rows, key=lambda r: (r[4], order.index(r[3]) if r[3] in order else len(order)))  # principal first
    posts: dict[str, tuple[str, dict[str, list[str]]]] = {}
    for pid, name, unit_name, role, _ in rows:
        posts.setdefault(pid, (name, {}))[1].setdefault(unit_name, []).append(SHORT_ROLES.get(role, role))
    labels: dict[str, str] = {}
    for pid, (name, held) in posts.items():
        label = f"{name}（{'；'.join(f'{u} {chr(12289).join(dict.fromkeys(r))}' for u, r in held.items())}）"
        labels[f"{label} {pid}" if label in labels else label] = pid
    return labels


def unit_labels(s: Session) -> list[str]:
    return [f"{code} {name}" for code, name in s.exec(select(OrgUnit.code, OrgUnit.name).order_by(OrgUnit.code)).all()]


def case_labels(s: Session, kind: str) -> list[str]:
    """Open cases of one process, newest first: ``RECT-2026-0003 社区门户网站后台存在弱口令``."""
    rows = s.exec(select(Case.id, Case.title, Case.classified).where(Case.kind == kind, Case.state.not_in(FINISHED))
                  .order_by(Case.created_at.desc()).limit(500)).all()
    return [f"{cid} {'（涉密事项）' if classified else (title or '')}".strip() for cid, title, classified in rows]


def choices(s: Session, on: date) -> dict[str, list[str]]:
    """Every picker's values, by choice key."""
    out = {"unit": unit_labels(s), "person": list(person_labels(s, on))}
    out["appellant"] = out["person"] + out["unit"]  # a person, or the organisation held accountable
    for kind in s.exec(select(Case.kind).distinct()).all():
        out[f"case:{kind}"] = case_labels(s, kind)
    return out


def apply_choices(schema: dict, values: dict[str, list[str]]) -> dict:
    """Fill ``enum`` of every property marked with :data:`CHOICE_KEY` (in place; lists get
    their ``items`` filled). A picker with fewer than two values stays a text field: the UI
    renders a one-value enum as a JSON editor. An optional time picker loses its ``''``
    default (the form validates it as a date-time; a field left empty means not given)."""
    for definition in [schema, *schema.get("definitions", {}).values()]:
        for prop in definition.get("properties", {}).values():
            if prop.get("format") in ("date-time", "date") and prop.get("default") == "":
                del prop["default"]  # '' is no date-time: the form would refuse to submit; left out means ''
            key = prop.get(CHOICE_KEY)
            if not key:
                continue
            options = values.get(key, [])
            target = prop["items"] if prop.get("type") == "array" and "items" in prop else prop
            target.pop("enum", None)
            default = prop.get("default")
            if isinstance(default, str) and default not in options:  # '' (not given) or 'system'
                options = [default, *options]
            if len(options) >= 2:
                target["enum"] = list(options)
    return schema

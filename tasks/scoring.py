"""年度检查考核计分: the criteria catalogue, the automatic rules over a year's records
(computed in bulk for every unit: a few queries, not one per unit), and the final score,
grade and ranking. Every point lost lists the records (case ids) behind it.
"""
from __future__ import annotations

import os
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml
from sqlmodel import Session, select

from models.case import Case, Obligation, ObligationStatus
from models.clock import TZ, UTC
from models.db import ROOT
from models.errors import DomainError

DEFAULT_CATALOGUE = ROOT / "deployments" / "criteria.yaml"
GRADE_ORDER = ["优秀", "良好", "合格", "不合格"]


# ---------------------------------------------------------------- the rules


UNIT_FILTER_MAX = 200  # up to this many units: their records only (SQL IN); more: the whole year


class YearRecords:
    """A year's records, grouped by unit, loaded with a handful of bulk queries.

    Only what the rules read leaves the database: the few ``data`` fields as scalars (not
    the whole JSON of every case), and the missed obligations of the kinds that cost points.
    """

    FIELDS = {"kind": "string", "date": "string", "level": "string", "concealed": "boolean"}
    MISSED_KINDS = ("internal_report", "external_report", "rectify")

    def __init__(self, s: Session, year: int, units: Iterable[str]):
        self.year = year
        self.units = set(units)
        start = datetime(year, 1, 1, tzinfo=TZ).astimezone(UTC)
        end = datetime(year + 1, 1, 1, tzinfo=TZ).astimezone(UTC)
        few = len(self.units) <= UNIT_FILTER_MAX

        def mine(q):
            return q.where(Case.unit.in_(sorted(self.units))) if few else q

        self.by_unit: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        fields = [getattr(Case.data[name], f"as_{kind}")() for name, kind in self.FIELDS.items()]
        cols = (Case.id, Case.kind, Case.unit, Case.state, Case.proposed_from, *fields)
        q = mine(select(*cols).where(Case.kind.in_(("incident", "rectification")),
                                     Case.created_at >= start, Case.created_at < end))
        qa = mine(select(*cols).where(Case.kind == "activity", Case.created_at >= start))  # by its own date (补录)
        cases = set()
        rows = [*s.exec(q.order_by(Case.id)).yield_per(5000), *s.exec(qa.order_by(Case.id)).yield_per(5000)]
        for cid, kind, unit, state, proposed_from, *values in rows:  # records listed oldest first
            data = {k: v for k, v in zip(self.FIELDS, values) if v is not None}
            if unit not in self.units or (kind == "activity" and str(data.get("date", ""))[:4] != str(year)):
                continue
            cases.add(cid)
            self.by_unit[unit][kind].append((cid, state, data, proposed_from))
        self.missed: dict[str, set[str]] = defaultdict(set)  # case id -> kinds of its missed obligations
        q = mine(select(Obligation.case_id, Obligation.kind).join(Case, Case.id == Obligation.case_id).where(
            Case.kind.in_(("incident", "rectification")), Case.created_at >= start, Case.created_at < end,
            Obligation.kind.in_(self.MISSED_KINDS), Obligation.status == ObligationStatus.missed))
        for case_id, kind in s.exec(q).yield_per(5000):
            if case_id in cases:
                self.missed[case_id].add(kind)
        # accountability decided on a source case (any time from the year's start)
        self.decided_sources: dict[str, str] = {}
        q = select(Case.id, Case.proposed_from, Case.data).where(
            Case.kind == "accountability", Case.proposed_from.is_not(None), Case.created_at >= start)
        if few:  # by its source (an accountability case may belong to another unit)
            q = q.where(Case.proposed_from.in_(sorted(cases)))
        for cid, source, data in s.exec(q.order_by(Case.id)).yield_per(5000):
            if data.get("decision"):
                self.decided_sources.setdefault(source, cid)

    def of(self, unit: str, kind: str) -> list[tuple]:
        return self.by_unit.get(unit, {}).get(kind, [])


def _activities(kind: str) -> Callable:
    def rule(rec: YearRecords, unit: str, item: dict) -> tuple[float, list[dict]]:
        p = item["params"]
        done = [cid for cid, _s, data, _p in rec.of(unit, "activity") if data.get("kind") == kind]
        missing = max(0, p["count"] - len(done))
        if not missing:
            return 0, []
        label = {"meeting": "专题会议", "training": "培训", "drill": "应急演练", "publicity": "宣传活动"}[kind]
        return (min(item["max_points"], missing * p["per_missing"]),
                [{"reason": f"全年{label} {len(done)} 次，少于要求的 {p['count']} 次", "records": done}])
    return rule


def missed_incident_reports(rec: YearRecords, unit: str, item: dict) -> tuple[float, list[dict]]:
    late = [cid for cid, _s, _d, _p in rec.of(unit, "incident")
            if rec.missed.get(cid, set()) & {"internal_report", "external_report"}]
    if not late:
        return 0, []
    return (min(item["max_points"], len(late) * item["params"]["per"]),
            [{"reason": f"事件迟报、漏报 {len(late)} 起（每起扣 {item['params']['per']} 分）", "records": late}])


def _rectify_late(rec: YearRecords, cid: str) -> bool:
    return "rectify" in rec.missed.get(cid, set())


def overdue_rectifications(rec: YearRecords, unit: str, item: dict) -> tuple[float, list[dict]]:
    late = [cid for cid, _s, _d, _p in rec.of(unit, "rectification") if _rectify_late(rec, cid)]
    if not late:
        return 0, []
    return (min(item["max_points"], len(late) * item["params"]["per"]),
            [{"reason": f"通报问题逾期整改 {len(late)} 项（每项扣 {item['params']['per']} 分）", "records": late}])


def rectification_on_time_rate(rec: YearRecords, unit: str, item: dict) -> tuple[float, list[dict]]:
    cases = rec.of(unit, "rectification")
    if not cases:
        return 0, []
    not_on_time = [cid for cid, state, _d, _p in cases if state != "closed" or _rectify_late(rec, cid)]
    if not not_on_time:
        return 0, []
    rate = 1 - len(not_on_time) / len(cases)
    lost = round(item["max_points"] * (1 - rate), 2)
    return (lost, [{"reason": f"按期整改销号率 {rate:.0%}（{len(cases) - len(not_on_time)}/{len(cases)}）",
                    "records": not_on_time}])


def veto_major_incident_with_accountability(rec: YearRecords, unit: str, item: dict) -> list[str]:
    from models.incident import LEVEL_RANK

    return [f"{cid}（问责 {rec.decided_sources[cid]}）" for cid, _s, data, _p in rec.of(unit, "incident")
            if LEVEL_RANK.get(data.get("level"), 0) >= 1 and cid in rec.decided_sources]


def veto_concealment(rec: YearRecords, unit: str, item: dict) -> list[str]:
    return [cid for cid, _s, data, _p in rec.of(unit, "incident") if data.get("concealed")]


def veto_falsified(rec: YearRecords, unit: str, item: dict) -> list[str]:
    return []  # found by the assessors: recorded with the manual scores


RULES: dict[str, Callable] = {
    "meetings_at_least": _activities("meeting"),
    "trainings_at_least": _activities("training"),
    "drills_at_least": _activities("drill"),
    "publicity_at_least": _activities("publicity"),
    "missed_incident_reports": missed_incident_reports,
    "overdue_rectifications": overdue_rectifications,
    "rectification_on_time_rate": rectification_on_time_rate,
}
VETO_RULES: dict[str, Callable] = {
    "veto_major_incident_with_accountability": veto_major_incident_with_accountability,
    "veto_concealment": veto_concealment,
    "veto_falsified": veto_falsified,
}


# ---------------------------------------------------------------- the catalogue


def load_catalogue(path: str | Path | None = None, data: dict | None = None) -> dict[str, Any]:
    """Read and check a catalogue; a catalogue that does not add up or names an unknown
    rule is refused with the item named."""
    if data is None:
        path = Path(path or os.environ.get("DUTYFLOW_CRITERIA") or DEFAULT_CATALOGUE)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = data.get("items") or []
    seen = set()
    for it in items:
        iid = it.get("id")
        where = f"items.{iid or '?'}"
        if not iid or iid in seen:
            raise DomainError(f"考核项缺少 id 或 id 重复：{it}", where)
        seen.add(iid)
        if it.get("method") not in ("auto", "manual"):
            raise DomainError(f"method 应为 auto 或 manual，实为 {it.get('method')!r}", where)
        if not isinstance(it.get("max_points"), (int, float)) or it["max_points"] <= 0:
            raise DomainError("max_points 应为正数", where)
        if it["method"] == "auto" and it.get("rule") not in RULES:
            raise DomainError(f"未知计分规则 {it.get('rule')!r}（可用：{', '.join(RULES)}）", where)
        it.setdefault("params", {})
    total = sum(it["max_points"] for it in items)
    if abs(total - data.get("total", 100)) > 1e-9:
        raise DomainError(f"各项分值合计 {total:g} 分，不等于总分 {data.get('total', 100)} 分", "items")
    for v in data.get("veto") or []:
        if v.get("rule") not in VETO_RULES:
            raise DomainError(f"未知否决规则 {v.get('rule')!r}（可用：{', '.join(VETO_RULES)}）", f"veto.{v.get('id')}")
    for b in data.get("bonus") or []:
        if not b.get("id") or b.get("max_points", 0) <= 0:
            raise DomainError("加分项缺少 id 或 max_points", f"bonus.{b.get('id')}")
    return data


def manual_items(cat: dict) -> dict[str, dict]:
    return {it["id"]: it for it in cat["items"] if it["method"] == "manual"}


def compute_auto(s: Session, cat: dict, year: int, units: list[str],
                 progress: Callable[[float], None] | None = None) -> dict[str, dict]:
    """Automatic points, deductions (with records) and vetoes for every unit, in bulk."""
    rec = YearRecords(s, year, units)
    out = {}
    step = max(1, len(units) // 20)
    for n, unit in enumerate(units, 1):
        if progress and n % step == 0:
            progress(100.0 * n / len(units))
        items, vetoes = {}, []
        for it in cat["items"]:
            if it["method"] != "auto":
                continue
            lost, deductions = RULES[it["rule"]](rec, unit, it)
            items[it["id"]] = {"points": round(it["max_points"] - lost, 2), "max": it["max_points"],
                               "deductions": [{**d, "points": -round(lost, 2), "item": it["item"]} for d in deductions]}
        for v in cat.get("veto") or []:
            records = VETO_RULES[v["rule"]](rec, unit, v)
            if records:
                vetoes.append({"id": v["id"], "item": v["item"], "records": records})
        out[unit] = {"items": items, "vetoes": vetoes}
    return out


def grade_of(score: float, veto: bool, cat: dict) -> str:
    if veto:
        return "不合格"
    g = cat.get("grades") or {"优秀": 90, "良好": 80, "合格": 60}
    for name in ("优秀", "良好", "合格"):
        if score >= g[name]:
            return name
    return "不合格"


def rank(rows: list[dict]) -> None:
    """Competition ranking (1, 2, 2, 4) by final score; vetoed units after the others."""
    ordered = sorted(rows, key=lambda r: (r["veto"], -r["final"]))
    prev, prev_rank = None, 0
    for i, r in enumerate(ordered, 1):
        key = (r["veto"], r["final"])
        r["rank"] = prev_rank if key == prev else i
        prev, prev_rank = key, r["rank"]


def deduction_lines(auto: dict) -> list[str]:
    return [f"{d['item']}：{d['reason']}，扣 {-d['points']:g} 分（{', '.join(d['records']) or '全年无相关记录'}）"
            for it in auto["items"].values() for d in it["deductions"]]

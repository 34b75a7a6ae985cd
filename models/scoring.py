"""年度检查考核计分: the criteria catalogue (checked when loaded: each rule declares its
parameters), the automatic rules over a year's records as they stood at a cutoff (computed
in bulk for every unit: a few queries, not one per unit), and the final score, grade and
ranking. Every point lost lists the records (case ids) behind it.
"""
from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml
from sqlalchemy import and_, or_
from sqlmodel import Session, select

from models.accountability import imposes_accountability
from models.case import Case, Obligation, ObligationStatus
from models.clock import TZ, UTC, now
from models.db import ROOT
from models.errors import DomainError
from models.incident import LEVEL_RANK

DEFAULT_CATALOGUE = ROOT / "deployments" / "criteria.yaml"
GRADE_ORDER = ["优秀", "良好", "合格", "不合格"]


# ---------------------------------------------------------------- the rules


UNIT_FILTER_MAX = 200  # up to this many units: their records only (SQL IN); more: the whole year


def year_bounds(year: int) -> tuple[datetime, datetime]:
    """1 Jan 00:00 and 31 Dec 24:00 Beijing time, in UTC."""
    return datetime(year, 1, 1, tzinfo=TZ).astimezone(UTC), datetime(year + 1, 1, 1, tzinfo=TZ).astimezone(UTC)


def year_cutoff(year: int, at: datetime | None = None) -> datetime:
    """What the automatic rules look at: the year's records up to 31 Dec 24:00 Beijing
    time, or up to ``at`` (the start, the publication) or now, whichever is earliest — an
    obligation not yet due now is never counted late."""
    return min(year_bounds(year)[1], now(), *([at] if at is not None else []))


class YearRecords:
    """A year's records, grouped by unit, loaded with a handful of bulk queries, as they
    stood at ``cutoff`` (default and at most: 31 Dec 24:00 Beijing time or now, whichever
    is earlier).

    Only what the rules read leaves the database: the few ``data`` fields as scalars (not
    the whole JSON of every case), and the obligations of the kinds that cost points that
    were late at the cutoff (or, for ``rectify``, not yet due then).

    Late at the cutoff = due before it and not met by its due time (met late, marked
    missed by the sweep, or still open). Rectifications count in the year their ``rectify``
    obligation falls due: the year's new ones, and earlier ones with a rectify due this
    year; one whose rectify was not yet due at the cutoff is left out (``pending``).
    """

    FIELDS = {"kind": "string", "date": "string", "level": "string", "concealed": "boolean"}
    MISSED_KINDS = ("internal_report", "external_report", "rectify")

    def __init__(self, s: Session, year: int, units: Iterable[str], cutoff: datetime | None = None):
        self.year = year
        self.units = set(units)
        start = year_bounds(year)[0]
        self.cutoff = end = year_cutoff(year, cutoff)
        last_day = end.astimezone(TZ).date().isoformat()  # activities dated up to the cutoff's day
        few = len(self.units) <= UNIT_FILTER_MAX

        def mine(q):
            return q.where(Case.unit.in_(sorted(self.units))) if few else q

        self.by_unit: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        fields = [getattr(Case.data[name], f"as_{kind}")() for name, kind in self.FIELDS.items()]
        cols = (Case.id, Case.kind, Case.unit, Case.state, Case.proposed_from, *fields)
        q = mine(select(*cols).where(Case.kind.in_(("incident", "rectification")),
                                     Case.created_at >= start, Case.created_at < end))
        # earlier rectifications whose rectify obligation falls due this year (up to the cutoff)
        carried = mine(select(*cols).where(Case.kind == "rectification", Case.created_at < start, Case.id.in_(
            select(Obligation.case_id).where(Obligation.kind == "rectify", Obligation.due_at >= start,
                                             Obligation.due_at < end))))
        qa = mine(select(*cols).where(Case.kind == "activity", Case.created_at >= start))  # by its own date (补录)
        cases = set()
        rows = [*s.exec(carried.order_by(Case.id)).yield_per(5000), *s.exec(q.order_by(Case.id)).yield_per(5000),
                *s.exec(qa.order_by(Case.id)).yield_per(5000)]
        for cid, kind, unit, state, proposed_from, *values in rows:  # records listed oldest first
            data = {k: v for k, v in zip(self.FIELDS, values) if v is not None}
            if unit not in self.units:
                continue
            if kind == "activity" and not (str(data.get("date", ""))[:4] == str(year)
                                           and str(data.get("date", "")) <= last_day):
                continue
            cases.add(cid)
            self.by_unit[unit][kind].append((cid, state, data, proposed_from))
        self.missed: dict[str, set[str]] = defaultdict(set)  # case id -> kinds late at the cutoff
        self.pending: set[str] = set()  # rectifications whose rectify was not yet due at the cutoff
        late = and_(Obligation.due_at < end, or_(Obligation.met_at.is_(None), Obligation.met_at > Obligation.due_at))
        not_due = and_(Obligation.kind == "rectify", Obligation.due_at >= end,
                       or_(Obligation.met_at.is_(None), Obligation.met_at >= end))
        q = mine(select(Obligation.case_id, Obligation.kind, Obligation.due_at < end).join(
            Case, Case.id == Obligation.case_id).where(
            Case.kind.in_(("incident", "rectification")), Case.created_at < end,
            Obligation.kind.in_(self.MISSED_KINDS), Obligation.status != ObligationStatus.waived,
            or_(Case.created_at >= start, Obligation.due_at >= start),  # a carried case: this year's deadlines
            or_(late, not_due)))
        for case_id, kind, was_due in s.exec(q).yield_per(5000):
            if case_id not in cases:
                continue
            if was_due:
                self.missed[case_id].add(kind)
            else:
                self.pending.add(case_id)
        # accountability decided on a source case (any time from the year's start) that held
        # someone accountable
        self.decided_sources: dict[str, str] = {}
        q = select(Case.id, Case.proposed_from, Case.data).where(
            Case.kind == "accountability", Case.proposed_from.is_not(None), Case.created_at >= start)
        if few:  # by its source (an accountability case may belong to another unit)
            q = q.where(Case.proposed_from.in_(sorted(cases)))
        for cid, source, data in s.exec(q.order_by(Case.id)).yield_per(5000):
            if imposes_accountability(data.get("decision")):
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
    """Share of the rectifications due by the cutoff that were done on time; those whose
    rectify obligation was not yet due at the cutoff count neither way."""
    cases = rec.of(unit, "rectification")
    late = [cid for cid, _s, _d, _p in cases if _rectify_late(rec, cid)]
    pending = [cid for cid, _s, _d, _p in cases if cid in rec.pending and cid not in late]
    due = len(cases) - len(pending)
    if not late:
        return 0, []
    rate = 1 - len(late) / due
    lost = round(item["max_points"] * (1 - rate), 2)
    extra = f"；另有 {len(pending)} 项未到整改期限，不计入" if pending else ""
    return (lost, [{"reason": f"按期整改销号率 {rate:.0%}（{due - len(late)}/{due}）{extra}", "records": late}])


def veto_major_incident_with_accountability(rec: YearRecords, unit: str, item: dict) -> list[str]:
    return [f"{cid}（问责 {rec.decided_sources[cid]}）" for cid, _s, data, _p in rec.of(unit, "incident")
            if LEVEL_RANK.get(data.get("level"), 0) >= 1 and cid in rec.decided_sources]


def veto_concealment(rec: YearRecords, unit: str, item: dict) -> list[str]:
    return [cid for cid, _s, data, _p in rec.of(unit, "incident") if data.get("concealed")]


def veto_falsified(rec: YearRecords, unit: str, item: dict) -> list[str]:
    return []  # found by the assessors: recorded with the manual scores


@dataclass(frozen=True)
class Param:
    """One parameter a rule reads from its catalogue item: an integer or a number, with a
    lower bound (``> low`` when ``strict``, else ``>= low``)."""

    kind: str  # "int" | "number"
    low: float
    strict: bool
    label: str  # what it means, for the refusal message

    def describe(self, name: str) -> str:
        what = "整数" if self.kind == "int" else "数值"
        return f"{name}（{self.label}，{what}，{'>' if self.strict else '≥'} {self.low:g}）"

    def problem(self, value: Any) -> str:
        """Why ``value`` does not fit, or ''."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or (self.kind == "int" and not isinstance(value, int)):
            return f"应为{'整数' if self.kind == 'int' else '数值'}，实为 {value!r}"
        if not math.isfinite(value) or value < self.low or (self.strict and value == self.low):
            return f"应{'>' if self.strict else '≥'} {self.low:g}，实为 {value!r}"
        return ""


@dataclass(frozen=True)
class AutoRule:
    """A scoring rule and the parameters it declares (names and types): a catalogue item
    naming the rule must give exactly these."""

    fn: Callable
    params: dict[str, Param] = field(default_factory=dict)

    def __call__(self, rec: YearRecords, unit: str, item: dict):
        return self.fn(rec, unit, item)


def _at_least(kind: str, what: str) -> AutoRule:
    return AutoRule(_activities(kind), {"count": Param("int", 1, False, f"全年至少{what}次数"),
                                        "per_missing": Param("number", 0, True, "每少一次扣分")})


RULES: dict[str, AutoRule] = {
    "meetings_at_least": _at_least("meeting", "召开专题会议"),
    "trainings_at_least": _at_least("training", "开展培训"),
    "drills_at_least": _at_least("drill", "开展应急演练"),
    "publicity_at_least": _at_least("publicity", "开展宣传"),
    "missed_incident_reports": AutoRule(missed_incident_reports, {"per": Param("number", 0, True, "每起迟报、漏报扣分")}),
    "overdue_rectifications": AutoRule(overdue_rectifications, {"per": Param("number", 0, True, "每项逾期整改扣分")}),
    "rectification_on_time_rate": AutoRule(rectification_on_time_rate),
}
VETO_RULES: dict[str, AutoRule] = {
    "veto_major_incident_with_accountability": AutoRule(veto_major_incident_with_accountability),
    "veto_concealment": AutoRule(veto_concealment),
    "veto_falsified": AutoRule(veto_falsified),
}
GRADE_NAMES = ("优秀", "良好", "合格")  # the lower bounds of each; below 合格: 不合格


# ---------------------------------------------------------------- the catalogue


def _positive(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and value > 0)


def _check_params(rule_name: str, rule: AutoRule, params: Any, who: str, where: str) -> dict:
    declared = "、".join(p.describe(n) for n, p in rule.params.items()) or "无"
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise DomainError(f"{who}：params 应为 {{参数: 值}}，实为 {params!r}（规则 {rule_name} 的参数：{declared}）",
                          f"{where}.params")
    for name in params:
        if name not in rule.params:
            raise DomainError(f"{who}：规则 {rule_name} 没有参数 {name!r}（规则 {rule_name} 的参数：{declared}）",
                              f"{where}.params.{name}")
    for name, spec in rule.params.items():
        if name not in params:
            raise DomainError(f"{who}：规则 {rule_name} 缺少参数 {spec.describe(name)}（规则 {rule_name} 的参数：{declared}）",
                              f"{where}.params.{name}")
        why = spec.problem(params[name])
        if why:
            raise DomainError(f"{who}：参数 {spec.describe(name)} {why}", f"{where}.params.{name}")
    return params


def _text(it: dict, key: str) -> str:
    value = it.get(key)
    return value.strip() if isinstance(value, str) else ""


def load_catalogue(path: str | Path | None = None, data: dict | None = None) -> dict[str, Any]:
    """Read and check a catalogue; a catalogue that does not add up, names an unknown rule,
    gives a rule other parameters than it declares, or lacks a category, positive points or
    the grade bounds is refused, with the item named, in one message."""
    if data is None:
        path = Path(path or os.environ.get("DUTYFLOW_CRITERIA") or DEFAULT_CATALOGUE)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise DomainError("考核指标文件应为映射（total、grades、items、bonus、veto）", "catalogue")
    items = data.get("items") or []
    if not isinstance(items, list) or not items:
        raise DomainError("考核指标文件没有考核项（items）", "items")
    total = data.get("total", 100)
    if not _positive(total):
        raise DomainError(f"总分 total 应为正数，实为 {total!r}", "total")
    seen = set()
    for n, it in enumerate(items):
        if not isinstance(it, dict):
            raise DomainError(f"第 {n + 1} 个考核项应为映射，实为 {it!r}", f"items[{n}]")
        iid = it.get("id")
        where = f"items.{iid or n}"
        if not iid or not isinstance(iid, str) or iid in seen:
            raise DomainError(f"第 {n + 1} 个考核项缺少 id 或 id 重复：{it}", where)
        seen.add(iid)
        who = f"考核项 {iid}" + (f"（{_text(it, 'item')}）" if _text(it, "item") else "")
        if not _text(it, "item"):
            raise DomainError(f"{who}：缺少考核内容 item", where)
        if not _text(it, "category"):
            raise DomainError(f"{who}：缺少考核类别 category", where)
        if not _positive(it.get("max_points")):
            raise DomainError(f"{who}：max_points 应为正数，实为 {it.get('max_points')!r}", where)
        if it.get("method") not in ("auto", "manual"):
            raise DomainError(f"{who}：method 应为 auto 或 manual，实为 {it.get('method')!r}", where)
        if it["method"] == "auto":
            if it.get("rule") not in RULES:
                raise DomainError(f"{who}：未知计分规则 {it.get('rule')!r}（可用：{', '.join(RULES)}）", where)
            it["params"] = _check_params(it["rule"], RULES[it["rule"]], it.get("params"), who, where)
        else:
            if it.get("rule") or it.get("params"):
                raise DomainError(f"{who}：人工评分项不设计分规则（rule、params）", where)
            it["params"] = {}
    points = sum(it["max_points"] for it in items)
    if abs(points - total) > 1e-9:
        by_category: dict[str, list[dict]] = {}
        for it in items:
            by_category.setdefault(it["category"], []).append(it)
        def listed(its: list[dict]) -> str:
            return "、".join(f"{it['id']} {it['max_points']:g}" for it in its)

        detail = "；".join(f"{c} {sum(it['max_points'] for it in its):g}（{listed(its)}）"
                          for c, its in by_category.items())
        raise DomainError(f"各项分值合计 {points:g} 分，不等于总分 {total:g} 分；各项：{detail}", "items")
    data["grades"] = _check_grades(data.get("grades"), total)
    ids = set(seen)
    for kind, label in (("veto", "一票否决项"), ("bonus", "加分项")):
        entries = data.get(kind) or []
        if not isinstance(entries, list):
            raise DomainError(f"{kind} 应为列表", kind)
        for n, v in enumerate(entries):
            if not isinstance(v, dict) or not v.get("id") or not isinstance(v["id"], str) or v["id"] in ids:
                raise DomainError(f"第 {n + 1} 个{label}缺少 id 或 id 重复：{v}", f"{kind}[{n}]")
            ids.add(v["id"])
            where = f"{kind}.{v['id']}"
            who = f"{label} {v['id']}" + (f"（{_text(v, 'item')}）" if _text(v, "item") else "")
            if not _text(v, "item"):
                raise DomainError(f"{who}：缺少名称 item", where)
            if kind == "veto":
                if v.get("rule") not in VETO_RULES:
                    raise DomainError(f"{who}：未知否决规则 {v.get('rule')!r}（可用：{', '.join(VETO_RULES)}）", where)
                v["params"] = _check_params(v["rule"], VETO_RULES[v["rule"]], v.get("params"), who, where)
            elif not _positive(v.get("max_points")):
                raise DomainError(f"{who}：max_points 应为正数，实为 {v.get('max_points')!r}", where)
    return data


def _check_grades(grades: Any, total: float) -> dict[str, float]:
    """The lower bounds of 优秀, 良好, 合格: numbers, 0 < 合格 < 良好 < 优秀 ≤ total."""
    if grades is None:
        grades = {"优秀": 90, "良好": 80, "合格": 60}
    if not isinstance(grades, dict):
        raise DomainError(f"grades 应为 {{优秀: 分数, 良好: 分数, 合格: 分数}}，实为 {grades!r}", "grades")
    for name in grades:
        if name not in GRADE_NAMES:
            raise DomainError(f"等次 {name!r} 无效（可设：{'、'.join(GRADE_NAMES)}；低于合格为不合格）", f"grades.{name}")
    prev = None
    for name in GRADE_NAMES:
        if name not in grades:
            raise DomainError(f"grades 缺少等次 {name} 的分数线", f"grades.{name}")
        value = grades[name]
        if not _positive(value) or value > total:
            raise DomainError(f"等次 {name} 的分数线应为 0 到总分 {total:g} 之间的数，实为 {value!r}", f"grades.{name}")
        if prev is not None and value >= grades[prev]:
            raise DomainError(f"等次 {name} 的分数线 {value:g} 应低于{prev}的 {grades[prev]:g}", f"grades.{name}")
        prev = name
    return dict(grades)


def manual_items(cat: dict) -> dict[str, dict]:
    return {it["id"]: it for it in cat["items"] if it["method"] == "manual"}


def compute_auto(s: Session, cat: dict, year: int, units: list[str],
                 progress: Callable[[float], None] | None = None, cutoff: datetime | None = None) -> dict[str, dict]:
    """Automatic points, deductions (with records) and vetoes for every unit, in bulk, over
    the year's records up to ``cutoff`` (default and at most: 31 Dec 24:00 Beijing time or
    now, whichever is earlier)."""
    rec = YearRecords(s, year, units, cutoff)
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
    for name in GRADE_NAMES:
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


def in_order(auto: dict, cat: dict | None = None) -> list[tuple[str, dict]]:
    """A unit's automatic items in catalogue order (a JSONB column does not keep key order)."""
    items = auto["items"]
    if cat is None:
        return list(items.items())
    ids = [it["id"] for it in cat["items"] if it["id"] in items]
    return [(iid, items[iid]) for iid in ids + [i for i in items if i not in ids]]


def deduction_lines(auto: dict, cat: dict | None = None) -> list[str]:
    return [f"{d['item']}：{d['reason']}，扣 {-d['points']:g} 分（{', '.join(d['records']) or '全年无相关记录'}）"
            for _iid, it in in_order(auto, cat) for d in it["deductions"]]


def auto_changes(auto: dict, cat: dict) -> list[str]:
    """Where the automatic figures recomputed at publication differ from those at the start
    (kept under ``at_start`` when they differ), in words: each item whose points changed
    (with the reasons then and now) and each veto that appeared or went away."""
    before = auto.get("at_start")
    if not before:
        return []
    names = {it["id"]: it["item"] for it in cat["items"]}

    def reasons(entry: dict | None) -> str:
        found = [d["reason"] for d in (entry or {}).get("deductions", [])]
        return "，".join(found) if found else "无扣分"

    lines = []
    for iid, latest in in_order(auto, cat):
        then = before["items"].get(iid)
        if then is not None and then["points"] == latest["points"]:
            continue
        was = f"{then['points']:g} 分" if then is not None else "未计分"
        lines.append(f"{names.get(iid, iid)}：启动时 {was}，通报时 {latest['points']:g} 分"
                     f"（启动时：{reasons(then)}；通报时：{reasons(latest)}）")
    then_v = {v["id"]: v for v in before.get("vetoes", [])}
    now_v = {v["id"]: v for v in auto.get("vetoes", [])}
    for vid, v in now_v.items():
        if vid not in then_v:
            lines.append(f"一票否决（{v['item']}）：启动后出现（{', '.join(v['records'])}）")
    for vid, v in then_v.items():
        if vid not in now_v:
            lines.append(f"一票否决（{v['item']}）：启动时适用，通报时已不适用")
    return lines

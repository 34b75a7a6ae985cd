"""``dutyflow`` — the command line of SPEC §5.

A bad input prints one clear line (what field, what was wrong, what is allowed) and
exits 2; nothing is written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from models.errors import DomainError

DEMO_ORG = Path(__file__).resolve().parent / "demo_org.yaml"


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _read_data_file(path: str) -> tuple[dict, str]:
    import yaml

    p = Path(path)
    if not p.exists():
        raise DomainError(f"文件不存在：{path}", "FILE")
    raw = p.read_text(encoding="utf-8")
    try:
        data = json.loads(raw) if p.suffix == ".json" else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise DomainError(f"无法解析 {path}：{exc}", "FILE") from None
    if not isinstance(data, dict):
        raise DomainError(f"{path} 顶层应为映射（units/persons/posts 等）", "FILE")
    return data, raw


# ---------------------------------------------------------------- commands


def cmd_init(args) -> int:
    from models.db import database_url
    from models.schema import init_schema

    init_schema()
    print(f"数据库已就绪：{_safe_url(database_url())}")
    if args.demo:
        from models.db import session
        from models.org import load_org

        data, raw = _read_data_file(str(DEMO_ORG))
        with session() as s:
            counts = load_org(s, data, raw)
        print(f"示例组织已载入：{counts}")
    return 0


def _refresh_running_forms() -> None:
    """A running ``dutyflow serve`` gets the new units and persons in its forms' pickers."""
    from deployments.serve import running_api_url

    api = running_api_url()
    if api:
        from deployments.deployments import refresh_forms

        print(f"表单选项已更新（{refresh_forms(api)} 个部署，{api}）", file=sys.stderr)


def cmd_org(args) -> int:
    from models.db import session
    from models.org import dump_org, load_org

    if args.org_cmd == "load":
        data, raw = _read_data_file(args.file)
        with session() as s:
            counts = load_org(s, data, raw)
        print(json.dumps(counts, ensure_ascii=False))
        _refresh_running_forms()
        return 0
    with session() as s:
        org = dump_org(s)
    if args.json:
        _print_json(org)
    else:
        for u in org["units"]:
            print(f"{u['code']:8} {u['name']}（{u['kind']}） 上级={u['parent'] or '-'} 主管={u['supervisor'] or '-'}")
            for p in org["posts"]:
                if p["unit"] == u["code"] and not p["valid_to"]:
                    print(f"    {p['role']:14} {p['person']}  自 {p['valid_from']}")
    return 0


def cmd_calendar(args) -> int:
    from models.calendar import load_calendar_file, year_rows
    from models.db import session

    if args.cal_cmd == "load":
        from tasks.reconfirm import reconfirm_deadlines

        with session() as s:
            result = load_calendar_file(s, args.file)
        # deadlines computed for that year with a guessed calendar; 期限调整通知 where they moved
        result["deadlines"] = reconfirm_deadlines(result["year"], result["source"])
        print(json.dumps(result, ensure_ascii=False, default=str))
        return 0
    with session() as s:
        rows = year_rows(s, args.year)
    if not rows:
        print(f"{args.year} 年无工作日历数据：该年的期限按周一至周五计算并标注“日历未确认”")
        return 0
    work = sum(1 for r in rows if r.workday)
    print(f"{args.year} 年：工作日 {work} 天，休息日 {len(rows) - work} 天")
    for r in rows:
        weekend = r.day.weekday() >= 5
        if r.workday == weekend or r.note:
            print(f"  {r.day.isoformat()}  {'上班' if r.workday else '休息'}  {r.note}")
    return 0


def _use_prefect_api() -> str:
    """Point Prefect at PREFECT_API_URL, else at a running `dutyflow serve`; say which."""
    if os.environ.get("PREFECT_API_URL"):
        return f"Prefect API：{os.environ['PREFECT_API_URL']}（PREFECT_API_URL）"
    from deployments.serve import running_api_url

    url = running_api_url()
    if url:
        os.environ["PREFECT_API_URL"] = url
        return f"Prefect API：{url}（正在运行的 dutyflow serve）"
    return "Prefect API：临时内嵌服务器（未设置 PREFECT_API_URL，也没有运行中的 dutyflow serve）"


def cmd_run(args) -> int:
    try:
        params = json.loads(args.params) if args.params else {}
    except ValueError as exc:
        raise DomainError(f"不是有效的 JSON：{exc}", "--params") from None
    from deployments.settings import apply_offline_settings

    apply_offline_settings()
    if not args.verbose:  # the error line or the JSON result is the output; logs are in the UI
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    api = _use_prefect_api()
    from flows.registry import flows, request_model
    from models.requests import validate_request

    registry = flows()
    if args.flow not in registry:
        raise DomainError(f"未知流程 '{args.flow}'；可用：{', '.join(registry)}", "FLOW")
    fl = registry[args.flow]
    request = validate_request(request_model(fl), params)
    result = fl(request=request)
    print(api, file=sys.stderr)
    _print_json(result)
    return 0


def cmd_show(args) -> int:
    from models.case_view import case_json, load_case
    from models.db import session

    with session() as s:
        data = case_json(s, load_case(s, args.case_id))
    if args.json:
        _print_json(data)
    else:
        print(f"{data['id']} [{data['kind']}] {data['state']} {data['unit']} {data['title']}")
        for o in data["obligations"]:
            print(f"  义务 {o['kind']:16} 时限 {o['due_at']}  {o['status']}  阶梯 {o['step']}")
        for w in data["warnings"]:
            print(f"  ⚠ {w}")
    return 0


def _check_filters(s, args) -> None:
    """Refuse a filter that can match nothing because it names no kind, state or unit."""
    from models.org import get_unit
    from models.processes import machines as process_machines

    machines = process_machines()
    if getattr(args, "kind", None) and args.kind not in machines:
        raise DomainError(f"未知案件类别 '{args.kind}'（允许：{', '.join(machines)}）", "--kind")
    if getattr(args, "state", None):
        kinds = [args.kind] if args.kind else list(machines)
        states = {st: label for k in kinds for st, label in machines[k].states.items()}
        if args.state not in states:
            allowed = "、".join(f"{st}（{label}）" for st, label in states.items())
            raise DomainError(f"未知状态 '{args.state}'（允许：{allowed}）", "--state")
    if args.unit:
        get_unit(s, args.unit, "--unit")


def cmd_cases(args) -> int:
    from sqlmodel import select

    from models.case import Case
    from models.case_view import case_json
    from models.db import session
    from models.processes import PROCESS_KINDS

    with session() as s:
        _check_filters(s, args)
        q = select(Case)
        # 工作记录 (record-activity) are listed only when asked for: cases are the four processes
        q = q.where(Case.kind == args.kind) if args.kind else q.where(Case.kind.in_(PROCESS_KINDS))
        if args.state:
            q = q.where(Case.state == args.state)
        if args.unit:
            q = q.where(Case.unit == args.unit)
        rows = [case_json(s, c, full=False) for c in s.exec(q.order_by(Case.created_at, Case.id)).all()]
    if args.json:
        _print_json(rows)
    else:
        for c in rows:
            print(f"{c['id']:18} {c['kind']:14} {c['state']:12} {c['unit']:6} {c['title']}")
    return 0


def cmd_ledger(args) -> int:
    from models.db import session
    from tasks.ledger import ledger_rows

    with session() as s:
        _check_filters(s, args)
        rows = ledger_rows(s, unit=args.unit, overdue=args.overdue)
    if args.json:
        _print_json(rows)
    else:
        for r in rows:
            who = "、".join(p["name"] for p in r["responsible"])
            flag = " 日历未确认" if r["calendar_unconfirmed"] else ""
            print(f"{r['due_text']}  {r['unit']:6} {r['case']:18} {r['obligation']:16} 逾期 {r['overdue_by'] or '-':10} "
                  f"阶梯 {r['step']} {r['step_label']}  {who}{flag}")
    return 0


def cmd_sweep(args) -> int:
    """What `sweep-deadlines` does. With a Prefect API (PREFECT_API_URL or a running
    `dutyflow serve`) it runs that flow, so the 督办台账 artifacts are refreshed and the run
    shows in the UI; without one it sweeps in-process (no UI to refresh) and says so."""
    from deployments.settings import apply_offline_settings

    apply_offline_settings()
    api = _use_prefect_api()
    if os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        from flows.watchdog import sweep_deadlines

        result = sweep_deadlines()
        print(f"{api}；督办台账已刷新（overdue-ledger）", file=sys.stderr)
    else:
        from models.db import session
        from tasks.ledger import overdue_counts
        from tasks.notify import deliver
        from tasks.sweep import sweep

        result = sweep()
        result["delivery"] = deliver()
        with session() as s:
            result["overdue"] = sum(overdue_counts(s).values())
        print("未连接 Prefect（未设置 PREFECT_API_URL，也没有运行中的 dutyflow serve）：已在本进程巡检，"
              "督办台账 artifact 由下一次定时巡检刷新", file=sys.stderr)
    _print_json(result)
    return 0


def cmd_audit(args) -> int:
    from models.audit import verify
    from models.db import session

    with session() as s:
        ok, message = verify(s)
    print(message)
    return 0 if ok else 1


def cmd_notice(args) -> int:
    from models.db import session
    from models.notice import Notice
    from tasks.documents import render

    with session() as s:
        notice = s.get(Notice, args.notice_id)
        if notice is None:
            raise DomainError(f"未找到公文 '{args.notice_id}'", "NOTICE_ID")
    content = render(notice, args.format)
    Path(args.out).write_bytes(content)
    print(f"{notice.id} {notice.doc_number or ''} → {args.out} ({args.format}, {len(content):,} bytes)")
    return 0


def cmd_serve(args) -> int:
    from deployments.serve import serve

    return serve(args.host, args.port)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ---------------------------------------------------------------- parser


def cmd_criteria(args) -> int:
    """考核指标: load a checked catalogue for one year, or show the one a year will use."""
    from models.assessment import catalogue_for, load_year_catalogue
    from models.db import session

    with session() as s:
        if args.crit_cmd == "load":
            _print_json(load_year_catalogue(s, args.year, args.file))
            return 0
        cat, source = catalogue_for(s, args.year)
    if args.json:
        _print_json({"year": args.year, "source": source, **cat})
        return 0
    print(f"{args.year} 年度考核指标：{source}；总分 {cat.get('total', 100):g}")
    for it in cat["items"]:
        how = f"自动（{it['rule']}）" if it["method"] == "auto" else "人工"
        print(f"  {it['id']:24} {it['max_points']:>5g} 分  {how:28} {it['category']}：{it['item']}")
    for kind, label in (("bonus", "加分"), ("veto", "一票否决")):
        for it in cat.get(kind) or []:
            print(f"  {label}：{it['id']} {it['item']}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dutyflow", description="网络安全工作责任制 — dutyflow")
    sub = p.add_subparsers(dest="cmd", required=True)

    sp = sub.add_parser("init", help="create or upgrade the schema")
    sp.add_argument("--demo", action="store_true", help="load the demo org")
    sp.set_defaults(func=cmd_init)

    sp = sub.add_parser("org", help="organisation registry")
    osub = sp.add_subparsers(dest="org_cmd", required=True)
    o = osub.add_parser("load")
    o.add_argument("file")
    o = osub.add_parser("show")
    o.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_org)

    sp = sub.add_parser("calendar", help="working-day calendar")
    csub = sp.add_subparsers(dest="cal_cmd", required=True)
    c = csub.add_parser("load")
    c.add_argument("file")
    c = csub.add_parser("show")
    c.add_argument("year", type=int)
    sp.set_defaults(func=cmd_calendar)

    sp = sub.add_parser("criteria", help="annual assessment criteria catalogue, per year")
    ksub = sp.add_subparsers(dest="crit_cmd", required=True)
    k = ksub.add_parser("load")
    k.add_argument("file")
    k.add_argument("--year", type=int, required=True)
    k = ksub.add_parser("show")
    k.add_argument("--year", type=int, required=True)
    k.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_criteria)

    sp = sub.add_parser("run", help="run one flow in-process")
    sp.add_argument("flow")
    sp.add_argument("--params", default="{}")
    sp.add_argument("--verbose", "-v", action="store_true", help="show Prefect's log lines")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("show", help="one case")
    sp.add_argument("case_id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_show)

    sp = sub.add_parser("cases", help="list cases")
    sp.add_argument("--kind")
    sp.add_argument("--state")
    sp.add_argument("--unit")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_cases)

    sp = sub.add_parser("ledger", help="open obligations, soonest first")
    sp.add_argument("--unit")
    sp.add_argument("--overdue", action="store_true")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_ledger)

    sp = sub.add_parser("sweep", help="one deadline sweep now")
    sp.set_defaults(func=cmd_sweep)

    sp = sub.add_parser("audit", help="audit log")
    asub = sp.add_subparsers(dest="audit_cmd", required=True)
    asub.add_parser("verify")
    sp.set_defaults(func=cmd_audit)

    sp = sub.add_parser("notice", help="official notices")
    nsub = sp.add_subparsers(dest="notice_cmd", required=True)
    n = nsub.add_parser("render")
    n.add_argument("notice_id")
    n.add_argument("--format", default="html", help="html | text | pdf | docx")
    n.add_argument("--out", required=True)
    sp.set_defaults(func=cmd_notice)

    sp = sub.add_parser("serve", help="Prefect server + every deployment")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=4200)
    sp.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except DomainError as exc:
        print(f"错误：{exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

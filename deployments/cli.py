"""``dutyflow`` — the command line of SPEC §5.

A bad input prints one clear line (what field, what was wrong, what is allowed) and
exits 2; nothing is written.
"""
from __future__ import annotations

# Imports inside functions: each command loads only what it needs (Prefect alone takes
# 1.5 s to import; `dutyflow account list` or `dutyflow show` should not wait for it).
import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from models.errors import DomainError


def _plain(obj: Any) -> Any:
    """``obj`` as strict JSON values: a time as ISO-8601 in Beijing time, a date as
    ``YYYY-MM-DD``, a Decimal as a number, an enum by its id, a NaN or infinite number (not
    JSON) as null, anything else unknown as its text."""
    import math
    from datetime import date, datetime
    from decimal import Decimal
    from enum import Enum

    from models.clock import iso

    if obj is None or isinstance(obj, (bool, str, int)) and not isinstance(obj, Enum):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k if type(k) is str else str(_plain(k)): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_plain(v) for v in obj]
    if isinstance(obj, datetime):
        return iso(obj)
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return None if not obj.is_finite() else int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, Enum):
        from models.labels import LabeledEnum

        return obj.name if isinstance(obj, LabeledEnum) else _plain(obj.value)
    return str(obj)


def _json_text(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON (no NaN or Infinity, only JSON types): every JSON the CLI prints."""
    return json.dumps(_plain(obj), ensure_ascii=False, indent=indent, allow_nan=False)


def _print_json(obj: Any) -> None:
    print(_json_text(obj))


def _refuse_constant(name: str):
    """json's ``parse_constant``: NaN and ±Infinity are not JSON; kept as a marker that the
    request check refuses, naming the field."""
    from models.requests import NonJSONNumber

    return NonJSONNumber(name)


def _read_params(text: str) -> Any:
    """``--params``: at most the policy's ``requests.max_kb``, strict JSON."""
    from models.requests import max_request_bytes, too_large

    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_request_bytes():
        raise DomainError(too_large(size, "--params 共"), "--params")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise DomainError("不是有效的 JSON：嵌套过深", "--params") from None
    except ValueError as exc:
        raise DomainError(f"不是有效的 JSON：{exc}", "--params") from None


def _read_data_file(path: str) -> tuple[dict, str]:
    import yaml

    p = Path(path)
    if not p.exists():
        raise DomainError(f"文件不存在：{path}", "FILE")
    raw = p.read_text(encoding="utf-8")
    try:
        data = json.loads(raw, parse_constant=_refuse_constant) if p.suffix == ".json" else yaml.safe_load(raw)
    except RecursionError:
        raise DomainError(f"无法解析 {path}：嵌套过深", "FILE") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise DomainError(f"无法解析 {path}：{exc}", "FILE") from None
    if not isinstance(data, dict):
        raise DomainError(f"{path} 顶层应为映射（units/persons/posts 等）", "FILE")
    from models.requests import screen_file

    screen_file(data, p.name)  # NUL (PostgreSQL refuses it), control characters, NaN/Infinity
    return data, raw


# ---------------------------------------------------------------- commands


def cmd_init(args) -> int:
    from models.db import database_url
    from models.schema import init_schema

    init_schema()
    print(f"数据库已就绪：{_safe_url(database_url())}")
    if args.demo:
        from deployments.serve import DEMO_ORG
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
        from models.account import service_auth_string

        if service_auth_string():  # behind the login gateway: the service credential of this home
            os.environ.setdefault("PREFECT_API_AUTH_STRING", service_auth_string())

        print(f"表单选项已更新（{refresh_forms(api)} 个部署，{api}）", file=sys.stderr)


def cmd_org(args) -> int:
    from models.db import session
    from models.org import dump_org, load_org

    if args.org_cmd == "load":
        data, raw = _read_data_file(args.file)
        with session() as s:
            counts = load_org(s, data, raw)
        print(_json_text(counts, indent=None))
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
        from models.reconfirm import reconfirm_deadlines

        with session() as s:
            result = load_calendar_file(s, args.file)
        # deadlines computed for that year with a guessed calendar; 期限调整通知 where they moved
        result["deadlines"] = reconfirm_deadlines(result["year"], result["source"])
        print(_json_text(result, indent=None))
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
    """Point Prefect at PREFECT_API_URL, else at a running `dutyflow serve`; say which. The
    CLI logs in with the service credential of this DUTYFLOW_HOME (it acts as the person
    the command names only on the server's own machine)."""
    from models.account import service_auth_string

    if os.environ.get("PREFECT_API_URL"):
        if service_auth_string():
            os.environ.setdefault("PREFECT_API_AUTH_STRING", service_auth_string())
        return f"Prefect API：{os.environ['PREFECT_API_URL']}（PREFECT_API_URL）"
    from deployments.serve import running_api_url

    url = running_api_url()
    if url:
        os.environ["PREFECT_API_URL"] = url
        if service_auth_string():
            os.environ.setdefault("PREFECT_API_AUTH_STRING", service_auth_string())
        return f"Prefect API：{url}（正在运行的 dutyflow serve）"
    return "Prefect API：临时内嵌服务器（未设置 PREFECT_API_URL，也没有运行中的 dutyflow serve）"


def cmd_run(args) -> int:
    params = _read_params(args.params) if args.params else {}
    from deployments.settings import apply_offline_settings

    apply_offline_settings()
    if not args.verbose:  # the error line or the JSON result is the output; logs are in the UI
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from models.processes import requests
    from models.requests import validate_request

    models = requests()  # the request is checked before Prefect loads: a refusal answers at once
    if args.flow not in models:
        raise DomainError(f"未知流程 '{args.flow}'；可用：{', '.join(models)}", "FLOW")
    request = validate_request(models[args.flow], params)
    api = _use_prefect_api()
    from flows.registry import flows

    fl = flows()[args.flow]
    result = fl(request=request)
    print(api, file=sys.stderr)
    _print_json(result)
    return 0


def cmd_account(args) -> int:
    """``account add PERSON --password-stdin`` · ``account disable PERSON`` · ``account list [--json]``."""
    from models import account
    from models.db import session

    if args.account_cmd == "add":
        if not args.password_stdin:
            raise DomainError("口令只从标准输入读取（--password-stdin），不出现在命令行和历史记录中", "--password-stdin")
        password = sys.stdin.readline().rstrip("\r\n")
        with session() as s:
            acc = account.set_password(s, args.person, password)
            existed = acc.created_at != acc.changed_at
        print(f"已{'更新' if existed else '创建'}账号 {args.person}（登录名为人员编号）")
        return 0
    if args.account_cmd == "disable":
        with session() as s:
            account.disable(s, args.person)
        print(f"已停用账号 {args.person}")
        return 0
    with session() as s:
        rows = account.listing(s)
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        state = "停用" if r["disabled"] else ("锁定" if r["locked_until"] else ("不在岗" if not r["has_post"] else "有效"))
        print(f"{r['person']:20} {r['name']:6} {state}")
    if not rows:
        print("尚无账号：dutyflow account add 人员编号 --password-stdin")
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
        from flows.watchdog import SweepRequest
        from tasks.ledger import count_overdue
        from tasks.notify import retry_notifications
        from tasks.sweep import act_on_due

        # the flow's own steps, without Prefect: the 督办台账 artifacts and the recovery of
        # interrupted runs need a Prefect API
        result = act_on_due.fn(SweepRequest().batch_size)
        result["delivery"] = retry_notifications.fn()
        result["overdue"] = count_overdue()
        print("未连接 Prefect（未设置 PREFECT_API_URL，也没有运行中的 dutyflow serve）：已在本进程巡检，"
              "督办台账 artifact 由下一次定时巡检刷新", file=sys.stderr)
    _print_json(result)
    return 0


def cmd_audit(args) -> int:
    """``audit verify``: exit 0 when the chain and every anchor check out, else 1 with the
    first problem. ``audit anchor``: sign the chain's head into an anchor file (after a full
    verify: a broken chain is not anchored)."""
    from models.audit import AnchorRefused, verify, write_anchor
    from models.db import session

    with session() as s:
        ok, message = verify(s, getattr(args, "anchor", None) or ())
        if args.audit_cmd == "verify":
            print(message)
            return 0 if ok else 1
        if not ok:
            print(f"审计链未通过核验，未生成锚点：{message}")
            return 1
        try:
            written = write_anchor(s, args.out)
        except AnchorRefused as exc:
            print(f"未生成锚点：{exc}")
            return 1
    if written is None:
        print("审计链还没有事件，未生成锚点")
        return 0
    path, anchor = written
    print(f"外部锚点已写入 {path}（事件 {anchor['last_id']}，共 {anchor['events']} 条事件，{anchor['made_at']}）。"
          f"请将此文件另存到本机以外（打印、移动介质或报送纪工委），"
          f"核验时用 dutyflow audit verify --anchor 文件；签名密钥勿与数据库放在一起备份")
    return 0


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


def cmd_outbox(args) -> int:
    """``outbox``: the notifications whose outcome is unknown (结果不明: the request left, no
    answer came), oldest first; ``outbox settle ID --delivered|--resend --actor P`` records
    what the recipient said (an audit event on the case)."""
    from models.clock import beijing, iso
    from models.masking import mask
    from models.outbox import settle, unconfirmed

    if args.outbox_cmd == "settle":
        row = settle(args.notification_id, delivered=args.delivered, actor=args.actor)
        print(f"通知 #{row.id}（{row.notice_id} → {row.person}）：" + ("已记为送达" if args.delivered else "将在下次投递时重新发送"))
        return 0
    rows = unconfirmed(args.case)
    if args.json:
        _print_json([{"id": r.id, "case": r.case_id, "notice": r.notice_id, "person": r.person,
                      "channel": mask(r.channel), "left_at": iso(r.send_started_at), "error": r.last_error}
                     for r in rows])
        return 0
    for r in rows:
        left = beijing(r.send_started_at) if r.send_started_at else "（时间不明）"
        print(f"#{r.id} {r.case_id} {r.notice_id} → {r.person} {mask(r.channel)} 发出于{left}：{r.last_error}")
    print(f"结果不明的通知 {len(rows)} 条" + ("：向收件人核实后用 dutyflow outbox settle ID --delivered 或 --resend 处理"
                                        if rows else ""))
    return 0


def cmd_doctor(args) -> int:
    from deployments.doctor import main as doctor

    return doctor(as_json=args.json)


def cmd_serve(args) -> int:
    from deployments.serve import serve

    return serve(args.host, args.port)


def cmd_worker(args) -> int:
    from deployments.worker import start

    start(args.pool, name=args.name, limit=args.limit)
    return 0


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

    sp = sub.add_parser("account", help="login accounts of registry persons (the served UI and API require login)")
    acsub = sp.add_subparsers(dest="account_cmd", required=True)
    a = acsub.add_parser("add", help="create a person's account, or set a new password (read from stdin)")
    a.add_argument("person")
    a.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    a = acsub.add_parser("disable", help="disable a person's account (login refused at once)")
    a.add_argument("person")
    a = acsub.add_parser("list", help="accounts (never their password hashes)")
    a.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_account)

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
    a = asub.add_parser("verify", help="check the hash chain and every external anchor")
    a.add_argument("--anchor", action="append", metavar="FILE",
                   help="an anchor file to check (repeatable), besides those in DUTYFLOW_HOME/anchors/")
    a = asub.add_parser("anchor", help="sign the chain's head into an external anchor file")
    a.add_argument("--out", metavar="FILE", help="default: DUTYFLOW_HOME/anchors/audit-anchor-<last_id>.json")
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

    sp = sub.add_parser("worker", help="a process worker of a work pool whose runs start from a preloaded process")
    sp.add_argument("--pool", required=True, help="the work pool (type process), e.g. dutyflow")
    sp.add_argument("--name", help="worker name (default: Prefect's)")
    sp.add_argument("--limit", type=int, help="at most this many runs at once")
    sp.set_defaults(func=cmd_worker)

    sp = sub.add_parser("outbox", help="notifications whose outcome is unknown (结果不明), and settling them")
    sp.add_argument("--case", help="only this case")
    sp.add_argument("--json", action="store_true")
    obsub = sp.add_subparsers(dest="outbox_cmd")
    o = obsub.add_parser("settle", help="record what the recipient said: --delivered, or --resend")
    o.add_argument("notification_id", type=int)
    how = o.add_mutually_exclusive_group(required=True)
    how.add_argument("--delivered", action="store_true", help="the recipient has it: record it sent")
    how.add_argument("--resend", action="store_true", help="the recipient does not have it: send it again")
    o.add_argument("--actor", required=True, help="person id of whoever checked with the recipient")
    sp.set_defaults(func=cmd_outbox)

    sp = sub.add_parser("doctor", help="is this installation ready? database, migrations, Prefect, calendar, channels, fonts")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_doctor)
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

"""``dutyflow doctor``: is this installation ready to run the committee's work?

One line per check, ✓ (ok), ⚠ (works, but someone should act) or ✗ (broken); exit 0 when
nothing is broken, else 1. ``--json`` prints the same as a list. The checks:

- 数据库: the domain database answers (its address shown without password);
- 迁移: its schema is at the newest migration (``dutyflow init`` upgrades it);
- Prefect API: the server this machine's runs would report to answers, and no operator action
  was left Crashed after its automatic re-runs (``tasks/recovery.py``);
- 登录: the API asks who is at the keyboard — ⚠ when it answers an anonymous request, when
  ``DUTYFLOW_LOGIN=off`` turns the gateway off, and when it listens beyond this machine that way
  (anyone who reaches the port could act in anyone's name);
- 工作日历: this year's working-day calendar is complete (✗ otherwise) and next year's is
  loaded (⚠ until the State Council's notice is loaded with ``dutyflow calendar load``);
- 通知渠道: every registered channel is an address Apprise understands or a tag of the channel
  file; notifications whose outcome is unknown (结果不明) or that keep failing are counted;
- 字体: PDF notices can be made (WeasyPrint, its libraries, Chinese fonts).
"""
from __future__ import annotations

# Imports inside functions: each check imports what it checks, so a missing or broken
# library is that check's ✗, not a crash of the doctor.

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from typing import Callable

OK, WARN, FAIL = "ok", "warn", "fail"
MARK = {OK: "✓", WARN: "⚠", FAIL: "✗"}
#: A notification that has failed this many times is pointed out (it is still retried).
STUCK_ATTEMPTS = 5


@dataclass
class Finding:
    check: str
    status: str
    detail: str


def _database() -> Finding:
    import sqlalchemy as sa

    from models.db import database_url, engine

    url = sa.engine.make_url(database_url()).render_as_string(hide_password=True)
    with engine().connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        name = conn.dialect.name
    return Finding("数据库", OK, f"{name} 可连接（{url}）")


def _migrations() -> Finding:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from models.db import engine
    from models.schema import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine().connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return Finding("迁移", OK, f"数据库结构为最新版本（{head}）")
    return Finding("迁移", FAIL, f"数据库结构版本 {current or '无'}，最新为 {head}：请运行 dutyflow init")


def _prefect_api() -> Finding:
    from deployments.serve import _healthy, running_api_url

    url = os.environ.get("PREFECT_API_URL") or running_api_url()
    if not url:
        return Finding("Prefect API", WARN, "未设置 PREFECT_API_URL，也没有运行中的 dutyflow serve：流程只能在本进程运行")
    if not _healthy(url, timeout=5):
        return Finding("Prefect API", FAIL, f"{url} 无应答：请检查 Prefect 服务器")
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tasks.recovery import given_up_runs

    with temporary_settings({PREFECT_API_URL: url}):
        stuck = given_up_runs()
    if stuck:
        names = "、".join(r.name for r in stuck[:5]) + ("等" if len(stuck) > 5 else "")
        return Finding("Prefect API", WARN, f"{url} 应答正常；{len(stuck)} 个业务办理运行中断后多次重新调度仍未完成"
                                            f"（{names}）：请核实后在 Prefect 中重试或重新提交")
    return Finding("Prefect API", OK, f"{url} 应答正常")


def _anonymous_status(api_url: str, timeout: float = 5) -> int:
    """The HTTP status a request without credentials gets from ``api_url`` (a read query)."""
    req = urllib.request.Request(f"{api_url}/deployments/filter", data=b"{}",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _login() -> Finding:
    from deployments.settings import LOOPBACK, login_required
    from deployments.serve import _healthy, running_api_url

    url = os.environ.get("PREFECT_API_URL") or running_api_url()
    off = "" if login_required() else "DUTYFLOW_LOGIN=off：本机启动的服务器不要求登录；"
    if not url or not _healthy(url, timeout=5):
        status = WARN if off else OK
        return Finding("登录", status, off + ("未找到应答的 Prefect API，未能检查匿名访问" if url or off
                                            else "未找到应答的 Prefect API；本机启动的服务器要求登录"))
    status = _anonymous_status(url)
    if status != 200:
        return Finding("登录", WARN if off else OK, f"{off}{url} 拒绝匿名请求（{status}），须登录后办理")
    host = urllib.parse.urlsplit(url).hostname or ""
    beyond = host not in LOOPBACK
    return Finding("登录", WARN, f"{off}{url} 无需登录即可访问" + (
        "，且不只监听本机：任何能访问该端口的人都能以任何人的名义办理，请去掉 DUTYFLOW_LOGIN=off 后重启服务器"
        if beyond else "：本机任何用户都能以任何人的名义办理，请去掉 DUTYFLOW_LOGIN=off 后重启服务器"))


def _calendar() -> Finding:
    from models.calendar import known_years
    from models.clock import today_local
    from models.db import session

    year = today_local().year
    with session() as s:
        years = known_years(s)
    if year not in years:
        return Finding("工作日历", FAIL, f"{year} 年的工作日历不完整：工作日时限无法确认，请用 dutyflow calendar load 载入")
    if year + 1 not in years:
        return Finding("工作日历", WARN, f"{year} 年已载入；{year + 1} 年尚未载入（国务院办公厅公布放假安排后用 "
                                      f"dutyflow calendar load 载入，在此之前跨年时限标记为“日历未确认”）")
    return Finding("工作日历", OK, f"{year}、{year + 1} 年均已载入")


def _channels() -> Finding:
    from sqlmodel import func, select

    from models.db import session
    from models.notice import Notification, NotificationStatus
    from models.org import Person
    from models.masking import mask
    from models.outbox import unconfirmed_count
    from tasks.notify import CONFIG_ENV, _asset, _ChannelError, _targets

    problems: list[str] = []
    asset, cache = _asset(), {}
    with session() as s:
        persons = s.exec(select(Person).order_by(Person.id)).all()
        stuck = s.exec(select(func.count()).where(
            Notification.status == NotificationStatus.failed, Notification.attempts >= STUCK_ATTEMPTS)).one()
    unconfirmed = unconfirmed_count()
    count = 0
    for person in persons:
        for channel in person.channels or []:
            count += 1
            try:
                _targets(channel, asset, cache)
            except _ChannelError as exc:
                problems.append(f"{person.name}（{person.id}）：{exc}")
            except Exception as exc:  # noqa: BLE001 - a plugin that cannot even load the address
                problems.append(f"{person.name}（{person.id}）：{mask(channel)}：{type(exc).__name__}")
    notes = []
    if unconfirmed:
        notes.append(f"{unconfirmed} 条通知结果不明，须核实后处理（dutyflow outbox）")
    if stuck:
        notes.append(f"{stuck} 条通知已连续失败 {STUCK_ATTEMPTS} 次以上（仍在重试）")
    if problems:
        return Finding("通知渠道", FAIL, f"{len(problems)} 个地址无法使用：" + "；".join(problems[:5])
                       + ("……" if len(problems) > 5 else "") + (f"。另：{'；'.join(notes)}" if notes else ""))
    config = f"，渠道文件 {os.environ[CONFIG_ENV]}" if os.environ.get(CONFIG_ENV) else ""
    detail = f"{len(persons)} 人的 {count} 个地址均可识别{config}"
    return Finding("通知渠道", WARN if notes else OK, detail + (f"；{'；'.join(notes)}" if notes else ""))


def _fonts() -> Finding:
    from models.errors import DomainError
    from tasks.documents import _cjk_fonts, _weasyprint

    try:
        _weasyprint()
    except DomainError as exc:
        return Finding("字体", FAIL, exc.message)
    families = _cjk_fonts() or ()
    shown = "、".join(families[:4]) + ("等" if len(families) > 4 else "")
    return Finding("字体", OK, f"可生成 PDF 公文；中文字体：{shown or '（未能列出）'}")


#: (name, check, needs the domain database)
CHECKS: list[tuple[str, Callable[[], Finding], bool]] = [
    ("数据库", _database, False), ("迁移", _migrations, True), ("Prefect API", _prefect_api, False),
    ("登录", _login, False), ("工作日历", _calendar, True), ("通知渠道", _channels, True), ("字体", _fonts, False),
]


def run_checks() -> list[Finding]:
    """Every check, in order; a check that raises is reported as broken, not as a traceback."""
    from models.masking import mask_text

    findings: list[Finding] = []
    db_ok = True
    for name, check, needs_db in CHECKS:
        if needs_db and not db_ok:
            findings.append(Finding(name, FAIL, "数据库无法连接，未检查"))
            continue
        try:
            finding = check()
        except Exception as exc:  # noqa: BLE001 - the doctor reports, it does not crash
            first = str(exc).splitlines()[0] if str(exc) else ""
            finding = Finding(name, FAIL, mask_text(f"{type(exc).__name__}: {first}"))
        db_ok = db_ok and not (check is _database and finding.status == FAIL)
        findings.append(finding)
    return findings


def main(as_json: bool = False) -> int:
    findings = run_checks()
    if as_json:
        print(json.dumps([asdict(f) for f in findings], ensure_ascii=False, indent=2))
    else:
        for f in findings:
            print(f"{MARK[f.status]} {f.check}：{f.detail}")
    return 1 if any(f.status == FAIL for f in findings) else 0

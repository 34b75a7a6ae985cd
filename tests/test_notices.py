"""Official notices (SPEC §4): 发文字号, gapless numbering, the sandbox and the layouts.

``tasks.notify`` is replaced by a recording stub, so these tests need no persons or
channels and do not depend on the notify module being finished.
"""
from __future__ import annotations

import re
import threading
from datetime import datetime, timezone

import pytest
from jinja2 import UndefinedError
from jinja2.exceptions import SecurityError
from sqlalchemy import func
from sqlmodel import select

from models.case import Case
from models.db import session
from models.errors import DomainError
from models.notice import Notice
from models.org import OrgUnit
from models import notices
from models.notices import (
    HTML_ENV,
    KIND_INFO,
    LAYOUT_FIELDS,
    TEXT_ENV,
    Letterhead,
    build_letterhead,
    format_doc_number,
    incident_urgency,
    issue_notice,
    render,
    required_variables,
)

PREFIX = "X街网安"
CASE_ID = "INC-2026-0001"


@pytest.fixture
def queued(monkeypatch):
    """Stub the outbox's queue (``models.outbox.queue_notifications``, as issue_notice calls
    it); records the notices."""
    calls: list[str] = []
    lock = threading.Lock()

    def queue_notifications(s, notice, fresh=False):
        with lock:
            calls.append(notice.id)
        return []

    monkeypatch.setattr(notices, "queue_notifications", queue_notifications)
    return calls


@pytest.fixture
def rows(db, queued):
    """A street unit with a 发文机关代字 and one incident case."""
    t = datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)
    with session() as s:
        s.add(OrgUnit(code="JD01", name="X街道党工委", kind="street", doc_prefix=PREFIX))
        s.flush()
        s.add(Case(id=CASE_ID, kind="incident", state="reported", unit="JD01",
                   title="门户网站被篡改", created_at=t, updated_at=t))
    return queued


#: The documented variables of the 事件报告 (its template header).
INCIDENT_REPORT_VARIABLES = {
    "unit_name", "category_label", "level_label", "title", "description", "discovered_at", "occurred_at",
    "reporting_path", "measures", "impact", "warnings", "deadlines", "contacts",
}


def incident_context(**over) -> dict:
    ctx = dict(
        unit_name="X社区", category_label="门户网站/平台被攻击篡改",
        level_label="重大", title="社区门户网站首页被篡改",
        description="首页被植入 <script>alert('x')</script> 与赌博链接。\n已断网保护现场。",
        discovered_at="2026年11月28日9时", occurred_at="",
        reporting_path="按规定应于发现后4小时内，即2026年11月28日（星期六）13时前，报告省级网信部门",
        measures="已断开网站服务器网络连接\n已保存访问日志和被篡改页面",
        impact=[["首页篡改持续时间", "3小时"]], warnings=["按影响数字建议等级不低于较大"],
        deadlines=[["对外报告", "2026年11月28日（星期六）13时前", "尚未到期"]],
        contacts=["张三"],
    )
    ctx.update(over)
    return ctx


def reminder_context(**over) -> dict:
    ctx = dict(unit_name="X社区", obligation_label="对外报告",
               due_at="2026年11月28日（星期六）13时", overdue_by="2小时", remaining="",
               requirement="立即向省网信办报告事件情况，并将报告回执报街道网信办。", count=2,
               explain="请书面说明未按时报告的原因", warning="迟报、漏报、谎报、瞒报造成严重后果的，依规追究责任",
               calendar_unconfirmed=False)
    ctx.update(over)
    return ctx


def issue(s, kind="incident_report", **over):
    case = s.get(Case, CASE_ID)
    issuer = s.get(OrgUnit, "JD01")
    args = dict(
        case=case, kind=kind, issuer=issuer, recipients=["p-zhang"],
        title="关于社区门户网站被篡改事件的报告", main_to="区委网信办",
        context=incident_context() if kind == "incident_report" else reminder_context(),
        urgency="特急" if kind == "incident_report" else "",
        signer="王五" if KIND_INFO[kind][2] else "",
    )
    args.update(over)
    return issue_notice(s, **args)


def doc_seq(doc_number: str) -> int:
    m = re.fullmatch(re.escape(PREFIX) + r"〔(\d{4})〕([1-9]\d*)号", doc_number)
    assert m, doc_number
    return int(m.group(2))


# ----------------------------------------------------------------- numbering


def test_doc_number_format():
    assert format_doc_number(PREFIX, 2026, 7) == "X街网安〔2026〕7号"
    assert format_doc_number(PREFIX, 2026, 10) == "X街网安〔2026〕10号"
    assert "第" not in format_doc_number(PREFIX, 2026, 7)
    with pytest.raises(DomainError):
        format_doc_number(PREFIX, 2026, 0)
    with pytest.raises(DomainError):
        format_doc_number("", 2026, 1)


def test_kind_info_covers_the_ten_kinds_the_deadline_adjustment_and_the_appeal_decision():
    assert len(KIND_INFO) == 13 and KIND_INFO["internal_reminder"] == ("督办提醒", "提醒", False)
    assert KIND_INFO["deadline_adjustment"] == ("期限调整通知", "通知", False)
    assert KIND_INFO["appeal_decision"] == ("申诉处理决定", "决定", False)
    assert KIND_INFO["incident_report"] == ("事件报告", "报告", True)
    assert KIND_INFO["report_reminder"] == ("催报通知", "通知", False)
    assert KIND_INFO["accountability_proposal"][1:] == ("请示", True)
    assert KIND_INFO["accountability_decision"][1] == "决定"
    assert KIND_INFO["assessment_result"][1] == "通报"
    official = {k: t for k, (_, t, _) in KIND_INFO.items() if k != "internal_reminder"}  # a 提醒 is no 公文
    assert set(official.values()) <= {"报告", "通知", "通报", "决定", "请示", "函"}
    assert incident_urgency("particularly_major") == incident_urgency("重大") == "特急"
    assert incident_urgency("relatively_major") == "加急" and incident_urgency("general") == ""


def test_issue_notice_stores_and_queues(rows, monkeypatch):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T09:30:00+08:00")
    with session() as s:
        n = issue(s)
        nid, doc = n.id, n.doc_number
    assert nid == "NTC-2026-000001" and doc == "X街网安〔2026〕1号"
    assert rows == [nid]
    with session() as s:
        stored = s.get(Notice, nid)
        assert stored.case_id == CASE_ID and stored.issuer_unit == "JD01"
        assert stored.recipients == ["p-zhang"] and not stored.classified
        lh = stored.context["letterhead"]
        # the stored notice is the file copy: each recipient's copy has its own 份号
        assert lh["copy_no"] == "" and lh["doc_number"] == doc and lh["signer"] == "王五"
        assert "份号" not in stored.text and "份号：000001" in notices.copy_for(stored, "p-zhang")[1]
        assert "（事项编号：" + CASE_ID + "；本件为演练文书，系统时钟设定为2026年11月28日9时30分）" in stored.text
        assert "DUTYFLOW_NOW" not in stored.text + stored.html and stored.html.count("本件为演练文书") == 1
        # the stored context re-renders the same document
        assert notices.rerender(stored) == (stored.html, stored.text)


def test_a_message_carries_a_long_notice_as_its_opening_and_says_where_the_whole_is(rows, monkeypatch):
    """Above ``max_chars`` each copy is the opening whole lines, numbered, and a last line with
    the whole's length and where to read it; the html (e-mail) is left out; shorter notices
    and non-recipients are unchanged."""
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T09:30:00+08:00")
    with session() as s:
        stored = s.get(Notice, issue(s).id)
        s.expunge(stored)
    whole = len(stored.text.rstrip("\n"))
    assert notices.Copies(stored, whole).of("p-zhang") == notices.copy_for(stored, "p-zhang")
    html, text = notices.Copies(stored, 120).of("p-zhang")
    assert html == ""
    head, _, tail = text.partition("\n……\n")
    assert "份号：000001" in head and len(head) <= 120 and notices.copy_for(stored, "p-zhang")[1].startswith(head)
    assert tail == f"（以上为节选；全文共 {whole} 字，见 dutyflow 通知 {stored.id}（{stored.doc_number}，" \
                   "可在界面或以 dutyflow notice render 取得）。）\n"
    assert "份号" not in notices.Copies(stored, 120).of("p-other")[1]


def test_gapless_under_concurrency(rows):
    errors: list[BaseException] = []

    def worker():
        try:
            for _ in range(10):
                with session() as s:
                    issue(s, kind="report_reminder", title="关于催报事件报告的通知", main_to="X社区")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with session() as s:
        got = s.exec(select(Notice.doc_number, Notice.id, Notice.context)).all()
    seqs = sorted(doc_seq(d) for d, _, _ in got)
    assert seqs == list(range(1, 81))
    assert sorted(int(i.rsplit("-", 1)[1]) for _, i, _ in got) == list(range(1, 81))
    assert {c["letterhead"]["copy_no"] for _, _, c in got} == {""}  # numbered per copy at delivery
    assert len(rows) == 80


def test_rollback_gives_the_number_back(rows):
    with session() as s:
        assert doc_seq(issue(s).doc_number) == 1
    with pytest.raises(RuntimeError):
        with session() as s:
            assert doc_seq(issue(s).doc_number) == 2
            raise RuntimeError("later step of the same transaction failed")
    with session() as s:
        n = issue(s)
        assert doc_seq(n.doc_number) == 2 and n.id == "NTC-2026-000002"
    with session() as s:
        assert s.exec(select(func.count()).select_from(Notice)).one() == 2


def test_refused_request_takes_no_number(rows):
    with pytest.raises(DomainError, match="签发人"):
        with session() as s:
            issue(s, signer="")  # upward 报告 without 签发人
    with session() as s:
        assert doc_seq(issue(s).doc_number) == 1


def test_new_year_starts_at_one(rows, monkeypatch):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-12-31T23:00:00+08:00")
    with session() as s:
        issue(s)
        assert issue(s).doc_number == "X街网安〔2026〕2号"
    # 00:30 in Beijing on 1 January is still 2026 in UTC: the year is Beijing's.
    monkeypatch.setenv("DUTYFLOW_NOW", "2027-01-01T00:30:00+08:00")
    with session() as s:
        n = issue(s)
        assert n.doc_number == "X街网安〔2027〕1号" and n.id == "NTC-2027-000001"
        assert n.context["letterhead"]["date"] == "2027年1月1日"


def test_unnumbered_and_classified(rows):
    with session() as s:
        s.get(Case, CASE_ID).classified = True
    with session() as s:
        n = issue(s, kind="report_reminder", title="关于催报的通知", main_to="X社区", numbered=False)
        assert n.doc_number is None and n.classified
        assert n.context["letterhead"]["classification"] == "秘密"
        assert "密级：秘密" in n.text and "〔" not in n.text
    with session() as s:
        assert doc_seq(issue(s).doc_number) == 1  # the unnumbered notice took no 发文字号


# ----------------------------------------------------------------- rendering


def letterhead(kind: str, **over) -> Letterhead:
    issuer = OrgUnit(code="JD01", name="X街道党工委", kind="street", doc_prefix=PREFIX)
    args = dict(title="关于社区门户网站被篡改事件的报告", main_to="区委网信办",
                doc_number=format_doc_number(PREFIX, 2026, 7), copy_no="000007",
                signer="王五" if KIND_INFO.get(kind, ("", "", True))[2] else "", cc=["区公安分局网安大队", "街道纪工委"],
                attachments=["受影响系统清单"])
    args.update(over)
    return build_letterhead(issuer, kind, **args)


def test_strict_undefined_missing_variable_raises(monkeypatch):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T09:30:00+08:00")
    ctx = incident_context(letterhead=letterhead("incident_report", urgency="特急"))
    del ctx["contacts"]
    with pytest.raises(UndefinedError):
        render("incident_report", ctx)
    ctx = reminder_context()  # no letterhead at all
    with pytest.raises(UndefinedError):
        render("report_reminder", ctx)
    with pytest.raises(UndefinedError):
        HTML_ENV.from_string("{{ missing }}").render()
    with pytest.raises(UndefinedError):
        TEXT_ENV.from_string("[{{ missing }}]").render()


def test_html_escapes_operator_text(monkeypatch):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T09:30:00+08:00")
    ctx = incident_context(letterhead=letterhead("incident_report", urgency="特急",
                                                 title="<b>标题</b>"))
    html, text = render("incident_report", ctx)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>标题</b>" not in html and "&lt;b&gt;标题&lt;/b&gt;" in html
    assert "<script>alert('x')</script>" in text  # plain text is not HTML: kept verbatim
    assert "<p>" not in text and "<div" not in text


def test_sandbox_limits_multiplication():
    for env in (HTML_ENV, TEXT_ENV):
        with pytest.raises(SecurityError):
            env.from_string("{{ 'x' * 10**7 }}").render()
        with pytest.raises(SecurityError):
            env.from_string("{{ [1] * n }}").render(n=10**6)
        with pytest.raises(SecurityError):
            env.from_string("{{ 9 ** (10 ** 8) }}").render()  # ** is left-associative in Jinja
        assert env.from_string("{{ '—' * 3 }}{{ 2 ** 10 }}{{ 6 * 7 }}").render() == "———102442"


def check_layout(html: str, text: str, *, upward: bool, urgency: str) -> None:
    for out in (html, text):
        assert "000007" in out  # 份号
        assert "X街道党工委文件" in out  # 发文机关标志
        assert "X街网安〔2026〕7号" in out  # 发文字号
        assert "区委网信办：" in out  # 主送机关
        assert "附件：受影响系统清单" in out  # 附件说明
        assert "抄送：区公安分局网安大队，街道纪工委。" in out  # 抄送
        assert "2026年11月28日印发" in out  # 印发机关和印发日期
        dates = re.findall(r"\d{4}年\d{1,2}月\d{1,2}日", out)
        assert "2026年11月28日" in dates  # 成文日期
        assert ("签发人" in out) == upward
        assert (f"紧急程度：{urgency}" in text) if urgency else ("紧急程度" not in text)
        if urgency:
            assert urgency in html
    assert 'class="sep"' in html  # red separator
    assert "#d40000" in html and "FangSong" in html and "margin: 37mm 26mm 35mm 28mm" in html


def test_incident_report_renders_every_layout_element(monkeypatch):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T09:30:00+08:00")
    lh = letterhead("incident_report", urgency="特急")
    html, text = render("incident_report", incident_context(letterhead=lh))
    check_layout(html, text, upward=True, urgency="特急")
    assert "签发人：王五" in text and "王五" in html
    for out in (html, text):
        assert "关于社区门户网站被篡改事件的报告" in out  # 标题
        assert "特此报告。" in out and "联系人：" in out and "张三" in out
        assert "首页篡改持续时间：3小时" in out and "2026年11月28日（星期六）13时前" in out
        assert "按影响数字建议等级不低于较大。" in out
        assert "发生时间尚在核查" in out  # occurred_at ''
        assert "本件为演练文书，系统时钟设定为2026年11月28日9时30分" in out  # the 附注


def test_report_reminder_renders_every_layout_element(monkeypatch):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-03-05T10:00:00+08:00")
    lh = letterhead("report_reminder", title="关于催报事件报告的通知", main_to="区委网信办",
                    signer="王五", urgency="加急")
    assert lh.signer == ""  # 签发人 only on upward documents
    assert lh.date == "2026年3月5日"  # no leading zeros
    lh.date = lh.printed_date = "2026年11月28日"
    html, text = render("report_reminder", reminder_context(letterhead=lh))
    check_layout(html, text, upward=False, urgency="加急")
    assert "2026年03月" not in text and "这是第2次催报" in text and "特此通知。" in html
    html1, text1 = render("report_reminder", reminder_context(letterhead=lh, count=1))
    assert "次催报" not in text1
    assert "尚未公布" not in text
    for out in render("report_reminder", reminder_context(letterhead=lh, calendar_unconfirmed=True)):
        assert "上述时限所在年度的法定节假日安排尚未公布" in out


def test_not_pinned_has_no_drill_note(monkeypatch):
    monkeypatch.delenv("DUTYFLOW_NOW", raising=False)
    html, text = render("report_reminder", reminder_context(letterhead=letterhead("report_reminder")))
    assert "演练" not in html and "演练" not in text


def test_letterhead_refusals_and_fields():
    with pytest.raises(DomainError):
        letterhead("incident_report", signer="")
    with pytest.raises(DomainError):
        letterhead("report_reminder", urgency="很急")
    with pytest.raises(DomainError):
        letterhead("no_such_kind")
    lh = letterhead("report_reminder", classification="秘密", secrecy_period="1年")
    assert set(LAYOUT_FIELDS) <= set(lh.as_dict())
    html, text = render("report_reminder", reminder_context(letterhead=lh))
    assert "秘密★1年" in html and "秘密★1年" in text
    assert {"letterhead", "requirement", "count", "calendar_unconfirmed"} <= required_variables("report_reminder")


def test_real_outbox_queues_one_row_per_channel(db):
    """With the real ``tasks.notify`` (skipped while it does not exist)."""
    pytest.importorskip("tasks.notify")
    from models.notice import Notification
    from models.org import Person

    t = datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)
    with session() as s:
        s.add(OrgUnit(code="JD01", name="X街道党工委", kind="street", doc_prefix=PREFIX))
        s.add(Person(id="p-zhang", name="张三", channels=["json://127.0.0.1:9/p", "mailto://u:p@example.org"]))
        s.flush()
        s.add(Case(id=CASE_ID, kind="incident", state="reported", unit="JD01", created_at=t, updated_at=t))
    with session() as s:
        nid = issue(s).id
    with session() as s:
        rows = s.exec(select(Notification).where(Notification.notice_id == nid)).all()
        assert sorted(r.channel for r in rows) == ["json://127.0.0.1:9/p", "mailto://u:p@example.org"]
        assert {r.person for r in rows} == {"p-zhang"}


def test_notice_bodies_compressed_with_lz4_on_postgresql(db):
    """Migration 0005: inserting rendered notices is cheaper with lz4 TOAST compression."""
    import sqlalchemy as sa

    from models.db import engine

    eng = engine()
    if eng.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only (SQLite does not compress)")
    with eng.connect() as c:
        methods = dict(c.execute(sa.text(
            "SELECT attname, attcompression FROM pg_attribute "
            "WHERE attrelid = 'notice'::regclass AND attname IN ('html', 'text')")).all())
    assert methods == {"html": "l", "text": "l"}


# ----------------------------------------------------------------- 公文 wording (issue #11)

#: A half-width space is allowed only between two Latin/digit tokens.
LOOSE_SPACE = re.compile(r"(?<![A-Za-z0-9]) | (?![A-Za-z0-9])")
CLOCK_TIME = re.compile(r"\d{1,2}:\d{2}")


def html_body(html: str) -> str:
    """The body of an HTML notice as plain text (tags dropped, one paragraph a line)."""
    m = re.search(r'<div class="body">(.*?)\n</div>', html, re.S)
    assert m, "no body"
    return re.sub(r"<[^>]+>", "", m.group(1))


def assert_clean_notice(html: str, text: str, case_id: str = "") -> None:
    """Checks of issue #11 on both outputs: deadlines as last days (no 00:00, no clock
    times), no ≥/≤, no half-width space next to a Chinese character, and the case id only in
    the 附注 (never in the title or the body)."""
    body = html_body(html)
    title = re.search(r'<h1 class="title[^"]*">(.*?)</h1>', html, re.S).group(1)
    for out in (text, body):
        assert not CLOCK_TIME.search(out), CLOCK_TIME.search(out).group(0)
        assert "北京时间" not in out and not re.search("[≥≤]", out)
        for line in out.splitlines():
            assert not LOOSE_SPACE.search(line), repr(line)
    assert 'class="body"' in html and "<table>\n<tr>" not in html  # header rows in <thead>
    for table in re.findall(r"<table>.*?</table>", html, re.S):
        assert table.startswith("<table>\n<thead><tr><th>") and "</thead>\n<tbody>" in table and "<th>" not in \
            table.split("</thead>")[1]
    if case_id:
        assert case_id not in body and case_id not in title
        for line in text.splitlines():
            assert case_id not in line or "事项编号" in line, line
        assert f"事项编号：{case_id}" in text and f"事项编号：{case_id}" in html


CLEAN_DESCRIPTION = "首页被植入赌博链接。\n已断网保护现场。"  # operator text: its spaces are the operator's


def test_incident_report_variables_are_the_documented_ones():
    for ext in ("html", "txt"):
        assert required_variables("incident_report", ext) == INCIDENT_REPORT_VARIABLES | {"letterhead"}
    from support import assert_every_variable_required

    ctx = incident_context(letterhead=letterhead("incident_report", urgency="特急").as_dict())
    assert_every_variable_required("incident_report", ctx, INCIDENT_REPORT_VARIABLES)


def test_incident_report_prints_the_measures_entered(monkeypatch):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T09:30:00+08:00")
    lh = letterhead("incident_report", urgency="特急")
    html, text = render("incident_report", incident_context(letterhead=lh, description=CLEAN_DESCRIPTION))
    for out in (html, text):
        assert "四、已采取的措施" in out
        assert "已断开网站服务器网络连接。" in out and "已保存访问日志和被篡改页面。" in out
        assert "报告时未填报已采取的措施" not in out
        assert "已采取的措施及效果" not in out and "已采取措施的效果" in out  # not "being checked"
        assert "按规定应于发现后4小时内，即2026年11月28日（星期六）13时前，报告省级网信部门。" in out
        assert out.count("省级网信部门") == 1
        assert "联系人：" in out and "联系人及联系方式" not in out  # no phone number on record
    assert_clean_notice(html, text)
    html, text = render("incident_report", incident_context(letterhead=lh, measures=" \n", contacts=[]))
    for out in (html, text):
        assert "报告时未填报已采取的措施，将在续报中补充。" in out
        assert "已采取的措施及效果" in out and "联系人" not in out
    assert '<p>联系人：<span class="nb">张三</span>、<span class="nb">李四</span>。</p>' in render(
        "incident_report", incident_context(letterhead=lh, contacts=["张三", "李四"]))[0]


def test_issued_incident_report_keeps_the_case_id_in_the_note_only(rows, monkeypatch):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T09:30:00+08:00")
    with session() as s:
        n = issue(s, context=incident_context(description=CLEAN_DESCRIPTION))
        html, text = n.html, n.text
    assert_clean_notice(html, text, CASE_ID)
    assert "<thead><tr><th>事项</th><th>时限</th><th>状态</th></tr></thead>" in html

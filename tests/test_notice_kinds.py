"""The rectification and accountability notice kinds (SPEC §3.2, §3.3, §4).

整改通知, 催办通知, 约谈通知 and 问责建议书: both outputs carry the key facts, a missing
variable raises (StrictUndefined), operator text is escaped in the HTML, and the variables
the templates read are exactly the documented ones (so callers and templates agree).
No database: the letterhead is built from an unsaved OrgUnit.
"""
from __future__ import annotations

import pytest
from jinja2 import UndefinedError

from support import assert_every_variable_required
from support import render_both as both

from models.org import OrgUnit
from models.notices import KIND_INFO, build_letterhead, format_doc_number, render, required_variables

PREFIX = "X街网安"
DOC_NUMBER = "X街网安〔2026〕12号"
CASE_ID = "RCT-2026-0003"
DUE = "2026年12月3日（星期四）18时"
ACK_DUE = "2026年11月30日（星期一）18时"
NOTICE_REF = "《关于X社区限期整改网络安全问题的通知》（X街网安〔2026〕7号）"
SCRIPT = "<script>alert('x')</script>"
SCRIPT_ESCAPED = "&lt;script&gt;"

#: The documented variables of each kind (the brief and the template headers).
DOCUMENTED: dict[str, set[str]] = {
    "rectification_notice": {
        "unit_name", "source", "risk_level_label", "problem", "problem_code",
        "requirement", "acknowledge_due", "due_at", "calendar_unconfirmed", "recurrence",
        "issuer_name", "contact",
    },
    "rectification_reminder": {
        "notice_ref", "unit_name", "problem", "stage", "obligation_label", "due_at", "overdue_by",
        "remaining", "requirement", "step", "implied", "calendar_unconfirmed",
    },
    "interview_notice": {
        "unit_name", "principal_name", "problem", "due_at", "overdue_by",
        "interview_time", "place", "issuer_name", "implied",
    },
    "accountability_proposal": {
        "draft", "edited", "source", "unit_name", "circumstance", "clause_note", "facts", "facts_date",
        "chain", "suggested_forms", "basis",
    },
}

TITLES = {
    "rectification_notice": ("关于限期整改社区门户网站安全问题的通知", "X社区"),
    "rectification_reminder": ("关于督促整改社区门户网站安全问题的通知", "X社区"),
    "interview_notice": ("关于约谈X社区主要负责人的通知", "X社区"),
    "accountability_proposal": ("关于对X社区有关责任人员进行问责的请示", "街道党工委"),
}


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T09:30:00+08:00")


def letterhead(kind: str, **over):
    issuer = OrgUnit(code="JD01-WXB", name="X街道网信办", kind="office", doc_prefix=PREFIX)
    title, main_to = TITLES[kind]
    args = dict(title=title, main_to=main_to, doc_number=format_doc_number(PREFIX, 2026, 12),
                copy_no="000012", signer="王五" if KIND_INFO[kind][2] else "")
    if kind == "accountability_proposal":
        args["cc"] = ["街道纪工委"]
    args.update(over)
    return build_letterhead(issuer, kind, **args)


def notice_ctx(**over) -> dict:
    ctx = dict(
        unit_name="X社区",
        source="区委网信办通报（X区网安〔2026〕3号）", risk_level_label="高风险",
        problem="社区门户网站后台存在弱口令，可被未授权登录", problem_code="WEAK-PWD",
        requirement="立即修改后台口令，启用登录失败锁定和双因素认证，排查其他系统的同类问题。",
        acknowledge_due=ACK_DUE, due_at=DUE, calendar_unconfirmed=False, recurrence="",
        issuer_name="街道网信办", contact="李四 13900000000",
    )
    ctx.update(over)
    ctx.setdefault("letterhead", letterhead("rectification_notice"))
    return ctx


def reminder_ctx(**over) -> dict:
    ctx = dict(
        notice_ref=NOTICE_REF, unit_name="X社区", problem="社区门户网站后台存在弱口令", remaining="",
        stage="urge", obligation_label="完成整改并报送整改报告", due_at=DUE, overdue_by="2个工作日",
        requirement="已超过整改期限，请立即完成整改并报送整改报告", step=2, implied=[],
        calendar_unconfirmed=False,
    )
    ctx.update(over)
    ctx.setdefault("letterhead", letterhead("rectification_reminder"))
    return ctx


def interview_ctx(**over) -> dict:
    ctx = dict(
        unit_name="X社区", principal_name="赵六",
        problem="社区门户网站后台存在弱口令", due_at=DUE, overdue_by="3个工作日",
        interview_time="2026年12月10日 09:00（北京时间）", place="街道办事处三楼会议室",
        issuer_name="街道网信办", implied=[],
    )
    ctx.update(over)
    ctx.setdefault("letterhead", letterhead("interview_notice"))
    return ctx


CHAIN = [
    {"name": "孙七", "role_label": "当事人（网站管理员）", "responsibility": "直接责任", "vacant": False, "note": ""},
    {"name": "", "role_label": "网络安全负责人", "responsibility": "", "vacant": True,
     "note": "事实发生日该岗位空缺"},
    {"name": "周八", "role_label": "主管网络安全的领导班子成员（直接责任人）", "responsibility": "领导责任",
     "vacant": False, "note": ""},
    {"name": "赵六", "role_label": "主要负责人（第一责任人）", "responsibility": "领导责任", "vacant": False,
     "note": "经催办、约谈仍未整改"},
]
FORMS = [
    {"target": "赵六", "forms": ["诫勉"]},
    {"target": "周八", "forms": ["通报", "组织调整或者组织处理"]},
    {"target": "X社区党委", "forms": ["检查"]},
]
CIRCUMSTANCE = "《东湖街道网络安全责任制实施办法》第四部分第（四）项第4目规定的“封锁、瞒报网络安全事件情况…不及时整改并造成严重后果的”情形"
BASIS = "《中国共产党问责条例》第七条、第八条和《东湖街道网络安全责任制实施办法》第四部分第（四）项、第（五）项"


def proposal_ctx(**over) -> dict:
    ctx = dict(
        draft=False, edited=False, source=NOTICE_REF, unit_name="X社区",
        circumstance=CIRCUMSTANCE, clause_note="",
        facts="2026年11月28日，街道网信办通知X社区限期整改门户网站弱口令问题。\n\n"
              "逾期经催办、约谈仍未整改，12月20日网站被篡改，有害信息扩散。",
        facts_date="2026年11月28日", chain=[dict(c) for c in CHAIN],
        suggested_forms=[dict(f, forms=list(f["forms"])) for f in FORMS], basis=BASIS,
    )
    ctx.update(over)
    ctx.setdefault("letterhead", letterhead("accountability_proposal"))
    return ctx


CONTEXTS = {
    "rectification_notice": notice_ctx,
    "rectification_reminder": reminder_ctx,
    "interview_notice": interview_ctx,
    "accountability_proposal": proposal_ctx,
}


# ----------------------------------------------------------------- contract


@pytest.mark.parametrize("kind", sorted(DOCUMENTED))
@pytest.mark.parametrize("ext", ["html", "txt"])
def test_required_variables_match_the_documented_set(kind, ext):
    assert required_variables(kind, ext) == DOCUMENTED[kind] | {"letterhead"}


@pytest.mark.parametrize("kind", sorted(DOCUMENTED))
def test_every_missing_variable_raises(kind):
    assert_every_variable_required(kind, CONTEXTS[kind](), DOCUMENTED[kind])


@pytest.mark.parametrize("kind", sorted(DOCUMENTED))
def test_layout_elements(kind):
    html, text = both(kind, CONTEXTS[kind]())
    title, main_to = TITLES[kind]
    upward = KIND_INFO[kind][2]
    for out in (html, text):
        assert DOC_NUMBER in out and "000012" in out and title in out
        assert f"{main_to}：" in out and "X街道网信办文件" in out
        assert "2026年11月28日印发" in out
        assert ("签发人" in out) == upward
    assert "签发人：王五" in text if upward else "王五" not in text


# ----------------------------------------------------------------- 整改通知


def test_rectification_notice_key_facts():
    html, text = both("rectification_notice", notice_ctx())
    for out in (html, text):
        assert "社区门户网站后台存在弱口令，可被未授权登录。" in out
        assert "区委网信办通报（X区网安〔2026〕3号）" in out and "高风险" in out
        assert "WEAK-PWD" in out and "事项编号" not in out
        assert "启用登录失败锁定和双因素认证" in out
        assert f"请于{ACK_DUE}前签收本通知" in out
        assert f"请于{DUE}前完成整改并报送整改报告" in out
        assert "佐证材料" in out and "街道网信办" in out and "李四 13900000000" in out
        assert "催办" in out and "约谈" in out and "问责建议" in out and "第四部分第（四）项第4目" in out
        assert "《东湖街道网络安全责任制实施办法》" in out and "XX街道" not in out
        assert "特此通知。" in out
        assert "重复发生" not in out  # recurrence ''
        assert "节假日安排尚未公布" not in out
    assert "一、存在的问题" in text and "（一）问题描述：" in text and "五、逾期处理" in text


def test_rectification_notice_recurrence_calendar_and_no_code():
    recurrence = "该问题于2026年3月5日曾被通报并整改（RCT-2026-0001），12个月内再次发生。"
    html, text = both("rectification_notice", notice_ctx(
        recurrence=recurrence, calendar_unconfirmed=True, problem_code="",
        due_at="2027年1月6日 18:00（北京时间）"))
    for out in (html, text):
        assert "【重复发生】" + recurrence in out
        assert "节假日安排尚未公布" in out and "如有调整" in out
        assert "问题编号" not in out
        assert "请于2027年1月6日 18:00（北京时间）前完成整改" in out
    # shown prominently: before the first heading
    assert text.index("【重复发生】") < text.index("一、存在的问题")
    assert html.index("【重复发生】") < html.index("一、存在的问题")


def test_rectification_notice_escapes_operator_text():
    html, text = both("rectification_notice", notice_ctx(
        problem=f"首页被植入{SCRIPT}", requirement="<b>立即</b>删除", recurrence="<i>再次</i>发生"))
    assert "<script>" not in html and SCRIPT_ESCAPED in html
    assert "<b>立即</b>" not in html and "&lt;b&gt;立即&lt;/b&gt;" in html
    assert "<i>再次</i>" not in html and "&lt;i&gt;再次&lt;/i&gt;" in html
    assert SCRIPT in text and "<b>立即</b>删除" in text


# ----------------------------------------------------------------- 催办通知


def test_reminder_stage_is_friendly_and_not_overdue():
    html, text = both("rectification_reminder", reminder_ctx(
        stage="reminder", overdue_by="", remaining="1天2小时", step=1, requirement="整改期限即将届满，请抓紧完成整改"))
    for out in (html, text):
        assert "临期提醒" in out and f"应于{DUE}前完成整改并报送整改报告（" in out and "期限尚未届满（距期限还有1天2小时）" in out
        assert "社区门户网站后台存在弱口令" in out and f"按照{NOTICE_REF}的要求" in out
        assert "整改期限即将届满，请抓紧完成整改。" in out  # 。 appended once
        for word in ("逾期", "已超过", "约谈", "问责"):
            assert word not in out, word
        assert "特此通知。" in out


def test_urge_stage():
    html, text = both("rectification_reminder", reminder_ctx())
    for out in (html, text):
        assert f"应于{DUE}前完成整改并报送整改报告（" in out and "已逾期2个工作日" in out
        assert "已超过整改期限，请立即完成整改并报送整改报告。" in out and "完成完成" not in out
        assert "督办环节：催办，第2级" in out
        assert "说明逾期原因" in out and "约谈你单位主要负责人" in out and "问责建议" in out
        assert "临期提醒" not in out and "签收" not in out


def test_acknowledge_stage():
    html, text = both("rectification_reminder", reminder_ctx(
        stage="acknowledge", obligation_label="签收整改通知", due_at=ACK_DUE, overdue_by="1个工作日",
        requirement="请立即签收整改通知。"))
    for out in (html, text):
        assert "催签收" in out and f"应于{ACK_DUE}前签收整改通知（" in out and "仍未签收（" in out and "已逾期1个工作日" in out
        assert "请立即签收整改通知。" in out and ACK_DUE in out and "未签收不影响整改时限" in out


def test_stages_differ():
    texts = {stage: render("rectification_reminder", reminder_ctx(stage=stage))[1]
             for stage in ("reminder", "urge", "acknowledge")}
    assert len(set(texts.values())) == 3


def test_unknown_stage_raises():
    with pytest.raises(UndefinedError):
        render("rectification_reminder", reminder_ctx(stage="nudge"))


def test_reminder_implied_and_calendar():
    html, text = both("rectification_reminder", reminder_ctx(
        implied=["临期提醒", "催办通知（第2级）"], calendar_unconfirmed=True, step=3))
    for out in (html, text):
        assert "临期提醒、催办通知（第2级）" in out
        assert "一并记录" in out and "不再另行发送" in out
        assert "节假日安排尚未公布" in out
    html, text = both("rectification_reminder", reminder_ctx())
    for out in (html, text):
        assert "一并记录" not in out and "节假日安排尚未公布" not in out


def test_reminder_escapes_operator_text():
    html, text = both("rectification_reminder", reminder_ctx(
        problem=SCRIPT, implied=["<b>催办</b>"]))
    assert "<script>" not in html and SCRIPT_ESCAPED in html
    assert "<b>催办</b>" not in html and "&lt;b&gt;催办&lt;/b&gt;" in html
    assert SCRIPT in text and "<b>催办</b>" in text


# ----------------------------------------------------------------- 约谈通知


def test_interview_notice_key_facts():
    html, text = both("interview_notice", interview_ctx())
    for out in (html, text):
        assert f"应于{DUE}前完成以下问题的整改" in out and "社区门户网站后台存在弱口令。" in out
        assert "已逾期3个工作日" in out and "约谈你单位主要负责人赵六同志" in out
        assert "2026年12月10日 09:00（北京时间）" in out and "街道办事处三楼会议室" in out
        assert "整改方案" in out and "问责建议" in out and "街道网信办" in out
        assert "事项编号" not in out and "特此通知。" in out
        assert "一并记录" not in out
    assert "一、约谈时间和地点" in text and "（一）时间：2026年12月10日" in text


def test_interview_notice_implied_and_escaping():
    html, text = both("interview_notice", interview_ctx(
        implied=["临期提醒", "催办通知"], place="<u>会议室</u>", principal_name=SCRIPT))
    for out in (html, text):
        assert "临期提醒、催办通知，已随本通知一并记录，不再另行发送。" in out
    assert "<u>" not in html and "&lt;u&gt;会议室&lt;/u&gt;" in html
    assert "<script>" not in html and SCRIPT_ESCAPED in html
    assert "<u>会议室</u>" in text


# ----------------------------------------------------------------- 问责建议书


def test_accountability_proposal_key_facts():
    html, text = both("accountability_proposal", proposal_ctx())
    for out in (html, text):
        for heading in ("一、基本事实", "二、问责情形", "三、逐级倒查情况", "四、问责建议", "五、依据"):
            assert heading in out
        assert "事项编号" not in out and f"{NOTICE_REF}所记录的事实，经街道网信办审核确认。" in out
        assert "2026年11月28日，街道网信办通知X社区限期整改门户网站弱口令问题。" in out
        assert "12月20日网站被篡改，有害信息扩散。" in out
        assert CIRCUMSTANCE in out and BASIS in out
        for name in ("孙七", "周八", "赵六"):
            assert name in out
        assert "空缺" in out and "事实发生日该岗位空缺" in out and "实际承担相应职责的人员" in out
        assert "直接责任" in out and "领导责任" in out
        assert "建议给予诫勉" in out and "建议给予通报、组织调整或者组织处理" in out
        assert "X社区党委" in out and "建议给予检查" in out
        assert out.index("五、依据") < out.index(BASIS) < out.index("妥否，请批示。") < out.index("2026年11月28日印发")
        assert "特此" not in out
    assert "抄送：街道纪工委。" in text and "签发人：王五" in text
    assert "<table>" in html and html.count("<tr>") == 1 + len(CHAIN)
    assert "<td>空缺</td>" in html
    assert "　　2.空缺，网络安全负责人（事实发生日该岗位空缺）。" in text
    assert "　　1.孙七，当事人（网站管理员），直接责任。" in text
    assert "（二）周八：建议给予通报、组织调整或者组织处理。" in text


def test_accountability_proposal_empty_chain_and_forms_manual():
    html, text = both("accountability_proposal", proposal_ctx(
        chain=[], suggested_forms=[], source="", facts=""))
    for out in (html, text):
        assert "责任链条尚未确定" in out and "逐级倒查" in out
        assert "问责方式根据调查结果依规确定" in out and "具体建议如下" not in out
        assert "人工立项" in out and "有关事实正在核查" in out
        assert "空缺" not in out and "妥否，请批示。" in out
    assert "<table>" not in html


def test_accountability_proposal_requires_signer_and_chain_keys():
    with pytest.raises(Exception, match="签发人"):
        letterhead("accountability_proposal", signer="")
    chain = [dict(CHAIN[0])]
    del chain[0]["note"]
    with pytest.raises(UndefinedError):
        render("accountability_proposal", proposal_ctx(chain=chain))


def test_accountability_proposal_escapes_operator_text():
    chain = [dict(CHAIN[0], name=SCRIPT, note="<b>备注</b>"), dict(CHAIN[1], name="<i>原</i>")]
    html, text = both("accountability_proposal", proposal_ctx(
        chain=chain, facts=f"网页被植入{SCRIPT}", suggested_forms=[{"target": "<u>某</u>", "forms": ["<s>通报</s>"]}]))
    for raw in (SCRIPT, "<b>备注</b>", "<i>原</i>", "<u>某</u>", "<s>通报</s>"):
        assert raw not in html, raw
        assert raw in text, raw
    assert SCRIPT_ESCAPED in html and "&lt;s&gt;通报&lt;/s&gt;" in html
    assert "空缺（&lt;i&gt;原&lt;/i&gt;）" in html

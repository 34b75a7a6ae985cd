"""The 问责决定 and 事件处置总结报告 notice kinds (SPEC §3.1, §3.3, §4).

Both outputs carry the key facts, a missing variable raises (StrictUndefined), operator
text is escaped in the HTML, and the variables the templates read are exactly the
documented ones (so callers and templates agree). No database: the letterhead is built
from an unsaved OrgUnit.
"""
from __future__ import annotations

import pytest
from jinja2 import UndefinedError

from support import assert_every_variable_required
from support import render_both as both
from test_notices import assert_clean_notice

from models.org import OrgUnit
from models.notices import KIND_INFO, build_letterhead, format_doc_number, render, required_variables

SCRIPT = "<script>alert('x')</script>"
SCRIPT_ESCAPED = "&lt;script&gt;"
DISSENT = "不承担责任（决策时明确表示不同意见）"

#: The documented variables of each kind (the brief and the template headers).
DOCUMENTED: dict[str, set[str]] = {
    "accountability_decision": {
        "unit_name", "proposal", "circumstance", "facts", "facts_date", "decided_by_name",
        "decision_date", "investigation", "hearing", "persons", "organisation_forms", "appeal_to",
        "appeal_article", "basis",
    },
    "incident_summary": {
        "unit_name", "title", "category_label", "level_label", "discovered_at",
        "resolved_at", "cause", "handling", "harm", "lessons", "deadlines", "warnings",
    },
    "deadline_adjustment": {"reference", "reason", "items", "request"},
    "appeal_decision": {"decision_ref", "appellant", "decided_by_name", "decision_date", "original_forms", "filed_date",
                        "reason", "upheld", "new_forms", "opinion"},
}

#: kind → (issuer code, issuer name, 发文机关代字, 标题, 主送机关, 签发人).
ISSUERS = {
    "accountability_decision": ("JD01-DGW", "中共X街道工作委员会", "X街党工发",
                                "关于对X社区有关责任人员问责的决定", "X社区党委", ""),
    "incident_summary": ("SQ01", "X社区居民委员会", "X社居",
                         "关于社区门户网站被篡改事件处置情况的报告", "街道网信办", "赵六"),
    "deadline_adjustment": ("WXB", "X街道网信办", "X街网安", "关于调整RECT-2026-0009有关办理期限的通知", "各有关单位", ""),
    "appeal_decision": ("JD01", "中共X街道工作委员会", "X街党工发", "关于何晓丽同志申诉的处理决定", "何晓丽同志", ""),
}


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T09:30:00+08:00")


def letterhead(kind: str, **over):
    code, name, prefix, title, main_to, signer = ISSUERS[kind]
    issuer = OrgUnit(code=code, name=name, kind="committee" if kind == "accountability_decision" else "community",
                     doc_prefix=prefix)
    args = dict(title=title, main_to=main_to, doc_number=format_doc_number(prefix, 2026, 5),
                copy_no="000021", signer=signer)
    if kind == "accountability_decision":
        args["cc"] = ["街道纪工委", "街道网信办"]
    args.update(over)
    return build_letterhead(issuer, kind, **args)


# ----------------------------------------------------------------- contexts

CIRCUMSTANCE = "封锁、瞒报事件，或对通报的问题和风险隐患不及时整改（四（四）4）"
BASIS = "《中国共产党问责条例》第七条、第八条，街道党工委《网络安全责任制实施办法》四（四）4、四（五）。"
IN_FORCE = "申诉期间，不停止本决定的执行"
APPEAL_DEADLINE = "2026年12月28日"
APPEAL_TO = "中共X街道工作委员会"


def person(name, role_label, responsibility, forms, suggested=None, *, differs=False, vacant=False,
           dissented=False):
    return {"name": name, "role_label": role_label, "responsibility": responsibility, "forms": list(forms),
            "suggested_forms": list(forms if suggested is None else suggested), "differs": differs,
            "vacant": vacant, "dissented": dissented}


PERSONS = [
    person("孙七", "当事人（网站管理员）", "直接责任", ["通报", "诫勉"], ["通报"], differs=True),
    person("", "网络安全负责人", "", [], vacant=True),
    person("周八", "主管网络安全的领导班子成员（直接责任人）", "主要领导责任", ["组织调整或者组织处理"]),
    person("赵六", "主要负责人（第一责任人）", "主要领导责任", ["诫勉"]),
    person("吴九", "领导班子成员", "无", [], dissented=True),
    person("郑十", "领导班子成员", "重要领导责任", [], ["通报"], differs=True),
]


def decision_ctx(**over) -> dict:
    ctx = dict(
        unit_name="X社区", proposal="《关于建议对X社区有关责任人员进行问责的请示》（X街网安〔2026〕9号）",
        circumstance=CIRCUMSTANCE, investigation="纪工委调查组2026年11月20日调查报告", hearing="2026年11月22日听取",
        facts="2026年11月28日，街道网信办通知X社区限期整改门户网站弱口令问题\n\n"
              "逾期经催办、约谈仍未整改，12月20日网站被篡改，有害信息扩散。",
        facts_date="2026年11月28日", decided_by_name="中共X街道工作委员会", decision_date="2026年11月27日",
        persons=[dict(p, forms=list(p["forms"]), suggested_forms=list(p["suggested_forms"])) for p in PERSONS],
        organisation_forms=["检查"], appeal_to=APPEAL_TO, appeal_article="《中国共产党问责条例》第十九条",
        basis=BASIS,
    )
    ctx.update(over)
    ctx.setdefault("letterhead", letterhead("accountability_decision"))
    return ctx


DEADLINES = [
    ["内部报告", "2026年11月20日（星期五）10时前", "逾期1小时30分钟完成"],
    ["对外报告", "2026年11月20日（星期五）13时前", "按时完成"],
    ["处置", "2026年11月21日（星期六）9时前", "按时完成"],
    ["事件处置总结报告", "2026年12月20日（星期日）24时前", "按时完成"],
]
WARNING = "迟报：内部报告时限为2026年11月20日（星期五）10时前，实际报告于2026年11月20日11时30分，迟报1小时30分钟"


def summary_ctx(**over) -> dict:
    ctx = dict(
        unit_name="X社区", title="社区门户网站首页被篡改",
        category_label="门户网站/平台被攻击篡改", level_label="较大（Ⅲ级）",
        discovered_at="2026年11月20日9时", resolved_at="2026年11月21日8时",
        cause="网站后台存在弱口令，攻击者暴力破解后登录后台\n内容管理系统未及时升级。",
        handling="发现后立即关闭网站，保存日志和被篡改页面；\n清除植入内容，修改全部口令，升级系统后恢复访问。",
        harm="首页被篡改约2小时，有害信息被浏览约3000次，未造成个人信息泄露。",
        lessons="对网站管理员孙七提出问责建议。\n建立口令定期更换和登录失败锁定制度；教训是日常巡检流于形式。",
        deadlines=[list(d) for d in DEADLINES], warnings=[WARNING],
    )
    ctx.update(over)
    ctx.setdefault("letterhead", letterhead("incident_summary"))
    return ctx


def adjustment_ctx(**over) -> dict:
    ctx = dict(
        reference="“门户网站后台<弱口令>”", reason="根据国办发明电〔2026〕7号公布的2027年节假日安排，此前按周一至周五暂定的",
        request="请按调整后的期限办理",
        items=[{"label": "完成整改并报送整改报告", "units": ["X社区"],
                "old_due": "2027年1月21日（星期四）24时", "new_due": "2027年1月22日（星期五）24时"},
               {"label": "提交年度自评", "units": [f"第{i}社区" for i in range(1, 24)],
                "old_due": "2027年1月1日（星期五）24时", "new_due": "2027年1月4日（星期一）24时"}],
    )
    ctx.update(over)
    ctx.setdefault("letterhead", letterhead("deadline_adjustment"))
    return ctx


def appeal_ctx(**over) -> dict:
    ctx = dict(
        decision_ref="《关于对X社区有关责任人员问责的决定》（X街党工发〔2026〕5号）", appellant="何晓丽同志", decided_by_name="中共X街道工作委员会",
        decision_date="2026年3月5日", original_forms=["诫勉"], filed_date="2026年3月20日",
        reason="事实认定有误<请复查>。", upheld=False, new_forms=["通报"], opinion="当事人已及时报告，情节较轻",
    )
    ctx.update(over)
    ctx.setdefault("letterhead", letterhead("appeal_decision"))
    return ctx


CONTEXTS = {"accountability_decision": decision_ctx, "incident_summary": summary_ctx,
            "deadline_adjustment": adjustment_ctx, "appeal_decision": appeal_ctx}


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
    _, name, prefix, title, main_to, signer = ISSUERS[kind]
    upward = KIND_INFO[kind][2]
    assert upward == (kind == "incident_summary")
    for out in (html, text):
        assert f"{prefix}〔2026〕5号" in out and "000021" in out and title in out
        assert f"{main_to}：" in out and f"{name}文件" in out
        assert "2026年11月28日印发" in out
        assert ("签发人" in out) == upward
    if upward:
        assert "签发人：赵六" in text
    elif kind == "accountability_decision":
        assert "抄送：街道纪工委，街道网信办。" in text


# ----------------------------------------------------------------- 问责决定


def test_decision_key_facts():
    html, text = both("accountability_decision", decision_ctx())
    for out in (html, text):
        for heading in ("一、基本事实", "二、责任认定", "三、问责决定", "四、申诉"):
            assert heading in out
        assert "事项编号" not in out and CIRCUMSTANCE in out and "2026年11月28日" in out
        assert "组织调查核实（纪工委调查组2026年11月20日调查报告），听取了被问责对象的陈述和申辩（2026年11月22日听取）" in out
        assert "街道网信办通知X社区限期整改门户网站弱口令问题。" in out  # 。 appended
        assert "12月20日网站被篡改，有害信息扩散。" in out
        assert "中共X街道工作委员会" in out and "2026年11月27日" in out
        assert "依据《中国共产党问责条例》第七条、第八条，街道党工委《网络安全责任制实施办法》四（四）4、四（五），" in out
        assert "区分集体责任和个人责任" in out and "逐级倒查" in out
        for name in ("孙七", "周八", "赵六", "吴九", "郑十"):
            assert name in out
        for resp in ("直接责任", "主要领导责任", "重要领导责任"):
            assert resp in out
        assert "给予孙七同志通报、诫勉。" in out
        assert "给予周八同志组织调整或者组织处理。" in out and "1个月内办理完毕" in out
        assert "给予赵六同志诫勉。" in out
        assert "对郑十同志不予问责。" in out
        assert "对X社区予以检查。" in out
        assert "归入被问责领导干部个人档案" in out
        # appeal: who, to whom, by when; the decision stays in force
        assert f"可以自收到本决定之日起1个月内，向{APPEAL_TO}提出书面申诉" in out and "第十九条" in out
        assert "被问责党组织、被问责领导干部" in out
        assert f"{IN_FORCE}。" in out
        assert out.index("四、申诉") < out.index(IN_FORCE) < out.index("特此决定。") < out.index("2026年11月28日印发")
        assert "妥否" not in out and "特此报告" not in out
    assert "（一）给予孙七同志通报、诫勉。" in text
    assert "（五）对郑十同志不予问责。" in text
    assert "（六）对X社区予以检查。" in text
    assert "　　1.孙七，当事人（网站管理员），直接责任；问责方式：通报、诫勉。" in text
    assert "　　4.赵六，主要负责人（第一责任人），主要领导责任；问责方式：诫勉。" in text
    assert "<table>" in html and html.count("<tr>") == 1 + len(PERSONS)
    assert "<td>通报、诫勉</td>" in html and "<td>主要领导责任</td>" in html


def test_decision_differs_from_suggestion_is_stated_neutrally():
    html, text = both("accountability_decision", decision_ctx())
    for out in (html, text):
        assert "给予孙七同志通报、诫勉。（问责建议为给予通报。）" in out
        assert "对郑十同志不予问责。（问责建议为给予通报。）" in out
        assert out.count("（问责建议为") == 2 and "经集体研究" not in out  # only where the decision differs
    persons = [dict(p) for p in PERSONS]
    persons[0] = dict(persons[0], differs=False, suggested_forms=["通报", "诫勉"])
    persons[5] = dict(persons[5], differs=True, suggested_forms=[])
    html, text = both("accountability_decision", decision_ctx(persons=persons))
    for out in (html, text):
        assert "给予孙七同志通报、诫勉。问责建议" not in out
        assert "（问责建议为根据调查结果依规确定问责方式。）" in out
        assert out.count("（问责建议为") == 1


def test_decision_dissenter_bears_no_responsibility():
    html, text = both("accountability_decision", decision_ctx())
    for out in (html, text):
        assert DISSENT in out
        assert "吴九同志在决策时明确表示不同意见，不承担责任，不予问责。" in out
        assert "决策时明确表示不同意见的成员不承担责任" in out  # the collective-responsibility rule
    assert f"　　5.吴九，领导班子成员，{DISSENT}；问责方式：不予问责。" in text
    assert f"<td>吴九</td><td>领导班子成员</td><td>{DISSENT}</td><td>不予问责</td>" in html
    assert "<td>无</td>" not in html and "，无；" not in text


def test_decision_leader_who_did_not_take_part_is_not_called_a_dissenter():
    """无 without a recorded dissent: a leader of the unit who did not take part in the
    collective decision (SOURCE 四（五）: only participants bear responsibility for it)."""
    persons = [dict(p) for p in PERSONS]
    persons[3] = person("赵六", "主要负责人（第一责任人）", "无", [])
    html, text = both("accountability_decision", decision_ctx(persons=persons))
    for out in (html, text):
        assert "赵六同志未参与该项集体决策，不承担该项决策的责任，不予问责。" in out
        assert "赵六同志在决策时明确表示不同意见" not in out
        assert "吴九同志在决策时明确表示不同意见，不承担责任，不予问责。" in out
        assert "未参与决策的不承担该项决策的领导责任" in out and "以决策之日的任职为准" in out
    assert "　　4.赵六，主要负责人（第一责任人），不承担责任（未参与该项集体决策）；问责方式：不予问责。" in text
    assert "<td>赵六</td><td>主要负责人（第一责任人）</td><td>不承担责任（未参与该项集体决策）</td>" in html


def test_decision_vacant_post_is_listed_without_forms():
    html, text = both("accountability_decision", decision_ctx())
    for out in (html, text):
        assert "空缺" in out and "事实发生日无人任职，不作出个人问责决定" in out
    assert "　　2.空缺，网络安全负责人。" in text
    assert "<td>2</td><td>空缺</td><td>网络安全负责人</td><td>—</td><td>—</td>" in html
    # the vacant link gets no decision item: items 一…五 are the five persons, 六 the unit
    assert text.count("同志") == 5 + 0 and "（六）对X社区" in text
    # a named vacant link (e.g. the former holder) shows the name in brackets
    persons = [dict(p) for p in PERSONS]
    persons[1] = dict(persons[1], name="钱二")
    html, text = both("accountability_decision", decision_ctx(persons=persons))
    assert "　　2.空缺（钱二），网络安全负责人。" in text and "<td>空缺（钱二）</td>" in html
    assert "钱二同志" not in text


def test_decision_individual_only_and_no_organisation_forms():
    persons = [person("孙七", "当事人（网站管理员）", "直接责任", ["通报"]),
               person("赵六", "主要负责人（第一责任人）", "领导责任", [])]
    html, text = both("accountability_decision", decision_ctx(persons=persons, organisation_forms=[]))
    for out in (html, text):
        assert "给予孙七同志通报。" in out and "对赵六同志不予问责。" in out
        assert "对X社区予以" not in out and "组织调整或者组织处理" not in out
        assert "主要领导责任" not in out and "空缺" not in out and "经集体研究" not in out
        assert "特此决定。" in out


def test_decision_nothing_decided():
    html, text = both("accountability_decision", decision_ctx(persons=[], organisation_forms=[], facts=""))
    for out in (html, text):
        assert "未认定应当承担责任的人员" in out and "不予问责。" in out
        assert "事实经过见问责调查报告" in out
        assert "个人档案" not in out and "四、申诉" not in out and "特此决定。" in out
    assert "<table>" not in html


def test_decision_is_not_upward_and_person_keys_are_required():
    lh = letterhead("accountability_decision", signer="王五")
    assert lh.signer == "" and not lh.upward and lh.doc_type == "决定"
    for key in ("name", "role_label", "responsibility", "forms", "suggested_forms", "differs", "vacant", "dissented"):
        persons = [dict(p) for p in PERSONS]
        for p in persons:
            del p[key]
        with pytest.raises(UndefinedError):
            render("accountability_decision", decision_ctx(persons=persons))


def test_decision_escapes_operator_text():
    persons = [dict(PERSONS[0], name=SCRIPT, forms=["<s>通报</s>"]), dict(PERSONS[1], name="<i>原</i>"),
               dict(PERSONS[4], role_label="<b>委员</b>")]
    html, text = both("accountability_decision", decision_ctx(
        persons=persons, facts=f"网页被植入{SCRIPT}", organisation_forms=["<u>检查</u>"],
        appeal_to="<em>党工委</em>"))
    for raw in (SCRIPT, "<s>通报</s>", "<i>原</i>", "<b>委员</b>", "<u>检查</u>", "<em>党工委</em>"):
        assert raw not in html, raw
        assert raw in text, raw
    assert SCRIPT_ESCAPED in html and "&lt;s&gt;通报&lt;/s&gt;" in html
    assert "空缺（&lt;i&gt;原&lt;/i&gt;）" in html


# ----------------------------------------------------------------- 事件处置总结报告


def test_summary_key_facts():
    html, text = both("incident_summary", summary_ctx())
    for out in (html, text):
        for heading in ("一、事件基本情况", "二、事件原因", "三、处置过程", "四、危害和影响",
                        "五、责任追究、整改措施和教训", "六、报告时限执行情况"):
            assert heading in out
        assert "社区门户网站首页被篡改" in out and "X社区" in out
        assert "事件类型为门户网站/平台被攻击篡改，等级为较大（Ⅲ级），已于2026年11月21日8时处置完毕" in out
        assert "事项编号" not in out.split("特此报告")[0]  # the case id is in the 附注 only
        assert "发现于2026年11月20日9时" in out
        assert "处置完毕于2026年11月21日8时" in out
        # cause, handling, harm, lessons: every line, trailing punctuation normalised
        assert "网站后台存在弱口令，攻击者暴力破解后登录后台。" in out
        assert "内容管理系统未及时升级。" in out
        assert "发现后立即关闭网站，保存日志和被篡改页面。" in out
        assert "清除植入内容，修改全部口令，升级系统后恢复访问。" in out
        assert "首页被篡改约2小时，有害信息被浏览约3000次，未造成个人信息泄露。" in out
        assert "对网站管理员孙七提出问责建议。" in out
        assert "建立口令定期更换和登录失败锁定制度；教训是日常巡检流于形式。" in out
        for label, due, status in DEADLINES:
            assert label in out and due in out and status in out
        assert "需要说明的情况" in out and WARNING + "。" in out
        assert out.index("六、报告时限执行情况") < out.index(WARNING) < out.index("特此报告。")
        assert out.index("特此报告。") < out.index("2026年11月28日印发")
        assert "请示" not in out and "妥否" not in out and "特此决定" not in out
    assert "　　1.内部报告：2026年11月20日（星期五）10时前（逾期1小时30分钟完成）" in text
    assert "　　4.事件处置总结报告：2026年12月20日（星期日）24时前（按时完成）" in text
    assert "　　1." + WARNING + "。" in text
    assert "<table>" in html and html.count("<tr>") == 1 + len(DEADLINES)
    assert "<thead><tr><th>事项</th><th>时限</th><th>执行情况</th></tr></thead>\n<tbody>" in html
    assert "<tr><td>对外报告</td><td>2026年11月20日（星期五）13时前</td><td>按时完成</td></tr>" in html
    assert_clean_notice(html, text)


def test_summary_without_warnings_or_deadlines():
    html, text = both("incident_summary", summary_ctx(warnings=[], deadlines=[], harm=""))
    for out in (html, text):
        assert "需要说明的情况" not in out and "无。" in out
        assert "危害和影响仍在评估" in out and "特此报告。" in out
    assert "<table>" not in html


def test_summary_is_upward_and_needs_a_signer():
    with pytest.raises(Exception, match="签发人"):
        letterhead("incident_summary", signer="")
    lh = letterhead("incident_summary")
    assert lh.upward and lh.doc_type == "报告" and lh.signer == "赵六"


def test_summary_escapes_operator_text():
    html, text = both("incident_summary", summary_ctx(
        title=SCRIPT, cause="<b>弱口令</b>", handling="<i>关闭</i>", harm="<u>无</u>", lessons="<s>教训</s>",
        deadlines=[["<em>内部报告</em>", "2026年11月20日", "已完成"]], warnings=["<q>迟报</q>"]))
    for raw in (SCRIPT, "<b>弱口令</b>", "<i>关闭</i>", "<u>无</u>", "<s>教训</s>", "<em>内部报告</em>", "<q>迟报</q>"):
        assert raw not in html, raw
        assert raw in text, raw
    assert SCRIPT_ESCAPED in html and "&lt;b&gt;弱口令&lt;/b&gt;。" in html


# ----------------------------------------------------------------- 期限调整通知


def test_deadline_adjustment_lists_old_and_new_time_limits():
    html, text = both("deadline_adjustment", adjustment_ctx())
    for out in (html, text):
        assert "国办发明电〔2026〕7号公布的2027年节假日安排" in out and "所定有关办理期限现予调整" in out
        assert "2027年1月21日（星期四）24时前" in out and "2027年1月22日（星期五）24时前" in out
        assert "第20社区等23个单位" in out and "第21社区" not in out  # more than 20 units shortened
        assert "特此通知。" in out
    assert "原定2027年1月21日（星期四）24时前，调整为2027年1月22日（星期五）24时前" in text
    assert "&lt;弱口令&gt;" in html and "<弱口令>" in text  # operator text escaped in HTML only


# ----------------------------------------------------------------- 申诉处理决定


def test_appeal_decision_upheld_changed_or_revoked():
    for out in both("appeal_decision", appeal_ctx()):
        assert ("何晓丽同志对中共X街道工作委员会2026年3月5日作出的《关于对X社区有关责任人员问责的决定》"
                "（X街党工发〔2026〕5号）中给予其诫勉的问责不服") in out
        assert "于2026年3月20日提出书面申诉" in out and "经复查，当事人已及时报告，情节较轻。" in out
        assert "将原问责决定中对何晓丽同志的问责方式变更为通报。原问责决定的其他内容不变。" in out
        assert "特此决定。" in out
    html, text = both("appeal_decision", appeal_ctx())
    assert "理由是：事实认定有误<请复查>。" in text and "&lt;请复查&gt;" in html  # escaped in HTML only
    for out in both("appeal_decision", appeal_ctx(upheld=True, new_forms=[])):
        assert "维持原问责决定。" in out and "变更" not in out and "其他内容不变" not in out
    for out in both("appeal_decision", appeal_ctx(opinion="经复查，情节较轻")):
        assert "经复查，经复查" not in out and "经复查，情节较轻。" in out
    for out in both("appeal_decision", appeal_ctx(new_forms=[])):
        assert "撤销原问责决定中对何晓丽同志的问责。" in out

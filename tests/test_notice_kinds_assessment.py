"""The 考核通知 and 考核结果通报 notice kinds (SPEC §3.4, §4).

Both outputs carry the key facts, a missing variable raises (StrictUndefined), operator
text is escaped in the HTML, long lists are shortened in the text (chat) output only where
documented, and the variables the templates read are exactly the documented ones (so
callers and templates agree). No database: the letterhead is built from an unsaved OrgUnit.
"""
from __future__ import annotations

import pytest
from jinja2 import UndefinedError

from support import assert_every_variable_required
from support import render_both as both
from test_notices import assert_clean_notice, html_body

from models.org import OrgUnit
from models.notices import KIND_INFO, build_letterhead, committee_rule, format_doc_number, render, required_variables

SCRIPT = "<script>alert('x')</script>"
SCRIPT_ESCAPED = "&lt;script&gt;"
PREFIX = "X街党工发"
DUE = "2026年12月15日（星期二）24时"
EXPORT = "附件：考核结果明细表"

#: The documented variables of each kind (the brief and the template headers).
DOCUMENTED: dict[str, set[str]] = {
    "assessment_notice": {
        "year", "units", "self_assessment_due", "criteria", "bonus_items", "veto_items",
        "contact_office", "contacts", "calendar_unconfirmed", "grades",
    },
    "assessment_result": {
        "year", "results", "grade_counts", "excellent", "failed", "notes",
    },
}

TITLES = {
    "assessment_notice": ("关于开展2026年度网络安全责任制检查考核的通知", 9),
    "assessment_result": ("关于2026年度网络安全责任制检查考核结果的通报", 31),
}


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T09:30:00+08:00")


def letterhead(kind: str, **over):
    issuer = OrgUnit(code="JD01-DGW", name="中共X街道工作委员会", kind="committee", doc_prefix=PREFIX)
    title, n = TITLES[kind]
    args = dict(title=title, main_to="各社区党委", doc_number=format_doc_number(PREFIX, 2026, n),
                copy_no="000031", cc=["街道纪工委", "街道网信办"])
    if kind == "assessment_result":
        args["attachments"] = ["考核结果明细表"]
    args.update(over)
    return build_letterhead(issuer, kind, **args)


# ----------------------------------------------------------------- contexts

UNITS = ["东风社区", "红旗社区", "向阳社区"]


def criterion(category, item, max_points, method_label, requirement):
    return {"category": category, "item": item, "max_points": max_points, "method_label": method_label,
            "requirement": requirement}


CRITERIA = [
    criterion("组织领导/责任落实", "网络安全纳入议事日程", 15, "系统自动计分",
              "每年至少召开2次专题会议研究网络安全工作"),
    criterion("组织领导/责任落实", "签订网络安全责任书", 5, "人工评分", "明确第一责任人和直接责任人，签订责任书。"),
    criterion("制度建设", "网络安全管理制度", 10, "人工评分", "制定并落实网络安全管理制度；"),
    criterion("技术防护", "资产台账和等级保护", 22.5, "人工评分", "建立资产台账，按要求开展等级保护工作"),
    criterion("监测预警与信息通报", "问题整改", 17.5, "系统自动计分", "每逾期整改一项扣1分"),
    criterion("应急处置", "事件报告和演练", 20, "系统自动计分", "每迟报、漏报一次扣2分；每年至少开展1次应急演练"),
    criterion("宣传教育培训", "培训和宣传", 10, "系统自动计分", ""),
]
BONUS = [{"item": "网络安全工作获得区级以上表彰。", "max_points": 2},
         {"item": "发现并报告重大漏洞", "max_points": 1.5}]
VETO = ["发生较大及以上网络安全事件并被问责", "封锁、瞒报网络安全事件", "考核中弄虚作假、伪造工作记录"]


def notice_ctx(**over) -> dict:
    ctx = dict(
        year=2026, units=list(UNITS), self_assessment_due=DUE,
        criteria=[dict(c) for c in CRITERIA], bonus_items=[dict(b) for b in BONUS], veto_items=list(VETO),
        contact_office="街道网信办", contacts=["李四", "王五"], calendar_unconfirmed=False, grades={"优秀": 90, "良好": 80, "合格": 60},
    )
    ctx.update(over)
    ctx.setdefault("letterhead", letterhead("assessment_notice"))
    return ctx


def result(rank, unit_name, secretary, score, grade, deductions=0, veto=False, self_assessment="已自评"):
    return {"rank": rank, "unit_name": unit_name, "secretary": secretary, "score": score, "grade": grade,
            "deductions": deductions, "veto": veto, "self_assessment": self_assessment}


RESULTS = [
    result(1, "东风社区", "张三", "95", "优秀"),
    result(2, "红旗社区", "李红", "92.5", "优秀", 1),
    result(2, "向阳社区", "王阳", "92.5", "优秀", 1),  # tie: same rank
    result(4, "光明社区", "赵明", "84", "良好", 3),
    result(5, "幸福社区", "", "71.5", "合格", 5, self_assessment="未按时自评"),
    result(6, "和平社区", "钱和", "58", "不合格", 9),
    result(7, "新华社区", "孙华", "76", "不合格", 2, veto=True),
]
VETO_REASON = "考核得分76分，但触及“封锁、瞒报网络安全事件”一票否决项目，考核等次确定为不合格"
FAILED = [{"unit_name": "和平社区", "reason": "全年3次迟报网络安全事件，2项问题逾期未整改；"},
          {"unit_name": "新华社区", "reason": VETO_REASON}]
GRADE_COUNTS = [["优秀", 3], ["良好", 1], ["合格", 1], ["不合格", 2]]
NOTES = ["部分社区专题会议记录不完整", "个别社区未开展应急演练。"]


def result_ctx(**over) -> dict:
    ctx = dict(
        year=2026, results=[dict(r) for r in RESULTS],
        grade_counts=[list(g) for g in GRADE_COUNTS], excellent=["东风社区", "红旗社区", "向阳社区"],
        failed=[dict(f) for f in FAILED], notes=list(NOTES),
    )
    ctx.update(over)
    ctx.setdefault("letterhead", letterhead("assessment_result"))
    return ctx


CONTEXTS = {"assessment_notice": notice_ctx, "assessment_result": result_ctx}


def many_results(n: int) -> list[dict]:
    out = []
    for i in range(n):
        score = 100 - (i // 2) * (60 / max(n // 2, 1))  # pairs tie
        grade = "优秀" if score >= 90 else "良好" if score >= 80 else "合格" if score >= 60 else "不合格"
        out.append(result(i // 2 * 2 + 1, f"第{i + 1}社区", f"书记{i + 1}", f"{score:.1f}", grade, i % 7,
                          veto=(i % 100 == 99), self_assessment="未按时自评" if i % 13 == 0 else "已自评"))
    return out


# ----------------------------------------------------------------- contract


@pytest.mark.parametrize("kind", sorted(DOCUMENTED))
@pytest.mark.parametrize("ext", ["html", "txt"])
def test_required_variables_match_the_documented_set(kind, ext):
    assert required_variables(kind, ext) == DOCUMENTED[kind] | {"letterhead"}


@pytest.mark.parametrize("kind", sorted(DOCUMENTED))
def test_every_missing_variable_raises(kind):
    assert_every_variable_required(kind, CONTEXTS[kind](), DOCUMENTED[kind])


def test_item_keys_are_required():
    for key in ("category", "item", "max_points", "method_label", "requirement"):
        criteria = [dict(c) for c in CRITERIA]
        for c in criteria:
            del c[key]
        with pytest.raises(UndefinedError):
            render("assessment_notice", notice_ctx(criteria=criteria))
    for key in ("item", "max_points"):
        with pytest.raises(UndefinedError):
            render("assessment_notice", notice_ctx(bonus_items=[{k: v for k, v in b.items() if k != key} for b in BONUS]))
    for key in ("rank", "unit_name", "secretary", "score", "grade", "deductions", "veto", "self_assessment"):
        results = [{k: v for k, v in r.items() if k != key} for r in RESULTS]
        with pytest.raises(UndefinedError):
            render("assessment_result", result_ctx(results=results))
    for key in ("unit_name", "reason"):
        with pytest.raises(UndefinedError):
            render("assessment_result", result_ctx(failed=[{k: v for k, v in f.items() if k != key} for f in FAILED]))


@pytest.mark.parametrize("kind", sorted(DOCUMENTED))
def test_layout_elements(kind):
    html, text = both(kind, CONTEXTS[kind]())
    title, n = TITLES[kind]
    assert KIND_INFO[kind][1] == {"assessment_notice": "通知", "assessment_result": "通报"}[kind]
    assert not KIND_INFO[kind][2]
    for out in (html, text):
        assert f"{PREFIX}〔2026〕{n}号" in out and "000031" in out and title in out
        assert "各社区党委：" in out and "中共X街道工作委员会文件" in out
        assert "2026年11月28日印发" in out and "签发人" not in out
    assert "抄送：街道纪工委，街道网信办。" in text


# ----------------------------------------------------------------- 考核通知


def test_notice_key_facts():
    html, text = both("assessment_notice", notice_ctx())
    for out in (html, text):
        for heading in ("一、考核范围", "二、考核内容和分值", "三、考核方式", "四、时间安排", "五、结果运用"):
            assert heading in out
        assert "2026年度网络安全责任制检查考核" in out and "考核编号" not in out and "ASM-" not in out
        assert f"为贯彻落实{committee_rule()}关于" in out  # letterhead.rule
        assert "街道党工委《网络安全责任制实施办法》" not in out
        for c in CRITERIA:
            assert c["category"] in out and c["item"] in out and c["method_label"] in out
        assert "每年至少召开2次专题会议研究网络安全工作。" in out  # 。 appended
        assert "制定并落实网络安全管理制度。" in out  # ； normalised
        assert "基本分值合计100分" in out
        assert "在基本分值之外予以加分，加分后考核得分不超过100分" in out
        assert "网络安全工作获得区级以上表彰，最高加2分。" in out
        assert "发现并报告重大漏洞，最高加1.5分。" in out
        assert "一票否决" in out and "考核等次直接确定为不合格" in out
        for v in VETO:
            assert v + "。" in out
        assert "系统自动计分项目4项，人工评分项目3项" in out
        assert "考核得分为系统自动计分、人工评分与加分之和。" in out  # the bonus counts too
        assert "系统根据全年工作记录" in out and "单位自评" in out and "人工评分" in out
        assert f"请于{DUE}前完成自评" in out and "未按时自评" in out
        assert "纳入社区书记年底考核" in out
        for band in ("优秀（90分及以上）", "良好（80分及以上、不满90分）", "合格（60分及以上、不满80分）",
                     "不合格（不满60分）"):
            assert band in out
        assert "联系人及联系方式" not in out
        assert out.index("五、结果运用") < out.index("特此通知。") < out.index("2026年11月28日印发")
        assert "特此通报" not in out and "签发人" not in out
    assert "　　1.组织领导/责任落实——网络安全纳入议事日程（15分，系统自动计分）：每年至少召开2次专题会议研究网络安全工作。" in text
    assert "　　4.技术防护——资产台账和等级保护（22.5分，人工评分）：建立资产台账，按要求开展等级保护工作。" in text
    assert "　　7.宣传教育培训——培训和宣传（10分，系统自动计分）。" in text
    for out in (html, text):
        assert "东风社区、红旗社区、向阳社区，共3个社区" in out
        assert "联系人：街道网信办李四、王五。" in out
    raw = render("assessment_notice", notice_ctx())[0]  # names in no-break spans
    assert ('<span class="nb">东风社区</span>、<span class="nb">红旗社区</span>、<span class="nb">向阳社区</span>，'
            "共3个社区") in raw
    assert '<p>联系人：街道网信办<span class="nb">李四</span>、<span class="nb">王五</span>。</p>' in raw
    assert "<thead><tr><th>序号</th><th>考核类别</th>" in html and "</tr></thead>\n<tbody>" in html
    assert_clean_notice(html, text)
    assert "<table>" in html and html.count("<tr>") == 1 + len(CRITERIA) + 1
    assert ("<tr><td>1</td><td>组织领导/责任落实</td><td>网络安全纳入议事日程</td><td>15</td>"
            "<td>系统自动计分</td><td>每年至少召开2次专题会议研究网络安全工作。</td></tr>") in html
    assert "<td>22.5</td>" in html and "<td>合计</td>" not in html and ">合计</td><td>100</td>" in html


UNCONFIRMED = "自评时限所在年度的法定节假日安排尚未公布，上述时限暂按现行工作日计算，安排公布后如有调整，另行通知。"


def test_notice_says_when_the_self_assessment_due_date_is_not_confirmed():
    """A due date in a year whose holidays are not yet published (calendar_unconfirmed) is
    said so right after it, as in the 整改通知; without the flag nothing is said."""
    html, text = both("assessment_notice", notice_ctx(calendar_unconfirmed=True))
    assert f"<p>{UNCONFIRMED}</p>" in html
    assert f"\n　　{UNCONFIRMED}\n" in text
    for out in (html, text):
        assert out.index(f"请于{DUE}前完成自评") < out.index(UNCONFIRMED) < out.index("（二）评分和通报")
    html, text = both("assessment_notice", notice_ctx(calendar_unconfirmed=False))
    for out in (html, text):
        assert "尚未公布" not in out and "另行通知" not in out


def test_notice_more_than_20_units_shows_the_first_20_and_the_count():
    units = [f"第{i}社区" for i in range(1, 26)]
    html, text = both("assessment_notice", notice_ctx(units=units))
    for out in (text, html_body(html)):
        assert "、".join(units[:20]) + "等25个社区" in out
        assert "第21社区" not in out and "第25社区" not in out
    units = units[:20]
    html, text = both("assessment_notice", notice_ctx(units=units))
    for out in (text, html_body(html)):
        assert "、".join(units) + "，共20个社区" in out and "等20个" not in out


def test_notice_without_bonus_or_veto_items():
    html, text = both("assessment_notice", notice_ctx(bonus_items=[], veto_items=[]))
    for out in (html, text):
        assert "本年度不设加分项目。" in out and "本年度不设一票否决项目。" in out
        assert "考核得分为系统自动计分与人工评分之和。" in out
        assert "实行一票否决，考核等次直接确定为不合格" not in out and "最高加" not in out
        assert "特此通知。" in out


def test_notice_escapes_operator_text():
    criteria = [dict(CRITERIA[0], category="<b>组织</b>", item=SCRIPT, requirement="<i>要求</i>")]
    html, text = both("assessment_notice", notice_ctx(
        units=["<u>东风</u>社区"], criteria=criteria, bonus_items=[{"item": "<em>表彰</em>", "max_points": 2}],
        veto_items=["<s>瞒报</s>"], contacts=["<q>李四</q>"], self_assessment_due="<tt>12月15日</tt>"))
    for raw in (SCRIPT, "<b>组织</b>", "<i>要求</i>", "<u>东风</u>", "<em>表彰</em>", "<s>瞒报</s>", "<q>李四</q>",
                "<tt>12月15日</tt>"):
        assert raw not in html, raw
        assert raw in text, raw
    assert SCRIPT_ESCAPED in html and "&lt;i&gt;要求&lt;/i&gt;。" in html


# ----------------------------------------------------------------- 考核结果通报


def test_result_key_facts():
    html, text = both("assessment_result", result_ctx())
    for out in (html, text):
        for heading in ("一、总体情况", "二、考核结果", "三、表扬", "四、存在问题", "五、结果运用"):
            assert heading in out
        assert "2026年度网络安全责任制检查考核" in out and "考核编号" not in out and "ASM-" not in out
        assert f"按照{committee_rule()}关于建立网络安全责任制检查考核制度的要求" in out
        assert "街道党工委《网络安全责任制实施办法》" not in out
        assert "考核由系统根据全年工作记录自动计分，街道组织人工评分，并参考各社区的自评情况，现已完成。" in out
        assert ("本次考核共7个社区参加。考核等次为优秀的3个、良好的1个、合格的1个、不合格的2个。"
                "其中1个社区因触及一票否决项目，考核等次确定为不合格。1个社区未按时提交自评。") in out
        assert "得分相同的名次并列；触及一票否决项目的社区不论得分高低，考核等次均为不合格，不参加排名" in out
        for r in RESULTS:
            assert r["unit_name"] in out and r["score"] in out and r["grade"] in out
        for name in ("张三", "李红", "王阳", "赵明", "钱和", "孙华"):
            assert name in out
        assert "未按时自评" in out and "空缺" in out
        assert "东风社区、红旗社区、向阳社区等3个社区考核等次为优秀，予以通报表扬。" in out
        assert "下列2个社区考核等次为不合格" in out
        assert "1.和平社区：全年3次迟报网络安全事件，2项问题逾期未整改。" in out
        assert "2.新华社区：" + VETO_REASON + "。" in out
        assert "需要说明的情况：" in out
        assert "1.部分社区专题会议记录不完整。" in out and "2.个别社区未开展应急演练。" in out
        assert "纳入社区书记年底考核" in out and "1个月内完成整改" in out and "书面报告街道党工委" in out
        assert out.index("五、结果运用") < out.index("特此通报。") < out.index("2026年11月28日印发")
        assert "特此通知" not in out and "签发人" not in out
        assert EXPORT in out  # the letterhead's 附件说明
    # ties share a rank and say so; a vetoed unit has no rank, and its score is said not to count
    assert "　　第1名　东风社区（社区书记：张三），95分，优秀；无扣分事项；已自评。" in text
    assert "　　并列第2名　红旗社区（社区书记：李红），92.5分，优秀；扣分事项1项；已自评。" in text
    assert "　　并列第2名　向阳社区（社区书记：王阳），92.5分，优秀；扣分事项1项；已自评。" in text
    assert "　　第4名　光明社区" in text and "第3名" not in text and "并列第4名" not in text
    assert "　　第5名　幸福社区（社区书记：空缺），71.5分，合格；扣分事项5项；未按时自评。" in text
    assert ("　　新华社区（社区书记：孙华），得分76分，因触及一票否决项目，考核等次为不合格，不参加排名；"
            "扣分事项2项；已自评。") in text
    assert "第7名" not in text and "（一票否决）；" not in text
    assert "<table>" in html and html.count("<tr>") == 1 + len(RESULTS)
    assert "<thead><tr><th>名次</th><th>社区</th>" in html and "</tr></thead>\n<tbody>" in html
    assert "<tr><td>2</td><td>红旗社区</td><td>李红</td><td>92.5</td><td>优秀</td><td>1项</td><td>已自评</td></tr>" in html
    assert "<tr><td>—</td><td>新华社区</td>" in html
    raw = render("assessment_result", result_ctx())[0]  # names in no-break spans
    assert '<td><span class="nb">红旗社区</span></td><td><span class="nb">李红</span></td>' in raw
    assert '<td>幸福社区</td>' not in raw and "<td>空缺</td>" in raw
    assert "<td>不合格（一票否决）</td>" in html and "<td>未按时自评</td>" in html and "<td>无</td>" in html
    assert "<td>7</td>" not in html
    assert "完整名单见" not in text  # 7 results: no truncation
    assert_clean_notice(html, text)


def test_result_without_excellent_failed_or_notes():
    results = [result(1, "东风社区", "张三", "85", "良好"), result(1, "红旗社区", "李红", "85", "良好")]
    html, text = both("assessment_result", result_ctx(
        results=results, grade_counts=[["优秀", 0], ["良好", 2], ["合格", 0], ["不合格", 0]],
        excellent=[], failed=[], notes=[]))
    for out in (html, text):
        assert "本次考核没有考核等次为优秀的社区" in out
        assert "本次考核没有考核等次为不合格的社区" in out
        assert "一票否决" not in out and "未按时自评" not in out and "其中" not in out
        assert "考核等次为良好的2个。" in out and "优秀的0个" not in out  # grades with no unit: not printed
        assert "得分相同的名次并列：" in out
        assert "需要说明的情况" not in out and "特此通报。" in out
        assert "考核等次为不合格的社区，应当" not in out  # nobody to rectify
    assert "　　并列第1名　东风社区" in text and "　　并列第1名　红旗社区" in text
    # a single excellent unit: no 等1个
    html, text = both("assessment_result", result_ctx(excellent=["东风社区"]))
    for out in (html, text):
        assert "东风社区考核等次为优秀，予以通报表扬。" in out and "等1个" not in out


def test_result_any_other_self_assessment_value_counts_as_not_on_time():
    results = [dict(r) for r in RESULTS]
    results[0]["self_assessment"] = "逾期自评"
    results[1]["self_assessment"] = "未自评"
    html, text = both("assessment_result", result_ctx(results=results))
    for out in (html, text):
        assert "3个社区未按时提交自评。" in out
        assert "逾期自评" in out and "未自评" in out
    results = [dict(r, veto=False) for r in RESULTS[:3]]
    html, text = both("assessment_result", result_ctx(results=results))
    for out in (html, text):
        assert "其中" not in out and "不参加排名" not in out and "未按时提交自评" not in out
    # nobody self-assessed: the opening does not say the self-assessments were used
    results = [dict(r, self_assessment="未自评") for r in RESULTS]
    for out in both("assessment_result", result_ctx(results=results)):
        assert "自评情况，现已完成" not in out and "街道组织人工评分，现已完成" in out


def test_result_text_lists_the_first_50_and_html_all():
    results = many_results(120)
    html, text = both("assessment_result", result_ctx(results=results))
    for r in results[:50]:
        assert f"第{r['rank']}名　{r['unit_name']}（" in text
    for r in results[50:]:
        assert f"{r['unit_name']}（" not in text
        assert f"<td>{r['unit_name']}</td>" in html
    assert "以上列出前50个社区，共120个社区，完整名单见" + EXPORT in text
    assert "本次考核共120个社区参加" in text and "本次考核共120个社区参加" in html
    assert html.count("<tr>") == 1 + 120 and "完整名单见" not in html
    # notes: the text lists the first 50 as well
    notes = [f"第{i}社区未按时提交自评" for i in range(1, 61)]
    html, text = both("assessment_result", result_ctx(notes=notes))
    assert "　　50.第50社区未按时提交自评。" in text and "第51社区未按时提交自评" not in text
    assert "以上列出前50条，共60条。" in text
    assert "<p>60.第60社区未按时提交自评。</p>" in html and "以上列出前50条" not in html
    # exactly 50: nothing said about an attachment in the body
    html, text = both("assessment_result", result_ctx(results=results[:50]))
    assert "完整名单见" not in text and f"{results[49]['unit_name']}（" in text
    # no 附件 in the letterhead: the 明细表 is named, not called an attachment
    html, text = both("assessment_result", result_ctx(results=results, letterhead=letterhead(
        "assessment_result", attachments=[])))
    assert "完整名单见考核结果明细表。" in text and "附件" not in text


def test_result_escapes_operator_text():
    results = [dict(RESULTS[0], unit_name=SCRIPT, secretary="<b>张三</b>", score="<i>95</i>", grade="<u>优秀</u>",
                    self_assessment="<s>已自评</s>")]
    html, text = both("assessment_result", result_ctx(
        results=results, grade_counts=[["<em>优秀</em>", 1]], excellent=["<q>东风</q>"],
        failed=[{"unit_name": "<tt>和平</tt>", "reason": "<big>迟报</big>"}], notes=["<small>说明</small>"]))
    for raw in (SCRIPT, "<b>张三</b>", "<i>95</i>", "<u>优秀</u>", "<s>已自评</s>", "<em>优秀</em>", "<q>东风</q>",
                "<tt>和平</tt>", "<big>迟报</big>", "<small>说明</small>"):
        assert raw not in html, raw
        assert raw in text, raw
    assert SCRIPT_ESCAPED in html and "&lt;big&gt;迟报&lt;/big&gt;。" in html


def test_notice_states_the_catalogues_grade_bands():
    for out in both("assessment_notice", notice_ctx()):
        assert "优秀（90分及以上）、良好（80分及以上、不满90分）、合格（60分及以上、不满80分）和不合格（不满60分）" in out
    for out in both("assessment_notice", notice_ctx(grades={"优秀": 85, "良好": 75.5, "合格": 60})):
        assert "优秀（85分及以上）、良好（75.5分及以上、不满85分）、合格（60分及以上、不满75.5分）" in out


# ----------------------------------------------------------------- the shipped catalogue (issue #11)


def test_default_catalogue_texts_read_as_a_notice_prints_them():
    """The texts of deployments/criteria.yaml go into the 考核通知 and the 考核结果通报 as they
    are: no ≥/≤ or other symbols, no half-width space next to a Chinese character."""
    import yaml

    from models.assessment import cn_text
    from models.scoring import DEFAULT_CATALOGUE
    from test_notices import LOOSE_SPACE

    raw = DEFAULT_CATALOGUE.read_text(encoding="utf-8")
    assert not any(sym in raw for sym in "≥≤")
    data = yaml.safe_load(raw)
    texts = [entry[key] for part in ("items", "bonus", "veto") for entry in data[part]
             for key in ("category", "item", "requirement") if key in entry]
    assert len(texts) > 30
    for t in texts:
        assert not LOOSE_SPACE.search(t) and not any(sym in t for sym in "≥≤<>"), t
    assert "全年至少召开2次专题会议研究网络安全工作" in texts
    # a year's own catalogue is tidied when printed; a space between two Latin/digit tokens stays
    assert cn_text(" 全年至少召开 2 次专题会议 ") == "全年至少召开2次专题会议"
    assert cn_text("每迟报、漏报一次扣 2 分") == "每迟报、漏报一次扣2分"
    assert cn_text("按 GB/T 22239 开展等级保护") == "按GB/T 22239开展等级保护"

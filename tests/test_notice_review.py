"""Every notice kind of a scripted year, read as a 公文 clerk reads them (issue #11).

One year (tests/notice_year.py) issues every kind through the domain core and the sweep;
the checks below are the classes of defect a clerk would refuse to stamp: deadlines printed
as the next day's 00:00, statements of what did not happen, inexact citations, case ids in
the body, reminders that are untrue at their time, notices that miss the original
addressees, doubled words, one 份号 for every copy, a drill note in English.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import notice_year as year
from test_notice_layout import needs_pdf

CASE_ID = re.compile(r"\b(?:INC|RECT|ACC|ASM|ACT)-\d{4}-\d{4}\b")
CJK = r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]"
HALF_WIDTH_SPACE = re.compile(rf"{CJK} +|(?<! ) +{CJK}")
SOURCE = (Path(__file__).resolve().parent.parent / "docs" / "source.md").read_text(encoding="utf-8")


def body(n) -> str:
    """The text without the 附注 line (the only place a case id may appear)."""
    return "\n".join(line for line in n.text.splitlines() if not line.strip().startswith("（事项编号"))


def visible_html(n) -> str:
    """The HTML's text between tags, without the 附注 paragraph and the <title>."""
    html = re.sub(r'<p class="note"[^>]*>.*?</p>', "", n.html)
    html = re.sub(r"<(style|title)>.*?</\1>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", "", html)


@pytest.fixture
def notices(org):
    ids = year.script()
    by_kind: dict[str, list] = {}
    for n in year.all_notices():
        by_kind.setdefault(n.kind, []).append(n)
    return ids, by_kind


def test_a_scripted_year_issues_every_kind_and_each_reads_true(notices):
    from models.accountability import CLAUSES
    from models.notices import KIND_INFO

    ids, by_kind = notices
    assert set(by_kind) == set(KIND_INFO), set(KIND_INFO) - set(by_kind)
    every = [n for kind in by_kind.values() for n in kind]

    # 1. deadlines are the last day, never the next day's 00:00; no half-width spaces or ≥ in Chinese
    for n in every:
        for out in (n.text, visible_html(n)):
            assert not re.search(r"00:00|(?<!\d)0时", out), (n.kind, re.findall(r".{20}(?:00:00|(?<!\d)0时).{5}", out))
            assert "≥" not in out and "≤" not in out, (n.kind, n.title)
            assert not HALF_WIDTH_SPACE.search(body(n)), (n.kind, HALF_WIDTH_SPACE.search(body(n)))
    [notice, _] = by_kind["rectification_notice"]
    assert "请于2026年6月15日（星期一）24时前完成整改并报送整改报告" in notice.text

    # 4. references by 文号 and title; case ids only in the 附注 line
    for n in every:
        assert not CASE_ID.search(n.title), n.title
        assert not CASE_ID.search(body(n)), (n.kind, CASE_ID.search(body(n)))
        assert not CASE_ID.search(visible_html(n)), (n.kind, n.title)
        notes = [line for line in n.text.splitlines() if "事项编号" in line]
        assert notes == [f"　　（事项编号：{n.case_id}；本件为演练文书，系统时钟设定为{notes[0].split('设定为')[1]}"], notes

    # 2. the automatic proposal is a draft; the decision states only what was recorded
    drafts = [n for n in by_kind["accountability_proposal"] if n.doc_number is None]
    signed = [n for n in by_kind["accountability_proposal"] if n.doc_number]
    assert len(drafts) == 3 and len(signed) == 1
    for n in drafts:
        assert n.title.endswith("的请示（草稿）") and "签发人" not in n.text and "经街道网信办审核确认。" not in n.text
        assert n.recipients and set(n.recipients) <= {year.OFFICE, "p-liu-jianguo"}
    assert signed[0].title.endswith("的请示") and "签发人：孙建华" in signed[0].text
    [decision] = by_kind["accountability_decision"]
    assert "听取了" not in decision.text and "组织调查核实" not in decision.text  # none recorded
    assert f"街道网信办以《{signed[0].title}》（{signed[0].doc_number}）提出问责建议" in decision.text

    # 3. citations: the committee's words exactly, its rule by name, the 问责条例's articles
    for n in [*by_kind["accountability_proposal"], decision]:
        quoted = re.findall(r"规定的“(.+?)”情形", n.text)
        assert quoted and all(q in SOURCE for q in quoted), quoted
        assert "《东湖街道网络安全责任制实施办法》第四部分第（四）项" in n.text and "XX街道" not in n.text
        assert "《中国共产党问责条例》第七条、第八条" in n.text and "》、《" not in n.text
    c1 = [n for n in drafts if "门户网站" in n.text][0]
    assert "导致反动言论或者谣言等违法有害信息大面积扩散" in c1.text and CLAUSES["c1_defacement_unreported"] in c1.text
    c4 = [n for n in drafts if "限期整改" in n.text][0]
    assert "不及时整改并造成严重后果的”情形。是否造成严重后果，须经调查核实认定。" in c4.text
    assert "经催办、约谈后仍未整改到位" in c4.text  # both steps were taken

    # 5. reminders true at their time
    reminders = by_kind["rectification_reminder"]
    early = [n for n in reminders if n.context["stage"] == "reminder"]
    assert early and all("期限尚未届满" in n.text and "逾期" not in n.text.split("现予提醒")[0] for n in early)
    self_reminders = [n for n in by_kind["report_reminder"] if n.case_id.startswith("ASM")]
    before = [n for n in self_reminders if "按时" in n.title]
    after = [n for n in self_reminders if "督促" in n.title]
    assert len(before) == len(after) == 3
    assert all("期限尚未届满" in n.text and "超过时限" not in n.text for n in before)
    assert all("这是第2次催报。" in n.text for n in after)  # the 临期提醒 was sent: this is the 2nd
    for n in self_reminders:
        assert "迟报" not in n.text and "瞒报" not in n.text
    appeal_chase, verify_chase = sorted(by_kind["internal_reminder"], key=lambda n: n.case_id)
    for n in (appeal_chase, verify_chase):
        assert n.doc_number is None and "通知" not in n.title and "迟报" not in n.text and not re.search(r"日印发", n.text)
    assert appeal_chase.issuer_unit == "JD01" and appeal_chase.recipients == [year.STREET]
    assert verify_chase.issuer_unit == "WXB" and set(verify_chase.recipients) == {year.OFFICE, "p-liu-jianguo"}
    assert "孙建华同志、刘建国同志：" in verify_chase.text  # to the verifiers by name, not 网信办 to 网信办

    # 6. the 事件报告: measures entered, the reporting path only where one is owed
    large, general = sorted(by_kind["incident_report"], key=lambda n: n.case_id)
    assert "已关闭网站并保存日志" in large.text
    assert large.text.count("省级网信部门") >= 1 and "报送省级网信部门。" not in large.text.replace("报省级网信部门（", "")
    assert "省级网信部门" not in general.text

    # 7. a moved deadline is told to everyone the 整改通知 went to, with the same 主送 and 抄送
    original = [n for n in by_kind["rectification_notice"] if n.case_id == ids["extended"]][0]
    moved = by_kind["deadline_adjustment"]
    assert len(moved) == 2  # the approved extension, the failed verification
    for n in moved:
        assert n.recipients == original.recipients
        assert n.context["letterhead"]["main_to"] == original.context["letterhead"]["main_to"]
        assert n.context["letterhead"]["cc"] == original.context["letterhead"]["cc"] == ["街道综合治理办公室"]
        assert f"《{original.title}》（{original.doc_number}）所定有关办理期限现予调整" in n.text

    # 8. the 申诉处理决定
    [appeal] = by_kind["appeal_decision"]
    assert "经复查，经复查" not in appeal.text and "抄送：东风社区。" in appeal.text
    assert f"《{decision.title}》（{decision.doc_number}）" in appeal.text

    # 10. 份号 per copy, 保密期限 on classified notices, one Chinese drill note
    from models.notices import copy_for

    first, second = (copy_for(notice, p)[1] for p in notice.recipients[:2])
    assert "份号：000001" in first and "份号：000002" in second and "份号" not in notice.text
    classified = [n for n in every if n.classified]
    assert classified and all("秘密★10年" in n.text for n in classified)
    for n in every:
        assert "DUTYFLOW_NOW" not in n.text + n.html
        assert sum("演练文书" in line or "演练时钟" in line for line in n.text.splitlines()) == 1


def test_criteria_texts_have_no_symbols_or_half_width_spaces_in_chinese():
    import yaml

    def strings(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for k, v in node.items():
                yield from strings(k)
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)

    path = Path(__file__).resolve().parent.parent / "deployments" / "criteria.yaml"
    texts = [t for t in strings(yaml.safe_load(path.read_text(encoding="utf-8"))) if re.search(CJK, t)]
    assert len(texts) > 10
    for t in texts:
        assert "≥" not in t and "≤" not in t, t
        assert not HALF_WIDTH_SPACE.search(t), t


@needs_pdf
def test_every_kind_of_the_year_prints_in_the_gbt_9704_layout(notices):
    """Each kind of the scripted year as PDF and DOCX: the body on the 28-character grid, the
    版记 at the foot of the last page and in one piece (none on a 督办提醒), page numbers per
    odd/even page, and the same words as the notice (no next-day 00:00, no case id before the 附注)."""
    from test_notice_layout import BOTTOM, LEFT, PITCH, RIGHT, open_docx, rendered

    _, by_kind = notices
    for kind, issued in sorted(by_kind.items()):
        n = max(issued, key=lambda x: len(x.text))  # the longest of its kind
        doc = rendered(n.html)
        text = doc.text()
        assert n.title.replace("“", "").replace("”", "")[:10] in text.replace("“", "").replace("”", ""), kind
        assert not re.search(r"00:00|(?<!\d)0时", text), kind
        assert not CASE_ID.search(text.split("（事项编号")[0]), kind
        ems = [sum(1 if ord(c) > 0x2000 else 0.5 for c in ln.text) for ln in doc.lines
                if abs(ln.x - LEFT) < 1 and not ln.text.endswith("印发")]  # the 版记 is 4号, not 3号
        assert max(ems) <= 28.5, (kind, max(ems))  # never more than 28 characters to a line
        numbers = [ln for ln in doc.lines if re.fullmatch(r"—\d+—", ln.text)]
        assert len(numbers) == doc.pages, kind
        for ln in numbers:  # odd pages right, even pages left
            assert (ln.x > (LEFT + RIGHT) / 2) == (ln.page % 2 == 1), (kind, ln)
        printed = doc.find("日印发")
        if kind == "internal_reminder":
            assert printed == [], kind
        else:
            [line] = printed
            assert line.page == doc.pages and BOTTOM - PITCH < line.y < BOTTOM, (kind, line)
        docx = open_docx(n.html)
        words = "".join(p.text for p in docx.paragraphs) + "".join(
            c.text for t in docx.tables for r in t.rows for c in r.cells)
        assert (n.doc_number or n.title[:10]) in words, kind
        assert not re.search(r"00:00", words), kind

"""Printable documents (SPEC §4): every notice kind as DOCX and PDF in the GB/T 9704 layout.

The DOCX must say exactly what the HTML says (same text, same order) with the standard
fonts, A4 page, margins 37/26/35/28 mm and ``— N —`` page numbers; the PDF is A4 with CJK
fonts embedded and fetches nothing. No database except for the CLI test.
"""
from __future__ import annotations

import io
import json
import re

import pytest
from docx.oxml.ns import qn
from docx.shared import Pt

import test_notice_kinds
import test_notice_kinds_assessment
import test_notice_kinds_more
from test_notices import incident_context, letterhead, reminder_context

from models.errors import DomainError
from tasks import documents
from models.notices import KIND_INFO, render

WS = re.compile(r"\s+")


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch):
    monkeypatch.setenv("DUTYFLOW_NOW", "2026-11-28T09:30:00+08:00")


def kind_contexts() -> dict:
    """A full rendering context for every notice kind (from the template tests)."""
    return {
        **test_notice_kinds.CONTEXTS, **test_notice_kinds_more.CONTEXTS,
        **test_notice_kinds_assessment.CONTEXTS,
        "incident_report": lambda: incident_context(letterhead=letterhead("incident_report", urgency="特急")),
        "report_reminder": lambda: reminder_context(letterhead=letterhead("report_reminder")),
        "internal_reminder": lambda: dict(
            subject="X社区整改报告", obligation_label="复核验收", due_at="2026年11月27日（星期五）24时",
            overdue_by="9小时", requirement="请及时对整改报告进行复核验收", count=1,
            letterhead=letterhead("internal_reminder")),
    }


def html_of(kind: str) -> str:
    return render(kind, kind_contexts()[kind]())[0]


def page_text(html: str) -> str:
    import lxml.html

    return WS.sub("", lxml.html.fromstring(html).find_class("page")[0].text_content())


def open_docx(data: bytes):
    import docx

    return docx.Document(io.BytesIO(data))


def docx_text(doc) -> str:
    """All text of the document body (paragraphs and table cells) in document order."""
    return WS.sub("", "".join(t.text or "" for t in doc.element.body.iter(qn("w:t"))))


def east_asia_font(run) -> str:
    return run._element.rPr.rFonts.get(qn("w:eastAsia"))


def paragraph(doc, text: str):
    found = [p for p in doc.paragraphs if text in p.text]
    assert found, f"no paragraph with {text!r}"
    return found[0]


def test_every_notice_kind_has_a_context():
    assert set(kind_contexts()) == set(KIND_INFO)


@pytest.mark.parametrize("kind", sorted(KIND_INFO))
def test_docx_says_what_the_html_says(kind):
    html = html_of(kind)
    doc = open_docx(documents.notice_docx(html))
    assert docx_text(doc) == page_text(html)  # nothing dropped, added or reordered
    assert len(doc.tables) == html.count("<table")


def test_docx_page_fonts_and_elements():
    doc = open_docx(documents.notice_docx(html_of("incident_report")))
    sec = doc.sections[0]
    mm = lambda *lengths: tuple(round(x.mm, 1) for x in lengths)  # noqa: E731 - stored in twips
    assert mm(sec.page_width, sec.page_height) == (210, 297)
    assert mm(sec.top_margin, sec.bottom_margin, sec.left_margin, sec.right_margin) == (37, 35, 28, 26)

    normal = doc.styles["Normal"]
    assert normal.font.size == Pt(16)
    assert normal.element.rPr.rFonts.get(qn("w:eastAsia")) == "仿宋_GB2312"

    mark = paragraph(doc, "X街道党工委文件")
    assert east_asia_font(mark.runs[0]) == "方正小标宋简体" and str(mark.runs[0].font.color.rgb) == "D40000"
    docno = paragraph(doc, "X街网安〔2026〕7号")
    assert docno.text == "X街网安〔2026〕7号\t签发人：王五"  # upward: 签发人 at the right end
    assert east_asia_font(docno.runs[-1]) == "楷体_GB2312"
    title = paragraph(doc, "关于社区门户网站被篡改事件的报告")
    assert east_asia_font(title.runs[0]) == "方正小标宋简体" and title.runs[0].font.size == Pt(22)
    assert title.alignment == 1  # centred
    assert paragraph(doc, "特急").runs[0].font.size == Pt(16)
    assert east_asia_font(paragraph(doc, "一、").runs[0]) == "黑体"
    body = paragraph(doc, "首页被植入")
    assert body.paragraph_format.first_line_indent == Pt(32)  # 2 characters
    assert "<script>alert('x')</script>" in body.text  # operator text kept verbatim, not markup
    assert body.paragraph_format.line_spacing == Pt(28.95)  # 22 lines per page (the grid's 579 twips)
    assert paragraph(doc, "2026年11月28日印发").text.endswith("\t2026年11月28日印发")
    cc = paragraph(doc, "抄送：")
    assert cc.paragraph_format.first_line_indent == Pt(-42)  # 回行 aligned after 抄送：
    borders = cc._p.pPr.find(qn("w:pBdr"))
    assert borders is not None and borders.find(qn("w:top")) is not None  # 版记 line

    for footer in (doc.sections[0].footer.paragraphs[0], doc.sections[0].even_page_footer.paragraphs[0]):
        assert footer.text.startswith("— ") and footer.text.endswith(" —")
        assert "PAGE" in "".join(t.text for t in footer._p.iter(qn("w:instrText")))


def test_docx_without_the_layout_is_refused():
    with pytest.raises(DomainError) as info:
        documents.notice_docx("<html><body><p>x</p></body></html>")
    assert info.value.field == "html"


def test_unknown_format_is_refused_naming_the_allowed_ones():
    with pytest.raises(DomainError) as info:
        documents.render(object(), "odt")
    assert info.value.field == "--format" and "html, text, pdf, docx" in info.value.message


# ----------------------------------------------------------------- PDF


def pdf_ready() -> str:
    """Why PDF cannot be produced here ('' when it can)."""
    try:
        documents._weasyprint()
    except DomainError as exc:
        return exc.message
    return ""


needs_pdf = pytest.mark.skipif(bool(pdf_ready()), reason=f"PDF not available here: {pdf_ready()}")


@needs_pdf
@pytest.mark.parametrize("kind", ["incident_report", "assessment_result"])
def test_pdf_is_a4_with_cjk_fonts_and_the_text(kind):
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(documents.notice_pdf(html_of(kind))))
    for page in reader.pages:
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)  # A4
    text = WS.sub("", "".join(page.extract_text() for page in reader.pages))
    for phrase in ("〔2026〕", "2026年11月28日印发", "—1—"):
        assert phrase in text
    fonts = {str(f["/BaseFont"]) for page in reader.pages for f in page["/Resources"]["/Font"].values()}
    assert any("CJK" in f or "UKai" in f for f in fonts), fonts


@needs_pdf
def test_pdf_fetches_nothing():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        html = html_of("report_reminder").replace(
            "</body>", f'<img src="{url}/tracker.png"><link rel="stylesheet" href="{url}/x.css"></body>'
        )
        assert documents.notice_pdf(html).startswith(b"%PDF")
    finally:
        server.shutdown()
        server.server_close()
    assert asked == []


# ----------------------------------------------------------------- CLI


def test_cli_renders_each_format_and_refuses_a_bad_one(org, harness_env, tmp_path):
    from test_cli import cli

    env = {**harness_env, "DUTYFLOW_NOW": "2026-11-28T09:30:00+08:00"}

    params = {"actor": "p-guo-tao", "unit": "SQ03", "category": "defacement", "level": "一般（Ⅳ级）",
              "title": "门户网站被篡改", "description": "首页被篡改", "discovered_at": "2026-11-28T09:00:00+08:00"}
    notice_id = json.loads(cli("run", "report-incident", "--params", json.dumps(params, ensure_ascii=False), env=env).stdout)["notices"][0]
    formats = ["html", "text", "docx"] + (["pdf"] if not pdf_ready() else [])
    for fmt in formats:
        out = tmp_path / f"notice.{documents.FORMATS[fmt]}"
        cli("notice", "render", notice_id, "--format", fmt, "--out", str(out), env=env)
        data = out.read_bytes()
        if fmt == "docx":
            assert "报告" in docx_text(open_docx(data))
        elif fmt == "pdf":
            assert data.startswith(b"%PDF")
        else:
            assert "报告" in data.decode("utf-8")
    bad = tmp_path / "notice.odt"
    proc = cli("notice", "render", notice_id, "--format", "odt", "--out", str(bad), env=env, check=2)
    assert "--format" in proc.stderr and "docx" in proc.stderr and not bad.exists()
    proc = cli("notice", "render", "NTC-2026-999999", "--out", str(bad), env=env, check=2)
    assert "NTC-2026-999999" in proc.stderr and not bad.exists()

"""GB/T 9704-2012 page layout of the printable notices (SPEC §4), measured in the output.

PDF (WeasyPrint): the 28 characters × 22 lines grid of 3号 text in the 156 × 225 mm text
block, page numbers ``— N —`` right on odd and left on even pages (one character in), the
版记 at the foot of the last page (never split, 印发 on one line), tables with the header
repeated on every page and no row split, names never broken, the 发文机关标志 on one line,
room for the seal above the 署名 and 成文日期, the 附注 once, 密级★保密期限 top left.
DOCX (python-docx): the same rules as Word properties (document grid, odd/even footers, the
版记 in a frame at the foot, repeated header row, rows that do not split, sized columns).

Positions come from the PDF (pypdf: the text and the x/y where each line starts); widths
(the right end of a line) from WeasyPrint's boxes of the same rendering. Each document is
rendered once per module. No database.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, replace

import pytest
from docx.oxml.ns import qn
from docx.shared import Pt

from models.org import OrgUnit
from tasks import documents
from models.notices import HTML_ENV, build_letterhead

WS = re.compile(r"\s+")
MM = 72 / 25.4
PAGE_H = 297 * MM
LEFT = 28 * MM  # text block: x from LEFT to RIGHT, y (from the top) from TOP to BOTTOM
RIGHT = (210 - 26) * MM
TOP = 37 * MM
BOTTOM = (297 - 35) * MM
PITCH = 225 * MM / 22  # line pitch: 22 lines
HAN = "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏闰余成岁律吕调阳云腾致雨露结为霜金生丽水玉出昆冈剑号巨阙珠称夜光"
LONG_NAME = "街道网络安全和信息化领导小组办公室（网信办）"
LONG_MARK = LONG_NAME + "文件"  # 24 characters
NOTE = "（事项编号：INC-2026-0001；本件为演练文书，系统时钟设定为2026年3月10日10时30分）"


def pdf_ready() -> str:
    try:
        documents._weasyprint()
    except Exception as exc:  # DomainError: no WeasyPrint, Pango or CJK fonts here
        return str(getattr(exc, "message", exc))
    return ""


needs_pdf = pytest.mark.skipif(bool(pdf_ready()), reason=f"PDF not available here: {pdf_ready()}")


# ----------------------------------------------------------------- documents


def letterhead(issuer_name: str, **over):
    issuer = OrgUnit(code="JD01", name=issuer_name, kind="street", doc_prefix="X街网安")
    args = dict(title="关于落实网络安全责任制有关事项的通知", main_to="各社区党委", doc_number="X街网安〔2026〕7号",
                copy_no="000007", cc=["区公安分局网安大队", "街道纪工委"])
    args.update(over)
    lh = build_letterhead(issuer, "report_reminder", **args)
    return replace(lh, note=NOTE)


def layout_html(lh, body: str) -> str:
    """A notice of the layout (``layout.html.j2``) with ``body`` as its 正文."""
    template = HTML_ENV.from_string('{% extends "layout.html.j2" %}{% block body %}' + body + "{% endblock %}")
    return template.render(letterhead=lh.as_dict())


def han(n: int, start: int = 0) -> str:
    return "".join(HAN[(start + i) % len(HAN)] for i in range(n))


#: Three pages: paragraphs of plain 汉字 (the grid), the long issuer name, 秘密★10年; the
#: third page has a few lines of text and the 落款, far above the foot.
PARAGRAPHS = [han(300, 0), han(300, 7), han(300, 14), han(60, 21)]
LONG_BODY = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
#: A name that would straddle the end of a first line (24 + 5 characters > 26).
NB_BODY = f'<p>{han(24)}<span class="nb">欧阳东方红</span>{han(10)}</p>'


@dataclass
class Line:
    page: int  # 1-based
    x: float  # pt from the left edge of the page
    y: float  # baseline, pt from the top of the page
    text: str  # whitespace removed


@dataclass
class Rendered:
    html: str
    lines: list[Line]
    pages: int
    doc: object  # WeasyPrint's laid-out document (boxes)

    def on(self, page: int) -> list[Line]:
        return [ln for ln in self.lines if ln.page == page]

    def find(self, text: str) -> list[Line]:
        return [ln for ln in self.lines if text in ln.text]

    def text(self) -> str:
        return "".join(ln.text for ln in self.lines)

    def boxes(self, page: int):
        """(text, left, right, top) of every text box of a page, in pt."""
        out = []

        def walk(box):
            if type(box).__name__ == "TextBox":
                out.append((WS.sub("", box.text), box.position_x * 0.75, (box.position_x + box.width) * 0.75,
                            box.position_y * 0.75))
            for child in getattr(box, "children", ()):
                walk(child)

        walk(self.doc.pages[page - 1]._page_box)
        return out


def pdf_lines(pdf: bytes) -> list[Line]:
    """Text lines of a PDF (pypdf): the pieces of text on one baseline joined left to right,
    with the position where the line starts."""
    from pypdf import PdfReader

    lines: list[Line] = []
    for number, page in enumerate(PdfReader(io.BytesIO(pdf)).pages, 1):
        pieces: list[tuple[float, float, str]] = []

        def visit(text, cm, tm, font, size):
            if text.strip():
                x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
                y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
                pieces.append((round(PAGE_H - y, 2), round(x, 2), WS.sub("", text)))

        page.extract_text(visitor_text=visit)
        for y, x, text in sorted(pieces):
            if lines and lines[-1].page == number and abs(lines[-1].y - y) < 0.3:
                lines[-1].text += text
            else:
                lines.append(Line(number, x, y, text))
    return lines


def rendered(html: str) -> Rendered:
    doc = documents.pdf_document(html)
    pdf = doc.write_pdf()
    assert pdf.startswith(b"%PDF")
    return Rendered(html, pdf_lines(pdf), len(doc.pages), doc)


@pytest.fixture(scope="module")
def pinned():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DUTYFLOW_NOW", "2026-03-10T10:30:00+08:00")
        yield


@pytest.fixture(scope="module")
def long_notice(pinned) -> Rendered:
    lh = letterhead(LONG_NAME, classification="秘密", secrecy_period="10年")
    return rendered(layout_html(lh, LONG_BODY))


@pytest.fixture(scope="module")
def short_notice(pinned) -> Rendered:
    return rendered(layout_html(letterhead("X街道党工委"), NB_BODY))


def table_body(rows: int = 24, thead: bool = False) -> str:
    head = "<tr><th>序号</th><th>单位</th><th>问题和整改要求</th></tr>"
    cells = "".join(
        f"<tr><td>{i}</td><td>第{i}社区</td><td>起{i:02d}{han(100, i)}止{i:02d}</td></tr>" for i in range(1, rows + 1)
    )
    head = f"<thead>{head}</thead><tbody>" if thead else head
    return f"<p>{han(60)}</p><table>{head}{cells}{'</tbody>' if thead else ''}</table><p>{han(30)}</p>"


@pytest.fixture(scope="module")
def table_notice(pinned) -> Rendered:
    return rendered(layout_html(letterhead("X街道党工委"), table_body()))


# ----------------------------------------------------------------- PDF: grid


@needs_pdf
def test_body_grid_is_28_characters_by_22_lines(long_notice):
    assert long_notice.pages == 3
    body = [ln for ln in long_notice.lines if re.fullmatch(f"[{HAN}]+", ln.text)]
    full = [ln for ln in body if abs(ln.x - LEFT) < 0.5]
    first = [ln for ln in body if abs(ln.x - (LEFT + 32)) < 1]  # first lines: 2 characters in
    assert len(full) > 30 and len(first) == 4
    # every line of a paragraph but its last is full: 28 characters, 26 after the indent
    counts = {len(ln.text) for ln in full if not any(p.endswith(ln.text) for p in PARAGRAPHS)}
    assert counts == {28}, counts
    assert {len(ln.text) for ln in first} == {26}
    # page 2 is all body: 22 lines, one pitch apart, the first on the top of the text block
    page2 = [ln for ln in long_notice.on(2) if not ln.text.startswith("—")]
    assert len(page2) == 22
    ys = [ln.y for ln in page2]
    assert all(abs((b - a) - PITCH) < 0.02 for a, b in zip(ys, ys[1:])), ys
    assert TOP < ys[0] < TOP + PITCH and BOTTOM - PITCH < ys[-1] < BOTTOM


@needs_pdf
def test_names_are_not_broken(short_notice):
    lines = [ln.text for ln in short_notice.lines]
    assert any("欧阳东方红" in t for t in lines), lines  # whole on one line …
    first = short_notice.find(han(24))[0]
    assert first.text == han(24)  # … the first line ends short of it rather than breaking it
    assert ".nb { white-space: nowrap; }" in short_notice.html


# ----------------------------------------------------------------- PDF: page numbers


@needs_pdf
def test_page_numbers_right_on_odd_pages_left_on_even_ones(long_notice):
    numbers = [ln for ln in long_notice.lines if ln.text.startswith("—")]
    assert [(ln.page, ln.text) for ln in numbers] == [(1, "—1—"), (2, "—2—"), (3, "—3—")]
    for ln in numbers:
        assert BOTTOM + 7 * MM < ln.y < BOTTOM + 7 * MM + 16  # 一字线 7 mm below the text block
        (left, right), = [(b[1], b[2]) for b in long_notice.boxes(ln.page) if b[0] == ln.text]
        if ln.page % 2:  # 单页码居右空一字 (page 1 is a right page)
            assert abs(right - (RIGHT - 14)) < 0.5, (ln.page, right)
            assert left > LEFT + 300
        else:  # 双页码居左空一字
            assert abs(ln.x - (LEFT + 14)) < 0.5 and abs(left - (LEFT + 14)) < 0.5, (ln.page, ln.x)


# ----------------------------------------------------------------- PDF: 版记


@needs_pdf
@pytest.mark.parametrize("which", ["short_notice", "long_notice"])
def test_record_at_the_foot_of_the_last_page(which, request):
    doc: Rendered = request.getfixturevalue(which)
    last = doc.pages
    assert doc.pages == (1 if which == "short_notice" else 3)
    cc, = doc.find("抄送：")
    printed, = doc.find("印发")
    assert cc.page == printed.page == last  # on the last page, not split
    assert BOTTOM - PITCH < printed.y < BOTTOM  # its last line on the last line of the text block
    assert abs((printed.y - cc.y) - PITCH) < 0.5
    others = [ln for ln in doc.on(last) if ln not in (cc, printed) and not ln.text.startswith("—")]
    assert others and max(ln.y for ln in others) < cc.y - PITCH  # below everything else
    if which == "long_notice":  # the page's text ends far above: the 版记 is not just after it
        assert max(ln.y for ln in others) < BOTTOM - 8 * PITCH


@needs_pdf
def test_printed_line_is_one_line_even_with_a_long_issuer(long_notice):
    printed, = long_notice.find("印发")
    assert printed.text == f"{LONG_NAME}2026年3月10日印发"  # both on one baseline
    boxes = [b for b in long_notice.boxes(3) if b[0] in (LONG_NAME, "2026年3月10日印发") and b[3] > BOTTOM - 1.5 * PITCH]
    assert len(boxes) == 2 and boxes[0][3] == boxes[1][3]
    left = min(b[1] for b in boxes)
    right = max(b[2] for b in boxes)
    assert LEFT - 0.5 < left and right < RIGHT + 0.5
    assert boxes[0][2] < boxes[1][1]  # name, then the date: no overlap


# ----------------------------------------------------------------- PDF: tables


@needs_pdf
def test_table_header_repeats_and_rows_do_not_split(table_notice):
    assert table_notice.pages >= 3
    header = "序号单位问题和整改要求"
    pages_with_rows = sorted({ln.page for ln in table_notice.lines if re.search(r"起\d\d", ln.text)})
    assert len(pages_with_rows) >= 2
    for page in pages_with_rows:
        rows = [ln for ln in table_notice.on(page) if re.search(r"起\d\d", ln.text)]
        heads = [ln for ln in table_notice.on(page) if ln.text == header]
        assert len(heads) == 1 and heads[0].y < min(r.y for r in rows), page  # header on top of every page
    for i in range(1, 25):
        start, = table_notice.find(f"起{i:02d}")
        end, = table_notice.find(f"止{i:02d}")
        assert start.page == end.page, i  # a row is never split across pages


def test_tables_for_printing_get_a_thead_and_sized_columns():
    out = documents.print_html(table_body())
    assert out.count("<thead><tr><th>序号</th>") == 1 and out.count("<thead>") == 1
    widths = [float(w) for w in re.findall(r'<col style="width: ([\d.]+)%">', out)]
    assert len(widths) == 3 and abs(sum(widths) - 100) < 0.1
    assert widths[0] < widths[1] < widths[2]  # 序号 narrow, 单位 wider, the long text widest
    assert '<table style="table-layout: fixed"><colgroup>' in out
    with_thead = documents.print_html(table_body(thead=True))
    assert with_thead.count("<thead>") == 1 and with_thead.count("<colgroup>") == 1  # a <thead> kept as it is
    assert documents.print_html("<p>无表格</p>") == "<p>无表格</p>"


# ----------------------------------------------------------------- PDF: 版头 and 落款


@needs_pdf
def test_long_mark_fits_on_one_line(long_notice, short_notice):
    mark, = long_notice.find(LONG_MARK)
    assert mark.text == LONG_MARK and mark.page == 1
    (left, right), = [(b[1], b[2]) for b in long_notice.boxes(1) if b[0] == LONG_MARK]
    assert LEFT - 0.5 < left and right < RIGHT + 0.5
    assert 'style="font-size: 16.9pt"' in long_notice.html  # smaller than the default 30 pt
    short, = short_notice.find("X街道党工委文件")
    assert 'title="发文机关标志">' in short_notice.html  # no size of its own: 30 pt


@needs_pdf
def test_secrecy_top_left(long_notice):
    secrecy, = long_notice.find("秘密★10年")
    mark, = long_notice.find(LONG_MARK)
    assert secrecy.page == 1 and abs(secrecy.x - LEFT) < 0.5 and secrecy.y < mark.y
    assert any(b[0] == "秘密★10年" for b in long_notice.boxes(1))


@needs_pdf
@pytest.mark.parametrize("which", ["short_notice", "long_notice"])
def test_room_for_the_seal_above_signatory_and_date(which, request):
    doc: Rendered = request.getfixturevalue(which)
    name = "X街道党工委" if which == "short_notice" else LONG_NAME
    sign, = [ln for ln in doc.lines if ln.text == name]
    date, = [ln for ln in doc.lines if ln.text == "2026年3月10日"]
    above = [ln for ln in doc.on(sign.page) if ln.y < sign.y]
    assert above and sign.y - max(ln.y for ln in above) > 3 * PITCH - 0.5  # two blank lines
    assert abs(date.y - sign.y - PITCH) < 0.5 and date.page == sign.page
    boxes = {b[0]: b for b in doc.boxes(date.page) if abs(b[3] - sign.y) < 2 * PITCH}
    d_left, d_right = boxes["2026年3月10日"][1:3]
    s_left, s_right = boxes[name][1:3]
    assert abs(d_right - (RIGHT - 64)) < 1  # 成文日期右空四字
    if which == "short_notice":  # 署名 centred on the date
        assert abs((s_left + s_right) / 2 - (d_left + d_right) / 2) < 2
    else:  # too long to centre: flush right, on one line
        assert s_right < RIGHT + 0.5 and s_left > LEFT


@needs_pdf
def test_note_once_after_the_date(long_notice):
    assert long_notice.text().count(WS.sub("", NOTE)[:12]) == 1
    note = long_notice.find("（事项编号")[0]
    date, = [ln for ln in long_notice.lines if ln.text == "2026年3月10日"]
    assert note.page == date.page and abs(note.y - date.y - PITCH) < 0.5  # the line below
    assert abs(note.x - (LEFT + 32)) < 1  # 居左空二字
    assert long_notice.html.count('class="note"') == 1
    assert "drill" not in long_notice.html


# ----------------------------------------------------------------- DOCX


def open_docx(html: str):
    import docx

    return docx.Document(io.BytesIO(documents.notice_docx(html)))


@pytest.fixture(scope="module")
def long_docx(pinned):
    lh = letterhead(LONG_NAME, classification="秘密", secrecy_period="10年")
    return open_docx(layout_html(lh, LONG_BODY + table_body(6) + '<p>责任人<span class="nb">Zhang San</span>。</p>'))


def paragraph(doc, text: str):
    found = [p for p in doc.paragraphs if text in p.text]
    assert found, text
    return found[0]


def test_docx_grid_and_line_spacing(long_docx):
    grid = long_docx.sections[0]._sectPr.find(qn("w:docGrid"))
    assert grid.get(qn("w:type")) == "linesAndChars"
    text_height = 16838 - 2098 - 1984  # twips, as stored (297 − 37 − 35 mm)
    pitch = int(grid.get(qn("w:linePitch")))
    assert text_height // pitch == 22
    char_pitch = 16 + int(grid.get(qn("w:charSpace"))) / 4096  # pt, from Normal's 16 pt
    assert int(documents.TEXT_WIDTH_PT // char_pitch) == 28
    body = paragraph(long_docx, han(40, 7))
    assert body.paragraph_format.line_spacing == Pt(pitch / 20)
    assert body.paragraph_format.first_line_indent == Pt(32)


def test_docx_page_numbers_odd_right_even_left(long_docx):
    assert long_docx.settings.odd_and_even_pages_header_footer
    section = long_docx.sections[0]
    for footer, align, side in ((section.footer, 2, "right"), (section.even_page_footer, 0, "left")):
        p = footer.paragraphs[0]
        assert p.text.startswith("— ") and p.text.endswith(" —")
        assert "PAGE" in "".join(t.text for t in p._p.iter(qn("w:instrText")))
        assert p.alignment == align
        assert getattr(p.paragraph_format, f"{side}_indent") == Pt(14)  # one character in
        assert p.runs[0].font.size == Pt(14)


def test_docx_record_is_a_frame_at_the_foot(long_docx):
    cc = paragraph(long_docx, "抄送：")
    printed = paragraph(long_docx, "印发")
    assert [p._p for p in long_docx.paragraphs[-2:]] == [cc._p, printed._p]  # the last paragraphs
    for p in (cc, printed):
        frame = p._p.pPr.find(qn("w:framePr"))
        assert frame is not None
        assert frame.get(qn("w:vAnchor")) == "margin" and frame.get(qn("w:yAlign")) == "bottom"
        assert int(frame.get(qn("w:w"))) == documents.TEXT_WIDTH_TWIPS
        assert p.paragraph_format.keep_together
    assert cc.paragraph_format.keep_with_next
    assert printed.text == f"{LONG_NAME}\t2026年3月10日印发"  # one line: a right tab stop
    stop, = printed.paragraph_format.tab_stops
    assert abs(stop.position.pt - documents.TEXT_WIDTH_PT) < 0.1


def test_docx_table_header_repeats_rows_do_not_split_widths_from_content(long_docx):
    table, = long_docx.tables
    rows = table._tbl.tr_lst
    assert rows[0].trPr.find(qn("w:tblHeader")) is not None
    assert all(r.trPr.find(qn("w:tblHeader")) is None for r in rows[1:])
    assert all(r.trPr.find(qn("w:cantSplit")) is not None for r in rows)
    assert table._tbl.tblPr.find(qn("w:tblLayout")).get(qn("w:type")) == "fixed"
    widths = [c.width.pt for c in table.columns]
    assert abs(sum(widths) - documents.TEXT_WIDTH_PT) < 1
    assert widths[0] < widths[1] < widths[2]  # 序号 narrow, the long text wide
    assert [c.width.pt for c in table.rows[1].cells] == pytest.approx(widths, abs=0.1)
    # a header written as <thead> is the repeated row just the same
    table, = open_docx(layout_html(letterhead("X街道党工委"), table_body(3, thead=True))).tables
    assert [r.trPr.find(qn("w:tblHeader")) is not None for r in table._tbl.tr_lst] == [True, False, False, False]


def test_docx_mark_size_follows_the_name(long_docx, pinned):
    mark = paragraph(long_docx, LONG_MARK)
    assert documents.mark_size(LONG_MARK) == 16.9
    assert mark.runs[0].font.size == Pt(16.5)  # in half points, as Word stores sizes
    assert documents.mark_size(LONG_MARK) * 1.08 * 24 <= documents.TEXT_WIDTH_PT
    short = open_docx(layout_html(letterhead("X街道党工委"), "<p>正文。</p>"))
    assert paragraph(short, "X街道党工委文件").runs[0].font.size == Pt(30)


def test_docx_seal_space_note_secrecy_and_names(long_docx):
    date = [p for p in long_docx.paragraphs if p.text == "2026年3月10日"][0]
    sign = [p for p in long_docx.paragraphs if p.text == LONG_NAME][0]
    assert date.paragraph_format.right_indent == Pt(64)  # 右空四字
    assert sign.paragraph_format.space_before.pt >= 2 * 28.9  # two lines for the seal
    assert sign.paragraph_format.keep_with_next
    notes = [p for p in long_docx.paragraphs if "事项编号" in p.text]
    assert len(notes) == 1 and notes[0].text == NOTE and notes[0].paragraph_format.left_indent == Pt(32)
    secrecy = long_docx.paragraphs[1]
    assert secrecy.text == "秘密★10年"
    assert secrecy.runs[0]._element.rPr.rFonts.get(qn("w:eastAsia")) == "黑体"
    assert all(p._p.pPr is None or p._p.pPr.find(qn("w:pBdr")) is None or "抄送" in p.text or "印发" in p.text
               or p.text == "" for p in long_docx.paragraphs)  # no boxed drill banner
    assert "Zhang\u00a0San" in paragraph(long_docx, "责任人").text  # no-break space in a name

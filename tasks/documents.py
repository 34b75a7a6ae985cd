"""Printable documents of a notice (SPEC §4): PDF and DOCX in the GB/T 9704 layout.

Both are made from the notice's stored HTML (``templates/layout.html.j2`` and the kind's
template), so the printed document says exactly what the artifact and the e-mail said:

* **PDF** — WeasyPrint lays the HTML out with the layout's ``@page`` rules (A4, margins
  37/26/35/28 mm; 3号 body on the 28 characters × 22 lines grid; ``— 1 —`` page numbers
  right on odd pages, left on even ones; the 版记 at the foot of the last page) and embeds
  the free CJK fonts installed on the machine (Noto Serif/Sans CJK SC, AR PL UKai). Nothing
  is fetched: the notice has no external resources and the URL fetcher refuses all. A table
  whose header row is a first row of ``<th>`` cells gets it as ``<thead>`` (repeated on
  every page).
* **DOCX** — python-docx writes the same elements with the standard font names (仿宋_GB2312,
  黑体, 楷体_GB2312, 方正小标宋简体), so an office PC with the licensed fonts prints it as
  GB/T 9704 asks; the layout's classes (``mark``, ``docno``, ``title``, ``body`` …) map to
  paragraph formats one to one. The section has the 28 × 22 document grid and odd/even
  footers; the 版记 is a frame at the foot of the last page; tables repeat their header row,
  never split a row and have columns sized from their content.

No Prefect import here; ``dutyflow notice render --format pdf|docx`` calls :func:`render`.
"""
from __future__ import annotations

import gc
import io
import math
import re
import shutil
import subprocess
from functools import lru_cache
from typing import Callable

import docx
import lxml.html
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_ALIGN_PARAGRAPH as AL, WD_TAB_ALIGNMENT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

from models.errors import DomainError

#: Formats of ``dutyflow notice render`` → file extension.
FORMATS = {"html": "html", "text": "txt", "pdf": "pdf", "docx": "docx"}

_SYSTEM_PACKAGES = "libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-cjk fonts-arphic-ukai"


def render(notice, fmt: str) -> bytes:
    """The notice as a file's bytes in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise DomainError(f"不支持的格式 '{fmt}'（允许：{', '.join(FORMATS)}）", "--format")
    if fmt in RENDERERS:
        return RENDERERS[fmt](notice.html)
    return (notice.html if fmt == "html" else notice.text).encode("utf-8")


# --------------------------------------------------------------------------- PDF


@lru_cache(maxsize=1)
def _cjk_fonts() -> tuple[str, ...] | None:
    """Families fontconfig knows for Chinese (None when ``fc-list`` is not installed)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    out = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True, check=False).stdout
    return tuple(sorted({line.split(",")[0].strip() for line in out.splitlines() if line.strip()}))


def _weasyprint():
    try:
        import weasyprint  # lazy: needs Pango's native libraries; their absence is reported, not a crash
        import weasyprint.urls  # lazy: as above
    except (ImportError, OSError) as exc:  # OSError: the Pango libraries are missing
        raise DomainError(
            f"PDF 输出需要 WeasyPrint 及系统库（apt-get install {_SYSTEM_PACKAGES}）：{exc}", "--format"
        ) from None
    if _cjk_fonts() == ():
        raise DomainError(
            "PDF 输出需要中文字体，本机没有（apt-get install fonts-noto-cjk fonts-arphic-ukai）", "--format"
        )
    return weasyprint


_TABLE = re.compile(r"<table\b([^>]*)>(.*?)</table>", re.S)
#: A table's first row made only of ``<th>`` cells (not in a ``<thead>``).
_HEADER_ROW = re.compile(r"^(\s*)(<tr\b[^>]*>\s*(?:<th\b[^>]*>.*?</th>\s*)+</tr>)", re.S)


def _print_table(match: re.Match) -> str:
    attrs, inner = match.group(1), match.group(2)
    inner = _HEADER_ROW.sub(r"\1<thead>\2</thead>", inner, count=1)
    if "<colgroup" not in inner and "<col " not in inner:
        widths = table_widths(lxml.html.fragment_fromstring(match.group(0)))
        if widths:
            cols = "".join(f'<col style="width: {w / sum(widths) * 100:.2f}%">' for w in widths)
            inner = f"<colgroup>{cols}</colgroup>{inner}"
            if "style=" not in attrs:
                attrs += ' style="table-layout: fixed"'
    return f"<table{attrs}>{inner}</table>"


def print_html(html: str) -> str:
    """The notice's HTML for printing: each table with a header row and sized columns.

    * A first row of ``<th>`` cells goes into a ``<thead>``: kind templates may write a
      table's header as its first row, which the HTML parser puts in the ``<tbody>``, and only
      a ``<thead>`` is repeated at the top of every page.
    * Column widths from the content (:func:`table_widths`, as in the DOCX), fixed layout:
      the browser's automatic layout would give a column of long text nearly all the width
      and wrap 序号 or a unit's name after one character.
    """
    if "<table" not in html:
        return html
    return _TABLE.sub(_print_table, html)


def pdf_document(html: str):
    """WeasyPrint's laid-out document of a notice's HTML (pages and boxes), offline."""
    weasyprint = _weasyprint()
    offline = weasyprint.urls.URLFetcher(allowed_protocols=())  # every scheme refused: nothing fetched
    return weasyprint.HTML(string=print_html(html), url_fetcher=offline).render()


def notice_pdf(html: str) -> bytes:
    """A4 PDF of a notice's HTML, CJK fonts embedded (subset)."""
    try:
        return pdf_document(html).write_pdf()
    finally:
        # A layout leaves ~80 MiB of reference cycles (boxes, font subsets of the large CJK
        # fonts) that young-generation collections miss; a full collection now keeps a process
        # rendering many notices at one layout's size (measured: 10 renders 248 MiB peak with
        # it, 1.2 GiB without). It costs ~0.1 s per 10⁶ live objects of the process.
        gc.collect()


# --------------------------------------------------------------------------- DOCX

#: GB/T 9704 font roles → the standard Windows font names (东亚字体).
FONTS = {
    "fang": "仿宋_GB2312",
    "hei": "黑体",
    "kai": "楷体_GB2312",
    "xbs": "方正小标宋简体",
    "song": "宋体",
}
RED = "D40000"
BODY_PT = 16  # 3号
TITLE_PT = 22  # 2号
RECORD_PT = 14  # 4号 (版记, page numbers, tables)
MARK_PT = 30  # 发文机关标志 of a short name
#: Page and text block in twentieths of a point (as Word stores them): A4 with margins
#: top 37, bottom 35, left (binding) 28, right 26 mm → a 156 × 225 mm text block.
_TWIPS_PER_MM = 1440 / 25.4
TEXT_WIDTH_TWIPS = round(210 * _TWIPS_PER_MM) - round(28 * _TWIPS_PER_MM) - round(26 * _TWIPS_PER_MM)  # 8844
TEXT_HEIGHT_TWIPS = round(297 * _TWIPS_PER_MM) - round(37 * _TWIPS_PER_MM) - round(35 * _TWIPS_PER_MM)  # 12756
#: Text block width (156 mm) in points, for right-hand tab stops, the mark and tables.
TEXT_WIDTH_PT = TEXT_WIDTH_TWIPS / 20
#: 22 lines: Word's grid pitch (whole twips, rounded down so that 22 fit) = the line spacing.
LINE_PITCH_TWIPS = TEXT_HEIGHT_TWIPS // 22  # 579
LINE_PT = LINE_PITCH_TWIPS / 20  # 28.95 pt
#: 28 characters: ``w:charSpace`` is the pitch's difference from the 16 pt of Normal, in
#: 1/4096 pt (rounded down so that 28 fit): 442.2 / 28 = 15.79 pt → −849.
CHAR_SPACE = math.floor((TEXT_WIDTH_PT / 28 - BODY_PT) * 4096)

_SPACE = re.compile(r"\s+")


def em_width(text: str) -> float:
    """Width of ``text`` in em: CJK and other full-width characters 1, ASCII ½ (digits, Latin)."""
    return sum(0.5 if ch.isascii() else 1 for ch in text)


def mark_size(text: str) -> float:
    """Size (pt) of the 发文机关标志: 30 pt, smaller for a long name so that it stays on one
    line of the 156 mm text block (1.08 em a character, as the layout's letter-spacing)."""
    width = max(em_width(text), 1.0)
    return min(float(MARK_PT), math.floor(440.0 / width / 1.08 * 10) / 10)


def _classes(el) -> set[str]:
    return set((el.get("class") or "").split())


def _font_of(el, inherited: str) -> str:
    for role in ("hei", "kai", "xbs"):
        if role in _classes(el):
            return role
    return inherited


def _set_font(run, role: str, size_pt: float | None = None, color: str | None = None) -> None:
    name = FONTS[role]
    run.font.name = "Times New Roman"
    rpr = run._element.get_or_add_rPr()
    rfonts = rpr.get_or_add_rFonts()
    rfonts.set(qn("w:eastAsia"), name)
    if size_pt:
        run.font.size = Pt(size_pt)
    if color:
        run.font.color.rgb = RGBColor.from_string(color)


def _text_of(el) -> str:
    return _SPACE.sub(" ", el.text_content()).strip()


def _inline(paragraph, el, role: str, size_pt: float | None = None, color: str | None = None) -> None:
    """Runs of ``el``'s text and inline children (spans change the font role).

    A ``<span class="nb">`` (a person's or unit's name) keeps its words together: its spaces
    become no-break spaces. Word has no property that keeps a run of Chinese characters on
    one line, so a CJK name can still wrap between two characters in Word.
    """
    pieces: list[tuple[str, str, bool]] = []

    def walk(node, node_role: str, nb: bool) -> None:
        if node.text:
            pieces.append((node.text, node_role, nb))
        for child in node:
            walk(child, _font_of(child, node_role), nb or "nb" in _classes(child))
            if child.tail:
                pieces.append((child.tail, node_role, nb))

    walk(el, _font_of(el, role), "nb" in _classes(el))
    pieces = [(_SPACE.sub(" ", text), r, nb) for text, r, nb in pieces]
    if pieces:
        pieces[0] = (pieces[0][0].lstrip(), *pieces[0][1:])
        pieces[-1] = (pieces[-1][0].rstrip(), *pieces[-1][1:])
    for text, r, nb in pieces:
        if text:
            _set_font(paragraph.add_run(text.replace(" ", "\u00a0") if nb else text), r, size_pt, color)


#: Children of ``w:pPr`` in their schema order (Word refuses a file with them out of order).
_PPR_ORDER = (
    "pStyle", "keepNext", "keepLines", "pageBreakBefore", "framePr", "widowControl", "numPr",
    "suppressLineNumbers", "pBdr", "shd", "tabs", "suppressAutoHyphens", "kinsoku", "wordWrap",
    "overflowPunct", "topLinePunct", "autoSpaceDE", "autoSpaceDN", "bidi", "adjustRightInd",
    "snapToGrid", "spacing", "ind", "contextualSpacing", "mirrorIndents", "suppressOverlap", "jc",
    "textDirection", "textAlignment", "textboxTightWrap", "outlineLvl", "divId", "cnfStyle", "rPr",
    "sectPr", "pPrChange",
)


def _ppr_child(paragraph, tag: str):
    """``w:<tag>`` of the paragraph's properties, created in its schema position."""
    ppr = paragraph._p.get_or_add_pPr()
    node = ppr.find(qn(f"w:{tag}"))
    if node is None:
        node = OxmlElement(f"w:{tag}")
        ppr.insert_element_before(node, *(f"w:{t}" for t in _PPR_ORDER[_PPR_ORDER.index(tag) + 1:]))
    return node


def _border(paragraph, side: str, size_eighths: int, color: str = "000000") -> None:
    """A line above/below a paragraph (the red 分隔线, the 版记 lines)."""
    bdr = _ppr_child(paragraph, "pBdr")
    line = OxmlElement(f"w:{side}")
    line.set(qn("w:val"), "single")
    line.set(qn("w:sz"), str(size_eighths))
    line.set(qn("w:space"), "1")
    line.set(qn("w:color"), color)
    order = ("top", "left", "bottom", "right", "between", "bar")
    later = [n for n in bdr if n.tag.split("}")[-1] in order[order.index(side) + 1:]]
    if later:
        later[0].addprevious(line)
    else:
        bdr.append(line)


def _on(parent, tag: str) -> None:
    """An on/off property (``w:cantSplit``, ``w:tblHeader`` …) switched on."""
    if parent.find(qn(f"w:{tag}")) is None:
        parent.append(OxmlElement(f"w:{tag}"))


def _span(cell_el) -> int:
    try:
        return max(1, int(cell_el.get("colspan") or 1))
    except ValueError:
        return 1


#: Horizontal room of a table cell besides its text: padding both sides (CSS .4em at 14 pt;
#: Word's 0.19 cm), the rules, and half a character of slack for proportional digits.
CELL_PAD_PT = 11.2 + 1 + 7


def table_widths(table_el, total: float | None = None, size_pt: float | None = None) -> list[float]:
    """Column widths (pt) of an HTML table at the text width: from each column's longest
    cell text (cells spanning one column) at the table's 4号, at least two characters."""
    total = TEXT_WIDTH_PT if total is None else total
    size_pt = RECORD_PT if size_pt is None else size_pt
    rows = [[c for c in r if c.tag in ("td", "th")] for r in table_el.iter("tr")]
    ncols = max((sum(_span(c) for c in row) for row in rows), default=0)
    natural = [0.0] * ncols
    for row in rows:
        col = 0
        for c in row:
            if _span(c) == 1 and col < ncols:
                natural[col] = max(natural[col], em_width(_text_of(c)) * size_pt + CELL_PAD_PT)
            col += _span(c)
    return column_widths(natural, total, 2 * size_pt + CELL_PAD_PT)


def column_widths(natural: list[float], total: float, minimum: float) -> list[float]:
    """Column widths summing to ``total``: each column's natural width (at least ``minimum``)
    scaled up when all fit; when they do not, the widest columns are capped at one width."""
    n = len(natural)
    if n == 0:
        return []
    want = [max(w, minimum) for w in natural]
    if sum(want) <= total or n * minimum >= total:
        return [total * w / sum(want) for w in want] if n * minimum < total else [total / n] * n
    widths = [0.0] * n
    remaining, left = total, n
    for j in sorted(range(n), key=lambda j: want[j]):
        share = remaining / left
        widths[j] = min(want[j], share)
        remaining -= widths[j]
        left -= 1
    return widths


class _Writer:
    """Maps the layout's HTML elements to DOCX paragraphs (one method per layout class)."""

    def __init__(self, doc):
        self.doc = doc

    def para(self, el=None, role: str = "fang", *, align=None, indent_chars: float = 0,
             left_chars: float = 0, right_chars: float = 0, size_pt: float = BODY_PT,
             color: str | None = None, line_pt: float | None = LINE_PT):
        p = self.doc.add_paragraph()
        fmt = p.paragraph_format
        if align is not None:
            p.alignment = align
        if indent_chars:
            fmt.first_line_indent = Pt(size_pt * indent_chars)
        if left_chars:
            fmt.left_indent = Pt(size_pt * left_chars)
        if right_chars:
            fmt.right_indent = Pt(size_pt * right_chars)
        if line_pt is None:
            fmt.line_spacing = 1.3
        else:
            fmt.line_spacing = Pt(line_pt)
        fmt.space_before = fmt.space_after = Pt(0)
        if el is not None:
            _inline(p, el, role, size_pt, color)
        return p

    def two_ends(self, left_el, right_el, role: str = "fang", size_pt: float = BODY_PT, margin_chars: float = 1):
        """One line with text at both ends (发文字号 + 签发人; 印发机关 + 印发日期)."""
        p = self.para(None, size_pt=size_pt, left_chars=margin_chars)
        p.paragraph_format.tab_stops.add_tab_stop(
            Pt(TEXT_WIDTH_PT - size_pt * margin_chars), WD_TAB_ALIGNMENT.RIGHT  # from the margin
        )
        _inline(p, left_el, role, size_pt)
        _set_font(p.add_run("\t"), role, size_pt)
        _inline(p, right_el, role, size_pt)
        return p

    # ---- blocks of the layout, in page order
    def block(self, el) -> None:
        cls = _classes(el)
        if el.tag == "hr" or "sep" in cls:
            p = self.para(None, size_pt=4, line_pt=None)
            p.paragraph_format.space_before = Pt(6)
            _border(p, "bottom", 12, RED)  # 1.5 pt red 分隔线
        elif "head-left" in cls:
            for child in el:
                self.para(child, "fang" if "copy-no" in _classes(child) else "hei")
        elif "mark" in cls:
            size = math.floor(mark_size(_text_of(el)) * 2) / 2  # Word sizes are half points
            p = self.para(el, "xbs", align=AL.CENTER, size_pt=size, color=RED, line_pt=None)
            p.paragraph_format.space_before = Pt(24)
        elif "docno" in cls:
            spans = [c for c in el if c.tag == "span"]
            if "upward" in cls and len(spans) == 2:
                self.two_ends(spans[0], spans[1])
            else:
                self.para(el, align=AL.CENTER)
        elif el.tag == "h1" or "title" in cls:
            p = self.para(el, "xbs", align=AL.CENTER, size_pt=TITLE_PT, line_pt=None)
            p.paragraph_format.space_before = Pt(BODY_PT * 2)
            p.paragraph_format.space_after = Pt(BODY_PT)
        elif "main-to" in cls:
            self.para(el)
        elif "body" in cls:
            for child in el:
                if child.tag == "table":
                    self.table(child)
                else:
                    flush = "flush" in _classes(child)
                    self.para(child, align=None if "h1" in _classes(child) else AL.JUSTIFY,
                              indent_chars=0 if flush else 2)
        elif "attachments" in cls:
            for i, child in enumerate(el):
                more = "more" in _classes(child)
                p = self.para(child, left_chars=5 if more else 2)
                if i == 0:
                    p.paragraph_format.space_before = Pt(LINE_PT)  # one blank line after the body
        elif "sign" in cls:
            self.sign(el)
        elif "note" in cls:
            self.para(el, left_chars=2)
        elif "record" in cls:
            self.record(el)
        elif el.tag in ("p", "div"):
            self.para(el)

    def sign(self, el) -> None:
        """成文日期 右空四字 with the 发文机关署名 centred on it (flush right when too long for
        that), two blank lines above them for the seal (印章 居中下压署名和日期), kept together."""
        p_els = list(el.iter("p"))
        if not p_els:
            return
        date_em = em_width(_text_of(p_els[-1]))
        paras = [
            self.para(p_el, align=AL.RIGHT,
                      right_chars=4 if p_el is p_els[-1] else max(0.0, 4 + (date_em - em_width(_text_of(p_el))) / 2))
            for p_el in p_els
        ]
        paras[0].paragraph_format.space_before = Pt(LINE_PT * 2)
        for p in paras:
            p.paragraph_format.keep_together = True
        for p in paras[:-1]:
            p.paragraph_format.keep_with_next = True

    def table(self, el) -> None:
        """A table at the text width: columns sized from their longest text (fixed layout),
        the header row (``<thead>``, or a first row of ``<th>``) repeated on every page,
        no row split across pages; ``colspan`` cells merged."""
        rows = list(el.iter("tr"))
        cells = [[c for c in r if c.tag in ("td", "th")] for r in rows]
        if not rows:
            return
        ncols = max(max((sum(_span(c) for c in row) for row in cells), default=1), 1)
        header = sum(1 for r in rows if r.getparent() is not None and r.getparent().tag == "thead")
        if not header and cells[0] and all(c.tag == "th" for c in cells[0]):
            header = 1

        widths = table_widths(el) or [TEXT_WIDTH_PT / ncols] * ncols

        table = self.doc.add_table(rows=len(rows), cols=ncols)
        table.style = "Table Grid"
        table.autofit = False  # w:tblLayout fixed: Word keeps the widths below
        tbl_pr = table._tbl.tblPr
        tbl_w = tbl_pr.find(qn("w:tblW"))
        if tbl_w is None:
            tbl_w = OxmlElement("w:tblW")
            tbl_pr.append(tbl_w)
        tbl_w.set(qn("w:w"), str(round(sum(widths) * 20)))
        tbl_w.set(qn("w:type"), "dxa")
        for j, w in enumerate(widths):
            table.columns[j].width = Pt(w)
        for i, row in enumerate(cells):
            tr_pr = table.rows[i]._tr.get_or_add_trPr()
            _on(tr_pr, "cantSplit")
            if i < header:
                _on(tr_pr, "tblHeader")
            col = 0
            for c in row:
                if col >= ncols:
                    break
                last = min(col + _span(c), ncols) - 1
                cell = table.cell(i, col)
                if last > col:
                    cell = cell.merge(table.cell(i, last))
                cell.width = Pt(sum(widths[col:last + 1]))
                p = cell.paragraphs[0]
                p.paragraph_format.line_spacing = 1.2
                if c.tag == "th":
                    p.alignment = 1  # centred
                _inline(p, c, "hei" if c.tag == "th" else "fang", RECORD_PT)
                col = last + 1
            for j in range(col, ncols):
                table.cell(i, j).width = Pt(widths[j])

    def record(self, el) -> None:
        """版记: 抄送 and 印发机关/印发日期 between a thick line above and below, in a frame at the
        foot of the page (the last one: the 版记 ends the document), never split."""
        parts = []
        for child in el:
            cls = _classes(child)
            if "cc" in cls:
                p = self.para(child, size_pt=RECORD_PT, left_chars=4, right_chars=1)
                p.paragraph_format.first_line_indent = Pt(-RECORD_PT * 3)  # 回行 under the first name
                parts.append(p)
            elif "printed" in cls:
                spans = [c for c in child if c.tag == "span"]
                margin = self._printed_margin(spans)
                parts.append(self.two_ends(spans[0], spans[-1], size_pt=RECORD_PT, margin_chars=margin))
        if not parts:
            return
        _border(parts[0], "top", 8)  # 0.35 mm lines: first and last thick, between thin
        for p in parts[:-1]:
            _border(p, "bottom", 4)
        _border(parts[-1], "bottom", 8)
        for p in parts:
            fmt = p.paragraph_format
            fmt.keep_together = True
            frame = _ppr_child(p, "framePr")  # one frame (same properties), bottom of the text block
            for name, value in (("w", str(TEXT_WIDTH_TWIPS)), ("wrap", "notBeside"), ("vAnchor", "margin"),
                                ("hAnchor", "margin"), ("xAlign", "center"), ("yAlign", "bottom")):
                frame.set(qn(f"w:{name}"), value)
        for p in parts[:-1]:
            p.paragraph_format.keep_with_next = True

    @staticmethod
    def _printed_margin(spans) -> float:
        """1 character in at each end when 印发机关 and 印发日期 fit so on one 14 pt line, else 0."""
        width = sum(em_width(_text_of(s)) for s in spans)
        return 1 if (width + 3) * RECORD_PT <= TEXT_WIDTH_PT else 0


def _page_number_footer(footer, *, odd: bool) -> None:
    """``— N —`` (PAGE field) in 4号 宋体: odd pages right, even pages left, one character in."""
    footer.is_linked_to_previous = False
    p = footer.paragraphs[0]
    p.alignment = WD_ALIGN_PARAGRAPH.RIGHT if odd else WD_ALIGN_PARAGRAPH.LEFT
    if odd:
        p.paragraph_format.right_indent = Pt(RECORD_PT)
    else:
        p.paragraph_format.left_indent = Pt(RECORD_PT)
    _set_font(p.add_run("— "), "song", RECORD_PT)
    run = p.add_run()
    _set_font(run, "song", RECORD_PT)
    for kind, text in (("begin", None), (None, "PAGE"), ("end", None)):
        if kind:
            node = OxmlElement("w:fldChar")
            node.set(qn("w:fldCharType"), kind)
        else:
            node = OxmlElement("w:instrText")
            node.set(qn("xml:space"), "preserve")
            node.text = text
        run._r.append(node)
    _set_font(p.add_run(" —"), "song", RECORD_PT)


def _page_setup(doc) -> None:
    """A4, margins 37/26/35/28 mm, the 28 × 22 grid, footers ``— N —`` right (odd), left (even)."""
    section = doc.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(37), Mm(35)
    section.left_margin, section.right_margin = Mm(28), Mm(26)
    section.footer_distance = Mm(22)  # the 一字线 about 7 mm below the text block

    sect_pr = section._sectPr
    grid = sect_pr.find(qn("w:docGrid"))
    if grid is None:
        grid = OxmlElement("w:docGrid")
        sect_pr.append(grid)
    grid.set(qn("w:type"), "linesAndChars")
    grid.set(qn("w:linePitch"), str(LINE_PITCH_TWIPS))
    grid.set(qn("w:charSpace"), str(CHAR_SPACE))

    normal = doc.styles["Normal"]
    normal.font.name = "Times New Roman"
    normal.font.size = Pt(BODY_PT)
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), FONTS["fang"])

    doc.settings.odd_and_even_pages_header_footer = True
    _page_number_footer(section.footer, odd=True)
    _page_number_footer(section.even_page_footer, odd=False)


def notice_docx(html: str) -> bytes:
    """DOCX of a notice's HTML with the GB/T 9704 page, fonts and elements."""
    root = lxml.html.fromstring(html)
    pages = root.find_class("page")
    if not pages:
        raise DomainError("公文 HTML 不是版式模板生成的（缺少 .page）", "html")
    doc = docx.Document()
    _page_setup(doc)
    title = root.findtext(".//title") or ""
    doc.core_properties.title = _SPACE.sub(" ", title).strip()
    doc.core_properties.author = "dutyflow"
    writer = _Writer(doc)
    for el in pages[0]:
        if isinstance(el.tag, str):
            writer.block(el)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


#: Renderers by format, for benchmarks and tests that loop over them.
RENDERERS: dict[str, Callable[[str], bytes]] = {"pdf": notice_pdf, "docx": notice_docx}

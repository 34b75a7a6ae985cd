"""Printable documents of a notice (SPEC §4): PDF and DOCX in the GB/T 9704 layout.

Both are made from the notice's stored HTML (``templates/layout.html.j2`` and the kind's
template), so the printed document says exactly what the artifact and the e-mail said:

* **PDF** — WeasyPrint lays the HTML out with the layout's ``@page`` rules (A4, margins
  37/26/35/28 mm, 3号 body on a 28.9 pt grid = 22 lines, ``— 1 —`` page numbers) and embeds
  the free CJK fonts installed on the machine (Noto Serif/Sans CJK SC, AR PL UKai). Nothing
  is fetched: the notice has no external resources and the URL fetcher refuses all.
* **DOCX** — python-docx writes the same elements with the standard font names (仿宋_GB2312,
  黑体, 楷体_GB2312, 方正小标宋简体), so an office PC with the licensed fonts prints it as
  GB/T 9704 asks; the layout's classes (``mark``, ``docno``, ``title``, ``body`` …) map to
  paragraph formats one to one.

No Prefect import here; ``dutyflow notice render --format pdf|docx`` calls :func:`render`.
"""
from __future__ import annotations

import gc
import io
import re
import shutil
import subprocess
from functools import lru_cache
from typing import Callable

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
        import weasyprint
        import weasyprint.urls
    except (ImportError, OSError) as exc:  # OSError: the Pango libraries are missing
        raise DomainError(
            f"PDF 输出需要 WeasyPrint 及系统库（apt-get install {_SYSTEM_PACKAGES}）：{exc}", "--format"
        ) from None
    if _cjk_fonts() == ():
        raise DomainError(
            f"PDF 输出需要中文字体，本机没有（apt-get install fonts-noto-cjk fonts-arphic-ukai）", "--format"
        )
    return weasyprint


def notice_pdf(html: str) -> bytes:
    """A4 PDF of a notice's HTML, CJK fonts embedded (subset)."""
    weasyprint = _weasyprint()
    offline = weasyprint.urls.URLFetcher(allowed_protocols=())  # every scheme refused: nothing fetched
    try:
        return weasyprint.HTML(string=html, url_fetcher=offline).write_pdf()
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
RECORD_PT = 14  # 4号
MARK_PT = 30
LINE_PT = 28.9  # 22 lines in the 225 mm text block
#: Text block width (210 − 28 − 26 mm) in points, for right-hand tab stops.
TEXT_WIDTH_PT = (210 - 28 - 26) * 72 / 25.4

_SPACE = re.compile(r"\s+")


def _classes(el) -> set[str]:
    return set((el.get("class") or "").split())


def _font_of(el, inherited: str) -> str:
    for role in ("hei", "kai", "xbs"):
        if role in _classes(el):
            return role
    return inherited


def _set_font(run, role: str, size_pt: float | None = None, color: str | None = None) -> None:
    from docx.oxml.ns import qn
    from docx.shared import Pt, RGBColor

    name = FONTS[role]
    run.font.name = "Times New Roman"
    rpr = run._element.get_or_add_rPr()
    rfonts = rpr.get_or_add_rFonts()
    rfonts.set(qn("w:eastAsia"), name)
    if size_pt:
        run.font.size = Pt(size_pt)
    if color:
        run.font.color.rgb = RGBColor.from_string(color)


def _inline(paragraph, el, role: str, size_pt: float | None = None, color: str | None = None) -> None:
    """Runs of ``el``'s text and inline children (spans change the font role)."""
    pieces: list[tuple[str, str]] = []

    def walk(node, node_role: str) -> None:
        if node.text:
            pieces.append((node.text, node_role))
        for child in node:
            walk(child, _font_of(child, node_role))
            if child.tail:
                pieces.append((child.tail, node_role))

    walk(el, _font_of(el, role))
    pieces = [(_SPACE.sub(" ", text), r) for text, r in pieces]
    if pieces:
        pieces[0] = (pieces[0][0].lstrip(), pieces[0][1])
        pieces[-1] = (pieces[-1][0].rstrip(), pieces[-1][1])
    for text, r in pieces:
        if text:
            _set_font(paragraph.add_run(text), r, size_pt, color)


def _border(paragraph, side: str, size_eighths: int, color: str = "000000") -> None:
    """A line above/below a paragraph (the red 分隔线, the 版记 lines)."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    ppr = paragraph._p.get_or_add_pPr()
    bdr = ppr.find(qn("w:pBdr"))
    if bdr is None:
        bdr = OxmlElement("w:pBdr")
        ppr.append(bdr)
    line = OxmlElement(f"w:{side}")
    line.set(qn("w:val"), "single")
    line.set(qn("w:sz"), str(size_eighths))
    line.set(qn("w:space"), "1")
    line.set(qn("w:color"), color)
    bdr.append(line)


class _Writer:
    """Maps the layout's HTML elements to DOCX paragraphs (one method per layout class)."""

    def __init__(self, doc):
        self.doc = doc

    def para(self, el=None, role: str = "fang", *, align=None, indent_chars: float = 0,
             left_chars: float = 0, right_chars: float = 0, size_pt: float = BODY_PT,
             color: str | None = None, line_pt: float | None = LINE_PT):
        from docx.shared import Pt

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
        from docx.enum.text import WD_TAB_ALIGNMENT
        from docx.shared import Pt

        p = self.para(None, size_pt=size_pt, left_chars=margin_chars)
        p.paragraph_format.tab_stops.add_tab_stop(
            Pt(TEXT_WIDTH_PT - size_pt * margin_chars), WD_TAB_ALIGNMENT.RIGHT
        )
        _inline(p, left_el, role, size_pt)
        _set_font(p.add_run("\t"), role, size_pt)
        _inline(p, right_el, role, size_pt)
        return p

    # ---- blocks of the layout, in page order
    def block(self, el) -> None:
        from docx.enum.text import WD_ALIGN_PARAGRAPH as AL
        from docx.shared import Pt

        cls = _classes(el)
        if el.tag == "hr" or "sep" in cls:
            p = self.para(None, size_pt=4, line_pt=None)
            p.paragraph_format.space_before = Pt(6)
            _border(p, "bottom", 12, RED)  # 1.5 pt red 分隔线
        elif "drill" in cls:
            p = self.para(el, "hei", align=AL.CENTER, size_pt=RECORD_PT, color=RED, line_pt=None)
            for side in ("top", "bottom", "left", "right"):
                _border(p, side, 4, RED)
        elif "head-left" in cls:
            for child in el:
                self.para(child, "fang" if "copy-no" in _classes(child) else "hei")
        elif "mark" in cls:
            p = self.para(el, "xbs", align=AL.CENTER, size_pt=MARK_PT, color=RED, line_pt=None)
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
            for child in el:
                more = "more" in _classes(child)
                self.para(child, left_chars=5 if more else 2)
        elif "sign" in cls:
            for p_el in el.iter("p"):
                self.para(p_el, align=AL.RIGHT, right_chars=4)
        elif "note" in cls:
            self.para(el, left_chars=2)
        elif "record" in cls:
            self.record(el)
        elif el.tag in ("p", "div"):
            self.para(el)

    def table(self, el) -> None:
        rows = [r for r in el.iter("tr")]
        if not rows:
            return
        width = max(len([c for c in r if c.tag in ("td", "th")]) for r in rows)
        table = self.doc.add_table(rows=len(rows), cols=width)
        table.style = "Table Grid"
        for i, r in enumerate(rows):
            for j, cell_el in enumerate(c for c in r if c.tag in ("td", "th")):
                cell = table.cell(i, j)
                p = cell.paragraphs[0]
                p.paragraph_format.line_spacing = 1.2
                _inline(p, cell_el, "hei" if cell_el.tag == "th" else "fang", RECORD_PT)

    def record(self, el) -> None:
        """版记: 抄送 and 印发机关/印发日期 between a thick line above and below."""
        from docx.shared import Pt

        parts = []
        for child in el:
            cls = _classes(child)
            if "cc" in cls:
                parts.append(self.para(child, size_pt=RECORD_PT, left_chars=1, right_chars=1, line_pt=None))
            elif "printed" in cls:
                spans = [c for c in child if c.tag == "span"]
                parts.append(self.two_ends(spans[0], spans[-1], size_pt=RECORD_PT))
        if not parts:
            return
        parts[0].paragraph_format.space_before = Pt(BODY_PT * 3)
        _border(parts[0], "top", 8)  # 0.35 mm lines: first and last thick, between thin
        for p in parts[:-1]:
            _border(p, "bottom", 4)
        _border(parts[-1], "bottom", 8)


def _page_setup(doc) -> None:
    """A4, margins 37/26/35/28 mm, footer ``— N —`` (PAGE field) in 4号 宋体."""
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Mm, Pt

    section = doc.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(37), Mm(35)
    section.left_margin, section.right_margin = Mm(28), Mm(26)
    section.footer_distance = Mm(28)

    normal = doc.styles["Normal"]
    normal.font.name = "Times New Roman"
    normal.font.size = Pt(BODY_PT)
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), FONTS["fang"])

    footer = section.footer.paragraphs[0]
    footer.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _set_font(footer.add_run("— "), "song", RECORD_PT)
    run = footer.add_run()
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
    _set_font(footer.add_run(" —"), "song", RECORD_PT)


def notice_docx(html: str) -> bytes:
    """DOCX of a notice's HTML with the GB/T 9704 page, fonts and elements."""
    import docx
    import lxml.html

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

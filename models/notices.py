"""Official notices (公文, SPEC §4): 发文字号, the GB/T 9704 版头/版记 and rendering.

Every notice kind has one Jinja template per output (``templates/<kind>.html.j2`` and
``templates/<kind>.txt.j2``), each extending ``layout.<ext>.j2``, which carries the
GB/T 9704 elements from the :class:`Letterhead` passed as ``letterhead`` in the context.

Templates run in an immutable sandbox with ``StrictUndefined`` (a missing field raises,
never renders blank); the HTML output autoescapes, so operator text such as
``<script>`` is shown, not executed. The sandbox does not limit ``'x' * 10**7`` by itself:
``*`` and ``**`` are intercepted and refuse results larger than :data:`MAX_SIZE`.

:func:`issue_notice` allocates the 发文字号 (one gapless sequence per 发文机关代字 and
year) and the notice id inside the caller's transaction, renders both outputs, stores the
notice with its full context (so it can be rendered again, e.g. as PDF/DOCX) and queues
its notifications. No Prefect import here: flows wrap these functions.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable

from jinja2 import FileSystemLoader, StrictUndefined, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlmodel import Session, select

from models import batch, policy
from models.case import Case, next_number
from models.clock import cn_date, drill_remark, local, now
from models.errors import DomainError
from models.notice import Notice
from models.org import OrgUnit
from models.outbox import queue_notifications

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

#: Largest string/list (items) a template may build with ``*``; also bounds ``**``
#: results (decimal digits).
MAX_SIZE = 100_000
_MAX_INT_BITS = int(MAX_SIZE * math.log2(10))  # ≈ 100,000 decimal digits

# --------------------------------------------------------------------------- kinds

#: kind → (Chinese name, 公文 type, upward). Upward documents (报告, 请示) carry 签发人.
KIND_INFO: dict[str, tuple[str, str, bool]] = {
    "incident_report": ("事件报告", "报告", True),
    "report_reminder": ("催报通知", "通知", False),
    "incident_summary": ("事件处置总结报告", "报告", True),
    "rectification_notice": ("整改通知", "通知", False),
    "rectification_reminder": ("催办通知", "通知", False),
    "interview_notice": ("约谈通知", "通知", False),
    "accountability_proposal": ("问责建议书", "请示", True),
    "accountability_decision": ("问责决定", "决定", False),
    "assessment_notice": ("考核通知", "通知", False),
    "assessment_result": ("考核结果通报", "通报", False),
    "deadline_adjustment": ("期限调整通知", "通知", False),
    "appeal_decision": ("申诉处理决定", "决定", False),
    # not a 公文: an unnumbered reminder to the body that owes an action of its own
    "internal_reminder": ("督办提醒", "提醒", False),
}

#: 紧急程度 allowed on a notice ('' = not urgent).
URGENCIES = ("", "特急", "加急")
#: 密级 allowed on a notice ('' = not classified).
CLASSIFICATIONS = ("", "秘密", "机密", "绝密")
#: 密级 given to the notices of a classified (涉密) case.
CLASSIFIED_LEVEL = "秘密"

_INCIDENT_URGENCY = {
    "particularly_major": "特急", "特别重大": "特急",
    "major": "特急", "重大": "特急",
    "relatively_major": "加急", "较大": "加急",
    "general": "", "一般": "",
}


def incident_urgency(level: str) -> str:
    """紧急程度 of an 事件报告: 特急 for 特别重大/重大, 加急 for 较大, none for 一般.

    ``level`` is the level id (``major``) or its label (``重大``).
    """
    key = str(getattr(level, "name", level) or "").strip()
    if key not in _INCIDENT_URGENCY:
        raise DomainError(f"未知事件等级 '{level}'（允许：particularly_major, major, relatively_major, general）", "level")
    return _INCIDENT_URGENCY[key]


def _kind_info(kind: str) -> tuple[str, str, bool]:
    try:
        return KIND_INFO[kind]
    except KeyError:
        raise DomainError(f"未知公文种类 '{kind}'（允许：{', '.join(KIND_INFO)}）", "kind") from None


# --------------------------------------------------------------------------- numbers


def format_doc_number(prefix: str, year: int, n: int) -> str:
    """发文字号 by GB/T 9704: ``X街网安〔2026〕7号`` (〔〕 brackets, no 第, no leading zeros)."""
    prefix = (prefix or "").strip()
    if not prefix:
        raise DomainError("发文机关代字为空，无法编发文字号", "doc_prefix")
    n, year = int(n), int(year)
    if n < 1:
        raise DomainError(f"发文顺序号须为正整数（收到 {n}）", "doc_number")
    return f"{prefix}〔{year}〕{n}号"


def format_notice_id(year: int, n: int) -> str:
    """Notice id: ``NTC-2026-000001``."""
    return f"NTC-{int(year)}-{int(n):06d}"


def doc_counter_name(prefix: str) -> str:
    """Name of the gapless 发文字号 sequence of a 发文机关代字 (``counter`` table)."""
    return f"doc:{prefix}"


# --------------------------------------------------------------------------- sandbox


def _is_seq(x: Any) -> bool:
    return isinstance(x, (str, bytes, list, tuple))


def _is_int(x: Any) -> bool:
    return isinstance(x, int)  # bool included: harmless


def _check_mul(left: Any, right: Any) -> None:
    for seq, n in ((left, right), (right, left)):
        if _is_seq(seq) and _is_int(n):
            if len(seq) * max(n, 0) > MAX_SIZE:
                raise SecurityError(
                    f"template result too large: {len(seq)} × {n} exceeds {MAX_SIZE} characters/items"
                )
            return
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > _MAX_INT_BITS:
            raise SecurityError(f"template number too large (more than {MAX_SIZE} digits)")


def _check_pow(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
        if right * math.log2(abs(left)) > _MAX_INT_BITS:
            raise SecurityError(f"template number too large: {left} ** {right} exceeds {MAX_SIZE} digits")


class GuardedSandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox whose ``*`` and ``**`` refuse oversized results (SecurityError)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):  # noqa: D401 - jinja hook
        if operator == "*":
            _check_mul(left, right)
        elif operator == "**":
            _check_pow(left, right)
        return super().call_binop(context, operator, left, right)


def _environment(autoescape: bool) -> GuardedSandbox:
    return GuardedSandbox(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the code: no stat() per render
    )


#: HTML output (artifacts, e-mail): autoescaped.
HTML_ENV = _environment(autoescape=True)
#: Plain-text output (chat channels): no escaping, no HTML.
TEXT_ENV = _environment(autoescape=False)

OUTPUTS = {"html": HTML_ENV, "txt": TEXT_ENV}


def template_name(kind: str, ext: str) -> str:
    return f"{kind}.{ext}.j2"


def compile_templates() -> int:
    """Compile every notice template once into its environment's cache (a process that
    forks runs, such as the fork server, does it before the first fork); returns how many."""
    names = [(env, name) for ext, env in OUTPUTS.items()
             for name in env.list_templates(filter_func=lambda n: n.endswith(f".{ext}.j2"))]
    for env, name in names:
        env.get_template(name)
    return len(names)


# --------------------------------------------------------------------------- letterhead

#: Layout fields of :class:`Letterhead` → the GB/T 9704 element each one carries.
LAYOUT_FIELDS: dict[str, str] = {
    "copy_no": "份号",
    "classification": "密级",
    "secrecy_period": "保密期限",
    "urgency": "紧急程度",
    "issuer_name": "发文机关名称",
    "issuer_mark": "发文机关标志",
    "doc_number": "发文字号",
    "signer": "签发人",
    "rule": "本街道网络安全责任制文件（引用）",
    "title": "标题",
    "main_to": "主送机关",
    "attachments": "附件说明",
    "signatory": "发文机关署名",
    "date": "成文日期",
    "note": "附注",
    "cc": "抄送机关",
    "printed_by": "印发机关",
    "printed_date": "印发日期",
}


@dataclass
class Letterhead:
    """The GB/T 9704 版头, 主体 frame and 版记 of one notice (``letterhead`` in templates)."""

    kind: str
    kind_name: str  # 事件报告, 整改通知, …
    doc_type: str  # 公文 type: 报告/通知/通报/决定/请示/函
    upward: bool  # 上行文: shows 签发人
    title: str  # 标题
    main_to: str  # 主送机关
    issuer_name: str
    issuer_mark: str  # 发文机关标志 (red): issuer name + 文件, or the issuer name
    signatory: str  # 发文机关署名
    date: str  # 成文日期: 2026年11月28日
    printed_by: str  # 印发机关
    printed_date: str  # 印发日期 (the template appends 印发)
    copy_no: str = ""  # 份号: 6 digits
    classification: str = ""  # 密级
    secrecy_period: str = ""  # 保密期限 (shown as 秘密★1年)
    urgency: str = ""  # 紧急程度
    doc_number: str = ""  # 发文字号, '' when unnumbered
    signer: str = ""  # 签发人 (upward documents only)
    cc: list[str] = field(default_factory=list)  # 抄送机关
    attachments: list[str] = field(default_factory=list)  # 附件说明
    rule: str = ""  # the committee's rule as cited: 《东湖街道网络安全责任制实施办法》 (policy)
    note: str = ""  # 附注: one parenthesised line (事项编号, the drill clock), '' when none

    def as_dict(self) -> dict[str, Any]:  # flat fields: cheaper than dataclasses.asdict
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), list) else v) for f in fields(self)}


def committee_rule() -> str:
    """The committee's own rule (SOURCE.md) as notices cite it, from the policy file
    (``committee_rule.title``), e.g. 《东湖街道网络安全责任制实施办法》."""
    title = str(policy.get("committee_rule", "title", default="") or "").strip()
    if not title:
        raise DomainError("策略文件未配置本街道网络安全责任制文件名称（committee_rule.title）", "committee_rule")
    return title if title.startswith("《") else f"《{title}》"


def secrecy_period_default() -> str:
    """保密期限 printed after 秘密★ on the notices of a classified case (policy
    ``notices.secrecy_period``; 保密法实施条例: 秘密级 at most 10 years unless set)."""
    return str(policy.get("notices", "secrecy_period", default="10年") or "").strip()


def remark_line(remarks: Iterable[str]) -> str:
    """附注 (GB/T 9704): the remarks joined into one parenthesised line, '' when none."""
    parts = [r.strip().strip("（）。") for r in remarks if r and r.strip()]
    return f"（{'；'.join(parts)}）" if parts else ""


def issuer_mark(issuer_name: str, doc_type: str) -> str:
    """发文机关标志: name + 文件 for the 文件格式; a 函 (信函格式) shows the name alone, an
    internal 提醒 (no 公文) says what it is."""
    if doc_type == "提醒":
        return f"{issuer_name}督办提醒"
    return issuer_name if doc_type == "函" else f"{issuer_name}文件"


def build_letterhead(
    issuer: OrgUnit,
    kind: str,
    *,
    title: str,
    main_to: str,
    doc_number: str = "",
    copy_no: str = "",
    urgency: str = "",
    signer: str = "",
    cc: Iterable[str] = (),
    classification: str = "",
    secrecy_period: str = "",
    attachments: Iterable[str] = (),
    printed_by: str = "",
    remarks: Iterable[str] = (),
    draft: bool = False,
    at: datetime | None = None,
) -> Letterhead:
    """Fill the layout fields from the issuer, the kind's 公文 type and the clock (``now()``).

    Refuses (DomainError) an unknown kind, 紧急程度 or 密级, an empty 标题/主送机关, and an
    upward document (报告, 请示) without 签发人. 签发人 is dropped on other documents and on a
    ``draft`` (草稿: not yet signed, so neither 签发人 nor 文号).
    """
    kind_name, doc_type, upward = _kind_info(kind)
    title, main_to = (title or "").strip(), (main_to or "").strip()
    if not title:
        raise DomainError("公文标题不能为空", "title")
    if not main_to:
        raise DomainError("主送机关不能为空", "main_to")
    urgency = (urgency or "").strip()
    if urgency not in URGENCIES:
        raise DomainError(f"紧急程度 '{urgency}' 无效（允许：特急、加急或空）", "urgency")
    classification = (classification or "").strip()
    if classification not in CLASSIFICATIONS:
        raise DomainError(f"密级 '{classification}' 无效（允许：秘密、机密、绝密或空）", "classification")
    signer = "" if draft else (signer or "").strip()
    upward = upward and not draft
    if upward and not signer:
        raise DomainError(f"{kind_name}是上行文（{doc_type}），须标注签发人", "signer")
    at = at or now()
    date = cn_date(at)
    return Letterhead(
        kind=kind,
        kind_name=kind_name,
        doc_type=doc_type,
        upward=upward,
        title=title,
        main_to=main_to,
        issuer_name=issuer.name,
        issuer_mark=issuer_mark(issuer.name, doc_type),
        signatory=issuer.name,
        date=date,
        printed_by=(printed_by or "").strip() or issuer.name,
        printed_date=date,
        copy_no=copy_no,
        classification=classification,
        secrecy_period=(secrecy_period or "").strip() if classification else "",
        urgency=urgency,
        doc_number=doc_number,
        signer=signer if upward else "",
        cc=[c.strip() for c in cc if c and c.strip()],
        attachments=[a.strip() for a in attachments if a and a.strip()],
        rule=committee_rule(),
        note=remark_line([*remarks, drill_remark()]),
    )


# --------------------------------------------------------------------------- render


def _plain(context: dict[str, Any]) -> dict[str, Any]:
    ctx = dict(context)
    if isinstance(ctx.get("letterhead"), Letterhead):
        ctx["letterhead"] = ctx["letterhead"].as_dict()
    return ctx


def render(kind: str, context: dict[str, Any]) -> tuple[str, str]:
    """Render a notice kind as (html, text).

    ``context`` holds the kind's variables and ``letterhead`` (a :class:`Letterhead` or
    its dict). A missing variable raises ``jinja2.UndefinedError``; an oversized ``*``/``**``
    raises ``jinja2.exceptions.SecurityError``.
    """
    _kind_info(kind)
    ctx = _plain(context)
    html = HTML_ENV.get_template(template_name(kind, "html")).render(ctx)
    text = TEXT_ENV.get_template(template_name(kind, "txt")).render(ctx).strip("\n") + "\n"
    return html, text


def rerender(notice: Notice) -> tuple[str, str]:
    """Render a stored notice again from its stored context (same letterhead and numbers)."""
    return render(notice.kind, notice.context)


def document_reference(s: Session, case_id: str) -> str:
    """How a notice refers to another case: by its first numbered document, 《标题》（文号）,
    never by the case id (which only the 附注 carries); a case without one by its title."""
    row = s.exec(select(Notice.title, Notice.doc_number).where(
        Notice.case_id == case_id, Notice.doc_number.is_not(None)).order_by(Notice.issued_at, Notice.id)).first()
    if row is not None:
        return f"《{row[0]}》（{row[1]}）"
    case = s.get(Case, case_id)
    return f"“{case.title}”" if case is not None else "有关事项"


def original_notice(s: Session, case_id: str) -> Notice | None:
    """The case's first notice (the one that set its deadlines)."""
    return s.exec(select(Notice).where(Notice.case_id == case_id).order_by(Notice.issued_at, Notice.id)).first()


def adjustment_notice(step, *, reason: str, items: list[dict], request: str, fallback: dict | None = None):
    """期限调整通知 of ``step.case``: from the issuer of the case's original 通知 to the same
    recipients, 主送 and 抄送 (an approved extension, a failed verification, a calendar loaded).
    ``items``: [{label, units, old_due, new_due}] with deadlines as ``deadline_text``. When the
    original notice was not a 通知 from above (an 事件报告 goes upward), ``fallback`` gives
    ``issuer``, ``recipients`` and ``main_to``."""
    s, case = step.s, step.case
    first = original_notice(s, case.id)
    lh = (first.context or {}).get("letterhead", {}) if first is not None else {}
    if first is not None and lh.get("doc_type") == "通知":
        issuer = s.get(OrgUnit, first.issuer_unit)
        recipients, main_to, cc = list(first.recipients), lh["main_to"], list(lh.get("cc", []))
    elif fallback is not None:
        issuer, recipients, main_to, cc = fallback["issuer"], fallback["recipients"], fallback["main_to"], []
    else:
        raise DomainError(f"{case.id} 没有可据以调整期限的通知", "case_id")
    reference = document_reference(s, case.id) if first is not None and first.doc_number else f"“{case.title}”"
    return step.notice(
        "deadline_adjustment", issuer=issuer, recipients=recipients, cc=cc, main_to=main_to,
        title=f"关于调整{case.title if not first or not first.doc_number else first.title.removeprefix('关于').removesuffix('的通知')}有关办理期限的通知",
        context={"reference": reference, "reason": reason, "items": items, "request": request},
    )


#: Where a copy's 份号 goes in the body rendered once for all copies (letters and digits only:
#: no escaping changes it, and no notice text contains it).
COPY_MARK = "COPYNO7f3a9c2e"


class Copies:
    """Every recipient's numbered copy of one notice (份号 per copy, GB/T 9704). The body is
    rendered once, with a mark where the 份号 goes; each copy is that body with its number
    put in — so a notice to N recipients costs one render, not N.

    ``max_chars`` bounds what one message carries (policy ``notifications.message_max_chars``):
    a longer notice (the 考核结果通报 lists every unit) goes as its opening lines and a last
    line saying how long the whole is and where to read it; the opening is cut once, and each
    copy stamps its number into that, so every message costs the same whatever the notice's
    length. ``None``: whole copies."""

    def __init__(self, notice, max_chars: int | None = None):
        self.notice = notice
        self.numbers = {p: i + 1 for i, p in enumerate(dict.fromkeys(notice.recipients or []))}
        lh = (notice.context or {}).get("letterhead")
        self.numbered = bool(self.numbers) and isinstance(lh, dict)
        whole = len((notice.text or "").rstrip("\n"))
        cut = max_chars is not None and whole > max_chars

        def bounded(html: str, text: str) -> tuple[str, str]:
            return ("", _excerpt(text, max_chars, whole, notice)) if cut else (html, text)

        self.plain = bounded(notice.html or "", notice.text or "")
        if self.numbered:
            self.marked = bounded(*render(notice.kind, {**notice.context, "letterhead": {**lh, "copy_no": COPY_MARK}}))

    def number(self, person: str) -> str:
        """``person``'s 份号: their place among the recipients, 6 digits ('' if not one)."""
        return f"{self.numbers[person]:06d}" if person in self.numbers else ""

    def of(self, person: str) -> tuple[str, str]:
        """(html, text) of ``person``'s copy ('' html when only an excerpt goes); the notice as
        stored (no 份号) for anyone else."""
        number = self.number(person)
        if not self.numbered or not number:
            return self.plain
        html, text = self.marked
        return html.replace(COPY_MARK, number), text.replace(COPY_MARK, number)


def _excerpt(text: str, max_chars: int, whole: int, notice) -> str:
    """The opening whole lines of ``text`` within ``max_chars``, and where the rest is."""
    cut = text.rfind("\n", 0, max_chars)
    head = text[:cut if cut > 0 else max_chars].rstrip()
    ref = f"{notice.doc_number}，" if notice.doc_number else ""
    return (f"{head}\n……\n（以上为节选；全文共 {whole} 字，见 dutyflow 通知 {notice.id}"
            f"（{ref}可在界面或以 dutyflow notice render 取得）。）\n")


def copy_for(notice, person: str) -> tuple[str, str]:
    """(html, text) of ``person``'s numbered copy (one render: use :class:`Copies` for many)."""
    return Copies(notice).of(person)


def required_variables(kind: str, ext: str = "html") -> set[str]:
    """Variables a kind's template and its layout read (``jinja2.meta``)."""
    env = OUTPUTS[ext]
    names = set()
    for name in (template_name(kind, ext), f"layout.{ext}.j2"):
        source = env.loader.get_source(env, name)[0]
        names |= meta.find_undeclared_variables(env.parse(source))
    return names


# --------------------------------------------------------------------------- issue


def _json_context(context: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(context, ensure_ascii=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"notice context must be JSON-serialisable (str, numbers, lists, dicts): {exc}") from exc


def issue_notice(
    s: Session,
    *,
    case: Case,
    kind: str,
    issuer: OrgUnit,
    recipients: list[str],
    title: str,
    main_to: str,
    context: dict[str, Any],
    urgency: str = "",
    signer: str = "",
    cc: Iterable[str] = (),
    numbered: bool = True,
    attachments: Iterable[str] = (),
    secrecy_period: str = "",
    remarks: Iterable[str] = (),
    draft: bool = False,
) -> Notice:
    """Issue one notice inside the caller's transaction and queue its notifications.

    - 发文字号 (when ``numbered`` and the issuer has a 发文机关代字 ``doc_prefix``; a unit
      without one issues unnumbered documents): ``next_number(s, "doc:<prefix>", year)``,
      year of ``now()`` in Asia/Shanghai — gapless per prefix and year; a rollback of the
      caller's transaction gives the number back;
    - notice id ``NTC-<year>-<6 digits>`` from the ``notice`` sequence; the stored notice is
      the file copy, without 份号: each recipient's copy is numbered (:func:`copy_for`);
    - the case id goes into the 附注, never into the title or body;
    - a classified case (``case.classified``) gives ``notice.classified``, 密级 秘密 and its
      保密期限 (policy);
    - both outputs rendered; the context (with ``letterhead``) stored as JSON;
    - ``models.outbox.queue_notifications(s, notice)`` after a flush.

    Inside a sweep batch (``models.batch``) the row is inserted in bulk with the batch and
    the returned notice is a plain record with the same attributes.
    """
    at = now()
    year = local(at).year
    classified = bool(case.classified)
    # Validate everything before taking numbers.
    lh = build_letterhead(
        issuer, kind, title=title, main_to=main_to, urgency=urgency, signer=signer, cc=cc,
        classification=CLASSIFIED_LEVEL if classified else "",
        secrecy_period=(secrecy_period or secrecy_period_default()) if classified else "",
        attachments=attachments, remarks=[f"事项编号：{case.id}", *remarks], draft=draft, at=at,
    )
    doc_number = ""
    if numbered and not draft and (issuer.doc_prefix or "").strip():
        prefix = issuer.doc_prefix.strip()
        doc_number = format_doc_number(prefix, year, next_number(s, doc_counter_name(prefix), year))
    n = next_number(s, "notice", year)
    lh = replace(lh, doc_number=doc_number)  # 份号 is per copy: see copy_for()
    ctx = _json_context({**_plain(context), "letterhead": lh.as_dict()})
    html, text = render(kind, ctx)
    row = dict(
        id=format_notice_id(year, n),
        case_id=case.id,
        kind=kind,
        doc_number=doc_number or None,
        title=lh.title,
        issuer_unit=issuer.code,
        recipients=list(dict.fromkeys(recipients)),
        classified=classified,
        context=ctx,
        html=html,
        text=text,
        issued_at=at,
    )
    if batch.defer(s, Notice.__table__, [row]):  # a sweep batch inserts them in bulk
        notice = SimpleNamespace(**row)
    else:
        notice = Notice(**row)
        s.add(notice)

    queue_notifications(s, notice, fresh=True)
    return notice

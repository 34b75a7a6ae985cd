"""Base of every flow's ``request`` model (one pydantic parameter per flow).

Fields carry Chinese titles and descriptions (the Prefect UI form shows them). Optional
fields have plain defaults (``X | None`` renders as a type toggle in the form); ``null``
in JSON is accepted and means "not given". Unknown fields are refused.

Every request is screened before its fields are parsed (:meth:`Request._screen`), the same
for the CLI, a deployment run and a direct call: text without NUL and other control
characters (long text may hold line breaks and tabs), finite numbers no larger than
:data:`MAX_NUMBER`, no field and no request larger than the policy's ``requests.max_kb``;
then every time and date is checked to lie in the years the clock allows
(:meth:`Request._check_times`). A refusal names the field; nothing has been written.
"""
from __future__ import annotations

import math
import re
import types
import typing
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, ClassVar

from annotated_types import MaxLen
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from models import policy
from models.choices import CHOICE_KEY, case_id, person_id, unit_code
from models.clock import check_date, parse_time, quoted
from models.errors import DomainError


def _with_offset(value: Any) -> datetime:
    try:
        return parse_time(value, require_offset=True)
    except DomainError as exc:
        raise ValueError(exc.message.split(": ", 1)[-1]) from None


#: A request time: ISO-8601 with offset (SPEC §5); a naive time, a date or a number is refused.
RequestTime = Annotated[datetime, BeforeValidator(_with_offset)]
#: A unit, a person, a case: the id, or the label the form's picker offers (models/choices.py).
UnitCode = Annotated[str, BeforeValidator(unit_code)]
PersonId = Annotated[str, BeforeValidator(person_id)]
CaseId = Annotated[str, BeforeValidator(case_id)]
#: An optional time as text ('' = not given): the form still shows a date-time picker.
TIME_PICKER = {"format": "date-time"}


def picks(key: str, **extra) -> dict:
    """``json_schema_extra`` of a field the form offers as a select (``unit``, ``person``,
    ``appellant``, ``case:<kind>``); extra keys (e.g. the time picker's format) are merged."""
    return {CHOICE_KEY: key, **extra}


class NonJSONNumber:
    """``NaN``, ``Infinity`` or ``-Infinity`` as the CLI reads ``--params`` (json's
    ``parse_constant``): not JSON, so kept apart from floats and refused by the screen,
    naming the field."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


#: The largest magnitude of a number in a request: integers stay exact in every JSON reader
#: (2**53 - 1) and fit every integer column; no figure of this domain comes near it.
MAX_NUMBER = 2**53 - 1
#: A bad character in text: C0/C1 controls and DEL, lone UTF-16 surrogates (PostgreSQL
#: refuses NUL in text, and no encoder takes a lone surrogate). Long text keeps \t \n \r.
_BAD_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_BAD_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
BLANKS = " \t\n\r"
_CONTROL_NAMES = {0x00: "NUL", 0x09: "制表符", 0x0A: "换行", 0x0D: "回车", 0x7F: "DEL"}
#: One-line text: ids, pickers, times, and fields whose ``max_length`` is at most this (a
#: title); other text is long text and may hold line breaks and tabs.
_ONE_LINE_MAX = 200


def max_request_bytes() -> int:
    """The policy's ``requests.max_kb`` in bytes: the limit of one request and of any one field."""
    return int(policy.get("requests", "max_kb", default=512)) * 1024


def too_large(size: int, what: str) -> str:
    """The refusal of an oversized request or field (one Chinese phrase)."""
    limit = max_request_bytes() // 1024
    return f"请求过大：{what} {math.ceil(size / 1024):,} KB，超过 {limit} KB"


def _bad(field: str, message: str) -> PydanticCustomError:
    """A screening error that names its field (read back by :func:`describe`; a flow given
    a bad request directly shows ``request: field: message`` in its Failed state)."""
    return PydanticCustomError("dutyflow_bad_input", "{field}: {message}", {"field": field, "message": message})


def _unwrap(ann: Any, want: type | tuple) -> Any:
    """``X | None`` / ``Annotated[X, …]`` → the member that is (or whose origin is) ``want``."""
    if typing.get_origin(ann) is Annotated:
        return _unwrap(typing.get_args(ann)[0], want)
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        for arg in typing.get_args(ann):
            found = _unwrap(arg, want)
            if found is not None:
                return found
        return None
    base = typing.get_origin(ann) or ann
    return ann if isinstance(base, type) and issubclass(base, want) else None


def field_at(model: type[BaseModel], loc: tuple) -> tuple[FieldInfo | None, Any]:
    """The field a location names (``("chain_add", 0, "role")``) and the type at that location,
    through nested models, lists and dicts; (None, None) where the location leaves the model."""
    info, ann = None, model
    for part in loc:
        if isinstance(part, str) and (sub := _unwrap(ann, BaseModel)) is not None:
            info = sub.model_fields.get(part)
            if info is None:
                return None, None
            ann = info.annotation
        elif (seq := _unwrap(ann, (list, tuple, set))) is not None and isinstance(part, int):
            ann = (typing.get_args(seq) or (Any,))[0]
        elif (mapping := _unwrap(ann, dict)) is not None:
            ann = (typing.get_args(mapping) or (Any, Any))[-1]
        else:
            return None, None
    return info, ann


def _one_line(info: FieldInfo | None) -> bool:
    """Ids, pickers, times and short text (a title) take one line; other text may have more."""
    if info is None:
        return True  # dict keys and fields outside the model
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if CHOICE_KEY in extra or extra.get("format") in ("date", "date-time"):
        return True
    return any(isinstance(m, MaxLen) and m.max_length <= _ONE_LINE_MAX for m in info.metadata)


def _loc_text(loc: tuple) -> str:
    """``chain_add[0].reason``, as the domain core names fields; a key's bad characters shown
    escaped, so the refusal stays one printable line."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "request"
    return _BAD_IN_LINE.sub(lambda m: ascii(m.group())[1:-1], text)


#: No request nests deeper than this (a model inside a list inside a field is 3 or 4).
MAX_DEPTH = 16


def _screen_value(model: type[BaseModel] | None, value: Any, loc: tuple, limit: int) -> int:
    """Check one raw value (recursively); return its size in bytes (roughly its JSON size).
    Without a model (a data file) every text is long text."""
    if len(loc) > MAX_DEPTH:
        raise _bad(_loc_text(loc[:MAX_DEPTH]) + ".…", f"嵌套过深：请求最多 {MAX_DEPTH} 层")
    if isinstance(value, str):
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise _bad(_loc_text(loc), too_large(size, "本字段"))
        one_line = model is not None and _one_line(field_at(model, loc)[0] if loc else None)
        text = value.strip(BLANKS) if one_line else value  # surrounding blanks are stripped anyway
        offset = len(value) - len(value.lstrip(BLANKS)) if one_line else 0
        bad = (_BAD_IN_LINE if one_line else _BAD_IN_TEXT).search(text)
        if bad:
            code = ord(bad.group())
            if 0xD800 <= code <= 0xDFFF:
                raise _bad(_loc_text(loc), f"含有无效字符 U+{code:04X}（孤立的 UTF-16 代理项，不是文字）")
            name = _CONTROL_NAMES.get(code)
            what = f"U+{code:04X}" + (f"（{name}）" if name else "")
            allowed = ("此字段只能填写一行文字" if chr(code) in "\t\n\r"
                       else "只允许文字、标点和空格（长文本中可换行、可用制表符）")
            raise _bad(_loc_text(loc), f"含有控制字符 {what}（第 {offset + bad.start() + 1} 个字符）；{allowed}")
        return size + 2
    if isinstance(value, NonJSONNumber) or (isinstance(value, float) and not math.isfinite(value)):
        text = value.text if isinstance(value, NonJSONNumber) else (
            "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity")
        raise _bad(_loc_text(loc), f"数值 {text} 不是有效数字：须为有限数值（JSON 不允许 NaN、Infinity；1e309 等超出范围的数即 Infinity）")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if abs(value) > MAX_NUMBER:
            shown = f"{value:.3g}" if isinstance(value, float) else (str(value) if value < 10**20 else f"{value:.3e}")
            raise _bad(_loc_text(loc), f"数值 {shown} 超出允许范围：绝对值不超过 {MAX_NUMBER}")
        return 24
    if isinstance(value, dict):
        size = 2
        for key, item in value.items():
            if isinstance(key, str):  # a field name, a person id, an item id: one line of text
                size += _screen_key(key, (*loc, key), limit)
            size += _screen_value(model, item, (*loc, key), limit)
        return size
    if isinstance(value, (list, tuple)):
        return 2 + sum(_screen_value(model, item, (*loc, i), limit) + 1 for i, item in enumerate(value))
    return 8


def _screen_key(key: str, loc: tuple, limit: int) -> int:
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise _bad(_loc_text(loc), too_large(size, "键"))
    bad = _BAD_IN_LINE.search(key)
    if bad:
        raise _bad(_loc_text(loc), f"键含有控制字符或无效字符 U+{ord(bad.group()):04X}；键只能是一行文字")
    return size + 3


def screen(model: type[BaseModel], data: Any) -> None:
    """Refuse bad text, bad numbers and oversized input anywhere in a raw request, naming the
    field (see the module docstring). Raises the pydantic error :func:`describe` reads."""
    limit = max_request_bytes()
    size = _screen_value(model, data, (), limit)
    if size > limit:
        raise _bad("request", too_large(size, "请求共"))


def screen_file(data: Any, source: str) -> None:
    """A data file (an org file, YAML or JSON) gets the same text and number checks as a
    request (no size limit; every text may hold line breaks and tabs): a refusal names the
    file and the entry (``persons[3].name``)."""
    try:
        _screen_value(None, data, (), limit=2**62)
    except PydanticCustomError as exc:
        raise DomainError(f"{source}：{exc.context['message']}", exc.context["field"]) from None


def _check_times_in(value: Any, info: FieldInfo | None, loc: tuple) -> None:
    """Every date and time of a validated request lies in the years the clock allows; an
    optional time or date kept as text (a form's picker) is parsed here, before any write."""
    field = _loc_text(loc)
    if isinstance(value, BaseModel):
        for name, sub in type(value).model_fields.items():
            _check_times_in(getattr(value, name), sub, (*loc, name))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_times_in(item, info, (*loc, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_times_in(item, info, (*loc, key))
    elif isinstance(value, datetime):
        parse_time(value, field, require_offset=True)
    elif isinstance(value, date):
        check_date(value, field)
    elif isinstance(value, str) and value and info is not None and isinstance(info.json_schema_extra, dict):
        kind = info.json_schema_extra.get("format")
        if kind == "date-time":
            parse_time(value, field, require_offset=True)
        elif kind == "date":
            try:
                day = date.fromisoformat(value)
            except ValueError:
                raise DomainError(f"'{quoted(value)}' 不是日期（YYYY-MM-DD）", field) from None
            check_date(day, field)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False, str_strip_whitespace=True)

    #: The action that takes this request: its flow's, deployment's and ``dutyflow run`` name
    #: (SPEC §5), declared once here and read by the flow (``@flow(name=….FLOW)``).
    FLOW: ClassVar[str] = ""

    actor: PersonId = Field(
        title="操作人",
        description="办理人（组织名册中有在岗职务的人员；也可填写人员编号）",
        min_length=1, json_schema_extra=picks("person"),
    )
    effective_at: str = Field(
        default="",
        title="生效时间（补录用）",
        description="北京时间；留空为现在；不得晚于现在",
        json_schema_extra=TIME_PICKER,
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @model_validator(mode="before")
    @classmethod
    def _screen(cls, data: Any) -> Any:
        screen(cls, data)
        return data

    @model_validator(mode="after")
    def _check_times(self) -> "Request":
        try:
            _check_times_in(self, None, ())
        except DomainError as exc:
            raise _bad(exc.field or "request", exc.message.removeprefix(f"{exc.field}: ")) from None
        return self

    def effective_time(self) -> datetime | None:
        return parse_time(self.effective_at, "effective_at", require_offset=True) if self.effective_at else None


def optional_time(value: str, field: str) -> datetime | None:
    """An optional request time ('' = not given); given, it must carry its offset."""
    return parse_time(value, field, require_offset=True) if value else None


def validate_request(model: type[BaseModel], params: Any) -> BaseModel:
    """Validate raw parameters; a failure becomes one DomainError naming the field."""
    if isinstance(params, model):
        return params
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise DomainError(*describe(model, exc)) from None


#: Chinese wording of pydantic's common errors (``{…}`` from the error's context).
_MESSAGES = {
    "string_type": "应为文本",
    "string_too_short": "不能为空",
    "string_too_long": "过长：最多 {max_length} 个字符",
    "int_type": "应为整数", "int_parsing": "应为整数", "int_from_float": "应为整数",
    "float_type": "应为数值", "float_parsing": "应为数值",
    "bool_type": "应为 true 或 false", "bool_parsing": "应为 true 或 false",
    "greater_than_equal": "应不小于 {ge}", "greater_than": "应大于 {gt}",
    "less_than_equal": "应不大于 {le}", "less_than": "应小于 {lt}",
    "date_type": "不是日期（YYYY-MM-DD）", "date_parsing": "不是日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "不是日期（YYYY-MM-DD）", "date_from_datetime_inexact": "应为日期，不含时刻（YYYY-MM-DD）",
    "list_type": "应为列表", "too_short": "至少填写 {min_length} 项", "too_long": "最多 {max_length} 项",
    "dict_type": "应为 JSON 对象", "model_type": "应为 JSON 对象", "model_attributes_type": "应为 JSON 对象",
    "finite_number": "须为有限数值",
}


def _quoted(value: Any) -> str:
    return quoted(repr(value))


def describe(model: type[BaseModel], exc: ValidationError) -> tuple[str, str]:
    """The first error as (message, field): the field's form title, what was wrong in
    Chinese, and for a choice what is allowed (ids with their labels)."""
    err = exc.errors()[0]
    if err["type"] == "dutyflow_bad_input":
        loc = str(err["ctx"]["field"])
        info = model.model_fields.get(re.split(r"[.\[]", loc)[0])
        title = f"（{info.title}）" if info and info.title else ""
        return f"{title} {err['ctx']['message']}".strip(), loc
    loc = ".".join(str(p) for p in err["loc"]) or "request"
    field_name = str(err["loc"][0]) if err["loc"] else ""
    info = model.model_fields.get(field_name)
    title = f"（{info.title}）" if info and info.title else ""
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"未知字段；允许的字段：{', '.join(model.model_fields)}"
    elif err["type"] == "missing":
        msg = "必填"
    elif err["type"] in _MESSAGES:
        ctx = err.get("ctx") or {}
        try:
            msg = _MESSAGES[err["type"]].format(**ctx)
        except (KeyError, IndexError):  # a context pydantic did not give: its own words then
            pass
        if err["type"] == "string_too_short" and ctx.get("min_length", 1) > 1:
            msg = f"过短：至少 {ctx['min_length']} 个字符"
        if "input" in err and not isinstance(err["input"], (dict, list)) and err["type"] != "string_too_short":
            msg += f"（收到 {_quoted(err['input'])}）"
    enum = _unwrap(field_at(model, tuple(err["loc"]))[1], Enum) if err["loc"] else None
    if enum is not None and err["type"] in ("enum", "value_error", "literal_error"):
        choices = "、".join(f"{m.name}（{m.value}）" for m in enum)
        msg = f"无效取值 {_quoted(err.get('input'))}；允许：{choices}"
    return f"{title} {msg}".strip(), loc

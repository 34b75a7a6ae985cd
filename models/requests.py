"""Base of every flow's ``request`` model (one pydantic parameter per flow).

Fields carry Chinese titles and descriptions (the Prefect UI form shows them). Optional
fields have plain defaults (``X | None`` renders as a type toggle in the form); ``null``
in JSON is accepted and means "not given". Unknown fields are refused.
"""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from models.choices import CHOICE_KEY, case_id, person_id, unit_code
from models.clock import parse_time
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


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False, str_strip_whitespace=True)

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


def describe(model: type[BaseModel], exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "request"
    field_name = str(err["loc"][0]) if err["loc"] else ""
    info = model.model_fields.get(field_name)
    title = f"（{info.title}）" if info and info.title else ""
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"未知字段；允许的字段：{', '.join(model.model_fields)}"
    elif err["type"] == "missing":
        msg = "必填"
    ann = info.annotation if info else None
    if isinstance(ann, type) and issubclass(ann, Enum):
        choices = "、".join(f"{m.name}（{m.value}）" for m in ann)
        msg = f"无效取值 {err.get('input')!r}；允许：{choices}"
    return f"{title} {msg}".strip(), loc

"""Enums whose values are the Chinese labels operators pick in the Prefect UI form.

The member name is the id (``relatively_major``): accepted on input as well, and used in
JSON output and the database.
"""
from __future__ import annotations

from enum import Enum


class LabeledEnum(str, Enum):
    """``str`` enum: value = Chinese label shown in the form, name = stable id."""

    @classmethod
    def _missing_(cls, value):
        if isinstance(value, str):
            key = value.strip()
            for member in cls:
                if key in (member.name, member.value):
                    return member
        return None

    @property
    def id(self) -> str:
        return self.name

    @classmethod
    def from_id(cls, value: str) -> "LabeledEnum":
        return cls(value)

    @classmethod
    def ids(cls) -> list[str]:
        return [m.name for m in cls]

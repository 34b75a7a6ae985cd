"""Official notices (公文) and the notification outbox.

A notice is rendered once from its Jinja template and kept (HTML + plain text + the
context, so a printable document can be produced later). Each notice queues one
``notification`` row per recipient and channel; the unique ``dedupe_key`` makes
"nothing is sent twice" a database fact, and the sweep retries failures with backoff.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from models.case import _dt
from models.db import JSONDict, JSONList


class Notice(SQLModel, table=True):
    __tablename__ = "notice"
    id: str = Field(primary_key=True)
    case_id: str = Field(foreign_key="case.id", index=True)
    kind: str
    doc_number: str | None = Field(default=None, unique=True)
    title: str
    issuer_unit: str = Field(foreign_key="org_unit.code")
    recipients: list = Field(default_factory=list, sa_column=Column(JSONList, nullable=False))
    classified: bool = False
    context: dict = Field(default_factory=dict, sa_column=Column(JSONDict, nullable=False))
    html: str = Field(default="", sa_column=Column(Text, nullable=False))
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    issued_at: datetime = _dt(nullable=False)


class NotificationStatus:
    pending = "pending"
    sent = "sent"
    failed = "failed"
    #: 结果不明: the request left and no answer came (the endpoint timed out, or the deliverer
    #: died mid-send). Never sent again automatically: a person checks with the recipient and
    #: settles it (``dutyflow outbox settle``), so nothing is sent twice and nothing is dropped.
    unconfirmed = "unconfirmed"


class Notification(SQLModel, table=True):
    __tablename__ = "notification"
    id: int | None = Field(default=None, primary_key=True)
    notice_id: str = Field(foreign_key="notice.id", index=True)
    case_id: str = Field(foreign_key="case.id", index=True)
    person: str = Field(foreign_key="person.id")
    channel: str  # an Apprise URL (tokens inside: shown masked) or a tag of the channel config
    dedupe_key: str = Field(unique=True)
    status: str = NotificationStatus.pending
    attempts: int = 0
    last_error: str = ""
    next_attempt_at: datetime | None = _dt(index=True)
    sent_at: datetime | None = _dt()
    created_at: datetime = _dt(nullable=False)
    # the delivery claim (tasks/notify.py), on the machine's real clock, never the drill clock:
    claimed_by: str | None = Field(default=None, index=True)  # "host:pid:start:nonce" of the deliverer
    claim_expires: datetime | None = _dt()
    send_started_at: datetime | None = _dt()  # its request is leaving; on an unconfirmed row: when it left

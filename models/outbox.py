"""The notification outbox's rows (SPEC §1 decision 7): what a notice queues, and what a
person records of a notification whose outcome is unknown.

A notice queues one ``notification`` row per recipient and channel inside the caller's
transaction (:func:`queue_notifications`); ``tasks/notify.py`` delivers them after the
commit. A row whose request left but whose answer never came is 结果不明 (``unconfirmed``):
never resent by itself; :func:`settle` records what the recipient said.
"""
from __future__ import annotations

import logging

from sqlalchemy import func
from sqlmodel import Session, select

from models import audit, authority, batch
from models.case import Case
from models.clock import now, pinned_note
from models.db import session
from models.errors import DomainError
from models.notice import Notice, Notification, NotificationStatus
from models.org import Person, get_person, prefetch_persons

LOG = logging.getLogger("dutyflow.notify")
NO_CHANNEL = "无联系渠道"




def queue_notifications(s: Session, notice: Notice, fresh: bool = False) -> list[Notification]:
    """Queue one row per recipient and channel of ``notice`` in the caller's transaction.

    Idempotent: rows already queued for the notice (same dedupe key) are returned, not
    duplicated (new rows come back as result rows with the same attributes, existing ones as
    ORM objects). A recipient without any channel gets one ``failed`` row (channel '',
    ``无联系渠道``) that is never retried; an unknown recipient refuses the notice. Inside a
    sweep batch the new rows are inserted in bulk with the batch (``models.batch``) and only
    the rows that already existed are returned.
    """
    with s.no_autoflush:  # reads only: the new rows are written with one INSERT at the end
        return _queue(s, notice, fresh)


def _queue(s: Session, notice: Notice, fresh: bool) -> list[Notification]:
    ts = now()
    existing = {} if fresh else {  # a notice issued in this transaction has no rows yet
        n.dedupe_key: n
        for n in s.exec(select(Notification).where(Notification.notice_id == notice.id)).all()
    }
    rows: list[Notification] = []  # already queued
    new: list[dict] = []
    ids = list(dict.fromkeys(str(p) for p in (notice.recipients or []) if p))
    prefetch_persons(s, ids)

    for pid in ids:
        person = _cached_person(s, pid)
        if person is None:
            raise DomainError(f"通知 {notice.id} 的接收人 '{pid}' 未在人员名册中登记", "recipients")
        channels = list(dict.fromkeys(c.strip() for c in (person.channels or []) if c and c.strip()))
        for channel in channels or [""]:
            key = f"{notice.id}|{pid}|{channel}"
            if key in existing:
                if existing[key] is not None:
                    rows.append(existing[key])
                continue
            new.append(dict(
                notice_id=notice.id, case_id=notice.case_id, person=pid, channel=channel,
                dedupe_key=key, created_at=ts, attempts=0, sent_at=None,
                status=NotificationStatus.pending if channel else NotificationStatus.failed,
                last_error="" if channel else NO_CHANNEL,
                next_attempt_at=ts if channel else None,  # '' rows are never retried
            ))
            existing[key] = None
            if not channel:
                LOG.warning("%s通知 %s：接收人 %s（%s）%s，已记为发送失败",
                            pinned_note(), notice.id, pid, person.name, NO_CHANNEL)
    if batch.defer(s, Notification.__table__, new) or not new:  # a sweep batch inserts them in bulk
        return rows
    s.flush()  # the notice first (foreign key), then one multi-row INSERT: a notice may go to thousands
    table = Notification.__table__
    return [*rows, *s.execute(table.insert().returning(*table.c, sort_by_parameter_order=True), new).all()]


def _cached_person(s: Session, pid: str) -> Person | None:
    try:
        return get_person(s, pid)
    except DomainError:
        return None


def unconfirmed(case_id: str | None = None) -> list[Notification]:
    """Rows whose outcome is unknown (结果不明), oldest first: a person must settle each."""
    with session() as s:
        q = select(Notification).where(Notification.status == NotificationStatus.unconfirmed)
        if case_id:
            q = q.where(Notification.case_id == case_id)
        return list(s.exec(q.order_by(Notification.send_started_at, Notification.id)).all())


def unconfirmed_count() -> int:
    """How many rows wait for a person to settle them (结果不明)."""
    with session() as s:
        return s.exec(select(func.count()).where(Notification.status == NotificationStatus.unconfirmed)).one()


def settle(row_id: int, *, delivered: bool, actor: str) -> Notification:
    """A person has asked the recipient about an unconfirmed row: ``delivered`` records it as
    sent (at the time its request left); otherwise it is sent again at the next delivery.
    Either way an audit event on the case says who settled it and how."""
    t = now()
    with session() as s:
        row = s.exec(select(Notification).where(Notification.id == row_id).with_for_update()).first()
        if row is None:
            raise DomainError(f"未找到通知 #{row_id}", "ID")
        if row.status != NotificationStatus.unconfirmed:
            raise DomainError(f"通知 #{row_id} 的状态是 {row.status}：只有结果不明（unconfirmed）的通知需要核实处理", "ID")
        authority.check_actor(s, actor, t, system_ok=False)
        case = s.get(Case, row.case_id)
        case.event_count = (case.event_count or 0) + 1
        s.add(case)
        audit.append(s, case_id=case.id, type="notification_settled", from_state=case.state, to_state=case.state,
                     actor=actor, effective_at=t, recorded_at=t, seq=case.event_count,
                     payload={"notification": row.id, "notice": row.notice_id, "person": row.person,
                              "outcome": "delivered" if delivered else "resend"})
        if delivered:
            row.status, row.sent_at, row.next_attempt_at = NotificationStatus.sent, row.send_started_at or t, None
            row.last_error = ""
        else:
            row.status, row.next_attempt_at, row.send_started_at = NotificationStatus.failed, t, None
            row.last_error = f"经 {actor} 核实未收到，重新发送"
        s.add(row)
        s.flush()
        s.expunge(row)
    LOG.info("%s通知 #%s（%s → %s）由 %s 核实：%s", pinned_note(), row_id, row.notice_id, row.person, actor,
             "已送达" if delivered else "未收到，重新发送")
    return row

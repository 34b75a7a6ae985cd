"""Batch mode: many transitions in one transaction, written back with few statements.

The sweep acts on a batch of due obligations in ONE transaction (``models.sweep``), after
locking the batch's obligations and cases. Inside such a transaction (``s.info["batch"]``):

- gapless counters (case ids, 发文字号, notice numbers) are incremented in memory after the
  first increment has locked their row, and written back once (:func:`write_back_counters`);
- new rows nobody reads back as ORM objects (notices, notifications, audit events) are kept
  as plain rows and inserted with one executemany per table after each flush (:func:`defer`);
- the updated cases and obligations — already locked, so their optimistic version check
  cannot fail unless the lock was lost — are written with one executemany UPDATE per shape
  instead of one UPDATE per row (:func:`write_versioned_updates`; the ORM emits versioned
  UPDATEs one at a time, one round trip each on PostgreSQL);
- a savepoint rolled back takes back the rows it kept and the numbers it handed out.

:func:`finish` writes it all back; a rollback of the transaction discards everything,
numbers included. Outside batch mode none of this applies.
"""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import bindparam, event, inspect, text, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session


def active(s: Session) -> bool:
    return bool(s.info.get("batch"))


# ---------------------------------------------------------------- counters

def counters(s: Session) -> dict[tuple[str, int], int] | None:
    """The batch's counter values kept in memory, or None outside batch mode."""
    return s.info.setdefault("batch_counters", {}) if active(s) else None


def write_back_counters(s: Session) -> None:
    kept = s.info.pop("batch_counters", None) or {}
    if kept:
        s.execute(text("UPDATE counter SET value = :v WHERE name = :n AND year = :y"),
                  [{"n": n, "y": y, "v": v} for (n, y), v in kept.items()])


# ---------------------------------------------------------------- deferred inserts

def defer(s: Session, table, rows: list[dict]) -> bool:
    """Keep ``rows`` for ``table`` until the batch's next flush; False outside batch mode
    (the caller then adds ORM objects as usual)."""
    if not active(s):
        return False
    s.info.setdefault("batch_rows", []).append((table, rows))
    s.info["batch_rows_kept"] = s.info.get("batch_rows_kept", 0) + 1  # ever kept, written or not
    return True


def write_deferred(s: Session) -> int:
    """Insert the kept rows: one executemany per table, tables in the order they were first
    kept (a row's parents — notices, cases — are written before it)."""
    kept = s.info.pop("batch_rows", None) or []
    by_table: dict = {}
    for table, rows in kept:
        by_table.setdefault(table, []).extend(rows)
    conn = s.connection()
    for table, rows in by_table.items():
        if rows:
            conn.execute(table.insert(), rows)
    return sum(len(r) for r in by_table.values())


def _savepoint_guard() -> None:
    """A savepoint rolled back inside a batch takes back what it kept in memory: the rows
    it deferred and the counter numbers it handed out (the database undoes the rest)."""

    @event.listens_for(Session, "after_transaction_create")
    def _mark(session, transaction):
        if transaction.nested and active(session):
            session.info.setdefault("batch_marks", {})[id(transaction)] = (
                session.info.get("batch_rows_kept", 0), dict(session.info.get("batch_counters", {})))

    @event.listens_for(Session, "after_soft_rollback")
    def _take_back(session, previous_transaction):
        mark = session.info.get("batch_marks", {}).pop(id(previous_transaction), None)
        if mark is None:
            return
        kept_then, counters_then = mark
        since = session.info.get("batch_rows_kept", 0) - kept_then
        pending = session.info.get("batch_rows", [])
        if since and pending:  # the newest ones; those a flush wrote meanwhile are rolled back
            del pending[max(len(pending) - since, 0):]
        session.info["batch_rows_kept"] = kept_then
        session.info["batch_counters"] = counters_then


_savepoint_guard()


# ---------------------------------------------------------------- versioned rows

def write_versioned_updates(s: Session, classes: tuple[type, ...]) -> int:
    """Write the pending changes of persistent ``classes`` rows (each with a ``version_id``
    column) as executemany UPDATEs grouped by changed columns, bump their versions, and mark
    the written values committed (the ORM has nothing left to write for them; later changes
    in the batch are tracked as usual). Returns the rows written; raises ``StaleDataError``
    when a row's version moved (the batch is then redone step by step)."""
    groups: dict[tuple, list] = defaultdict(list)
    for obj in list(s.dirty):
        if not isinstance(obj, classes):
            continue
        keys = tuple(sorted(k for k in inspect(obj).committed_state if k != "version_id"))  # attributes set
        if keys:
            groups[(type(obj), keys)].append(obj)
    written = 0
    conn = s.connection()
    for (cls, keys), objs in groups.items():
        table = cls.__table__
        stmt = (update(table)
                .where(table.c.id == bindparam("b_id"), table.c.version_id == bindparam("b_version"))
                .values({**{k: bindparam(f"b_{k}") for k in keys}, "version_id": bindparam("b_new_version")}))
        params = [{"b_id": o.id, "b_version": o.version_id, "b_new_version": o.version_id + 1,
                   **{f"b_{k}": getattr(o, k) for k in keys}} for o in objs]
        rowcount = conn.execute(stmt, params).rowcount
        if rowcount != len(params):
            raise StaleDataError(f"{table.name}: {len(params)} rows to update, {rowcount} matched")
        for o in objs:
            for k in keys:
                set_committed_value(o, k, getattr(o, k))
            set_committed_value(o, "version_id", o.version_id + 1)
        written += len(objs)
    return written


def watch_versioned(classes: tuple[type, ...]) -> None:
    """In batch mode, every flush (the batch's own, or one a savepoint or a new case needs
    midway) writes ``classes`` rows through :func:`write_versioned_updates` first."""

    @event.listens_for(Session, "before_flush")
    def _bulk_versioned(session, _ctx, _instances):
        if active(session):
            write_versioned_updates(session, classes)

    @event.listens_for(Session, "after_flush")
    def _deferred_rows(session, _ctx):
        if active(session):
            write_deferred(session)


def finish(s: Session) -> None:
    """Write back a batch: its counters, one flush (versioned rows in bulk), kept rows."""
    with s.no_autoflush:  # the counters' UPDATE must not flush the ORM's rows first
        write_back_counters(s)
    s.flush()
    write_deferred(s)  # when the flush had nothing to write, its hook did not run

"""Append-only audit log with a SHA-256 hash chain, anchored outside the database.

Each ``audit_event`` holds the hash of the previous one. ``audit_head`` (one row) keeps
the last id and hash; appending locks it, so events get gapless ids in commit order even
with several writers. Each case's ``event_count`` is the number of its events (their ``seq``
run 1..n), a second, per-case anchor of the tail. Database triggers refuse UPDATE, DELETE and
TRUNCATE (PostgreSQL) of events and an INSERT that would replace one (SQLite ``INSERT OR
REPLACE``); the head can only move forward. ``verify`` detects any edited, deleted or
inserted row.

The chain has no secret: someone who gets past the triggers can edit an event and compute
every later hash again. :func:`write_anchor` therefore signs the head (HMAC-SHA256, with a key
kept outside the database) into an anchor file that operators copy elsewhere; ``verify``
checks every anchor it is given.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import Column, Index, event, text
from sqlalchemy.engine import make_url
from sqlmodel import Field, Session, SQLModel, select

from models import batch, policy
from models.case import Case, _dt
from models.clock import beijing, iso, now, parse_time
from models.db import JSONDict, database_url, home, session
from models.errors import DomainError

GENESIS = "0" * 64


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_case_seq", "case_id", "seq", unique=True),)
    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    case_id: str = Field(foreign_key="case.id")
    seq: int  # per case, from 1
    type: str
    from_state: str | None = None
    to_state: str | None = None
    actor: str
    effective_at: datetime = _dt(nullable=False)
    recorded_at: datetime = _dt(nullable=False)
    flow_run_id: str | None = None
    payload: dict = Field(default_factory=dict, sa_column=Column(JSONDict, nullable=False))
    prev_hash: str
    hash: str


class AuditHead(SQLModel, table=True):
    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    last_id: int = 0
    last_hash: str = GENESIS


_HASHED = ("id", "case_id", "seq", "type", "from_state", "to_state", "actor", "effective_at",
           "recorded_at", "flow_run_id", "payload", "prev_hash")


def _digest(ev: AuditEvent | dict) -> str:
    """SHA-256 of an event (a stored row, or the dict of one being appended)."""
    get = ev.get if isinstance(ev, dict) else ev.__getattribute__
    body = {k: get(k) for k in _HASHED}
    body["effective_at"], body["recorded_at"] = iso(body["effective_at"]), iso(body["recorded_at"])
    raw = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def _lock_head(s: Session) -> AuditHead:
    """The chain head, locked for the rest of the transaction (once per transaction)."""
    head = s.info.get("audit_head")
    if head is not None and head in s:
        return head
    s.execute(
        text("INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, :g) ON CONFLICT (id) DO NOTHING"),
        {"g": GENESIS},
    )
    head = s.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()
                  .execution_options(populate_existing=True)).one()
    s.info["audit_head"] = head
    return head


def append(s: Session, *, case_id: str, type: str, from_state: str | None, to_state: str | None,
           actor: str, effective_at: datetime, recorded_at: datetime,
           payload: dict[str, Any] | None = None, flow_run_id: str | None = None,
           seq: int | None = None) -> int:
    """Append one event inside the caller's transaction (``seq``: the case's next event
    number, looked up when not given). Returns the event's ``seq``."""
    head = _lock_head(s)
    if seq is None:
        seq = (s.exec(
            select(AuditEvent.seq).where(AuditEvent.case_id == case_id).order_by(AuditEvent.seq.desc()).limit(1)
        ).first() or 0) + 1
    ev = dict(
        id=head.last_id + 1, case_id=case_id, seq=seq, type=type, from_state=from_state,
        to_state=to_state, actor=actor, effective_at=effective_at, recorded_at=recorded_at,
        flow_run_id=flow_run_id, payload=json.loads(json.dumps(payload or {}, default=str)),
        prev_hash=head.last_hash,
    )
    ev["hash"] = _digest(ev)
    head.last_id, head.last_hash = ev["id"], ev["hash"]
    s.add(head)
    if not batch.defer(s, AuditEvent.__table__, [ev]):  # a sweep batch inserts them in bulk
        s.add(AuditEvent(**ev))
    return seq


def verify(s: Session, anchors: Iterable[str | Path] = ()) -> tuple[bool, str]:
    """Check the audit log; returns (ok, one line: the first problem found, or a summary).

    What an intact result proves:

    - every event's content matches its hash, each event names the hash of the one before,
      ids run 1..n without a gap, and ``audit_head`` names the last one: no event was edited,
      deleted or inserted — unless every later hash and the head were computed again;
    - every case's ``event_count`` equals its number of events and its last ``seq``: deleting
      a case's last events is seen even when the head was moved back to match;
    - for every anchor (the files in ``anchors``, and every file in
      ``DUTYFLOW_HOME/anchors/`` made for this database): its HMAC signature is valid, the
      event it names still has the hash it recorded, the per-case event counts up to it match,
      and the head is at or past it. Nothing up to an anchored event was changed, even with
      every hash computed again, and no event up to it was deleted.

    What it cannot prove: a change made after the last anchor by someone who also computed the
    later hashes, the head and the case's ``event_count`` again (the chain holds no secret:
    only an anchor made before the change reveals it); that an anchor file was not deleted
    (keep copies outside ``DUTYFLOW_HOME``: whoever holds the key can sign a forged anchor,
    not change the copies); nor that the recorded facts were true.
    """
    loaded, other_db, problem = load_anchors(anchors)
    if problem:
        return False, problem
    by_id: dict[int, list[Anchor]] = defaultdict(list)
    for a in loaded:
        by_id[a.last_id].append(a)
    prev, expected_id, count = GENESIS, 1, 0
    per_case: dict[str, int] = defaultdict(int)
    last_seq: dict[str, int] = defaultdict(int)
    for ev in s.exec(select(AuditEvent).order_by(AuditEvent.id)).yield_per(2000):
        if ev.id != expected_id:
            return False, f"事件 {expected_id} 缺失（下一条为 {ev.id}）：审计链被删改"
        if ev.prev_hash != prev:
            return False, f"事件 {ev.id}（案件 {ev.case_id} 第 {ev.seq} 条）的前序哈希不符：审计链被删改"
        if _digest(ev) != ev.hash:
            return False, f"事件 {ev.id}（案件 {ev.case_id} 第 {ev.seq} 条，{ev.type}）的内容与哈希不符：已被修改"
        prev, expected_id, count = ev.hash, ev.id + 1, count + 1
        per_case[ev.case_id] += 1
        last_seq[ev.case_id] = max(last_seq[ev.case_id], ev.seq)
        for a in by_id.get(ev.id, ()):
            if ev.hash != a.last_hash:
                return False, (f"事件 {ev.id}（案件 {ev.case_id} 第 {ev.seq} 条）的哈希与外部锚点 {a.path}"
                               f"（{a.made_at}）记录的不符：该事件或其之前的事件被改动，且其后的哈希被重新计算")
            if count != a.events or _cases_digest(per_case.items()) != a.cases:
                return False, (f"截至事件 {ev.id}，各案件的事件数与外部锚点 {a.path}（{a.made_at}）记录的不符"
                               f"（锚点记录 {a.events} 条，实有 {count} 条）：审计链或案件记录被删改")
    head = s.get(AuditHead, 1)
    if head is None and count:
        return False, f"审计链末端记录（audit_head）缺失，实有 {count} 条事件：末端被删除"
    if head is not None and (head.last_id != count or head.last_hash != prev):
        return False, f"审计链末端不符：记录 {head.last_id} 条，实有 {count} 条（末尾事件被删除或插入）"
    for case_id, event_count in s.exec(select(Case.id, Case.event_count).order_by(Case.id)):
        n, last = per_case.pop(case_id, 0), last_seq.get(case_id, 0)
        if n != event_count or last != event_count:
            return False, (f"案件 {case_id} 记录有 {event_count} 条审计事件，审计链中实有 {n} 条"
                           f"（最大序号 {last}）：该案件的事件被删除或插入")
    for a in sorted(loaded, key=lambda a: a.last_id):
        if a.last_id > count:
            return False, (f"外部锚点 {a.path}（{a.made_at}）记录到事件 {a.last_id}，审计链只到事件 {count}："
                           f"末尾事件被删除")
    summary = f"审计链完整：{count} 条事件"
    if loaded:
        latest = max(loaded, key=lambda a: a.last_id)
        summary += f"；已核对 {len(loaded)} 个外部锚点（最近：事件 {latest.last_id}，{latest.made_at}）"
        if count > latest.last_id:
            summary += (f"；其后 {count - latest.last_id} 条事件尚无锚点，若被改动且哈希被重新计算，"
                        f"须待下一个锚点才能发现")
    else:
        summary += ("；没有外部锚点：若有人改动事件并重新计算其后全部哈希，无法发现"
                    "（请用 dutyflow audit anchor 生成锚点并另行保存）")
    if other_db:
        summary += f"；另有 {other_db} 个锚点属于其他数据库，未核对"
    return True, summary


# ---------------------------------------------------------------- external anchors
#
# An anchor is a small JSON file naming the chain's head at one moment, signed with a key that
# is not in the database. Copies kept elsewhere (printed, on a USB stick, sent to the
# discipline committee) let ``verify`` prove that nothing up to that moment was rewritten.

_ANCHORED = ("last_id", "last_hash", "events", "cases", "made_at", "database")


@dataclass(frozen=True)
class Anchor:
    path: Path
    last_id: int
    last_hash: str
    events: int
    cases: str
    made_at: str  # as shown: 2026年11月28日10时30分
    database: str


def key_path() -> Path:
    return home() / "audit.key"


def audit_key(create: bool = True) -> bytes | None:
    """The anchors' signing key: ``DUTYFLOW_AUDIT_KEY`` when set, else the key file
    ``DUTYFLOW_HOME/audit.key`` (mode 0600), made on first use when ``create``. None when
    there is none and ``create`` is false. Never printed."""
    env = os.environ.get("DUTYFLOW_AUDIT_KEY")
    if env:
        return env.encode()
    path = key_path()
    if not path.exists():
        if not create:
            return None
        tmp = path.with_name(f".audit.key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)  # complete or absent: a concurrent first use keeps the other's key
            except FileExistsError:
                pass
        finally:
            tmp.unlink()
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise RuntimeError(f"审计签名密钥文件为空：{path}")
    return key.encode()


def anchor_dir() -> Path:
    return home() / "anchors"


def database_id() -> str:
    """Which database an anchor belongs to: its URL without the password."""
    return make_url(database_url()).render_as_string(hide_password=True)


def _cases_digest(pairs: Iterable[tuple[str, int]]) -> str:
    """SHA-256 of the per-case (case id, event count) list, sorted by case id (in Python:
    the database's collation may order ids otherwise)."""
    rows = sorted([case_id, n] for case_id, n in pairs if n)
    raw = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def _sign(anchor: dict, key: bytes) -> str:
    body = {k: anchor.get(k) for k in _ANCHORED}
    raw = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, raw.encode(), hashlib.sha256).hexdigest()


class AnchorRefused(Exception):
    """The head disagrees with the rows it should name: nothing is signed."""


def make_anchor(s: Session) -> dict | None:
    """The unsigned anchor of the chain's head now, or None when the log is empty.

    On PostgreSQL the head is share-locked, so no append commits while the case counts are
    read (SQLite transactions are serialised already)."""
    head = s.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update(read=True)
                  .execution_options(populate_existing=True)).first()
    if head is None or head.last_id == 0:
        return None
    last = s.get(AuditEvent, head.last_id)
    if last is None or last.hash != head.last_hash:
        raise AnchorRefused(f"审计链末端（事件 {head.last_id}）与事件记录不符：请先运行 dutyflow audit verify")
    counts = s.exec(select(Case.id, Case.event_count).where(Case.event_count > 0)).all()
    events = sum(n for _, n in counts)
    if events != head.last_id:
        raise AnchorRefused(f"各案件的事件数之和（{events}）与审计链末端（事件 {head.last_id}）不符："
                            f"请先运行 dutyflow audit verify")
    return {"last_id": head.last_id, "last_hash": head.last_hash, "events": events,
            "cases": _cases_digest(counts), "made_at": iso(now()), "database": database_id()}


def write_anchor(s: Session, out: str | Path | None = None) -> tuple[Path, dict] | None:
    """Sign the head into an anchor file: ``out``, by default
    ``DUTYFLOW_HOME/anchors/audit-anchor-<last_id>.json``. None when the log is empty."""
    anchor = make_anchor(s)
    if anchor is None:
        return None
    anchor["signature"] = _sign(anchor, audit_key())
    path = Path(out) if out else anchor_dir() / f"audit-anchor-{anchor['last_id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(anchor, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path, anchor


def anchor_if_due(every_hours: float | None = None) -> Path | None:
    """The sweep's periodic anchor: write one when the newest anchor of this database in
    ``DUTYFLOW_HOME/anchors/`` is older than ``every_hours`` (policy
    ``sweep.audit_anchor_hours``; 0 turns it off) and events were appended since. Cheap when
    not due: a directory listing and one small file read."""
    hours = policy.get("sweep", "audit_anchor_hours", default=24) if every_hours is None else every_hours
    if not hours or hours <= 0:
        return None
    latest = _newest_anchor()
    if latest is not None:
        age = now() - parse_time(latest["made_at"], "made_at")
        if timedelta(0) <= age < timedelta(hours=hours):
            return None
    with session() as s:
        head = s.get(AuditHead, 1)
        if head is None or head.last_id == 0 or (latest is not None and latest.get("last_id") == head.last_id):
            return None
        written = write_anchor(s)
    return written[0] if written else None


def _newest_anchor() -> dict | None:
    """The most recently written anchor of this database in the anchor directory (by file
    time), read without checking its signature (``verify`` does)."""
    directory = anchor_dir()
    if not directory.is_dir():
        return None
    files = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    me = database_id()
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("database") == me and _is_time(data.get("made_at")):
            return data
    return None


def load_anchors(given: Iterable[str | Path] = ()) -> tuple[list[Anchor], int, str | None]:
    """Read and authenticate the anchors: the files ``given``, then every file in the anchor
    directory. Returns (anchors, how many in the directory belong to another database, the
    first problem or None). A file given explicitly is checked whatever database it names."""
    paths = [(Path(p), True) for p in given]
    directory = anchor_dir()
    if directory.is_dir():
        paths += [(p, False) for p in sorted(directory.glob("*.json"))]
    seen: set[Path] = set()
    out: list[Anchor] = []
    other_db, key, me = 0, None, database_id()
    for path, explicit in paths:
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return [], 0, f"外部锚点文件不存在：{path}"
        except (OSError, ValueError) as exc:
            return [], 0, f"外部锚点 {path} 无法读取：{exc}"
        anchor, bad = _parse_anchor(path, data)
        if bad:
            return [], 0, f"外部锚点 {path} 格式不符：{bad}"
        if key is None:
            key = audit_key(create=False)
            if key is None:
                return [], 0, (f"外部锚点 {path} 无法核验：没有签名密钥（未设置 DUTYFLOW_AUDIT_KEY，"
                               f"也没有 {key_path()}）")
        if not hmac.compare_digest(_sign(data, key), data["signature"]):
            return [], 0, f"外部锚点 {path} 的签名无效：锚点被伪造或改动，或签名密钥不对"
        if not explicit and anchor.database != me:
            other_db += 1
            continue
        out.append(anchor)
    return out, other_db, None


def _is_hash(v: Any) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def _is_count(v: Any, least: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _is_time(v: Any) -> bool:
    try:
        parse_time(v, "made_at", require_offset=True)
    except DomainError:
        return False
    return True


_FIELD_CHECKS = {"last_id": lambda v: _is_count(v, 1), "last_hash": _is_hash, "events": lambda v: _is_count(v, 0),
                 "cases": _is_hash, "made_at": _is_time, "database": lambda v: isinstance(v, str),
                 "signature": _is_hash}


def _parse_anchor(path: Path, data: Any) -> tuple[Anchor | None, str]:
    """(the anchor, "") or (None, what is wrong with the file)."""
    if not isinstance(data, dict):
        return None, "不是 JSON 对象"
    wrong = [k for k, ok in _FIELD_CHECKS.items() if not ok(data.get(k))]
    if wrong:
        return None, "缺少字段或取值不对：" + "、".join(wrong)
    made = beijing(parse_time(data["made_at"], "made_at"))
    return Anchor(path=path, **{k: data[k] for k in _ANCHORED if k != "made_at"}, made_at=made), ""


# ---------------------------------------------------------------- append-only guard

_SQLITE_REFUSE = "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END"

TRIGGERS = {
    # Every statement is idempotent. Migration 0001 installs this list on a new database;
    # 0009 adds, from its own copy, what came later to databases made before it.
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS audit_event_no_update BEFORE UPDATE ON audit_event " + _SQLITE_REFUSE,
        "CREATE TRIGGER IF NOT EXISTS audit_event_no_delete BEFORE DELETE ON audit_event " + _SQLITE_REFUSE,
        # INSERT OR REPLACE deletes the row it conflicts with without firing delete triggers
        # (unless PRAGMA recursive_triggers): refuse any insert that would meet an existing row.
        "CREATE TRIGGER IF NOT EXISTS audit_event_no_replace BEFORE INSERT ON audit_event "
        "WHEN EXISTS (SELECT 1 FROM audit_event WHERE id = NEW.id) "
        "OR EXISTS (SELECT 1 FROM audit_event WHERE case_id = NEW.case_id AND seq = NEW.seq) " + _SQLITE_REFUSE,
        # the head only moves forward: deleted, the next append would restart at genesis
        "CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head "
        "BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_head_forward_only BEFORE UPDATE ON audit_head "
        "WHEN NEW.id != OLD.id OR NEW.last_id < OLD.last_id "
        "OR (NEW.last_id = OLD.last_id AND NEW.last_hash != OLD.last_hash) "
        "BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END",
        # REPLACE INTO audit_head deletes the row without firing the delete trigger; the
        # append's own INSERT … ON CONFLICT DO NOTHING meets this trigger too, hence IGNORE
        "CREATE TRIGGER IF NOT EXISTS audit_head_no_replace BEFORE INSERT ON audit_head "
        "WHEN EXISTS (SELECT 1 FROM audit_head WHERE id = NEW.id) BEGIN SELECT RAISE(IGNORE); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'audit_event is append-only'; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS audit_event_no_change ON audit_event",
        "CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()",
        # row triggers do not fire on TRUNCATE (nor on the TRUNCATE … CASCADE of a parent table)
        "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
        "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()",
        "CREATE OR REPLACE FUNCTION audit_head_keep() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'audit_head cannot be deleted'; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS audit_head_no_delete ON audit_head",
        "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
        "FOR EACH ROW EXECUTE FUNCTION audit_head_keep()",
        "DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head",
        "CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_head_keep()",
        "CREATE OR REPLACE FUNCTION audit_head_forward_only() RETURNS trigger AS $$ "
        "BEGIN IF NEW.id <> OLD.id OR NEW.last_id < OLD.last_id "
        "OR (NEW.last_id = OLD.last_id AND NEW.last_hash <> OLD.last_hash) THEN "
        "RAISE EXCEPTION 'audit_head only moves forward'; END IF; RETURN NEW; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS audit_head_forward_only ON audit_head",
        "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head "
        "FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()",
    ],
}


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session, _ctx, _instances):
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise RuntimeError("audit_event is append-only")

"""The notification outbox (SPEC §1 decision 7): queue, deliver with Apprise, retry.

A notice queues one ``notification`` row per recipient and channel inside the caller's
transaction (``models/outbox.py``). :func:`deliver` sends due rows **outside** any
long transaction: it reads a batch, *claims* a chunk of rows with a conditional UPDATE (a
lease pushes ``next_attempt_at`` forward; only the deliverer whose UPDATE matched a row
sends it), sends them, and records the outcomes in one short transaction per chunk. Failures back off
1, 2, 4 … 60 minutes and are retried forever; nothing is dropped, nothing is sent twice.

Channels are Apprise URLs (``…://…``) or tags of the Apprise config file named by
``DUTYFLOW_APPRISE_CONFIG``. ``dingtalk://`` and ``wecombot://`` (and their native
``https://`` webhook URLs) are rewritten to the ``dingtalkx://`` / ``wecombotx://``
plugins registered here, which check the platforms' JSON ``errcode`` (the stock plugins
report success on any HTTP 200).

Classified notices (涉密) never carry content over an external channel: every channel
gets the same content-free alert.

No secret leaves this module unmasked: every stored ``last_error`` and every log line
goes through ``models/masking.py``.

No Prefect import: flows wrap these plain functions as tasks.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html as _html
import json
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from secrets import token_hex
from typing import Any
from urllib.parse import unquote

import apprise
import requests
from apprise.decorators import notify as _apprise_notify
from apprise.logger import logger as _apprise_logger
from prefect import get_run_logger, task
from sqlalchemy import Engine, bindparam, or_, update
from sqlmodel import select

from models import policy
from models.clock import now, pinned_note
from models.db import engine, home, session
from models.masking import mask, mask_text, secrets_of
from models.notice import Notice, Notification, NotificationStatus
from models.notices import Copies

LOG = logging.getLogger("dutyflow.notify")


class _WarningsUpward(logging.Handler):
    """Apprise's warnings go up the logger tree as before. Its debug lines are created only
    to be captured in each call's result (a read timeout is told from a refused connection
    by one of them, see ``_MAYBE_DELIVERED``) and stop here: they may hold message content."""

    def __init__(self):
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        logger = _apprise_logger.parent
        while logger is not None:  # as propagation would (no last-resort printing)
            for handler in logger.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
            logger = logger.parent if logger.propagate else None


if not any(isinstance(h, _WarningsUpward) for h in _apprise_logger.handlers):
    _apprise_logger.setLevel(logging.DEBUG)
    _apprise_logger.propagate = False
    _apprise_logger.addHandler(_WarningsUpward())

CONFIG_ENV = "DUTYFLOW_APPRISE_CONFIG"
CLASSIFIED_TITLE = "涉密事项提醒"
CLASSIFIED_BODY = "您有一件涉密事项待处理，请登录系统查看"
LEASE = timedelta(minutes=5)  # a claimed row is invisible to other deliverers this long
CLAIM_CHUNK = 20  # rows claimed with one UPDATE and recorded in one transaction
MAX_BACKOFF_MINUTES = 60
MAX_ERROR_CHARS = 1000

DINGTALK_URL = "https://oapi.dingtalk.com/robot/send"
WECOMBOT_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
DEFAULT_TIMEOUT = (4.0, 10.0)  # requests (connect, read) for the errcode plugins
DINGTALK_MAX_BYTES = 18000  # DingTalk text messages: 20000 bytes
WECOM_MAX_BYTES = 2000  # WeCom bot text messages: 2048 bytes
TRUNCATED = "\n……（全文请登录系统查看）"

EMAIL_SCHEMAS = {"mailto", "mailtos"}


# ---------------------------------------------------------------- errcode-checking plugins


def _fail(msg: str) -> bool:
    """Report a failure the way Apprise captures it (a WARNING on its logger)."""
    _apprise_logger.warning(msg)
    return False


def _timeouts(qsd: dict) -> tuple[float, float]:
    def num(key: str, default: float) -> float:
        try:
            return float(qsd[key]) if qsd.get(key) not in (None, "") else default
        except (TypeError, ValueError):
            return default

    return num("cto", DEFAULT_TIMEOUT[0]), num("rto", DEFAULT_TIMEOUT[1])


def _truncate(content: str, max_bytes: int) -> str:
    if len(content.encode("utf-8")) <= max_bytes:
        return content
    room = max_bytes - len(TRUNCATED.encode("utf-8"))
    cut = content.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return cut + TRUNCATED


def _post_checked(service: str, url: str, params: dict, payload: dict, qsd: dict,
                  secrets: list[str]) -> bool:
    """POST ``payload``; success only on HTTP 200 with JSON ``errcode == 0``."""
    try:
        r = requests.post(
            url,
            params=params,
            data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8"},
            timeout=_timeouts(qsd),
        )
    except requests.RequestException as e:
        return _fail(f"{service} 连接失败：{mask_text(str(e), secrets)}")
    if r.status_code != 200:
        return _fail(f"{service} 返回 HTTP {r.status_code}")
    try:
        data = r.json()
    except ValueError:
        return _fail(f"{service} 返回的不是 JSON（HTTP {r.status_code}）")
    code = data.get("errcode") if isinstance(data, dict) else None
    if str(code) != "0":
        errmsg = data.get("errmsg", "") if isinstance(data, dict) else ""
        return _fail(mask_text(f"{service} 拒绝消息：errcode={code} errmsg={errmsg}", secrets))
    return True


def _meta_text(value: Any) -> str:
    return unquote(str(value)) if value else ""


@_apprise_notify(on="dingtalkx", name="DingTalk（校验 errcode）")
def _dingtalk(body, title, notify_type, meta, *args, **kwargs):
    """``dingtalkx://[secret@]token/[mobile/…]`` (also ``?token=``, ``?secret=``, ``?to=``)."""
    qsd = meta.get("qsd") or {}
    token = _meta_text(qsd.get("token") or meta.get("host"))
    secret = _meta_text(qsd.get("secret") or meta.get("user"))
    if not token:
        return _fail("DingTalk 地址缺少 access token")
    mobiles = []
    for part in re.split(r"[/,;\s]+", _meta_text(meta.get("fullpath")) + "," + _meta_text(qsd.get("to"))):
        digits = re.sub(r"\D", "", part)
        if 11 <= len(digits) <= 14:
            mobiles.append(digits)
    params = {"access_token": token}
    if secret:
        timestamp = str(round(time.time() * 1000))  # DingTalk checks the real time, never DUTYFLOW_NOW
        digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
        params.update(timestamp=timestamp, sign=base64.b64encode(digest).decode())
    content = f"{title}\n{body}" if title else body
    payload: dict[str, Any] = {"msgtype": "text", "text": {"content": _truncate(content, DINGTALK_MAX_BYTES)}}
    if mobiles:
        payload["at"] = {"atMobiles": list(dict.fromkeys(mobiles)), "isAtAll": False}
    return _post_checked("DingTalk", DINGTALK_URL, params, payload, qsd, [token, secret])


@_apprise_notify(on="wecombotx", name="WeCom Bot（校验 errcode）")
def _wecombot(body, title, notify_type, meta, *args, **kwargs):
    """``wecombotx://key`` (also ``?key=``)."""
    qsd = meta.get("qsd") or {}
    key = _meta_text(qsd.get("key") or meta.get("host"))
    if not key:
        return _fail("WeCom Bot 地址缺少 key")
    content = f"{title}\n{body}" if title else body
    payload = {"msgtype": "text", "text": {"content": _truncate(content, WECOM_MAX_BYTES)}}
    return _post_checked("WeCom Bot", WECOMBOT_URL, {"key": key}, payload, qsd, [key])


_REWRITES = [
    (re.compile(r"(?<![\w.+\-])dingtalk://", re.I), "dingtalkx://"),
    (re.compile(r"(?<![\w.+\-])wecombot://", re.I), "wecombotx://"),
    (re.compile(r"https?://oapi\.dingtalk\.com/robot/send/?\?access_token=([\w\-]+)(?:&([^\s'\"#]*))?", re.I),
     lambda m: f"dingtalkx://{m[1]}/" + (f"?{m[2]}" if m[2] else "")),
    (re.compile(r"https?://qyapi\.weixin\.qq\.com/cgi-bin/webhook/send/?\?key=([\w\-]+)(?:&([^\s'\"#]*))?", re.I),
     lambda m: f"wecombotx://{m[1]}/" + (f"?{m[2]}" if m[2] else "")),
]


def rewrite(text: str) -> str:
    """Route DingTalk / WeCom-bot URLs (in a URL or a whole config file) to the
    errcode-checking plugins."""
    for pattern, repl in _REWRITES:
        text = pattern.sub(repl, text)
    return text


# ---------------------------------------------------------------- deliver


@dataclass
class _Message:
    title: str
    text: str
    html: str | None
    classified: bool


def _message(notice: Notice, person: str, copies: dict[int, Copies] | None = None) -> _Message:
    """``person``'s copy of ``notice`` (its own 份号); a classified notice only alerts. A
    notice longer than policy ``notifications.message_max_chars`` goes as its opening and
    where to read the whole. ``copies`` keeps each notice's body rendered once across its
    recipients."""
    note = pinned_note()
    if notice.classified:
        body = f"{note}\n{CLASSIFIED_BODY}" if note else CLASSIFIED_BODY
        return _Message(CLASSIFIED_TITLE, body, None, True)
    title = notice.title
    if notice.doc_number and notice.doc_number not in title:
        title = f"{title}（{notice.doc_number}）"
    if copies is None:
        copies = {}
    if notice.id not in copies:
        copies[notice.id] = Copies(notice, policy.get("notifications", "message_max_chars", default=None))
    html, text = copies[notice.id].of(person)
    text = text or notice.title
    html = html or None
    if note:  # a notice issued under the drill clock already says so in its 附注
        if "演练" not in text:
            text = f"{note}\n{text}"
        if html and "演练" not in html:
            html = f"<p>{_html.escape(note)}</p>\n{html}"
    return _Message(title, text, html, False)


class _ChannelError(Exception):
    pass


@dataclass
class _Target:
    apprise: apprise.Apprise
    schema: str
    label: str  # masked, for errors and logs


def _asset() -> apprise.AppriseAsset:
    # Token caches only under DUTYFLOW_HOME, flushed at once (short-lived processes).
    return apprise.AppriseAsset(storage_path=str(home() / "apprise"), storage_mode="flush")


def _schema(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _load_config(asset: apprise.AppriseAsset, cache: dict) -> tuple[apprise.Apprise, str]:
    path = os.environ.get(CONFIG_ENV, "").strip()
    if not path:
        raise _ChannelError(f"未设置 {CONFIG_ENV}，无法解析渠道标签")
    if path in cache:
        return cache[path], path
    file = Path(path)
    try:
        raw = file.read_text(encoding="utf-8")
    except OSError as e:
        raise _ChannelError(f"渠道配置文件 {path} 无法读取：{e.strerror or e}") from None
    fmt = "yaml" if file.suffix.lower() in (".yml", ".yaml") else None
    cfg = apprise.AppriseConfig(asset=asset)
    if not cfg.add_config(rewrite(raw), asset=asset, format=fmt):
        raise _ChannelError(f"渠道配置文件 {path} 格式无效")
    a = apprise.Apprise(asset=asset)
    a.add(cfg)
    cache[path] = a
    return a, path


def _targets(channel: str, asset: apprise.AppriseAsset, cache: dict) -> tuple[list[_Target], list[str]]:
    """The Apprise services behind ``channel`` and the secrets to scrub from errors."""
    if ("targets", channel) not in cache:  # built once per channel and delivery run
        cache[("targets", channel)] = _build_targets(channel, asset, cache)
    return cache[("targets", channel)]


def _build_targets(channel: str, asset: apprise.AppriseAsset, cache: dict) -> tuple[list[_Target], list[str]]:
    if "://" in channel:
        url = rewrite(channel)
        a = apprise.Apprise(asset=asset)
        if not a.add(url):
            raise _ChannelError(f"无法识别的通知地址：{mask(channel)}")
        return [_Target(a, _schema(url), mask(channel))], secrets_of(channel) + secrets_of(url)
    cfg, path = _load_config(asset, cache)
    services = list(cfg.find(tag=channel, match_always=False))
    if not services:
        raise _ChannelError(f"未知渠道标签 '{channel}'（{path} 中没有带此标签的地址）")
    targets, secrets = [], []
    for svc in services:
        full = svc.url(privacy=False)
        secrets += secrets_of(full)
        a = apprise.Apprise(asset=asset)
        a.add(svc)
        targets.append(_Target(a, _schema(full), mask(svc.url(privacy=True))))
    return targets, secrets


def _send(channel: str, msg: _Message, asset: apprise.AppriseAsset, cache: dict) -> tuple[bool, str]:
    """Send ``msg`` over ``channel``; (success, masked error)."""
    secrets: list[str] = secrets_of(channel)
    try:
        targets, secrets = _targets(channel, asset, cache)
        errors = []
        for t in targets:
            if t.schema in EMAIL_SCHEMAS and msg.html and not msg.classified:
                body, fmt = msg.html, apprise.NotifyFormat.HTML
            else:
                body, fmt = msg.text, apprise.NotifyFormat.TEXT
            result = t.apprise.notify(body=body, title=msg.title, body_format=fmt, log_level=logging.DEBUG)
            try:
                if not result:
                    # the warnings say what failed; a debug line may say the request had left
                    # (a read timeout): that makes the outcome 结果不明, not a failure to retry
                    lines = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")
                             or _MAYBE_DELIVERED.search(e.message)]
                    detail = "；".join(dict.fromkeys(lines)) or result.status.name
                    errors.append(f"{t.label}：{detail}")
            finally:
                result.close()
        if errors:
            prefix = f"{len(errors)}/{len(targets)} 个地址失败（整行重试）：" if len(targets) > 1 else ""
            return False, mask_text(prefix + " | ".join(errors), secrets)
        return True, ""
    except _ChannelError as e:
        return False, mask_text(str(e), secrets)
    except Exception as e:  # a broken plugin must not stop the batch
        return False, mask_text(f"发送异常：{type(e).__name__}: {e}", secrets)


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failures: 1, 2, 4 … 60 minutes."""
    n = max(1, attempts)
    return timedelta(minutes=min(2 ** min(n - 1, 10), MAX_BACKOFF_MINUTES))


#: Statuses a delivery may try (the others: sent, unconfirmed — a person settles those).
_TRYABLE = (NotificationStatus.pending, NotificationStatus.failed)


def _wall() -> datetime:
    """The machine's real clock (UTC). Claims run on it, never on the drill clock: a pinned
    ``DUTYFLOW_NOW`` must not keep a dead deliverer's claim alive forever."""
    return datetime.now(timezone.utc)


def _process_start(pid: int) -> str:
    """The start tick of process ``pid`` (tells a live process from a new one with its pid)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _deliverer() -> str:
    """This delivery run's name in ``claimed_by``: host, pid, process start, a nonce."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}:{token_hex(4)}"


def _gone(claimer: str) -> bool:
    """True when ``claimer`` was a process of this host that no longer runs."""
    host, pid, start, _nonce = (claimer.split(":") + ["", "", "", ""])[:4]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's deliverer: its claim runs out on the clock
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return bool(start) and _process_start(int(pid)) != start


def recover_claims() -> dict:
    """Settle the claims of deliverers that died (killed, crashed) or overran their lease.

    A row whose request had not left yet is free again at once (it is still due: its
    ``next_attempt_at`` never moved). A row whose request was leaving becomes 结果不明
    (unconfirmed): the recipient may have it, so it is not sent again automatically.
    Returns ``{"released": n, "unconfirmed": n}``.
    """
    wall = _wall()
    with session() as s:
        claims = s.exec(select(Notification.claimed_by, Notification.claim_expires).where(
            Notification.claimed_by.is_not(None)).distinct()).all()
        dead = sorted({c for c, until in claims if (until is not None and until < wall) or _gone(c)})
        if not dead:
            return {"released": 0, "unconfirmed": 0}
        conn = s.connection()
        lost = conn.execute(
            update(Notification)
            .where(Notification.claimed_by.in_(dead), Notification.send_started_at.is_not(None),
                   Notification.status.in_(_TRYABLE))
            .values(status=NotificationStatus.unconfirmed, attempts=Notification.attempts + 1,
                    last_error=INTERRUPTED, next_attempt_at=None, claimed_by=None, claim_expires=None)
            .returning(Notification.id)).scalars().all()
        freed = conn.execute(
            update(Notification).where(Notification.claimed_by.in_(dead))
            .values(claimed_by=None, claim_expires=None, send_started_at=None)
            .returning(Notification.id)).scalars().all()
    for row_id in lost:
        LOG.warning("%s通知 #%s 发送中断，结果不明：不自动重发，请核实后处理（dutyflow outbox）", pinned_note(), row_id)
    return {"released": len(freed), "unconfirmed": len(lost)}


def _due(t: datetime, wall: datetime):
    """Rows due for a try: pending or failed, a channel, time come, no live claim."""
    return (
        Notification.status.in_(_TRYABLE),
        Notification.channel != "",
        Notification.next_attempt_at.is_not(None),
        Notification.next_attempt_at <= t,
        or_(Notification.claimed_by.is_(None), Notification.claim_expires < wall),
    )


def _claim(rows: list[Notification], me: str) -> set[int]:
    """Claim ``rows`` for this deliverer with one conditional UPDATE; returns the ids won
    (a row another deliverer claimed, sent or recorded meanwhile is no longer due)."""
    if not rows:
        return set()
    wall = _wall()
    stmt = (
        update(Notification)
        .where(Notification.id.in_([r.id for r in rows]), *_due(now(), wall))
        .values(claimed_by=me, claim_expires=wall + LEASE, send_started_at=None)
        .returning(Notification.id)
    )
    with session() as s:
        return set(s.connection().execute(stmt).scalars())


#: Errors after which the request may have reached the endpoint (it was sent, no answer came).
_MAYBE_DELIVERED = re.compile(r"Read timed out|RemoteDisconnected|Connection aborted|IncompleteRead|"
                              r"ChunkedEncodingError|timed out while reading|读取超时")
INTERRUPTED = "发送过程中断（发送进程终止），对方可能已收到：不自动重发，请向收件人核实后处理"
NO_ANSWER = "对方未在时限内应答，可能已收到：不自动重发，请向收件人核实后处理"


def _outcome_values(row: Notification, ok: bool, error: str, t: datetime) -> dict:
    """The columns that record one send's outcome (and end the claim)."""
    done = {"claimed_by": None, "claim_expires": None}
    if ok:
        return done | {"status": NotificationStatus.sent, "sent_at": t, "last_error": "", "next_attempt_at": None,
                       "send_started_at": None}
    if _MAYBE_DELIVERED.search(error):  # send_started_at stays: when the request left
        return done | {"status": NotificationStatus.unconfirmed, "attempts": row.attempts + 1,
                       "last_error": f"{NO_ANSWER}（{error}）"[:MAX_ERROR_CHARS], "next_attempt_at": None}
    return done | {"status": NotificationStatus.failed, "attempts": row.attempts + 1, "send_started_at": None,
                   "last_error": error[:MAX_ERROR_CHARS], "next_attempt_at": t + backoff(row.attempts + 1)}


@lru_cache(maxsize=None)
def _outcome_statement(columns: tuple[str, ...]):
    """UPDATE recording an outcome that sets ``columns`` (built once per kind of outcome)."""
    c = Notification.__table__.c
    return (update(Notification.__table__).where(c.id == bindparam("b_id"), c.status != NotificationStatus.sent)
            .values({name: bindparam(f"v_{name}") for name in columns}))


@lru_cache(maxsize=None)
def _mark_statement():
    """UPDATE marking a claimed row as leaving and renewing its claim (built once)."""
    c = Notification.__table__.c
    return (update(Notification.__table__)
            .where(c.id == bindparam("b_id"), c.claimed_by == bindparam("b_me"), c.status.in_(_TRYABLE))
            .values(send_started_at=bindparam("b_wall"), claim_expires=bindparam("b_until")))


def _advance(db: Engine, me: str, done: tuple[Notification, bool, str] | None, next_id: int | None) -> bool:
    """One short transaction: record the outcome of the row just sent, and mark the next row
    as leaving (committed before its request goes out, renewing the claim). False when the
    next row is no longer this deliverer's."""
    wall = _wall()
    with db.begin() as conn:
        if done is not None:
            row, ok, error = done
            values = _outcome_values(row, ok, error, now())
            conn.execute(_outcome_statement(tuple(sorted(values))),
                         {"b_id": row.id, **{f"v_{k}": v for k, v in values.items()}})
        if next_id is None:
            return False
        marked = conn.execute(_mark_statement(), {"b_id": next_id, "b_me": me, "b_wall": wall,
                                                  "b_until": wall + LEASE}).rowcount
    return marked == 1


def deliver(ids: list[int] | None = None, *, limit: int = 500) -> dict:
    """Send due notifications; returns ``{"sent": n, "failed": n, "unconfirmed": n, "skipped": n}``.

    ``ids``: these rows only (those not due — sent, backing off, claimed by another
    deliverer, channel '' — are counted as skipped); otherwise up to ``limit`` rows that
    are pending or failed with ``next_attempt_at <= now()``. Safe to run concurrently and
    to kill at any moment:

    - rows are claimed ``CLAIM_CHUNK`` at a time by this deliverer's name;
    - each row is marked "leaving" in a committed transaction before its request goes out,
      and its outcome is committed with the next row's mark;
    - a deliverer that dies leaves rows never tried (free again at the next delivery, on any
      clock) and at most one row whose request was leaving: 结果不明, never resent by itself;
    - an endpoint that takes the message but answers after the timeout is recorded 结果不明
      once, not sent again on every retry.
    """
    counts = {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0}
    if ids is not None and not ids:
        return counts
    recover_claims()
    me = _deliverer()
    with session() as s:
        q = select(Notification).where(*_due(now(), _wall()))
        if ids is not None:
            wanted = list(dict.fromkeys(int(i) for i in ids))
            q = q.where(Notification.id.in_(wanted))
        else:
            q = q.limit(limit)
        rows = list(s.exec(q.order_by(Notification.next_attempt_at, Notification.id)).all())
        notices = {
            n.id: n
            for n in s.exec(select(Notice).where(Notice.id.in_({r.notice_id for r in rows}))).all()
        } if rows else {}
    if ids is not None:
        counts["skipped"] += len(wanted) - len(rows)

    asset = _asset()
    cache: dict = {}
    copies: dict[int, Copies] = {}  # each notice rendered once, whatever its number of recipients
    message: tuple[tuple[int, str], _Message] | None = None
    db = engine()
    for start in range(0, len(rows), CLAIM_CHUNK):
        chunk = rows[start:start + CLAIM_CHUNK]
        won = _claim(chunk, me)
        counts["skipped"] += len(chunk) - len(won)
        done = None
        for row in (r for r in chunk if r.id in won):
            if not _advance(db, me, done, row.id):
                done = None
                counts["skipped"] += 1
                continue
            notice = notices[row.notice_id]
            key = (notice.id, row.person)  # one copy per recipient, sent over each of their channels
            if message is None or message[0] != key:  # (rows come ordered; a person's channels together)
                message = (key, _message(notice, row.person, copies))
            msg = message[1]
            ok, error = _send(row.channel, msg, asset, cache)
            done = (row, ok, error)
            outcome = _outcome_values(row, ok, error, now())["status"]
            _log_outcome(row, outcome, error)
            counts["sent" if ok else "unconfirmed" if outcome == NotificationStatus.unconfirmed else "failed"] += 1
        if done is not None:
            _advance(db, me, done, None)
    return counts


def _log_outcome(row: Notification, status: str, error: str) -> None:
    where = f"通知 {row.notice_id} → {row.person} 渠道 {mask(row.channel)}"
    if status == NotificationStatus.sent:
        LOG.info("%s%s 已发送（#%s）", pinned_note(), where, row.id)
    elif status == NotificationStatus.unconfirmed:
        LOG.warning("%s%s 结果不明（#%s）：%s", pinned_note(), where, row.id, NO_ANSWER)
    else:
        LOG.warning("%s%s 发送失败（#%s，第 %d 次，%d 分钟后重试）：%s", pinned_note(), where, row.id,
                    row.attempts + 1, backoff(row.attempts + 1) // timedelta(minutes=1), error)


def deliver_due(budget_seconds: float, *, limit: int = 500) -> dict:
    """Deliver every due notification, ``limit`` at a time, until none is left or about
    ``budget_seconds`` have passed (the rest waits for the next call); returns the sums."""
    total = {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0}
    started = time.monotonic()
    while True:
        counts = deliver(limit=limit)
        for k in total:
            total[k] += counts[k]
        if sum(counts.values()) < limit or time.monotonic() - started >= budget_seconds:
            return total


# ---------------------------------------------------------------- Prefect tasks


@task(name="deliver-notifications", retries=0)
def deliver_notifications(notice_ids: list[str]) -> dict:
    """按通知单发送（Apprise）；结果逐人记录，失败的由定时巡检按退避重发。
    待发消息多于 policy ``notifications.inline_max`` 时（如发给全部社区的通知）不在流程内等待，
    由每分钟的到期巡检分批发送（``queued``）。"""
    counts = {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0}
    if not notice_ids:
        return counts
    with session() as s:
        ids = list(s.exec(select(Notification.id).where(Notification.notice_id.in_(notice_ids))).all())
    if len(ids) > policy.get("notifications", "inline_max", default=200):
        get_run_logger().info("%d 条消息已排队，由到期巡检（sweep-deadlines）分批发送", len(ids))
        return {**counts, "queued": len(ids)}
    return deliver(ids)


@task(name="retry-notifications")
def retry_notifications() -> dict:
    """发送待发通知、重发到期的失败通知（退避）；每次巡检最多用 policy
    ``notifications.sweep_delivery_seconds`` 秒，未发完的下次巡检继续。"""
    return deliver_due(policy.get("notifications", "sweep_delivery_seconds", default=40))

"""The notification outbox: queue, deliver, retry, mask (tasks/notify.py)."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
import requests
from sqlmodel import select

from models.case import Case
from models.clock import parse_time
from models.db import session
from models.errors import DomainError
from models.notice import Notice, Notification
from models.org import OrgUnit, Person
from tasks import notify
from models import masking, outbox
from models.masking import mask
from models.outbox import NO_CHANNEL, queue_notifications
from tasks.notify import CLASSIFIED_BODY, CLASSIFIED_TITLE, deliver

T0 = "2026-03-02T09:00:00+08:00"
NOTICE_TEXT = "关于门户网站被篡改事件的处置通知：请于2小时内完成处置并报告。"
NOTICE_HTML = "<html><body><h1>关于门户网站被篡改事件的处置通知</h1><p>请于2小时内完成处置并报告。</p></body></html>"

# ---------------------------------------------------------------- fixtures


class Sink:
    """A local HTTP endpoint recording the JSON payloads Apprise's json:// posts."""

    def __init__(self):
        self.messages: list[dict] = []
        self.fail: set[str] = set()
        self.delay = 0.0
        self.hold = 0.0  # seconds an answer waits after the message was taken (a slow endpoint)
        self.hold_paths: set[str] = set()  # only these paths are slow (all when empty)
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                if sink.delay:
                    time.sleep(sink.delay)
                if path in sink.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                with sink.lock:
                    sink.messages.append({"path": path, "headers": dict(self.headers), **json.loads(raw)})
                if sink.hold and (not sink.hold_paths or path in sink.hold_paths):
                    time.sleep(sink.hold)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *_: None  # a deliverer that gave up waiting: no broken-pipe noise
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str, query: str = "") -> str:
        return f"json://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    def at(self, path: str) -> list[dict]:
        return [m for m in self.messages if m["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def clock(monkeypatch):
    """Pin DUTYFLOW_NOW; returns a setter taking an offset from T0."""

    def set_clock(delta: timedelta = timedelta()) -> datetime:
        t = parse_time(T0) + delta
        monkeypatch.setenv("DUTYFLOW_NOW", t.isoformat())
        return t

    set_clock()
    return set_clock


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup_notice(persons: dict[str, list[str]], *, notice_id: str = "N-2026-0001",
                 classified: bool = False, doc_number: str | None = "X街网安〔2026〕1号",
                 recipients: list[str] | None = None) -> list[Notification]:
    ts = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
    with session() as s:
        if s.get(OrgUnit, "JD01") is None:
            s.add(OrgUnit(code="JD01", name="XX街道", kind="street"))
            s.flush()
            s.add(Case(id="INC-2026-0001", kind="incident", state="reported", unit="JD01",
                       created_at=ts, updated_at=ts))
        for pid, channels in persons.items():
            if s.get(Person, pid) is None:
                s.add(Person(id=pid, name=f"人员{pid}", channels=channels))
        s.flush()
        notice = Notice(
            id=notice_id, case_id="INC-2026-0001", kind="incident_handling",
            doc_number=doc_number, title="关于门户网站被篡改事件的处置通知", issuer_unit="JD01",
            recipients=recipients if recipients is not None else list(persons), classified=classified,
            html=NOTICE_HTML, text=NOTICE_TEXT, issued_at=ts,
        )
        s.add(notice)
        s.flush()
        return queue_notifications(s, notice)


def rows() -> list[Notification]:
    with session() as s:
        return list(s.exec(select(Notification).order_by(Notification.id)).all())


def row(nid: int) -> Notification:
    with session() as s:
        return s.get(Notification, nid)


def fake_response(payload: dict, status: int = 200):
    r = mock.Mock(status_code=status)
    r.json.return_value = payload
    return r


# ---------------------------------------------------------------- queue + deliver


def test_queue_then_deliver_sends_each_recipient_channel_once(db, sink):
    queued = setup_notice({"p1": [sink.url("/a"), sink.url("/b")], "p2": [sink.url("/c")], "p3": []})
    assert [(r.person, r.status) for r in queued] == [
        ("p1", "pending"), ("p1", "pending"), ("p2", "pending"), ("p3", "failed")]
    nochan = queued[-1]
    assert nochan.channel == "" and nochan.last_error == NO_CHANNEL
    assert nochan.dedupe_key == "N-2026-0001|p3|"
    assert queued[0].dedupe_key == f"N-2026-0001|p1|{sink.url('/a')}"
    assert all(r.created_at is not None for r in queued)

    assert deliver() == {"sent": 3, "failed": 0, "unconfirmed": 0, "skipped": 0}
    for path in ("/a", "/b", "/c"):
        [msg] = sink.at(path)
        assert msg["title"] == "关于门户网站被篡改事件的处置通知（X街网安〔2026〕1号）"
        assert msg["message"] == NOTICE_TEXT
    assert len(sink.messages) == 3
    stored = rows()
    assert [r.status for r in stored] == ["sent", "sent", "sent", "failed"]
    assert all(r.sent_at is not None for r in stored[:3])

    # Nothing is sent twice: a second delivery (even much later) finds nothing to do,
    # and the channel-less row is never retried.
    assert deliver() == {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0}
    with mock.patch.dict("os.environ", {"DUTYFLOW_NOW": "2030-01-01T00:00:00+08:00"}):
        assert deliver() == {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0}
    assert len(sink.messages) == 3
    assert row(nochan.id).attempts == 0 and row(nochan.id).last_error == NO_CHANNEL


def test_queue_is_idempotent_and_dedupes_channels(db, sink):
    first = setup_notice({"p1": [sink.url("/a"), sink.url("/a"), "  "]}, recipients=["p1", "p1"])
    assert len(first) == 1
    with session() as s:
        again = queue_notifications(s, s.get(Notice, "N-2026-0001"))
    assert [r.id for r in again] == [first[0].id]
    assert len(rows()) == 1


def test_unknown_recipient_refuses_the_notice(db):
    with pytest.raises(DomainError, match="ghost"):
        setup_notice({"p1": ["json://127.0.0.1:1/x"]}, recipients=["p1", "ghost"])
    assert rows() == []


def test_deliver_given_ids_only(db, sink):
    queued = setup_notice({"p1": [sink.url("/a")], "p2": [sink.url("/b")], "p3": []})
    assert deliver([queued[0].id, queued[2].id, 999]) == {"sent": 1, "failed": 0, "unconfirmed": 0, "skipped": 2}
    assert [m["path"] for m in sink.messages] == ["/a"]
    assert deliver([queued[0].id]) == {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 1}
    assert deliver([]) == {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0}
    assert deliver() == {"sent": 1, "failed": 0, "unconfirmed": 0, "skipped": 0}
    assert sorted(m["path"] for m in sink.messages) == ["/a", "/b"]


def test_deliver_respects_limit(db, sink):
    setup_notice({f"p{i}": [sink.url(f"/x{i}")] for i in range(5)})
    assert deliver(limit=2)["sent"] == 2
    assert deliver(limit=2)["sent"] == 2
    assert deliver(limit=2)["sent"] == 1
    assert len(sink.messages) == 5


# ---------------------------------------------------------------- failures and retry


def test_failure_backs_off_and_is_retried_until_sent(db, sink, clock):
    sink.fail.add("/flaky")
    [r] = setup_notice({"p1": [sink.url("/flaky", "-token=SINKTOKEN12345")]})
    assert deliver() == {"sent": 0, "failed": 1, "unconfirmed": 0, "skipped": 0}
    got = row(r.id)
    assert got.status == "failed" and got.attempts == 1
    assert got.next_attempt_at == clock() + timedelta(minutes=1)
    assert "500" in got.last_error or "Internal Server Error" in got.last_error
    assert "SINKTOKEN12345" not in got.last_error

    # Not due yet: nothing is attempted.
    assert deliver() == {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0}
    clock(timedelta(seconds=59))
    assert deliver() == {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0}

    clock(timedelta(minutes=1))
    assert deliver() == {"sent": 0, "failed": 1, "unconfirmed": 0, "skipped": 0}
    got = row(r.id)
    assert got.attempts == 2
    assert got.next_attempt_at == clock(timedelta(minutes=1)) + timedelta(minutes=2)

    sink.fail.clear()
    clock(timedelta(minutes=3))
    assert deliver() == {"sent": 1, "failed": 0, "unconfirmed": 0, "skipped": 0}
    got = row(r.id)
    assert got.status == "sent" and got.sent_at == clock(timedelta(minutes=3))
    assert got.next_attempt_at is None
    assert len(sink.at("/flaky")) == 1
    clock(timedelta(days=1))
    assert deliver() == {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0}


def test_closed_port_fails_fast_and_is_retried_forever(db, clock):
    port = closed_port()
    [r] = setup_notice({"p1": [f"json://127.0.0.1:{port}/x?cto=1&rto=1"]})
    started = time.monotonic()
    assert deliver() == {"sent": 0, "failed": 1, "unconfirmed": 0, "skipped": 0}
    assert time.monotonic() - started < 5
    assert "connection" in row(r.id).last_error.lower()
    # Keeps failing: the backoff grows to 60 minutes and stays there; never dropped.
    elapsed = timedelta()
    for expected in (2, 4, 8, 16, 32, 60, 60):
        elapsed += row(r.id).next_attempt_at - clock(elapsed)
        clock(elapsed)
        assert deliver()["failed"] == 1
        got = row(r.id)
        assert got.status == "failed"
        assert got.next_attempt_at - clock(elapsed) == timedelta(minutes=expected)
    assert row(r.id).attempts == 8


def test_backoff_schedule():
    assert [notify.backoff(n) // timedelta(minutes=1) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert notify.backoff(10_000) == timedelta(minutes=60)


def test_invalid_url_is_a_failure(db):
    [r] = setup_notice({"p1": ["nosuchservice://abc"]})
    assert deliver()["failed"] == 1
    assert "无法识别" in row(r.id).last_error


# ---------------------------------------------------------------- classified and e-mail


def test_classified_notice_sends_only_the_content_free_alert(db, sink, clock):
    setup_notice({"p1": [sink.url("/a")]}, classified=True)
    assert deliver()["sent"] == 1
    [msg] = sink.messages
    assert msg["title"] == CLASSIFIED_TITLE
    assert msg["message"].endswith(CLASSIFIED_BODY)
    assert "演练时钟" in msg["message"]  # the pinned clock says so
    payload = json.dumps(msg, ensure_ascii=False)
    for fragment in ("门户网站", "篡改", "2小时", "X街网安", NOTICE_TEXT):
        assert fragment not in payload


class FakeSMTP:
    sent: list[tuple] = []

    def __init__(self, *args, **kwargs):
        pass

    def starttls(self, *a, **k):
        pass

    def login(self, *a, **k):
        pass

    def sendmail(self, from_addr, to_addrs, message):
        FakeSMTP.sent.append((from_addr, to_addrs, message))
        return {}

    def quit(self):
        pass


@pytest.fixture
def smtp():
    FakeSMTP.sent = []
    with mock.patch("smtplib.SMTP", FakeSMTP), mock.patch("smtplib.SMTP_SSL", FakeSMTP):
        yield FakeSMTP.sent


def _mail_text(raw: str) -> str:
    import email

    msg = email.message_from_string(raw)
    parts = msg.walk() if msg.is_multipart() else [msg]
    out = []
    for part in parts:
        if part.get_content_maintype() == "text":
            out.append(f"[{part.get_content_type()}]" + part.get_payload(decode=True).decode("utf-8"))
    return "\n".join(out)


def test_email_gets_the_html_notice(db, smtp):
    setup_notice({"p1": ["mailto://duty:MAILPASS99@example.com?smtp=127.0.0.1&to=p1@example.com"]})
    assert deliver() == {"sent": 1, "failed": 0, "unconfirmed": 0, "skipped": 0}
    [(_from, to, raw)] = smtp
    body = _mail_text(raw)
    assert "[text/html]" in body and "<h1>关于门户网站被篡改事件的处置通知</h1>" in body


def test_classified_email_has_no_content(db, smtp):
    setup_notice({"p1": ["mailto://duty:MAILPASS99@example.com?smtp=127.0.0.1&to=p1@example.com"]},
                 classified=True)
    assert deliver()["sent"] == 1
    [(_from, _to, raw)] = smtp
    body = _mail_text(raw)
    assert CLASSIFIED_BODY in body
    assert "门户网站" not in body and "门户网站" not in raw


# ---------------------------------------------------------------- DingTalk / WeCom


DING = "dingtalk://DSECRETabc123@DTOKENdef456ghi789/13800138000"


def test_dingtalk_errcode_is_checked(db, clock):
    [r] = setup_notice({"p1": [DING]})
    bad = fake_response({"errcode": 310000, "errmsg": "keywords not in content"})
    with mock.patch("requests.post", return_value=bad) as post:
        assert deliver() == {"sent": 0, "failed": 1, "unconfirmed": 0, "skipped": 0}
    got = row(r.id)
    assert got.status == "failed"
    assert "310000" in got.last_error and "keywords not in content" in got.last_error
    assert "DTOKEN" not in got.last_error and "DSECRET" not in got.last_error

    (url,), kwargs = post.call_args
    assert url == "https://oapi.dingtalk.com/robot/send"
    assert kwargs["params"]["access_token"] == "DTOKENdef456ghi789"
    assert kwargs["params"]["timestamp"] and kwargs["params"]["sign"]
    assert kwargs["timeout"][0] <= 10
    payload = json.loads(kwargs["data"])
    assert payload["msgtype"] == "text"
    assert NOTICE_TEXT in payload["text"]["content"]
    assert payload["at"]["atMobiles"] == ["13800138000"]

    clock(timedelta(minutes=1))
    with mock.patch("requests.post", return_value=fake_response({"errcode": 0, "errmsg": "ok"})):
        assert deliver() == {"sent": 1, "failed": 0, "unconfirmed": 0, "skipped": 0}
    assert row(r.id).status == "sent"


def test_dingtalk_signature(db):
    import base64
    import hashlib
    import hmac

    setup_notice({"p1": [DING]})
    with mock.patch("requests.post", return_value=fake_response({"errcode": 0})) as post:
        deliver()
    params = post.call_args.kwargs["params"]
    expected = base64.b64encode(hmac.new(b"DSECRETabc123", f"{params['timestamp']}\nDSECRETabc123".encode(),
                                         hashlib.sha256).digest()).decode()
    assert params["sign"] == expected
    assert abs(int(params["timestamp"]) / 1000 - time.time()) < 60  # the real time, not DUTYFLOW_NOW


@pytest.mark.parametrize("channel", [
    "wecombot://WKEY-1234-abcd-5678",
    "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=WKEY-1234-abcd-5678",
])
def test_wecombot_errcode_is_checked(db, clock, channel):
    [r] = setup_notice({"p1": [channel]})
    with mock.patch("requests.post", return_value=fake_response({"errcode": 93000, "errmsg": "invalid webhook url"})) as post:
        assert deliver()["failed"] == 1
    (url,), kwargs = post.call_args
    assert url == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
    assert kwargs["params"] == {"key": "WKEY-1234-abcd-5678"}
    assert "93000" in row(r.id).last_error and "WKEY" not in row(r.id).last_error

    clock(timedelta(minutes=1))
    with mock.patch("requests.post", return_value=fake_response({"errcode": 0, "errmsg": "ok"})):
        assert deliver()["sent"] == 1


def test_native_dingtalk_webhook_url_is_checked_too(db):
    [r] = setup_notice({"p1": ["https://oapi.dingtalk.com/robot/send?access_token=NATIVEtok123456"]})
    with mock.patch("requests.post", return_value=fake_response({"errcode": 300001, "errmsg": "token is not exist"})) as post:
        assert deliver()["failed"] == 1
    assert post.call_args.kwargs["params"]["access_token"] == "NATIVEtok123456"


def test_long_wecom_message_is_truncated(db):
    setup_notice({"p1": ["wecombot://WKEY-1234-abcd-5678"]})
    with session() as s:
        s.get(Notice, "N-2026-0001").text = "很长的内容" * 2000
    with mock.patch("requests.post", return_value=fake_response({"errcode": 0})) as post:
        assert deliver()["sent"] == 1
    content = json.loads(post.call_args.kwargs["data"])["text"]["content"]
    assert len(content.encode("utf-8")) <= 2048 and content.endswith("（全文请登录系统查看）")


def test_no_token_in_last_error_or_logs(db, sink, caplog):
    caplog.set_level(logging.INFO)
    error = requests.ConnectionError(
        "HTTPSConnectionPool(host='oapi.dingtalk.com', port=443): Max retries exceeded with url: "
        "/robot/send?access_token=DTOKENdef456ghi789&timestamp=1&sign=SIGNxyz (echo DSECRETabc123)")
    sink.fail.add("/bad")
    secret_json = sink.url("/bad", "-token=JSONSECRET987")
    [r1, r2, r3] = setup_notice({"p1": [DING], "p2": [secret_json], "p3": ["wecombot://WKEY-1234-abcd-5678"]})
    with mock.patch("requests.post", side_effect=[error, fake_response({"errcode": 1, "errmsg": "key WKEY-1234-abcd-5678 bad"})]):
        assert deliver()["failed"] == 3
    secrets = ("DTOKENdef456ghi789", "DSECRETabc123", "SIGNxyz", "JSONSECRET987", "WKEY-1234-abcd-5678")
    errors = [row(r.id).last_error for r in (r1, r2, r3)]
    assert all(errors)
    assert "access_token=****" in errors[0]
    logs = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "dutyflow.notify" in {rec.name for rec in caplog.records}
    for secret in secrets:
        for text in errors + [logs]:
            assert secret not in text


# ---------------------------------------------------------------- tags


def test_tag_channel_through_the_config_file(db, sink, clock, tmp_path, monkeypatch):
    cfg = tmp_path / "apprise.yaml"
    cfg.write_text(
        "urls:\n"
        f"  - {sink.url('/tagged')}:\n"
        "    - tag: unit-a, leaders\n"
        f"  - {DING}:\n"
        "    - tag: ding\n", encoding="utf-8")
    queued = setup_notice({"p1": ["leaders"], "p2": ["nobody"], "p3": ["ding"]})

    # Without the config file the tags cannot be resolved: failure, never dropped.
    monkeypatch.delenv(notify.CONFIG_ENV, raising=False)
    assert deliver()["failed"] == 3
    assert notify.CONFIG_ENV in row(queued[0].id).last_error

    monkeypatch.setenv(notify.CONFIG_ENV, str(cfg))
    clock(timedelta(minutes=1))
    with mock.patch("requests.post", return_value=fake_response({"errcode": 310000, "errmsg": "keywords not in content"})):
        assert deliver() == {"sent": 1, "failed": 2, "unconfirmed": 0, "skipped": 0}
    [msg] = sink.at("/tagged")
    assert msg["message"].endswith(NOTICE_TEXT)
    assert row(queued[0].id).status == "sent"
    assert "nobody" in row(queued[1].id).last_error and "未知渠道标签" in row(queued[1].id).last_error
    ding_error = row(queued[2].id).last_error
    assert "310000" in ding_error  # config URLs go through the errcode-checking plugin too
    assert "DTOKEN" not in ding_error and "DSECRET" not in ding_error


# ---------------------------------------------------------------- concurrency


def test_concurrent_deliverers_send_each_row_once(db, sink):
    sink.delay = 0.02
    setup_notice({f"p{i}": [sink.url(f"/c{i}")] for i in range(12)})
    barrier = threading.Barrier(3)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(deliver())
        except Exception as e:  # pragma: no cover - surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sum(r["sent"] for r in results) == 12
    assert sum(r["failed"] for r in results) == 0
    assert sorted(m["path"] for m in sink.messages) == sorted(f"/c{i}" for i in range(12))
    assert all(r.status == "sent" for r in rows())


def test_a_row_being_sent_is_not_picked_up_by_another_deliverer(db, sink):
    """A second deliverer runs while the first is mid-send of row /a: the first claimed its
    whole chunk (/a and /b), so the second finds nothing due."""
    setup_notice({"p1": [sink.url("/a")], "p2": [sink.url("/b")]})
    real_send = notify._send
    nested = []

    def send_and_race(*args, **kwargs):
        if not nested:
            nested.append(None)
            nested[0] = deliver()
        return real_send(*args, **kwargs)

    with mock.patch.object(notify, "_send", side_effect=send_and_race):
        outer = deliver()
    assert nested[0] == {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0}  # both leased: not even read
    assert outer == {"sent": 2, "failed": 0, "unconfirmed": 0, "skipped": 0}
    assert sorted(m["path"] for m in sink.messages) == ["/a", "/b"]  # each once


def test_rows_read_by_two_deliverers_are_claimed_by_one(db, sink):
    """Both deliverers read the same rows; the claim decides who sends."""
    setup_notice({"p1": [sink.url("/a")], "p2": [sink.url("/b")]})
    real_claim = notify._claim
    nested = []

    def race_then_claim(rows, me):
        if not nested:
            nested.append(None)
            nested[0] = deliver()  # runs after the outer read, before its first claim
        return real_claim(rows, me)

    with mock.patch.object(notify, "_claim", side_effect=race_then_claim):
        outer = deliver()
    assert nested[0] == {"sent": 2, "failed": 0, "unconfirmed": 0, "skipped": 0}
    assert outer == {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 2}
    assert sorted(m["path"] for m in sink.messages) == ["/a", "/b"]


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize("url, expected", [
    ("json://127.0.0.1:9000/p", "json://127.0.0.1:9000/p"),
    ("dingtalk://SECRET@TOKEN/13800138000", "dingtalk://****@****/13800138000"),
    ("dingtalk://TOKEN", "dingtalk://****"),
    ("mailtos://user:pass@smtp.example.com", "mailtos://user:****@smtp.example.com"),
    ("mailtos://user:pass@smtp.example.com/?to=a@example.com", "mailtos://user:****@smtp.example.com/?to=a@example.com"),
    ("wecombot://d5a0b6c7-1234-4cde-9f00-123456789abc", "wecombot://****"),
    ("json://hooks.example.gov.cn/notify?key=abc123&token=t0k&to=x", "json://hooks.example.gov.cn/notify?key=****&token=****&to=x"),
    ("https://oapi.dingtalk.com/robot/send?access_token=abc", "https://oapi.dingtalk.com/robot/send?access_token=****"),
    ("json://localhost/x?+Authorization=Bearer%20abc", "json://localhost/x?+Authorization=****"),
    ("wechat://corpid:corpsecret@1000002/@all", "wechat://corpid:****@****/@all"),
    ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-100123", "tgram://****:****/-100123"),
    ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", "discord://****/****"),
    ("leaders", "leaders"),
    ("", ""),
])
def test_mask(url, expected):
    assert mask(url) == expected


def test_mask_text_scrubs_free_text():
    text = ("POST https://oapi.dingtalk.com/robot/send?access_token=ABC123456 failed; "
            "key=SECRETKEY password: hunter2 Authorization: Bearer abcdefghijk")
    out = masking.mask_text(text, ["EXTRA-SECRET"])
    for secret in ("ABC123456", "SECRETKEY", "hunter2", "abcdefghijk"):
        assert secret not in out
    assert masking.mask_text("boom EXTRA-SECRET boom", ["EXTRA-SECRET"]) == "boom **** boom"


def test_apprise_storage_stays_under_dutyflow_home(db):
    import os
    from pathlib import Path

    asset = notify._asset()
    home = Path(os.environ["DUTYFLOW_HOME"]).resolve()
    assert Path(asset.storage_path).resolve().is_relative_to(home)
    assert asset.storage_mode.value == "flush"


def test_deliver_due_goes_on_until_nothing_is_due(db, sink):
    """The sweep's delivery: several rounds of ``limit`` rows, each row sent once."""
    from tasks.notify import deliver_due

    setup_notice({f"p{i}": [sink.url(f"/d{i}")] for i in range(7)})
    assert deliver_due(60, limit=3) == {"sent": 7, "failed": 0, "unconfirmed": 0, "skipped": 0}
    assert sorted(m["path"] for m in sink.messages) == sorted(f"/d{i}" for i in range(7))
    assert deliver_due(60, limit=3) == {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0}


def test_deliver_due_stops_when_its_time_is_spent(db, sink):
    from tasks.notify import deliver_due

    setup_notice({f"p{i}": [sink.url(f"/d{i}")] for i in range(7)})
    assert deliver_due(0, limit=3)["sent"] == 3  # one round, the rest waits for the next sweep
    assert deliver_due(0, limit=3)["sent"] == 3
    assert len(sink.messages) == 6 and sum(r.status == "pending" for r in rows()) == 1


# ---------------------------------------------------------------- faults: kill -9, slow endpoints

DUTYFLOW = [__import__("sys").executable, "-m", "deployments.cli"]


@pytest.mark.parametrize("kill_after", [1, 4])
def test_a_sweep_killed_while_sending_sends_no_notice_twice_and_the_rest_go_out_on_the_same_clock(
        db, sink, clock, kill_after):
    """``dutyflow sweep`` is killed with SIGKILL while an endpoint holds its answer to the
    ``kill_after``-th message. The next sweep, on the same (pinned) clock: the rows never
    tried are sent, the one whose request had left is 结果不明 and not sent again, and no
    recipient has anything twice."""
    import os
    import signal
    import subprocess

    sink.hold = 30.0  # the endpoint takes that message, then keeps the deliverer waiting
    sink.hold_paths = {f"/c{kill_after - 1}"}  # rows go out in id order: c0, c1, …
    setup_notice({f"p{i}": [sink.url(f"/c{i}")] for i in range(6)})
    sweep = subprocess.Popen([*DUTYFLOW, "sweep"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(sink.messages) < kill_after and time.monotonic() < deadline:
        assert sweep.poll() is None, sweep.stderr.read()
        time.sleep(0.05)
    assert len(sink.messages) == kill_after
    os.kill(sweep.pid, signal.SIGKILL)
    sweep.wait()
    sink.hold = 0.0
    taken = [m["path"] for m in sink.messages]

    again = subprocess.run([*DUTYFLOW, "sweep"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    paths = [m["path"] for m in sink.messages]
    assert sorted(paths) == [f"/c{i}" for i in range(6)]  # everyone once, nobody twice
    by_path = {r.channel.rsplit("/", 1)[1]: r for r in rows()}
    in_flight = taken[-1].strip("/")
    assert by_path[in_flight].status == "unconfirmed" and by_path[in_flight].attempts == 1
    assert "不自动重发" in by_path[in_flight].last_error
    assert {p: r.status for p, r in by_path.items() if p != in_flight} == {
        f"c{i}": "sent" for i in range(6) if f"c{i}" != in_flight}
    assert all(r.claimed_by is None for r in rows())
    assert [r.send_started_at is not None for r in rows()] == [r.status == "unconfirmed" for r in rows()]

    clock(timedelta(hours=3))  # later sweeps leave the unconfirmed row alone
    assert deliver() == {"sent": 0, "failed": 0, "unconfirmed": 0, "skipped": 0}
    assert len(sink.messages) == 6


def test_an_endpoint_answering_after_the_timeout_gets_the_message_once(db, sink, clock):
    """The endpoint takes the message and answers after the read timeout: the outcome is
    recorded once as 结果不明 and later deliveries do not send it again."""
    sink.hold = 1.5
    (row_,) = setup_notice({"p1": [sink.url("/slow", "rto=0.3")]})
    assert deliver() == {"sent": 0, "failed": 0, "unconfirmed": 1, "skipped": 0}
    for hours in (1, 2, 5):
        clock(timedelta(hours=hours))
        assert deliver()["sent"] + deliver()["unconfirmed"] == 0
    time.sleep(1.5)
    assert len(sink.at("/slow")) == 1
    stored = row(row_.id)
    assert (stored.status, stored.attempts, stored.next_attempt_at) == ("unconfirmed", 1, None)
    assert "对方未在时限内应答" in stored.last_error and "Read timed out" in stored.last_error


def test_a_refused_connection_is_a_failure_retried_not_an_unknown_outcome(db, clock):
    (row_,) = setup_notice({"p1": [f"json://127.0.0.1:{closed_port()}/x"]})
    assert deliver()["failed"] == 1
    stored = row(row_.id)
    assert stored.status == "failed" and stored.next_attempt_at is not None


def test_a_dingtalk_read_timeout_is_an_unknown_outcome_too(db, clock):
    (row_,) = setup_notice({"p1": ["dingtalk://T0KENabcdef123456/13800138000"]})
    with mock.patch.object(notify.requests, "post", side_effect=requests.exceptions.ReadTimeout(
            "HTTPSConnectionPool(host='oapi.dingtalk.com', port=443): Read timed out. (read timeout=10)")):
        assert deliver()["unconfirmed"] == 1
    assert row(row_.id).status == "unconfirmed"


def test_a_claim_left_by_a_dead_deliverer_is_freed_at_once_on_a_pinned_clock(db, sink, clock):
    """A deliverer of this host that died holding a claim (its rows not yet tried): the next
    delivery frees them without waiting out the lease and without moving the clock."""
    import subprocess

    (row_,) = setup_notice({"p1": [sink.url("/a")]})
    dead = subprocess.Popen(["true"])  # a process of this host that has ended
    dead.wait()
    with session() as s:
        r = s.get(Notification, row_.id)
        r.claimed_by = f"{socket.gethostname()}:{dead.pid}:1:feed"
        r.claim_expires = datetime.now(timezone.utc) + timedelta(hours=1)
        s.add(r)
    assert deliver() == {"sent": 1, "failed": 0, "unconfirmed": 0, "skipped": 0}
    assert [m["path"] for m in sink.messages] == ["/a"]


def test_a_live_claim_of_another_machine_is_respected_until_it_runs_out(db, sink, clock):
    (row_,) = setup_notice({"p1": [sink.url("/a")]})
    with session() as s:
        r = s.get(Notification, row_.id)
        r.claimed_by = "other-host:4242:77:beef"
        r.claim_expires = datetime.now(timezone.utc) + timedelta(seconds=1)
        s.add(r)
    assert deliver()["sent"] == 0 and sink.messages == []
    time.sleep(1.2)  # the claim runs out on the real clock; the pinned clock has not moved
    assert deliver()["sent"] == 1 and len(sink.messages) == 1


def test_a_person_settles_an_unconfirmed_row_once_and_it_is_audited(org, sink, clock, capsys):
    """结果不明 rows wait for a person: 'delivered' records it sent; 'resend' sends it again
    at the next delivery. Each settlement is an audit event; a second one is refused."""
    from models.audit import AuditEvent, verify

    sink.hold, sink.hold_paths = 1.0, {"/slow1", "/slow2"}
    with session() as s:  # the demo org has the street; the notice needs its case
        ts = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
        s.add(Case(id="INC-2026-0001", kind="incident", state="reported", unit="JD01", created_at=ts, updated_at=ts))
    first, second = setup_notice({"p1": [sink.url("/slow1", "rto=0.2")], "p2": [sink.url("/slow2", "rto=0.2")]})
    assert deliver()["unconfirmed"] == 2
    assert [r.id for r in outbox.unconfirmed()] == [first.id, second.id]
    actor = "p-guo-tao"
    with pytest.raises(DomainError, match="不是登记在岗的人员"):
        outbox.settle(first.id, delivered=True, actor="p1")
    assert row(first.id).status == "unconfirmed"  # a refused settlement changes nothing

    from deployments.cli import main as dutyflow

    assert dutyflow(["outbox", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["person"]) for r in listed] == [(first.id, "p1"), (second.id, "p2")]
    assert all("不自动重发" in r["error"] and r["left_at"] for r in listed)
    assert dutyflow(["outbox", "settle", str(first.id), "--delivered", "--actor", actor]) == 0
    assert "已记为送达" in capsys.readouterr().out
    outbox.settle(second.id, delivered=False, actor=actor)
    assert dutyflow(["outbox", "settle", str(first.id), "--resend", "--actor", actor]) == 2  # settled already
    assert capsys.readouterr().err.strip().count("\n") == 0
    with pytest.raises(DomainError, match="只有结果不明"):
        outbox.settle(first.id, delivered=False, actor=actor)
    assert row(first.id).status == "sent" and row(first.id).sent_at is not None
    sink.hold = 0.0
    assert deliver()["sent"] == 1
    assert row(second.id).status == "sent" and len(sink.at("/slow2")) == 2 and len(sink.at("/slow1")) == 1
    with session() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.type == "notification_settled")
                        .order_by(AuditEvent.id)).all()
        assert [(e.actor, e.payload["outcome"]) for e in events] == [(actor, "delivered"), (actor, "resend")]
        assert verify(s)[0]

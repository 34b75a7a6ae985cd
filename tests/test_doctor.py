"""``dutyflow doctor`` (deployments/doctor.py): one line per check, exit 1 only when broken."""
from __future__ import annotations

import json

from deployments import doctor
from models.db import session
from models.org import Person


def _run(capsys, *args) -> tuple[int, str]:
    from deployments.cli import main

    code = main(["doctor", *args])
    return code, capsys.readouterr().out


def test_a_ready_installation_passes_and_says_what_to_do_next(org, capsys, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    code, out = _run(capsys)
    lines = dict(line.split("：", 1) for line in out.strip().splitlines())
    assert code == 0, out
    for check in ("✓ 数据库", "✓ 迁移", "✓ 通知渠道", "✓ 字体"):
        assert check in lines, out
    assert "⚠ Prefect API" in lines  # nothing served here: runs stay in-process
    calendar = next(k for k in lines if k.endswith("工作日历"))
    assert calendar[0] in "✓⚠", out
    data = json.loads(_run(capsys, "--json")[1])
    assert [f["check"] for f in data] == [name for name, _check, _db in doctor.CHECKS]
    assert {f["status"] for f in data} <= {"ok", "warn"}


def test_a_channel_nobody_can_send_to_is_broken_and_named_without_its_token(org, capsys):
    with session() as s:
        person = s.get(Person, "p-guo-tao")
        person.channels = ["nosuchservice://SECRETtoken123456/x"]
        s.add(person)
    code, out = _run(capsys)
    assert code == 1
    line = next(line for line in out.splitlines() if "通知渠道" in line)
    assert line.startswith("✗") and "郭涛（p-guo-tao）" in line and "SECRETtoken123456" not in line


def test_a_database_that_does_not_answer_is_reported_not_a_traceback(db, capsys, monkeypatch):
    monkeypatch.setenv("DUTYFLOW_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    code, out = _run(capsys)
    assert code == 1 and "Traceback" not in out
    assert out.splitlines()[0].startswith("✗ 数据库")
    assert "✗ 迁移：数据库无法连接，未检查" in out


def test_a_schema_behind_the_newest_migration_says_to_run_init(org, capsys):
    from alembic import command

    from models.db import engine
    from models.schema import alembic_config

    with engine().begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "-1")
    code, out = _run(capsys)
    assert code == 1 and "请运行 dutyflow init" in out


class _Api:
    """A stand-in Prefect API on ``host``: health answers; a query answers ``status`` to anyone."""

    def __init__(self, host: str, status: int):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"[]" if code == 200 else b'{"detail": "login"}')

            def do_GET(self):  # noqa: N802 - http.server's name
                self._answer(200 if self.path == "/api/health" else status)

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(status)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self.url

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _login_line(capsys) -> str:
    code, out = _run(capsys)
    return next(line for line in out.splitlines() if line[2:].startswith("登录"))


def test_login_warns_when_the_api_answers_anyone_and_louder_beyond_this_machine(org, capsys, monkeypatch):
    monkeypatch.delenv("DUTYFLOW_LOGIN", raising=False)
    with _Api("127.0.0.1", 401) as url:
        monkeypatch.setenv("PREFECT_API_URL", url)
        line = _login_line(capsys)
        assert line.startswith("✓") and "拒绝匿名请求（401）" in line, line
    with _Api("127.0.0.1", 200) as url:
        monkeypatch.setenv("PREFECT_API_URL", url)
        line = _login_line(capsys)
        assert line.startswith("⚠") and "无需登录即可访问" in line and "本机任何用户" in line, line
    with _Api("0.0.0.0", 200) as url:  # what `dutyflow serve --host 0.0.0.0` records as its address
        monkeypatch.setenv("PREFECT_API_URL", url)
        monkeypatch.setenv("DUTYFLOW_LOGIN", "off")
        line = _login_line(capsys)
        assert line.startswith("⚠") and "DUTYFLOW_LOGIN=off" in line and "不只监听本机" in line, line


def test_login_off_is_pointed_out_even_with_no_server_running(org, capsys, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("DUTYFLOW_LOGIN", "off")
    line = _login_line(capsys)
    assert line.startswith("⚠") and "DUTYFLOW_LOGIN=off" in line, line
    monkeypatch.delenv("DUTYFLOW_LOGIN")
    assert _login_line(capsys).startswith("✓")

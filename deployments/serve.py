"""``dutyflow serve``: the embedded Prefect server (SQLite under DUTYFLOW_HOME) plus every
deployment served from this process, schedules included. Stops cleanly on SIGINT."""
from __future__ import annotations

# Imports inside functions: serve is reached through the CLI, which pays for Prefect and
# the database only when a command needs them.

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from deployments.settings import apply_offline_settings, serve_settings


#: The demo organisation ``dutyflow serve`` loads into an empty database (``dutyflow init --demo`` too).
DEMO_ORG = Path(__file__).resolve().parent / "demo_org.yaml"


def _state_file() -> Path:
    from models.db import home

    return home() / "serve.json"


def _healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a serve started by tests and benchmarks)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_json(url: str, data: dict | None = None, timeout: float = 10, auth: str | None = None):
    """GET (or POST ``data`` as JSON to) a Prefect API address; the decoded JSON answer. Logs in
    with ``auth`` (``person:password`` or ``service:TOKEN``), else ``PREFECT_API_AUTH_STRING``."""
    import base64

    headers = {"Content-Type": "application/json"}
    auth = auth or os.environ.get("PREFECT_API_AUTH_STRING")
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def stop_process(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Stop a ``dutyflow serve`` started as a child: Ctrl-C (it stops cleanly), then kill."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def running_api_url() -> str | None:
    """The API address of a `dutyflow serve` running for this DUTYFLOW_HOME, if it answers."""
    path = _state_file()
    if not path.exists():
        return None
    try:
        url = json.loads(path.read_text())["api_url"]
    except (ValueError, KeyError):
        return None
    return url if _healthy(url) else None


def serve(host: str = "127.0.0.1", port: int = 4200, demo: bool = True) -> int:
    from models.db import home
    from models.schema import init_schema

    apply_offline_settings()
    init_schema()
    for key, value in serve_settings().items():
        os.environ.setdefault(key, value)
    if demo:
        _load_demo_if_empty()
    api_url = f"http://{host}:{port}/api"
    from deployments.settings import login_required
    from models.account import service_auth_string

    os.environ["PREFECT_API_AUTH_STRING"] = service_auth_string(create=True)  # this process and its runs
    prefect_home = home() / "prefect"
    prefect_home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(prefect_home)
    os.environ["PREFECT_UI_API_URL"] = api_url
    os.environ["PREFECT_UI_STATIC_DIRECTORY"] = str(home() / "ui")  # our copy of the UI: see offline_ui()
    os.environ.pop("PREFECT_API_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "deployments.prefect_server", "server", "start", "--host", host,
         "--port", str(port), *(["--no-services"] if os.environ.get("DUTYFLOW_SERVE_NO_SERVICES") else [])],
        env=os.environ.copy(), start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not _healthy(api_url):
            if server.poll() is not None:
                print(f"Prefect 服务器启动失败（退出码 {server.returncode}）", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print("Prefect 服务器 180 秒内未就绪", file=sys.stderr)
                return 1
            time.sleep(0.5)
        offline_ui(home() / "ui")
        os.environ["PREFECT_API_URL"] = api_url
        _state_file().write_text(json.dumps({"api_url": api_url, "pid": os.getpid()}))
        ui = f"http://{host}:{port}"
        # the old UI by one of its own pages: "/" goes to the default UI (V2) unless a cookie says otherwise
        print(f"dutyflow 已启动。界面：{ui}/v2 （旧版界面 {ui}/dashboard ），API：{api_url}", flush=True)
        print(_login_note(login_required()), flush=True)
        from deployments import fast_start
        from deployments.deployments import build

        deployments = build()
        threading.Thread(target=_keep_forms_current, args=(api_url,), daemon=True, name="form-choices").start()
        fast_start.serve(deployments)
    except KeyboardInterrupt:
        pass
    finally:
        _state_file().unlink(missing_ok=True)
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        print("dutyflow 已停止", flush=True)
    return 0


def _login_note(required: bool) -> str:
    """What serve says of login: how to log in, or that there are no accounts yet, or that it is off."""
    from sqlmodel import func, select

    from models.account import Account
    from models.db import session

    if not required:
        return "⚠ 登录已关闭（DUTYFLOW_LOGIN=off）：任何能访问此端口的人都能以任何人的名义办理"
    with session() as s:
        accounts = s.exec(select(func.count()).select_from(Account).where(Account.disabled.is_(False))).one()
    if not accounts:
        return "登录：尚无账号。请先创建：dutyflow account add 人员编号 --password-stdin（界面提示时输入“人员编号:口令”）"
    return f"登录：界面提示时输入“人员编号:口令”（{accounts} 个有效账号）"


#: The V2 UI starts its analytics library (session-replay config from an outside host) before
#: it reads the server's ``analytics_enabled``; its key is returned by one small function.
_ANALYTICS_KEY = re.compile(r"function (\w+)\(\)\{return`[0-9a-f]{32}`\}")


def offline_ui(static_root: Path) -> int:
    """Make the UI copy the server serves (``PREFECT_UI_STATIC_DIRECTORY``) call no outside
    host: the analytics key function returns nothing, so the library never starts. Returns
    the number of files changed (0 when already done)."""
    changed = 0
    for js in static_root.glob("*/assets/*.js"):
        text = js.read_text(encoding="utf-8")
        patched = _ANALYTICS_KEY.sub(lambda m: f"function {m.group(1)}(){{return``}}", text)
        if patched != text:
            js.write_text(patched, encoding="utf-8")
            changed += 1
    return changed


#: Seconds between two looks at the registry and the open cases for the forms' pickers.
FORMS_EVERY = 15


def _keep_forms_current(api_url: str, every: float = FORMS_EVERY) -> None:
    """Re-register the forms' pickers when units, persons or open cases change (an org
    loaded again, a case opened or closed). Errors are printed once and retried."""
    from deployments.deployments import form_choices, refresh_forms

    last = form_choices()
    while True:
        time.sleep(every)
        try:
            now_values = form_choices()
            if now_values != last:
                refresh_forms(api_url)
                last = now_values
        except Exception as exc:  # the database or the API away for a moment: try again later
            print(f"表单选项更新失败，稍后重试：{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def _load_demo_if_empty() -> None:
    import yaml
    from sqlmodel import select

    from models.db import session
    from models.org import OrgUnit, load_org

    with session() as s:
        if s.exec(select(OrgUnit.code).limit(1)).first() is None:
            raw = DEMO_ORG.read_text(encoding="utf-8")
            load_org(s, yaml.safe_load(raw), raw)
            print("已载入示例组织（deployments/demo_org.yaml）", flush=True)

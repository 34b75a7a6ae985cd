"""``dutyflow serve``: the embedded Prefect server (SQLite under DUTYFLOW_HOME) plus every
deployment served from this process, schedules included. Stops cleanly on SIGINT."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from deployments.settings import apply_offline_settings


def _state_file() -> Path:
    from models.db import home

    return home() / "serve.json"


def _healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


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
    if demo:
        _load_demo_if_empty()
    api_url = f"http://{host}:{port}/api"
    prefect_home = home() / "prefect"
    prefect_home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(prefect_home)
    os.environ["PREFECT_UI_API_URL"] = api_url
    os.environ.pop("PREFECT_API_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port),
         "--no-services"] if os.environ.get("DUTYFLOW_SERVE_NO_SERVICES") else
        [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
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
        os.environ["PREFECT_API_URL"] = api_url
        _state_file().write_text(json.dumps({"api_url": api_url, "pid": os.getpid()}))
        ui = f"http://{host}:{port}"
        print(f"dutyflow 已启动。界面：{ui}/v2 （旧版界面 {ui}/ ），API：{api_url}", flush=True)
        from prefect import serve as prefect_serve

        from deployments.deployments import build

        prefect_serve(*build(), pause_on_shutdown=False, print_starting_message=True)
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


def _load_demo_if_empty() -> None:
    import yaml
    from sqlmodel import select

    from deployments.cli import DEMO_ORG
    from models.db import session
    from models.org import OrgUnit, load_org

    with session() as s:
        if s.exec(select(OrgUnit.code).limit(1)).first() is None:
            raw = DEMO_ORG.read_text(encoding="utf-8")
            load_org(s, yaml.safe_load(raw), raw)
            print("已载入示例组织（deployments/demo_org.yaml）", flush=True)

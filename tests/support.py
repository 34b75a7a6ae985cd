"""Helpers shared by the scenario tests."""
from __future__ import annotations

import pytest
from conftest import db_state

from models.errors import DomainError


def run_flow(name: str, **params) -> dict:
    """Run a flow by its deployment name with a raw request, as the UI or `dutyflow run` would."""
    from flows.registry import flows, request_model
    from models.requests import validate_request

    fl = flows()[name]
    return fl(request=validate_request(request_model(fl), params))


def refused(fn, *args, field: str | None = None, contains: str = "", **kwargs) -> DomainError:
    """``fn`` is refused with one DomainError (naming ``field``) and writes nothing."""
    before = db_state()
    with pytest.raises(DomainError) as info:
        fn(*args, **kwargs)
    assert db_state() == before, "a refused request must write nothing"
    if field:
        assert info.value.field == field, info.value.message
    assert contains in info.value.message, info.value.message
    return info.value


# ---------------------------------------------------------------- notice templates


def render_both(kind: str, ctx: dict) -> tuple[str, str]:
    """Render a notice kind as (html, text); the text has no markup and no doubled 。. The
    HTML comes back without the ``<span class="nb">`` (no-break) wrappers around names, so
    tests can look for sentences in both outputs alike."""
    import re

    from models.notices import render

    html, text = render(kind, ctx)
    assert "<p>" not in text and "<table" not in text
    assert "。。" not in text and "。。" not in html
    return re.sub(r'<span class="nb">(.*?)</span>', r"\1", html), text


def assert_every_variable_required(kind: str, full: dict, documented: set[str]) -> None:
    """``full`` holds exactly the documented variables and renders; without any one of them
    the template refuses to render (StrictUndefined)."""
    from jinja2 import UndefinedError

    from models.notices import render

    assert set(full) == documented | {"letterhead"}
    render_both(kind, full)
    for name in sorted(full):
        ctx = dict(full)
        del ctx[name]
        with pytest.raises(UndefinedError):
            render(kind, ctx)


# ---------------------------------------------------------------- dutyflow serve as a child


def final_run(api: str, run_id: str, timeout: float = 120) -> dict:
    """The flow run ``run_id`` of the API at ``api`` (``…/api``) once it has finished."""
    import time

    from deployments.serve import api_json

    deadline = time.monotonic() + timeout
    run = {"state_type": "unknown"}
    while time.monotonic() < deadline:
        run = api_json(f"{api}/flow_runs/{run_id}")
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(0.5)
    pytest.fail(f"flow run {run_id} did not finish: {run['state_type']}")


def serving(tmp_path, monkeypatch, token: str):
    """``dutyflow serve`` on a free port behind the login gateway (service credential ``token``,
    also this test's own API login); a context manager yielding (base url, log path)."""
    import contextlib
    import os
    import subprocess
    import sys
    import time

    from deployments.serve import api_json, free_port, stop_process

    @contextlib.contextmanager
    def run():
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "DUTYFLOW_NOW"}
        env.update(DUTYFLOW_HOME=str(tmp_path / "home"), DUTYFLOW_SERVICE_TOKEN=token)
        monkeypatch.setenv("PREFECT_API_AUTH_STRING", f"service:{token}")
        log_path = tmp_path / "serve.log"
        log = open(log_path, "w+")
        proc = subprocess.Popen([sys.executable, "-m", "deployments.cli", "serve", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if len(api_json(f"{base}/api/deployments/filter", {})) == 20 and "已启动" in log_path.read_text():
                        break
                except OSError:
                    pass
                time.sleep(1)
            else:
                pytest.fail(f"dutyflow serve not ready: {log_path.read_text()}")
            yield base, log_path
        finally:
            stop_process(proc)
            log.close()

    return run()

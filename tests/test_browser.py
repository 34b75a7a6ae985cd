"""The operator's day in a real browser (issue #12): Debian's Chromium driven by Playwright
against ``dutyflow serve`` on a free port.

The 事件报告 is filed through the V2 form by picking the reporter and the unit from Chinese
selects and the discovery time from the date-time picker; the run is picked up by the served
runner and its case artifact shows the 文号. A refused entry (a discovery time in the future)
ends the run Failed with one Chinese line and no traceback. The UI calls no outside host.
Screenshots go to ``DUTYFLOW_SCREENSHOTS`` (default: the test's temporary directory); the
README's are kept under docs/screenshots/.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from models.incident import MACHINE
from deployments.serve import api_json
from support import final_run, serving

STATES = MACHINE.states

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"




#: Login accounts of the browser test: the 网信办's 刘建国, and 红旗社区's liaison 吴静 (no authority for 东风社区).
ACCOUNTS = {"p-liu-jianguo": "liu-jianguo-pw-1", "p-wu-jing": "wu-jing-pw-333"}


@pytest.fixture
def served(org, tmp_path, monkeypatch):
    """``dutyflow serve`` on a free port (demo org loaded, two login accounts); yields (base url, log path)."""
    from models import account
    from models.db import session

    with session() as s:
        for person, password in ACCOUNTS.items():
            account.set_password(s, person, password)
    with serving(tmp_path, monkeypatch, "browser-test-token") as (base, log_path):
        yield base, log_path


def _deployment_id(base: str, name: str) -> str:
    return {d["name"]: d for d in api_json(f"{base}/api/deployments/filter", {})}[name]["id"]


def _logs(base: str, run_id: str, containing: str = "") -> list[str]:
    """The run's log lines (they reach the API a moment after the run ends: waits for one
    ``containing`` the text given)."""
    deadline = time.monotonic() + 20
    while True:
        rows = api_json(f"{base}/api/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
        messages = [r["message"] for r in rows]
        if any(containing in m for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def _pick(page, label: str, option: str) -> None:
    """Open the select and choose ``option``; again if the list went away meanwhile (the form
    re-renders when the page's data arrives late on a busy machine), as an operator would."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        page.get_by_label(f"Select {label}", exact=True).click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=10_000)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")


def _pick_time(page, label: str, when: datetime) -> None:
    """The V2 date-time picker: the day in the calendar, then hour, minute (5-minute steps), AM/PM."""
    page.get_by_label(label, exact=True).click()
    pop = page.locator("[data-slot=popover-content]").last
    month = pop.get_by_label("Choose the Month")
    if month.count():
        month.select_option(str(when.month - 1))
        pop.get_by_label("Choose the Year").select_option(str(when.year))
    pop.locator(f"td[data-day='{when:%Y-%m-%d}'] button").click()
    columns = pop.locator("[data-slot=scroll-area]")
    columns.nth(0).get_by_role("button", name=str(when.hour % 12 or 12), exact=True).click()
    columns.nth(1).get_by_role("button", name=str(when.minute - when.minute % 5), exact=True).click()
    columns.nth(2).get_by_role("button", name="AM" if when.hour < 12 else "PM", exact=True).click()
    page.keyboard.press("Escape")


def _fill_report(page, base: str, when: datetime, title: str) -> None:
    page.goto(f"{base}/v2/deployments/deployment/{_deployment_id(base, 'report-incident')}/run",
              wait_until="networkidle")
    _pick(page, "发生单位", "SQ01 东风社区")
    _pick(page, "事件类别", "恶意程序感染")
    _pick(page, "事件级别", "一般（Ⅳ级）")
    page.get_by_label("事件标题", exact=True).fill(title)
    page.get_by_label("事件概况", exact=True).fill("一台办公终端感染病毒，已断网隔离")
    _pick_time(page, "发现时间", when)


def _login(page, base: str, person: str) -> None:
    """Log in through the Prefect UI's own prompt, typing ``person:password`` (sent as Basic auth)."""
    page.goto(f"{base}/v2/", wait_until="networkidle")
    page.wait_for_url(lambda url: "/login" in url, timeout=30_000)  # the UI asks: login required
    page.locator("input[type=password]").fill(f"{person}:{ACCOUNTS[person]}")
    page.get_by_role("button", name="Login").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=30_000)


def _runs(base: str, deployment: str) -> set[str]:
    return {r["id"] for r in api_json(f"{base}/api/flow_runs/filter",
                                  {"deployments": {"id": {"any_": [_deployment_id(base, deployment)]}}})}


def _submit(page, base: str, deployment: str = "report-incident") -> str:
    """Submit the form; returns the id of the run it created. As an operator would, submits
    again when nothing came of it (the server's SQLite may answer 503 for a moment while the
    every-minute sweep and a finishing run write)."""
    before = _runs(base, deployment)
    submit = page.get_by_role("button", name="Submit", exact=True)
    for _attempt in range(3):
        if page.url.endswith("/run"):
            submit.scroll_into_view_if_needed()
            submit.click()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            new = _runs(base, deployment) - before
            if new:
                return new.pop()
            time.sleep(0.3)
    page.screenshot(path=str(Path(os.environ.get("DUTYFLOW_SCREENSHOTS", "/tmp")) / "no-run.png"), full_page=True)
    pytest.fail(f"the form created no flow run: {page.locator('[data-sonner-toast]').all_inner_texts()}")


def test_an_operator_reports_an_incident_in_the_browser_and_a_refusal_reads_in_chinese(served, tmp_path):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is installed by deployments/system-packages.sh --test"
    base, log_path = served
    shots = Path(os.environ.get("DUTYFLOW_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    beijing = datetime.now(ZoneInfo("Asia/Shanghai"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="zh-CN",
                                timezone_id="Asia/Shanghai")
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url)
                if not r.url.startswith((base, "data:", "blob:")) else None)
        try:
            # 0. login: the UI asks; the 网信办's 刘建国 types his id and password
            _login(page, base, "p-liu-jianguo")
            # 1. the form: pickers, filled as an operator would (it no longer asks who you are)
            _fill_report(page, base, beijing - timedelta(hours=3), "办公终端感染病毒")
            page.screenshot(path=str(shots / "report-incident-form.png"), full_page=True)
            run_id = _submit(page, base)
            run = final_run(f"{base}/api", run_id)
            assert run["state_type"] == "COMPLETED", (run["state"], _logs(base, run_id))
            artifacts = api_json(f"{base}/api/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
            [case] = [a for a in artifacts if a["type"] == "markdown"]
            text = case["data"]  # readable: Chinese state, Beijing time, what the action caused, prose
            assert f"- 状态：{STATES['reported']}" in text and f"- 办理时间：{beijing:%Y}年{beijing.month}月" in text
            assert "## 发出的公文" in text and "东风社〔" in text and "## 待办时限" in text and "事件处置" in text
            assert "```" not in text and "> 关于东风社区发生恶意程序感染事件的报告" in text
            assert "- 办理人：刘建国（p-liu-jianguo，口令登录）" in text  # the logged-in person acted
            page.goto(f"{base}/v2/runs/flow-run/{run_id}", wait_until="networkidle")
            page.get_by_role("tab", name="Artifacts").click()
            card = page.get_by_text("事件报告：INC-", exact=False).first  # the card names the case and its 文号
            card.wait_for(timeout=30_000)
            assert "东风社〔" in card.inner_text()
            card.click()
            page.get_by_text("发出的公文", exact=False).first.wait_for(timeout=30_000)
            page.get_by_text("东风社〔", exact=False).first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "report-incident-artifact.png"), full_page=True)

            # 2. a refused entry: discovered in the future
            _fill_report(page, base, beijing + timedelta(days=1), "明天才发现的事件")
            bad_id = _submit(page, base)
            bad = final_run(f"{base}/api", bad_id)
            assert bad["state_type"] == "FAILED"
            assert bad["state"]["message"].startswith("未办理（发现时间）："), bad["state"]["message"]
            messages = _logs(base, bad_id, "未办理（发现时间）：")
            assert any(m.startswith("未办理（发现时间）：") for m in messages), messages
            assert not any("Traceback" in m for m in messages), "\n=====\n".join(messages)
            page.goto(f"{base}/v2/runs/flow-run/{bad_id}", wait_until="networkidle")
            page.get_by_text("未办理（发现时间）", exact=False).first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "report-incident-refused.png"), full_page=True)
            # 2b. a classified request the domain refuses before Prefect stores it (discovered in 1926):
            # the gateway answers 422 with the CLI's one line, the UI shows it, no run is created
            before = _runs(base, "report-incident")
            _fill_report(page, base, datetime(1926, 12, 7, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")), "机密事件标题")
            page.get_by_role("switch", name="涉密 (Optional)").click()
            submit = page.get_by_role("button", name="Submit", exact=True)
            submit.scroll_into_view_if_needed()
            submit.click()
            toast = page.locator("[data-sonner-toast]").filter(has_text="发现时间")
            toast.first.wait_for(timeout=30_000)
            assert "错误" in toast.first.inner_text(), toast.first.inner_text()
            page.screenshot(path=str(shots / "report-incident-refused-at-submit.png"), full_page=True)
            assert _runs(base, "report-incident") == before
            assert "机密事件标题" not in log_path.read_text()
            # 3. the old UI's link that serve prints opens the old UI (V1), not V2
            old_ui = re.search(r"旧版界面 (\S+) ", log_path.read_text()).group(1)
            page.goto(old_ui, wait_until="networkidle")
            assert "/v2" not in page.url and page.url.startswith(base), page.url
            assert page.evaluate("() => !!document.querySelector('#app')"), "the V1 (Vue) app is mounted"
            # 4. a second person without the authority (红旗社区's liaison reporting for 东风社区): refused in Chinese
            other = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="zh-CN",
                                     timezone_id="Asia/Shanghai")
            _login(other, base, "p-wu-jing")
            _fill_report(other, base, beijing - timedelta(hours=2), "代其他社区报告的事件")
            denied = final_run(f"{base}/api", _submit(other, base))
            assert denied["state_type"] == "FAILED"
            assert denied["state"]["message"].startswith("未办理（操作人）：无权办理 report-incident"), denied["state"]
            other.goto(f"{base}/v2/runs/flow-run/{denied['id']}", wait_until="networkidle")
            other.get_by_text("无权办理 report-incident", exact=False).first.wait_for(timeout=30_000)
            other.screenshot(path=str(shots / "report-incident-no-authority.png"), full_page=True)
        finally:
            browser.close()
    assert outside == [], outside  # the UI calls no outside host (analytics included)
    console = log_path.read_text()
    assert "Traceback" not in console  # nor does the serve console show one
    # runs start as forks of the preloaded fork server (deployments/fast_start.py), not as a new
    # interpreter loading the flow from its entrypoint ("Downloading flow code from storage")
    assert "Beginning flow run" in console and "Downloading flow code" not in console

    # 4. the organisation loaded again: the pickers of the served forms follow at once
    import yaml

    from conftest import DEMO_ORG_FILE

    org = yaml.safe_load(DEMO_ORG_FILE.read_text(encoding="utf-8"))
    org["persons"].append({"id": "p-new-liaison", "name": "新联络员", "channels": []})
    org["posts"].append({"unit": "SQ02", "person": "p-new-liaison", "role": "liaison", "valid_from": "2026-01-01"})
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump(org, allow_unicode=True), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(DUTYFLOW_HOME=str(tmp_path / "home"), DUTYFLOW_SERVICE_TOKEN="browser-test-token")
    out = subprocess.run([sys.executable, "-m", "deployments.cli", "org", "load", str(path)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "表单选项已更新" in out.stderr, out.stderr
    deps = {d["name"]: d for d in api_json(f"{base}/api/deployments/filter", {})}
    persons = deps["report-incident"]["parameter_openapi_schema"]["definitions"]["ReportIncidentRequest"]["properties"][
        "involved_persons"]["items"]
    assert "新联络员（红旗社区 网络安全联络员）" in persons["enum"]

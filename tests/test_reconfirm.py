"""Deadlines computed again when their year's calendar is loaded (models/reconfirm.py).

December 2026: the 2027 holidays are not yet announced, so a deadline reaching 2027 is
computed Monday–Friday and flagged. Loading the State Council's 2027 notice must move it
where the holidays say, clear the flag, keep the audit chain, and let the sweep re-plan.
"""
from __future__ import annotations

import json

from models.db import session

OFFICE, OFFICER = "p-sun-jianhua", "p-guo-tao"
CAL_2027 = {"year": 2027, "source": "国办发明电〔2026〕7号（测试）",
            "holidays": [{"name": "元旦", "days": ["2027-01-01"]}]}


def notify(**over):
    from models import rectification as r
    from models.requests import validate_request

    params = dict(actor=OFFICE, unit="SQ03", source="X区网安〔2026〕9号通报", risk_level="low",
                  problem="补丁未更新", requirement="更新补丁")
    params.update(over)
    return r.notify(validate_request(r.NotifyRiskRequest, params)).case.id


def obligations(case_id: str) -> dict:
    from models.case_view import case_json, load_case

    with session() as s:
        case = case_json(s, load_case(s, case_id))
    return case, {o["kind"]: o for o in case["obligations"]}


def load_2027() -> dict:
    from models.calendar import load_calendar_data
    from models.reconfirm import reconfirm_deadlines

    with session() as s:
        load_calendar_data(s, CAL_2027)
    return reconfirm_deadlines(2027, CAL_2027["source"])


def test_loading_2027_moves_guessed_deadlines_and_clears_the_flag(org, clock):
    clock("2026-12-10T10:00:00+08:00")
    low = notify()  # 30 working days: 15 in December, 15 guessed in January
    fixed = notify(unit="SQ04", due_at="2027-01-15T18:00:00+08:00")  # the issuer's date: stays
    near = notify(unit="SQ05", risk_level="high")  # 3 working days, all in 2026: never flagged
    case, obs = obligations(low)
    assert (obs["rectify"]["due_at"], obs["rectify"]["calendar_unconfirmed"]) == ("2027-01-22T00:00:00+08:00", True)
    assert obligations(near)[1]["rectify"]["calendar_unconfirmed"] is False

    assert load_2027() == {"cases": 2, "confirmed": 2, "moved": 1, "notices": 1}
    case, obs = obligations(low)
    # 1/1 is 元旦: the 15th working day of 2027 is 1/22, so the period ends at 24:00 of 1/22
    assert (obs["rectify"]["due_at"], obs["rectify"]["calendar_unconfirmed"]) == ("2027-01-23T00:00:00+08:00", False)
    assert case["events"][-1]["type"] == "deadlines_confirmed"
    assert any("2027年1月21日" in w and "2027年1月22日（星期五）24时" in w for w in case["warnings"])
    # the 整改通知 said "安排公布后如有调整，另行通知": the 期限调整通知, from its issuer (the 网信办)
    [adjust] = [n for n in case["notices"] if n["kind"] == "deadline_adjustment"]
    [original] = [n for n in case["notices"] if n["kind"] == "rectification_notice"]
    assert adjust["recipients"] == original["recipients"] and adjust["doc_number"].startswith("X街网安〔2026〕")
    from models.notice import Notice

    with session() as s:
        text = s.get(Notice, adjust["id"]).text
    assert "国办发明电〔2026〕7号（测试）公布的2027年节假日安排" in text
    assert "完成整改并报送整改报告（建设社区）：原定2027年1月21日（星期四）24时前，调整为2027年1月22日（星期五）24时前" in text
    assert "抄送：街道综合治理办公室。" in text  # the same 主送 and 抄送 as the 整改通知
    assert obs["rectify"]["next_action_at"] == "2026-12-10T10:00:00+08:00"  # the sweep re-plans it now
    _, fixed_obs = obligations(fixed)
    assert (fixed_obs["rectify"]["due_at"], fixed_obs["rectify"]["calendar_unconfirmed"]) == \
        ("2027-01-15T18:00:00+08:00", False)
    assert [n["kind"] for n in obligations(fixed)[0]["notices"]] == ["rectification_notice"]  # nothing moved

    assert load_2027() == {"cases": 0, "confirmed": 0, "moved": 0, "notices": 0}  # nothing left to do

    from models.sweep import sweep

    sweep()  # the ladder is planned from the new due time: reminder 1 working day before
    _, obs = obligations(low)
    assert (obs["rectify"]["step"], obs["rectify"]["next_action_at"]) == (0, "2027-01-22T00:00:00+08:00")
    from models.audit import verify

    with session() as s:
        assert verify(s)[0]


def test_calendar_load_command_reports_the_deadlines(org, clock, tmp_path):
    from test_cli import cli

    clock("2026-12-10T10:00:00+08:00")
    case_id = notify()
    path = tmp_path / "2027.json"
    path.write_text(json.dumps(CAL_2027, ensure_ascii=False), encoding="utf-8")
    out = json.loads(cli("calendar", "load", str(path)).stdout)
    assert out["year"] == 2027 and out["deadlines"] == {"cases": 1, "confirmed": 1, "moved": 1, "notices": 1}
    assert obligations(case_id)[1]["rectify"]["due_at"] == "2027-01-23T00:00:00+08:00"


def test_self_assessment_due_in_2027_is_computed_again(org, clock):
    """The yearly start's bulk-inserted obligations keep their basis too."""
    from models import assessment
    from models.requests import validate_request

    clock("2026-12-20T10:00:00+08:00")
    case_id = assessment.start(validate_request(assessment.StartAssessmentRequest,
                                                {"year": 2026, "units": ["SQ01", "SQ02"]})).case.id
    _, obs = obligations(case_id)
    assert (obs["self_assessment"]["due_at"], obs["self_assessment"]["calendar_unconfirmed"]) == \
        ("2027-01-02T00:00:00+08:00", True)  # 12/21–31 gives 9 working days; 1/1 guessed as the 10th
    assert load_2027() == {"cases": 1, "confirmed": 2, "moved": 2, "notices": 1}
    case, obs = obligations(case_id)
    assert (obs["self_assessment"]["due_at"], obs["self_assessment"]["calendar_unconfirmed"]) == \
        ("2027-01-05T00:00:00+08:00", False)  # 1/1 is 元旦: the 10th working day is Mon 1/4
    [adjust] = [n for n in case["notices"] if n["kind"] == "deadline_adjustment"]  # one for both units
    assert sorted(adjust["recipients"]) == sorted(["p-zhang-xiuying", "p-zhao-shuzhen"])  # SQ01's and SQ02's principals
    assert sum("2个单位" in w for w in case["warnings"]) == 1

"""Every flow of dutyflow by its deployment name (= `dutyflow run` name)."""
from __future__ import annotations


def flows() -> dict:
    from flows import accountability, assessment, incident, rectification, watchdog

    return {
        "report-incident": incident.report_incident,
        "update-incident": incident.update_incident,
        "submit-incident-summary": incident.submit_incident_summary,
        "notify-risk": rectification.notify_risk,
        "acknowledge-risk": rectification.acknowledge_risk,
        "submit-rectification": rectification.submit_rectification,
        "verify-rectification": rectification.verify_rectification,
        "request-extension": rectification.request_extension,
        "decide-extension": rectification.decide_extension,
        "open-accountability": accountability.open_accountability,
        "record-accountability-decision": accountability.record_accountability_decision,
        "file-appeal": accountability.file_appeal,
        "decide-appeal": accountability.decide_appeal,
        "dismiss-accountability": accountability.dismiss_accountability,
        "start-annual-assessment": assessment.start_annual_assessment,
        "record-activity": assessment.record_activity,
        "submit-self-assessment": assessment.submit_self_assessment,
        "score-assessment": assessment.score_assessment,
        "publish-assessment": assessment.publish_assessment,
        "sweep-deadlines": watchdog.sweep_deadlines,
    }


def request_model(flow) -> type:
    """The pydantic model of a flow's single ``request`` parameter."""
    import typing

    return typing.get_type_hints(flow.fn)["request"]

"""One Prefect deployment per flow, with its schedule (the sweep every minute), and forms
whose pickers (units, persons, open cases) come from the registry (models/choices.py)."""
from __future__ import annotations

import inspect
from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.schedules import Cron
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.utilities.callables import parameter_schema

from deployments.settings import login_required, without_actor
from flows.registry import flows
from models import policy
from models.choices import apply_choices, choices
from models.clock import today_local
from models.db import session

INTERVALS = {"sweep-deadlines": timedelta(minutes=1)}


def assessment_cron() -> str:
    """When the yearly 年度检查考核 starts (policy ``assessment.cron``, Beijing time)."""
    return policy.get("assessment", "cron", default="0 9 1 12 *")


#: Tags that keep the every-minute sweep runs apart from the operators' runs in the UI's filters.
SWEEP_TAG, OPERATOR_TAG = "到期巡检", "业务办理"


def tag(name: str) -> str:
    return SWEEP_TAG if name == "sweep-deadlines" else OPERATOR_TAG


def form_choices() -> dict[str, list[str]]:
    """The pickers' values as the registry stands today."""
    with session() as s:
        return choices(s, today_local())


def form_schema(fl, values: dict[str, list[str]]):
    """The flow's parameter schema with its pickers filled."""
    schema = parameter_schema(fl)
    apply_choices({"properties": schema.properties, "definitions": schema.definitions}, values)
    if login_required():
        without_actor(schema.definitions)
    return schema


def refresh_forms(api_url: str | None = None) -> int:
    """Fill the pickers of the registered deployments again (after ``org load``, or when a
    case opens or closes); returns how many deployments were updated."""
    values = form_choices()
    updated = 0
    with temporary_settings({PREFECT_API_URL: api_url} if api_url else {}):
        with get_client(sync_client=True) as client:
            for name, fl in flows().items():
                try:
                    dep = client.read_deployment_by_name(f"{fl.name}/{name}")
                except Exception:  # not registered on this server (yet)
                    continue
                client.update_deployment(dep.id, DeploymentUpdate(
                    parameter_openapi_schema=form_schema(fl, values).model_dump(exclude_unset=True)))
                updated += 1
    return updated


def build() -> list:
    """Deployments of every flow; names equal the flow names (SPEC §5); forms with pickers."""
    values = form_choices()
    out = []
    for name, fl in flows().items():
        kwargs = {}
        if name in INTERVALS:
            kwargs["interval"] = INTERVALS[name]
        if name == "start-annual-assessment":  # once a year, Beijing time
            kwargs["schedule"] = Cron(assessment_cron(), timezone="Asia/Shanghai")
        # behind the login gateway, each new run's request is checked by the domain's own model
        # (ids and labels alike, Chinese messages); Prefect's check knows only the form's labels
        dep = fl.to_deployment(name=name, description=inspect.getdoc(fl.fn), tags=["dutyflow", tag(name)],
                               enforce_parameter_schema=not login_required(), **kwargs)
        dep._parameter_openapi_schema = form_schema(fl, values)
        out.append(dep)
    return out

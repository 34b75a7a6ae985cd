"""Helpers shared by the scenario tests."""
from __future__ import annotations

import pytest
from conftest import db_counts

from models.errors import DomainError


def run_flow(name: str, **params) -> dict:
    """Run a flow by its deployment name with a raw request, as the UI or `dutyflow run` would."""
    from flows.registry import flows, request_model
    from models.requests import validate_request

    fl = flows()[name]
    return fl(request=validate_request(request_model(fl), params))


def refused(fn, *args, field: str | None = None, contains: str = "", **kwargs) -> DomainError:
    """``fn`` is refused with one DomainError (naming ``field``) and writes nothing."""
    before = db_counts()
    with pytest.raises(DomainError) as info:
        fn(*args, **kwargs)
    assert db_counts() == before, "a refused request must write nothing"
    if field:
        assert info.value.field == field, info.value.message
    assert contains in info.value.message, info.value.message
    return info.value

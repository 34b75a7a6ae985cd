"""Run a flow by its deployment name with a raw request, as the UI or `dutyflow run` would."""


def run_flow(name: str, **params) -> dict:
    from flows.registry import flows, request_model
    from models.requests import validate_request

    fl = flows()[name]
    return fl(request=validate_request(request_model(fl), params))

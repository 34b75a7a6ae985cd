"""Reactions between processes, inside the acting transaction (SPEC §3.3, §3.4).

A process announces a fact with :func:`emit` (an incident's facts after a report, an update
or a miss; a rectification still not done at the end of its ladder); the processes that react
to it registered a handler with :func:`on` — accountability proposes 问责 (c1–c4) — and run
in the same transaction, so the fact and the reaction commit or roll back together. The
announcing process does not import the reacting one: neither knows the other, only the
event's name and its arguments.
"""
from __future__ import annotations

from typing import Any, Callable

from models import processes

#: The events, with what each handler is given besides the acting step.
EVENTS = {
    "incident.facts": "the incident's step (its case data and obligations as they now stand)",
    "rectification.unrectified": "facts (text), facts_date (the due day) of a 整改 not done in time",
}
_HANDLERS: dict[str, list[Callable]] = {}


def on(event: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as a handler of ``event`` (a key of :data:`EVENTS`)."""
    if event not in EVENTS:
        raise KeyError(f"unknown event {event!r}")

    def register(fn: Callable) -> Callable:
        if fn not in _HANDLERS.setdefault(event, []):
            _HANDLERS[event].append(fn)
        return fn

    return register


def emit(event: str, step: Any, **data: Any) -> list[Any]:
    """Run every handler of ``event`` in the caller's transaction; their results, in order."""
    if event not in EVENTS:
        raise KeyError(f"unknown event {event!r}")
    processes.modules()  # every process loaded: its handlers registered
    return [handler(step, **data) for handler in _HANDLERS.get(event, [])]

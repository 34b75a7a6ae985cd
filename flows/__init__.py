"""dutyflow's Prefect flows: one module per process and the sweep's (``flows/registry.py``).
Importing the package makes the flow engine's heartbeats stop when a run ends
(``flows/heartbeats.py``)."""
from flows.heartbeats import install

install()

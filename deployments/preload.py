"""What the fork server loads once, so that a run forked from it does not.

``dutyflow serve`` and ``dutyflow worker`` start every flow run as a fork of one preloaded
process (``deployments/fast_start.py``). This module is what that process imports: Prefect's
engines and the parts of Prefect a run reaches for only once it runs, every flow and task
module (through the registry), the libraries of notices, documents, delivery and the
database drivers, and every notice template compiled. Importing it opens no database
connection and starts no thread: a fork inherits neither.
"""
from __future__ import annotations

import apprise  # noqa: F401  (delivery)
import docx  # noqa: F401  (DOCX notices)
import prefect.flow_engine  # noqa: F401
import prefect.task_engine  # noqa: F401  (a run's first task)
import prefect.utilities.visualization  # noqa: F401  (imported by the first task call)
import prefect._internal.observers  # noqa: F401  (the suspension observer of a deployment's run)
import psycopg  # noqa: F401  (PostgreSQL: the driver SQLAlchemy loads at the first connection)
import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401
import weasyprint  # noqa: F401  (PDF notices)

import deployments.deployments  # noqa: F401
import tasks.documents  # noqa: F401
import tasks.export  # noqa: F401
import tasks.ledger  # noqa: F401
import tasks.notify  # noqa: F401
import tasks.recovery  # noqa: F401
import tasks.sweep  # noqa: F401
from flows.registry import modules
from models.notices import compile_templates

modules()
compile_templates()

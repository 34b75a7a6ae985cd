"""What the fork server loads once, so that a run forked from it does not.

``dutyflow serve`` and ``dutyflow worker`` start every flow run as a fork of one preloaded
process (``deployments/fast_start.py``). This module is what that process imports: every flow
module through the registry (and with them the tasks, Prefect's flow engine and Apprise), the
parts of Prefect and of the database driver a run would otherwise import only once it runs,
and every notice template compiled. Nothing a run never reaches (PDF and DOCX rendering is
the CLI's) is loaded. Importing opens no database connection and starts no thread: a fork
inherits neither.
"""
from __future__ import annotations

import prefect._internal.observers  # noqa: F401  (the suspension observer of a deployment's run)
import prefect.task_engine  # noqa: F401  (a run's first task)
import prefect.utilities.visualization  # noqa: F401  (imported by the first task call)
import psycopg  # noqa: F401  (PostgreSQL: the driver SQLAlchemy loads at the first connection)
import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401

from flows.registry import modules
from models.notices import compile_templates

modules()
compile_templates()

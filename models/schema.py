"""Schema creation and upgrade: Alembic migrations in ``migrations/`` (``dutyflow init``)."""
from __future__ import annotations

from alembic import command
from alembic.config import Config

import models.account  # noqa: F401 - the core's tables, registered on import
import models.audit  # noqa: F401
import models.calendar  # noqa: F401
import models.case  # noqa: F401
import models.notice  # noqa: F401
import models.org  # noqa: F401
from models import processes
from models.calendar import seed_from_chinese_calendar
from models.db import ROOT, database_url, engine, session


def import_all_tables() -> None:
    """Register every table on ``SQLModel.metadata``: the core's, and every process's."""
    processes.modules()


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", database_url().replace("%", "%%"))
    return cfg


def init_schema(seed: bool = True) -> None:
    """Create or upgrade the schema, then seed the working-day calendar. Idempotent."""
    eng = engine()
    with eng.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    if seed:
        with session() as s:
            seed_from_chinese_calendar(s)

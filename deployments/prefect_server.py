"""The Prefect server of ``dutyflow serve``: ``prefect server start`` with one change on SQLite.

Prefect opens its SQLite transactions DEFERRED unless they lock rows. A DEFERRED transaction
that has read and then wants to write while another connection has written cannot wait
(SQLite answers "database is locked" at once, whatever the busy timeout), and the API turns
that into a 503: a form submitted in the UI at that moment shows an error toast. Here every
transaction of the server begins IMMEDIATE, so writers queue on the busy timeout instead of
failing. PostgreSQL (the production topology) is left as Prefect has it.

    python -m deployments.prefect_server server start --host … --port …
"""
from __future__ import annotations

from contextlib import asynccontextmanager


def writers_queue_on_sqlite() -> None:
    """Every transaction of the Prefect server's SQLite begins IMMEDIATE."""
    from prefect.server.database import configurations as conf

    @asynccontextmanager
    async def begin_transaction(self, session, with_for_update: bool = False):
        token = conf.SQLITE_BEGIN_MODE.set("IMMEDIATE")
        try:
            async with session.begin() as transaction:
                yield transaction
        finally:
            conf.SQLITE_BEGIN_MODE.reset(token)

    conf.AioSqliteConfiguration.begin_transaction = begin_transaction


def main() -> None:
    """``prefect server start …`` (the arguments of this command line), writers queued."""
    writers_queue_on_sqlite()
    from prefect.cli import app

    app()


if __name__ == "__main__":
    main()

"""The Prefect server of ``dutyflow serve``: ``prefect server start`` with one change on SQLite.

Prefect opens its SQLite transactions DEFERRED unless they lock rows. A DEFERRED transaction
that has read and then wants to write while another connection has written cannot wait
(SQLite answers "database is locked" at once, whatever the busy timeout), and the API turns
that into a 503: a form submitted in the UI at that moment shows an error toast. Here every
transaction of the server begins IMMEDIATE, so writers queue on the busy timeout instead of
failing. PostgreSQL (the production topology) is left as Prefect has it.

Every API path requires login (``deployments/gateway.py``) unless ``DUTYFLOW_LOGIN=off``.

    python -m deployments.prefect_server server start --host … --port …
"""
from __future__ import annotations

# Imports inside functions: Prefect's server modules are patched here before Prefect's CLI
# starts the server (writers queued, the login gateway in front).

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


def behind_gateway() -> None:
    """Every app ``create_app`` makes for serving (not the in-process ephemeral one) is put
    behind the login gateway (``deployments/gateway.py``); the server's own clients (its
    services calling its API) log in with the service credential."""
    import os

    from prefect.server.api import server

    from models.account import service_auth_string

    original = server.create_app

    def create_app(*args, **kwargs):
        from deployments.gateway import wrap

        app = original(*args, **kwargs)
        return app if kwargs.get("ephemeral") else wrap(app)

    server.create_app = create_app
    os.environ.pop("PREFECT_SERVER_API_AUTH_STRING", None)  # Prefect's one shared string: the gateway instead
    token = service_auth_string(create=True)
    if token:
        os.environ["PREFECT_API_AUTH_STRING"] = token


def main() -> None:
    """``prefect server start …`` (the arguments of this command line), writers queued,
    behind the login gateway."""
    writers_queue_on_sqlite()
    behind_gateway()
    from prefect.cli import app

    app()


if __name__ == "__main__":
    main()

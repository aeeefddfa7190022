"""Alembic environment for the vidarch results database.

Migrations run programmatically from ``search.results.store`` (no ``alembic.ini``, no cwd dependence):
the store passes an open connection in ``config.attributes["connection"]``. Running the
``alembic`` CLI also works with ``-x url=sqlite:///studies.db``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from search.results.schema import Base

VERSION_TABLE = "vidarch_schema_version"  # a name of our own: tells vidarch databases apart

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies tables
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Upgrade through the connection the store gave us, or one made from ``-x url=``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=target_metadata, version_table=VERSION_TABLE,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()

"""Alembic environment: the URL comes from the caller's config, else from EDGEFARM_DATABASE_URL."""

from __future__ import annotations

from alembic import context

from edgefarm_gateway.db import make_engine
from edgefarm_gateway.orm import Base
from edgefarm_gateway.settings import Settings

url = context.config.get_main_option("sqlalchemy.url") or Settings().sqlalchemy_url


def run() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        # Batch mode lets ALTER TABLE migrations run on SQLite too (it copies the table).
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run()

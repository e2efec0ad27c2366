"""Engine and sessions. The URL picks the database: SQLite (default, one machine) or PostgreSQL.

SQLite is tuned for several processes (gateway, workers) sharing one file: WAL so readers never block the
writer, a busy timeout instead of instant "database is locked", and BEGIN IMMEDIATE so a transaction takes
the write lock up front rather than failing when it upgrades from read to write half-way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from edgefarm_gateway.settings import Settings, get_settings


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # let the "begin" hook below open transactions
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings.sqlalchemy_url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on error, then runs the after-commit hooks."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        for hook in session.info.pop("after_commit", []):
            hook()


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run `hook` once this session's transaction has committed (e.g. enqueue a task for a new row)."""
    session.info.setdefault("after_commit", []).append(hook)


@lru_cache
def get_database() -> Database:
    return Database(get_settings())

"""Engine and sessions. The URL picks the database: SQLite (default, one machine) or PostgreSQL.

SQLite is tuned for several processes (gateway, workers) sharing one file: WAL so readers never block the
writer, a busy timeout instead of instant "database is locked", and BEGIN IMMEDIATE so a transaction that may
write takes the write lock up front rather than failing when it upgrades from read to write half-way. Sessions
opened read-only (authentication, GET requests) begin a plain deferred transaction: a snapshot, no write lock, so
a burst of pollers does not queue behind writers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from edgefarm_gateway.settings import Settings, get_settings


# A connection for each of the gateway's 40 request threads (Starlette's thread pool) and its background loops:
# with SQLAlchemy's default 5 + 10, a burst of 200 submissions timed requests out waiting for a connection.
POOL = {"pool_size": 20, "max_overflow": 30, "pool_timeout": 10}


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **POOL)

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
        def _begin(connection) -> None:
            read_only = connection.get_execution_options().get(READ_ONLY, False)
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **POOL)


READ_ONLY = "edgefarm_read_only"  # an execution option: this connection's transactions do not write


class Database:
    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings.sqlalchemy_url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessionmaker = sessionmaker(self.engine.execution_options(**{READ_ONLY: True}),
                                               expire_on_commit=False)

        @event.listens_for(self._read_sessionmaker, "before_flush")
        def _refuse_writes(session, *_) -> None:
            # On SQLite a write in a deferred transaction can fail at once (another writer committed since its
            # snapshot); say which code path is wrong instead.
            if session.new or session.dirty or session.deleted:
                raise RuntimeError("a read-only session (a GET request, authentication) tried to write: open a "
                                   "writing session for this")

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on error, then runs the after-commit hooks.
        `read_only`: for work that only reads (on SQLite it takes no write lock, and a write in it fails)."""
        session = (self._read_sessionmaker if read_only else self.sessionmaker)()
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

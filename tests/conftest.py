"""Fixtures that run the farm for real: a migrated database, a gateway process, Celery worker processes.

Every test that touches the farm runs twice: on SQLite + the embedded broker (always), and on
PostgreSQL + Redis when they answer on their standard ports. With EDGEFARM_REQUIRE_SERVICES=1 (CI sets
it) their absence is a failure, so CI never skips them silently.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgefarm.farm import LocalFarm

PG_ADMIN_URL = os.environ.get("EDGEFARM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("EDGEFARM_TEST_REDIS", "redis://127.0.0.1:6379/9")
REQUIRE_SERVICES = os.environ.get("EDGEFARM_REQUIRE_SERVICES") == "1"

# Short leases and reconcile intervals so recovery tests take seconds, not minutes.
FAST_RECOVERY = {
    "EDGEFARM_BODY_IDLE_SECONDS": "5",
    "EDGEFARM_COMPILE_LEASE_SECONDS": "4",
    "EDGEFARM_RECONCILE_INTERVAL_SECONDS": "0.5",
    "EDGEFARM_REQUEUE_AFTER_SECONDS": "10",
    "EDGEFARM_DEVICE_LEASE_SECONDS": "3",
    "EDGEFARM_AGENT_HEARTBEAT_SECONDS": "1",
    "EDGEFARM_DEVICE_OFFLINE_AFTER_SECONDS": "5",
    "EDGEFARM_PIPELINE_INTERVAL_SECONDS": "0.3",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _services_missing() -> str | None:
    import psycopg
    import redis

    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except Exception as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} does not answer: {exc}"
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except Exception as exc:
        return f"Redis at {REDIS_URL} does not answer: {exc}"
    return None


@dataclass
class Backend:
    name: str
    env: dict[str, str]


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request):
    if request.param == "sqlite":
        yield Backend("sqlite", {})  # the defaults: SQLite and the file broker in the data dir
        return
    missing = _services_missing()
    if missing:
        if REQUIRE_SERVICES:
            pytest.fail(f"EDGEFARM_REQUIRE_SERVICES=1 but {missing}")
        pytest.skip(missing)
    import psycopg

    database = f"edgefarm_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield Backend("postgres", {"EDGEFARM_DATABASE_URL": f"{base}/{database}", "EDGEFARM_BROKER_URL": REDIS_URL,
                                "EDGEFARM_BROKER_KEY_PREFIX": f"{database}:"})
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@dataclass
class Gateway:
    farm: LocalFarm
    url: str
    admin_token: str
    backend: str

    @property
    def data_dir(self) -> Path:
        return self.farm.data_dir


@pytest.fixture(scope="session")
def gateway(backend, tmp_path_factory):
    """A migrated database and a running gateway process (no workers yet)."""
    farm = LocalFarm(data_dir=tmp_path_factory.mktemp(f"farm-{backend.name}"), port=free_port(),
                     env={**backend.env, **FAST_RECOVERY, "EDGEFARM_MAX_MODEL_BYTES": str(16 * 1024**2),
                          "EDGEFARM_MAX_DATASET_BYTES": str(16 * 1024**2)})
    token = farm.prepare()
    farm.start_gateway()
    yield Gateway(farm, farm.url, token, backend.name)
    farm.stop()


@pytest.fixture(scope="session")
def farm(gateway):
    """The gateway plus one Celery compile worker process (started once per backend)."""
    if not any(p.name.startswith("worker") for p in gateway.farm.processes):
        gateway.farm.start_worker()
    return gateway


@pytest.fixture
def client(gateway):
    import edgefarm as ef

    return ef.Client(api_url=gateway.url, api_token=gateway.admin_token)

"""Server-side settings (gateway, workers), read from EDGEFARM_* environment variables.

Everything has a default that needs no server: SQLite and an embedded broker under one data directory.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

GiB = 1024**3


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGEFARM_", extra="ignore")

    data_dir: Path = Field(default=Path("~/.edgefarm"), description="where the database, artifacts and broker live")
    database_url: str = Field(default="", description="SQLAlchemy URL; default: SQLite in the data directory")
    broker_url: str = Field(default="", description="Celery broker; default: an embedded file-based broker")
    broker_key_prefix: str = Field(default="", description="prefix for every Redis key, to share one Redis")
    artifact_dir: Path | None = Field(default=None, description="artifact store; default: data_dir/artifacts")

    # Signs dashboard session cookies. Give every gateway of a farm the same one; default: made once per data dir.
    session_secret: str = Field(default="", repr=False)

    max_model_bytes: int = 2 * GiB
    max_dataset_bytes: int = 2 * GiB
    max_json_bytes: int = 4 * 1024**2
    # A request body that sends nothing for this long is answered 408 and its connection closed: a client that
    # opens uploads and stalls would otherwise hold the gateway's connections and threads indefinitely.
    body_idle_seconds: float = 30.0
    # And one that trickles in (a byte now and then, never idle that long) is answered 408 once, after the idle
    # time, its average rate is below this: 1 KiB/s, far below any real link, is 5 days for a 440 MB model.
    body_min_bytes_per_second: float = 1024.0

    # Compile jobs: a worker holds a lease it renews while converting; an expired lease means the worker died.
    compile_lease_seconds: float = 60.0
    compile_max_attempts: int = 3
    # A worker job that runs longer or grows larger than this is FAILED with the cause and its worker process
    # replaced: a model can be built to stall or exhaust the converter. Far above real models: the corpus's
    # slowest compile took 101 s (ConvNeXt-T), and the onnx2tf command line peaked at 961 MB on it.
    compile_time_limit_seconds: float = 1800.0
    compile_memory_limit_bytes: int = 12 * 2**30
    # A CREATED job nobody claimed for this long is sent to the broker again (the broker may have lost it).
    requeue_after_seconds: float = 30.0
    reconcile_interval_seconds: float = 5.0
    # How often the gateway moves pipelines on from their jobs' states (one cheap query when none runs).
    pipeline_interval_seconds: float = 1.0

    # Device jobs: agents renew leases with progress; devices are offline when their agent stops heartbeating.
    device_lease_seconds: float = 60.0
    device_max_attempts: int = 3
    agent_heartbeat_seconds: float = 10.0
    device_offline_after_seconds: float = 30.0

    worker_concurrency: int = 1  # one conversion per worker process uses every core already

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'edgefarm.db'}"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        return self.data_path / "broker"

    @property
    def artifacts_path(self) -> Path:
        return (self.artifact_dir or self.data_path / "artifacts").expanduser().resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()

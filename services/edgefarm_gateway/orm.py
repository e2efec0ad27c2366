"""Database tables. The jobs table is the source of truth: the broker only carries job ids."""

from __future__ import annotations

import secrets
from datetime import datetime, UTC
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text, TypeDecorator,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_id(prefix: str) -> str:
    """Short, url-safe, unguessable ids with a letter saying what they are: m… model, j… job."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(11))


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC on the way out, whatever the database keeps (SQLite keeps naive datetimes)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # admin | user | agent
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # Agent tokens only. The one agent the token may register: named at creation, else the first that registers
    # with it. The device pools it may serve (None: any), so a token cannot put devices into a pool and lease
    # (and download) that pool's jobs.
    agent_name: Mapped[str | None] = mapped_column(String(200), default=None)
    pools: Mapped[list[Any] | None] = mapped_column(JSON, default=None)


class Model(Base):
    """A model file in the artifact store: uploaded by a user, or produced by a compile job."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))  # onnx | torchscript | tflite
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    inputs: Mapped[list[Any]] = mapped_column(default=list)
    outputs: Mapped[list[Any]] = mapped_column(default=list)
    producer_job_id: Mapped[str | None] = mapped_column(String(16), default=None)
    owner_id: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Dataset(Base):
    """Named tensors (.npz, no pickle): calibration data and inference inputs."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    entries: Mapped[dict[str, Any]] = mapped_column(default=dict)
    owner_id: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    type: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)

    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    target_model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id"), default=None)
    device: Mapped[dict[str, Any]] = mapped_column(default=dict)
    options: Mapped[str] = mapped_column(Text, default="")
    input_specs: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    calibration_dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"), default=None)
    input_dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", name="fk_jobs_input_dataset_id_datasets"), default=None)
    device_id: Mapped[str | None] = mapped_column(  # the device that ran it
        ForeignKey("devices.id", name="fk_jobs_device_id_devices"), default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    # Same source bytes + specs + options + calibration bytes → same key → the finished target is reused.
    cache_key: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)

    # Who holds the job now. A claim is a conditional UPDATE on these, so two workers never run one job.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim_token: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    enqueued_at: Mapped[datetime | None] = mapped_column(default=None)

    owner_id: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    events: Mapped[list[JobEvent]] = relationship(order_by="JobEvent.id", lazy="selectin")


class JobEvent(Base):
    """The job's timeline: every state change with its time and why."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Pipeline(Base):
    """compile → profile + inference on each device → compare with FP32 → gates → registry, as ordinary jobs.

    The row is the pipeline's whole memory: the gateway's driver advances it from the states of its jobs, so
    a restarted gateway carries on where the last one stopped.
    """

    __tablename__ = "pipelines"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)  # the registry model name
    state: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    spec: Mapped[dict[str, Any]] = mapped_column()  # the PipelineIn as submitted
    jobs: Mapped[dict[str, Any]] = mapped_column()  # PipelineJobs
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    version: Mapped[int | None] = mapped_column(Integer, default=None)
    events: Mapped[list[Any]] = mapped_column(default=list)  # [{at, message}]
    owner_id: Mapped[str] = mapped_column(String(16))
    owner_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Agent(Base):
    """A program beside some devices. Known by name, so a restarted agent finds its devices again."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    version: Mapped[str] = mapped_column(String(64), default="")
    token_id: Mapped[str] = mapped_column(String(16))
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    devices: Mapped[list[Device]] = relationship(back_populates="agent", lazy="selectin")


class Device(Base):
    """One physical device; devices with the same name form a pool users select by name."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("agent_id", "serial"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"))
    name: Mapped[str] = mapped_column(String(200), index=True)
    serial: Mapped[str] = mapped_column(String(200))
    os: Mapped[str] = mapped_column(String(100), default="")
    attributes: Mapped[list[Any]] = mapped_column(default=list)
    current_job_id: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # An agent that stops declaring a device retires it; its jobs keep pointing at it as evidence.
    retired_at: Mapped[datetime | None] = mapped_column(default=None)

    agent: Mapped[Agent] = relationship(back_populates="devices", lazy="joined")


# --- the model registry ----------------------------------------------------------------------------------------


class RegisteredModel(Base):
    """A named model in the registry: its versions are what the delivery pipeline gated, its channels what ships."""

    __tablename__ = "registered_models"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    owner_id: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ModelVersion(Base):
    """One gated release candidate: per-device compiled targets plus the evidence that let it through.

    Numbers count 1, 2, 3… per registered model; the unique constraint makes a lost race an error, never a duplicate.
    """

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("registered_model_id", "number"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    registered_model_id: Mapped[str] = mapped_column(ForeignKey("registered_models.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    source_model_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    # [{device, model_id, sha256, size, format, compile_job_id, profile_job_id, inference_job_id}]: a device's
    # fetch reads the bytes' hash from here without a join.
    targets: Mapped[list[Any]] = mapped_column(default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)  # opaque: what the pipeline measured and gated
    pipeline_id: Mapped[str | None] = mapped_column(String(16), default=None)
    submitted_by: Mapped[str] = mapped_column(String(200), default="")  # the token's name
    submitted_by_id: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Channel(Base):
    """A release channel (staging, production…) of a registered model: the version devices get from it."""

    __tablename__ = "registry_channels"
    __table_args__ = (UniqueConstraint("registered_model_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registered_model_id: Mapped[str] = mapped_column(ForeignKey("registered_models.id"))
    name: Mapped[str] = mapped_column(String(32))
    version_id: Mapped[str | None] = mapped_column(ForeignKey("model_versions.id"), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChannelEvent(Base):
    """Every promote and rollback, with who, when and why: the channel's history and what a rollback walks back."""

    __tablename__ = "channel_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registered_model_id: Mapped[str] = mapped_column(ForeignKey("registered_models.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))  # promote | rollback
    from_version: Mapped[int | None] = mapped_column(Integer, default=None)
    to_version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str] = mapped_column(String(200), default="")  # the token's name
    by_id: Mapped[str | None] = mapped_column(String(16), default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)

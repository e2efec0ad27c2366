"""Wire types: what crosses HTTP between the SDK, the gateway, the workers and the agents.

One definition each, imported by every component, so the REST API, the SDK and the stored job results
cannot drift apart.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False)


class JobType(str, enum.Enum):
    COMPILE = "compile"
    PROFILE = "profile"
    INFERENCE = "inference"


class JobState(str, enum.Enum):
    """AI Hub's state names, so scripts that poll them port unchanged."""

    CREATED = "CREATED"
    OPTIMIZING_MODEL = "OPTIMIZING_MODEL"
    PROVISIONING_DEVICE = "PROVISIONING_DEVICE"
    MEASURING_PERFORMANCE = "MEASURING_PERFORMANCE"
    RUNNING_INFERENCE = "RUNNING_INFERENCE"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCESS, JobState.FAILED, JobState.CANCELLED)


ModelFormat = Literal["onnx", "torchscript", "tflite"]
Layout = Literal["NCHW", "NHWC"]


class Quantization(Wire):
    """Affine quantization of one tensor: real = (q - zero_point) * scale (per tensor)."""

    scale: float
    zero_point: int


class TensorInfo(Wire):
    name: str
    shape: list[int | str]  # a str is a symbolic dimension ("batch")
    dtype: str  # numpy dtype name: float32, int8, ...
    layout: Layout | None = None  # set when a 4-D image tensor's layout is known
    quantization: Quantization | None = None
    source_name: str | None = None  # the source model's name for this tensor, on compiled targets


class TensorSpec(Wire):
    """What a user says about an input: `{"image": ((1, 3, 256, 256), "float32")}` in the SDK."""

    shape: list[int]
    dtype: str = "float32"


class DeviceSelector(Wire):
    """A pool of identical devices by name, narrowed by os and attributes (all must match)."""

    name: str = ""
    os: str = ""
    attributes: list[str] = Field(default_factory=list)


class ModelOut(Wire):
    id: str
    name: str
    format: ModelFormat
    sha256: str
    size: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    producer_job_id: str | None = None  # the compile job that made it, for target models
    created_at: datetime


class DatasetEntry(Wire):
    count: int
    shape: list[int]  # of one sample
    dtype: str


class DatasetOut(Wire):
    id: str
    name: str
    sha256: str
    size: int
    entries: dict[str, DatasetEntry]
    created_at: datetime


class CompileJobIn(Wire):
    model_id: str
    device: DeviceSelector = Field(default_factory=DeviceSelector)
    name: str | None = None
    input_specs: dict[str, TensorSpec] | None = None
    options: str = ""
    calibration_dataset_id: str | None = None


class CompileResult(Wire):
    """What a finished compile job records about its target, so later jobs can speak the source's terms."""

    target_format: Literal["tflite", "onnx"]
    source_inputs: list[TensorInfo]
    source_outputs: list[TensorInfo]
    target_inputs: list[TensorInfo]
    target_outputs: list[TensorInfo]
    source_size: int
    target_size: int
    converter: str  # converter and version, e.g. "onnx2tf 1.29.24 / tensorflow 2.19.0"
    seconds: float
    log: str = ""


class JobEvent(Wire):
    state: JobState
    at: datetime
    message: str = ""


class JobOut(Wire):
    id: str
    type: JobType
    name: str
    state: JobState
    failure_reason: str | None = None
    model_id: str
    target_model_id: str | None = None
    device: DeviceSelector
    options: str
    input_specs: dict[str, TensorSpec] | None = None
    calibration_dataset_id: str | None = None
    cache_hit: bool = False
    attempts: int = 0
    result: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    events: list[JobEvent] = Field(default_factory=list)


T = TypeVar("T")


class Page(Wire, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


class TokenIn(Wire):
    name: str
    role: Literal["admin", "user", "agent"] = "user"


class TokenOut(Wire):
    id: str
    name: str
    role: Literal["admin", "user", "agent"]
    created_at: datetime
    token: str | None = None  # the secret, shown once on creation only


class ErrorOut(Wire):
    error: str
    detail: str

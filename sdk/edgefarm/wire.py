"""Wire types: what crosses HTTP between the SDK, the gateway, the workers and the agents.

One definition each, imported by every component, so the REST API, the SDK and the stored job results
cannot drift apart.
"""

from __future__ import annotations

import enum
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False)


# --- bounds on what users and agents send: each refusal names the bound --------------------------------------------

# Bidirectional controls reorder what a person reads (a job list, a log line) without changing the stored text.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _one_line(value: str) -> str:
    for position, char in enumerate(value):
        if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS:
            raise ValueError(f"contains the control character U+{ord(char):04X} at position {position}; "
                             "names and labels are one line of printable text")
    return value


def as_label(text: str, max_length: int = 200) -> str:
    """Text from elsewhere (an upload's file name) made a valid label: control characters dropped, cut short."""
    return "".join(c for c in text if unicodedata.category(c) != "Cc" and c not in _BIDI_CONTROLS)[:max_length]


# The same rule for the OpenAPI document (the validator gives the better message: which character, where).
_ONE_LINE_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$"


def _label(max_length: int, min_length: int = 0) -> Any:
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), AfterValidator(_one_line),
                     Field(json_schema_extra={"pattern": _ONE_LINE_PATTERN})]


Name = _label(200, min_length=1)  # what a person names a model, job, device pool, agent or token
Label = _label(200)  # the same, where empty means "not given"
OsLabel = _label(100)
# A reason or message, several lines allowed; not NUL, which PostgreSQL cannot store in text.
Note = Annotated[str, StringConstraints(max_length=2000, pattern="^[^\\u0000]*$")]
OptionsText = Annotated[str, StringConstraints(max_length=4000)]
# Ids (the farm's: a letter and 11 of [a-z0-9]) and lease tokens (hex) are URL-safe words: anything else names
# nothing, and a NUL would reach PostgreSQL, which cannot compare it.
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern="^[A-Za-z0-9_-]+$")]
MAX_TENSOR_ELEMENTS = 2**31 - 1  # per sample: LiteRT and ONNX Runtime index tensors with 32-bit sizes
MAX_RANK = 8
TensorDtype = Literal["float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                      "uint64", "bool"]


class JobType(str, enum.Enum):
    COMPILE = "compile"
    PROFILE = "profile"
    INFERENCE = "inference"
    REFERENCE = "reference"  # FP32 outputs of a source model, computed by a worker (a pipeline's reference)


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


def _tensor_shape(shape: list[int]) -> list[int]:
    elements = 1
    for dim in shape:
        elements *= dim
    if elements > MAX_TENSOR_ELEMENTS:
        raise ValueError(f"shape {shape} has {elements} elements; at most {MAX_TENSOR_ELEMENTS} per tensor")
    return shape


class TensorSpec(Wire):
    """What a user says about an input: `{"image": ((1, 3, 256, 256), "float32")}` in the SDK."""

    shape: Annotated[list[Annotated[int, Field(ge=1, le=MAX_TENSOR_ELEMENTS)]], Field(max_length=MAX_RANK),
                     AfterValidator(_tensor_shape)]
    dtype: TensorDtype = "float32"


InputSpecs = Annotated[dict[str, TensorSpec], Field(max_length=1000)]


class DeviceSelector(Wire):
    """A pool of identical devices by name, narrowed by os and attributes (all must match)."""

    name: Label = ""
    os: OsLabel = ""
    attributes: Annotated[list[Label], Field(max_length=64)] = Field(default_factory=list)


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
    model_id: Id
    device: DeviceSelector = Field(default_factory=DeviceSelector)
    name: Name | None = None
    input_specs: InputSpecs | None = None
    options: OptionsText = ""
    calibration_dataset_id: Id | None = None
    # A few samples to verify the conversion on (default: the calibration samples, else seeded random inputs).
    verification_dataset_id: Id | None = None


class OutputCheck(Wire):
    """One output of a compiled target against the same output of its source, over the verification samples."""

    name: str  # the source output
    shape: list[int]  # one sample's shape in the source
    target_shape: list[int] | None = None  # the same, from the target in the source's layout (None: missing)
    max_abs_error: float | None = None
    relative_error: float | None = None  # max |target - source| / max |source|
    cosine: float | None = None  # cosine similarity of the flattened outputs
    snr_db: float | None = None  # quantized targets: 10·log10(Σ source² / Σ (target - source)²), capped at 150
    top1_agreement: float | None = None  # class-score outputs: share of samples whose top-1 class agrees
    passed: bool | None = None  # float targets: within the tolerance; None for quantized targets (not judged)


class Verification(Wire):
    """How a compile job checked its target: the source (ONNX Runtime) and the target (its own runtime) on the
    same inputs. `verdict`: "verified" (float: every output within tolerance; quantized: right shapes and no
    warning), "warning" (quantized: something a person should look at), "mismatch" (float: not within tolerance;
    such a target is never a SUCCESS). A source ONNX Runtime cannot run fails the job: it cannot be verified."""

    verdict: Literal["verified", "warning", "mismatch"]
    precision: str  # float32, float16, int8, int16
    samples: int
    inputs: str  # where the samples came from: verification data, calibration data, seeded random inputs
    runtime: str = ""  # what ran the source and the target
    tolerance: dict[str, float] | None = None  # float targets: the limits applied
    outputs: list[OutputCheck] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


# A compile job's progress events name each conversion strategy's start and outcome, so that whoever reads the
# job after its worker process died (the next attempt, the reconciler failing the job) can say where it died.
def strategy_started(name: str) -> str:
    return f"strategy {name}: started"


def strategy_ended(name: str, outcome: str) -> str:
    return f"strategy {name}: {outcome}"


def strategy_deaths(messages: list[str]) -> dict[str, int]:
    """From a job's event messages in order, read when no attempt is running: per strategy, how many starts had
    no end (each is a process that died in it)."""
    open_starts: dict[str, bool] = {}
    deaths: dict[str, int] = {}
    for message in messages:
        if not message.startswith("strategy "):
            continue
        name, _, what = message.removeprefix("strategy ").partition(": ")
        if what == "started" and open_starts.get(name):  # started again without ending: the process died in it
            deaths[name] = deaths.get(name, 0) + 1
        open_starts[name] = what == "started"
    for name, still_open in open_starts.items():
        deaths[name] = deaths.get(name, 0) + still_open
    return {name: count for name, count in deaths.items() if count}


class ConversionAttempt(Wire):
    """One strategy the compile tried, in order, and what came of it."""

    strategy: str
    outcome: Literal["verified", "warning", "failed", "mismatch", "crashed"]
    reason: str = ""
    seconds: float = 0.0


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
    strategy: str = ""  # the conversion strategy that produced the target (docs/compile.md lists them)
    attempts: list[ConversionAttempt] = Field(default_factory=list)  # every strategy tried, the winner last
    verification: Verification | None = None  # None only on results recorded before verification existed


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
    input_dataset_id: str | None = None  # profile / inference inputs; a compile job's verification inputs
    device_id: str | None = None  # the device that ran (or runs) a profile / inference job
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
    name: Name
    role: Literal["admin", "user", "agent", "fleet"] = "user"
    # Agent tokens only: the one agent it may register (default: the first that registers with it), and the
    # device pools it may put devices in (default: any).
    agent: Name | None = None
    pools: Annotated[list[Name], Field(min_length=1, max_length=100)] | None = None


class TokenOut(Wire):
    id: str
    name: str
    role: Literal["admin", "user", "agent", "fleet"]
    created_at: datetime
    agent: str | None = None
    pools: list[str] | None = None
    token: str | None = None  # the secret, shown once on creation only


class ErrorOut(Wire):
    error: str
    detail: str


# --- devices and agents ----------------------------------------------------------------------------------------

DeviceState = Literal["online", "busy", "offline"]


class DeviceSpec(Wire):
    """A device as its agent declares it. `serial` is unique within the agent and stable across restarts."""

    name: Name  # the pool users ask for, e.g. "Raspberry Pi 5"
    serial: Name
    os: OsLabel = ""
    # "framework:tflite", "chipset:…", "accelerator:npu"
    attributes: Annotated[list[Label], Field(max_length=64)] = Field(default_factory=list)


class DeviceOut(Wire):
    id: str
    name: str
    serial: str
    os: str
    attributes: list[str]
    agent_id: str
    agent_name: str
    state: DeviceState
    last_seen_at: datetime | None = None
    current_job_id: str | None = None


class AgentRegisterIn(Wire):
    agent_name: Name  # stable per agent (the host name by default): registering again updates, never duplicates
    version: _label(64) = ""
    devices: Annotated[list[DeviceSpec], Field(max_length=1000)]


class AgentRegisterOut(Wire):
    agent_id: str
    devices: list[DeviceOut]
    heartbeat_seconds: float  # send a heartbeat at least this often
    lease_seconds: float  # a lease lasts this long unless renewed by progress


class HeartbeatIn(Wire):
    agent_id: Id


class LeaseIn(Wire):
    agent_id: Id
    device_ids: Annotated[list[Id], Field(max_length=1000)]  # the agent's devices that are free now
    wait_seconds: float = Field(default=20.0, ge=0, le=60)  # long poll: answer 204 after this long with no job


class Lease(Wire):
    """A job handed to one device. The token authorises progress, downloads and the result for this job only."""

    job_id: str
    job_type: JobType
    device_id: str
    lease_token: str
    lease_expires_at: datetime
    options: str
    model: ModelOut  # download: GET /agent/jobs/{job_id}/model
    compile_result: CompileResult | None = None  # I/O facts of a compiled target (to feed it source-style data)
    input_dataset: DatasetOut | None = None  # inference inputs, or given profile inputs: GET /agent/jobs/{id}/inputs


class ProgressIn(Wire):
    lease_token: Id
    state: Literal["MEASURING_PERFORMANCE", "RUNNING_INFERENCE"] | None = None
    message: Note = ""


class FailureIn(Wire):
    lease_token: Id
    reason: Annotated[str, StringConstraints(max_length=20_000, pattern="^[^\\u0000]*$")]  # for a person to act
    log: Annotated[str, StringConstraints(max_length=1_000_000)] = ""  # the end is kept (20,000 characters)


class LatencyStats(Wire):
    """Over all timed iterations, in microseconds."""

    min: float
    median: float
    mean: float
    p90: float
    p99: float
    std: float


class ExecutionSummary(Wire):
    """AI Hub's summary fields (times in µs, memory in bytes), plus what AI Hub users ask for."""

    estimated_inference_time: float  # the median, µs
    estimated_inference_peak_memory: int  # bytes
    first_load_time: float  # µs: the first model load (cold)
    warm_load_time: float  # µs: loading again (warm caches)
    all_inference_times: list[float]  # µs, every timed iteration
    first_inference_time: float | None = None  # µs, not part of the statistics
    inference_stats: LatencyStats
    iterations: int
    warmup_iterations: int = 0
    threads: int | None = None
    compute_unit: str  # what was asked: cpu | gpu | npu | all
    delegate: str | None = None  # the delegate actually applied ("XNNPACK", a .so name…), None for plain CPU
    delegated_ops: int | None = None  # how many ops the delegate took, when the runtime can tell
    total_ops: int | None = None
    cpu_fallback: bool = False  # part (or all) of the model ran on the CPU although another unit was asked


class OpDetail(Wire):
    name: str
    type: str
    compute_unit: str  # CPU | GPU | NPU
    delegate: str | None = None
    execution_time: float | None = None  # µs per inference, when the runtime measures per op


class Profile(Wire):
    execution_summary: ExecutionSummary
    execution_detail: list[OpDetail]
    runtime: str  # e.g. "litert 2.1.0", "onnxruntime 1.23.0"
    device: DeviceSpec
    warnings: list[str] = Field(default_factory=list)  # e.g. silent CPU fallback, made visible
    environment: dict[str, Any] = Field(default_factory=dict)  # versions, thermal state… what reproduces it


class ProfileJobIn(Wire):
    model_id: Id
    device: DeviceSelector
    name: Name | None = None
    options: OptionsText = ""
    input_dataset_id: Id | None = None  # optional real inputs; random ones of the right dtype/shape otherwise


class InferenceJobIn(Wire):
    model_id: Id
    device: DeviceSelector
    name: Name | None = None
    options: OptionsText = ""
    input_dataset_id: Id  # inputs as the SOURCE model takes them (names, layout, float)


class InferenceResult(Wire):
    """What a finished inference job records: outputs are a dataset named as the SOURCE model names them."""

    output_dataset_id: str
    outputs: dict[str, DatasetEntry]
    runtime: str
    # e.g. "image: float32 NCHW → int8 NHWC (scale 0.0039, zp -128)"
    conversions: list[str] = Field(default_factory=list)
    seconds: float


# --- pipelines: compile → profile + inference on devices → compare with FP32 → gate → register -----------------


class PipelineState(str, enum.Enum):
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"  # every gate passed; a version was registered
    FAILED = "FAILED"  # a gate failed (nothing registered) or a job failed
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self != PipelineState.RUNNING


LatencyPercentile = Literal["min", "median", "mean", "p90", "p99"]


class MetricSpec(Wire):
    """Which output to judge and how: a metric of edgefarm.metrics, with its parameters."""

    name: Name
    output: Name | None = None  # the source model's output to compare; may be omitted when it has one output
    params: dict[str, Any] = Field(default_factory=dict)  # e.g. {"threshold": 0.5} for iou


class Gates(Wire):
    """What a version must meet on every device to be registered. Unset gates are not checked; an unknown gate
    is refused, since a misspelt one would otherwise pass everything; so is an infinite or NaN threshold."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_metric_drop: float | None = None  # reference score − device score (positive = worse), on the metric
    min_metric: float | None = None  # the device's score against the truth (ground truth, else the FP32 outputs)
    max_latency_ms: float | None = None
    latency_percentile: LatencyPercentile = "median"
    max_model_size_mb: float | None = None  # the compiled target's size
    max_peak_memory_mb: float | None = None  # the profile's peak memory

    def given(self) -> bool:
        return any(v is not None for k, v in self.model_dump().items() if k != "latency_percentile")


class PipelineIn(Wire):
    name: Name  # the registry model name the version is registered under
    model_id: Id  # the source model (ONNX or TorchScript)
    devices: Annotated[list[DeviceSelector], Field(max_length=100)]
    input_specs: InputSpecs | None = None
    compile_options: OptionsText = ""
    calibration_dataset_id: Id | None = None
    profile_options: OptionsText = ""
    inference_options: OptionsText = ""
    eval_dataset_id: Id  # evaluation inputs, named and shaped as the source model takes them
    ground_truth_dataset_id: Id | None = None  # named after the source outputs
    reference_dataset_id: Id | None = None  # FP32 outputs supplied by the user; computed by a worker otherwise
    metric: MetricSpec
    gates: Gates


class PipelineJobs(Wire):
    compile: str
    reference: str | None = None  # None when the user supplied the reference outputs
    profile: dict[str, str] = Field(default_factory=dict)  # device pool name → job id
    inference: dict[str, str] = Field(default_factory=dict)


class GateResult(Wire):
    gate: str  # e.g. "max_metric_drop"
    device: str | None  # the device pool, or None for gates about the model itself
    measured: float | None  # None: the value could not be measured (then the gate fails)
    threshold: float
    passed: bool
    detail: str = ""


class PipelineEvent(Wire):
    at: datetime
    message: str


class PipelineOut(Wire):
    id: str
    name: str
    state: PipelineState
    stage: str  # compiling | measuring on devices | evaluating | done
    failure_reason: str | None = None
    spec: PipelineIn
    jobs: PipelineJobs
    report: dict[str, Any] | None = None  # see docs/pipelines.md: devices, metrics, gates, verdict
    version: int | None = None  # the registered version, when every gate passed
    submitted_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    events: list[PipelineEvent] = Field(default_factory=list)


# --- the model registry: versions with evidence, release channels, device fetch ---------------------------------


class VersionTarget(Wire):
    """One device's compiled model in a version: what a device of that pool fetches."""

    device: str  # the device pool, e.g. "Host CPU"
    model_id: str  # the compiled target model
    sha256: str  # of the target's bytes: the fetch's ETag
    size: int
    format: ModelFormat
    compile_job_id: str | None = None
    profile_job_id: str | None = None
    inference_job_id: str | None = None


class ChannelEventOut(Wire):
    channel: str
    action: Literal["promote", "rollback"]
    from_version: int | None = None  # None: the channel was empty
    to_version: int
    reason: str = ""
    by: str  # the token's name
    at: datetime


class ModelVersionSummary(Wire):
    id: str
    number: int
    source_model_id: str
    devices: list[str]  # the pools it has targets for
    pipeline_id: str | None = None
    submitted_by: str
    created_at: datetime


class ModelVersionOut(ModelVersionSummary):
    model: str  # the registered model's name
    targets: list[VersionTarget]
    evidence: dict[str, Any] = Field(default_factory=dict)  # what the pipeline measured and gated (job ids, gates…)
    channels: list[str] = Field(default_factory=list)  # the channels this version is current on


class RegisteredModelOut(Wire):
    id: str
    name: str
    created_at: datetime
    latest_version: int | None = None
    channels: dict[str, int | None] = Field(default_factory=dict)  # channel → its current version number


class RegisteredModelDetailOut(RegisteredModelOut):
    versions: list[ModelVersionSummary] = Field(default_factory=list)  # newest first
    events: list[ChannelEventOut] = Field(default_factory=list)  # the latest channel changes, newest first


class ChannelOut(Wire):
    model: str
    name: str
    version: int | None = None
    updated_at: datetime
    event: ChannelEventOut | None = None  # the change that was just made


class PromoteIn(Wire):
    version: int = Field(ge=1, le=2**31 - 1)
    reason: Note = ""


class RollbackIn(Wire):
    reason: Annotated[Note, Field(min_length=1)]  # required: why the current version is being taken back

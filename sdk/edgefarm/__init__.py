"""EdgeFarm: compile, profile and run models on your own edge devices.

    import edgefarm as ef
    job = ef.submit_compile_job(model="net.onnx", device=ef.Device("Pixel 8"),
                                input_specs={"image": ((1, 3, 224, 224), "float32")},
                                options="--target_runtime tflite")
    job.download_target_model("net.tflite")
    profile = ef.submit_profile_job(model=job, device=ef.Device("Pixel 8")).download_profile()

The names follow qai_hub, so a script written for Qualcomm AI Hub ports by changing its import.
Nothing heavy is imported here: torch and onnx are only touched when you pass their objects.
"""

from edgefarm._http import __version__
from edgefarm.client import (
    Client,
    ListPage,
    download_release,
    get_dataset,
    get_datasets,
    get_devices,
    get_job,
    get_jobs,
    get_model,
    get_model_version,
    get_models,
    get_pipeline,
    get_pipelines,
    get_registered_model,
    get_registered_models,
    promote_model_version,
    rollback_model,
    submit_compile_job,
    submit_inference_job,
    submit_pipeline,
    submit_profile_job,
    upload_dataset,
    upload_model,
)
from edgefarm.devices import Device
from edgefarm.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    EdgeFarmError,
    InternalServerError,
    JobFailedError,
    NotFoundError,
    OptionsError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from edgefarm.jobs import CompileJob, InferenceJob, Job, JobStatus, ProfileJob
from edgefarm.models import Dataset, Model
from edgefarm.pipelines import Pipeline
from edgefarm.registry import ModelVersion, RegisteredModel, ReleaseFile
from edgefarm.wire import InferenceResult, JobState, JobType, PipelineState, Profile, TensorSpec

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "CompileJob",
    "ConfigurationError",
    "ConflictError",
    "Dataset",
    "Device",
    "EdgeFarmError",
    "InferenceJob",
    "InferenceResult",
    "InternalServerError",
    "Job",
    "JobFailedError",
    "JobState",
    "JobStatus",
    "JobType",
    "ListPage",
    "Model",
    "ModelVersion",
    "NotFoundError",
    "OptionsError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Pipeline",
    "PipelineState",
    "Profile",
    "ProfileJob",
    "RateLimitError",
    "RegisteredModel",
    "ReleaseFile",
    "TensorSpec",
    "UnprocessableEntityError",
    "__version__",
    "download_release",
    "get_dataset",
    "get_datasets",
    "get_devices",
    "get_job",
    "get_jobs",
    "get_model",
    "get_model_version",
    "get_models",
    "get_pipeline",
    "get_pipelines",
    "get_registered_model",
    "get_registered_models",
    "promote_model_version",
    "rollback_model",
    "submit_compile_job",
    "submit_inference_job",
    "submit_pipeline",
    "submit_profile_job",
    "upload_dataset",
    "upload_model",
]

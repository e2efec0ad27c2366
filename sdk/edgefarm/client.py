"""`ef.Client(...)` with resources as attributes, and qai_hub's module-level functions on a default client.

client = ef.Client("http://farm:8000", "ef_...")
model = client.models.upload("net.onnx")
job = client.jobs.submit_compile(model, ef.Device("Pixel 8"), options="--target_runtime tflite")
profile = client.jobs.submit_profile(job, ef.Device("Pixel 8")).download_profile()

ef.submit_compile_job(model="net.onnx", device=ef.Device("Pixel 8"))   # qai_hub style, configured client
"""

from __future__ import annotations

import hashlib

import threading
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, Generic, Literal, Self, TypeVar
from urllib.parse import quote

import httpx

from edgefarm._http import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, ProgressCallback, Transport
from edgefarm.config import load_config
from edgefarm.datasets import DatasetEntries, DatasetFile, check_inputs, open_dataset_file
from edgefarm.devices import Device, as_device
from edgefarm.errors import NotFoundError
from edgefarm.jobs import (
    CompileJob,
    InferenceJob,
    InputSpecs,
    Job,
    ProfileJob,
    job_from_wire,
    normalize_input_specs,
)
from edgefarm.models import MODEL_SUFFIXES, Dataset, Model, open_model_file
from edgefarm.options import CompileOptions, ProfileOptions, RuntimeOptions
from edgefarm.pipelines import Data as PipelineData
from edgefarm.pipelines import Pipeline, Pipelines
from edgefarm.registry import ModelVersion, RegisteredModel, Registry, ReleaseFile
from edgefarm.wire import (
    ChannelOut,
    CompileJobIn,
    DatasetOut,
    DeviceOut,
    InferenceJobIn,
    JobOut,
    JobState,
    JobType,
    ModelOut,
    ProfileJobIn,
    TensorInfo,
    TensorSpec,
    TokenIn,
    TokenOut,
)

T = TypeVar("T")

# What profile and inference jobs take as inputs: samples as for upload_dataset, an .npz path, or a Dataset.
InputData = DatasetEntries | str | Path | Dataset


class ListPage(list[T], Generic[T]):
    """One page of results: a plain list (as qai_hub returns) that also knows the farm's total."""

    def __init__(self, items: Iterable[T], *, total: int, offset: int, limit: int) -> None:
        super().__init__(items)
        self.total = total
        self.offset = offset
        self.limit = limit


def _id(value: str) -> str:
    """An id as one URL path segment, so a mistyped id can never address another endpoint."""
    return quote(str(value), safe="")


class Client:
    """A connection to one farm. Settings not given come from the environment, then `~/.edgefarm/client.ini`.

    `timeout` is in seconds (or an httpx.Timeout); `max_retries` is how often a failed request is sent again
    when that is safe (see docs/sdk.md, "Retries").
    """

    def __init__(
        self,
        api_url: str | None = None,
        api_token: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        config = load_config(api_url, api_token)
        self.api_url = config.api_url
        self._transport = Transport(
            f"{config.api_url}/api/v1", config.api_token, timeout=timeout, max_retries=max_retries
        )
        self.models = Models(self)
        self.datasets = Datasets(self)
        self.jobs = Jobs(self)
        self.devices = Devices(self)
        self.tokens = Tokens(self)
        self.pipelines = Pipelines(self)
        self.registry = Registry(self)

    def _stored(self, collection: str, file: IO[bytes]) -> dict[str, Any] | None:
        """The stored model or dataset with these exact bytes, if any. Uploads are content-addressed, so asking
        by hash first saves sending a large file the farm already has (a cache hit then costs one round trip)."""
        start, digest = file.tell(), hashlib.sha256()
        while chunk := file.read(1 << 20):
            digest.update(chunk)
        file.seek(start)
        page = self._transport.get(f"/{collection}", {"sha256": digest.hexdigest(), "limit": 1})
        return page["items"][0] if page["items"] else None

    def health(self) -> dict[str, Any]:
        """`{"status": "ok", "version": ...}` when the gateway is up."""
        health: dict[str, Any] = self._transport.get("/health")
        return health

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(api_url={self.api_url!r})"


class Models:
    def __init__(self, client: Client) -> None:
        self._client = client

    def upload(
        self, model: Any, *, name: str | None = None, progress: ProgressCallback | None = None
    ) -> Model:
        """Upload a path (.onnx/.pt/.tflite), bytes, an onnx.ModelProto or a TorchScript module.

        Uploading the same bytes again returns the model already stored; an `ef.Model` is returned as it is.
        """
        if isinstance(model, Model):
            return model
        with open_model_file(model) as (filename, file):
            return self._upload(filename, file, name=name, progress=progress)

    def _upload(
        self, filename: str, file: IO[bytes], *, name: str | None, progress: ProgressCallback | None
    ) -> Model:
        body = self._client._stored("models", file) or self._client._transport.upload(
            "/models", filename=filename, file=file, fields={"name": name}, progress=progress
        )
        return Model(self._client, ModelOut.model_validate(body))

    def get(self, model_id: str) -> Model:
        return Model(
            self._client, ModelOut.model_validate(self._client._transport.get(f"/models/{_id(model_id)}"))
        )

    def list(self, *, offset: int = 0, limit: int = 50, name: str | None = None) -> ListPage[Model]:
        page = self._client._transport.get("/models", {"offset": offset, "limit": limit, "name": name})
        items = [Model(self._client, ModelOut.model_validate(item)) for item in page["items"]]
        return ListPage(items, total=page["total"], offset=page["offset"], limit=page["limit"])

    def download(self, model_id: str, path: str | Path, *, progress: ProgressCallback | None = None) -> Path:
        return self.get(model_id).download(path, progress=progress)


class Datasets:
    def __init__(self, client: Client) -> None:
        self._client = client

    def upload(
        self,
        data: DatasetEntries | str | Path | Dataset,
        *,
        name: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Dataset:
        """Upload `{input_name: [array, ...]}` (sent as .npz) or an .npz file; same bytes, same id."""
        if isinstance(data, Dataset):
            return data
        with open_dataset_file(data) as dataset_file:
            return self._upload(dataset_file, name=name, progress=progress)

    def _upload(
        self, dataset_file: DatasetFile, *, name: str | None, progress: ProgressCallback | None
    ) -> Dataset:
        body = self._client._stored("datasets", dataset_file.file) or self._client._transport.upload(
            "/datasets",
            filename=dataset_file.filename,
            file=dataset_file.file,
            fields={"name": name},
            progress=progress,
        )
        return Dataset(self._client, DatasetOut.model_validate(body))

    def get(self, dataset_id: str) -> Dataset:
        body = self._client._transport.get(f"/datasets/{_id(dataset_id)}")
        return Dataset(self._client, DatasetOut.model_validate(body))

    def list(self, *, offset: int = 0, limit: int = 50, name: str | None = None) -> ListPage[Dataset]:
        page = self._client._transport.get("/datasets", {"offset": offset, "limit": limit, "name": name})
        items = [Dataset(self._client, DatasetOut.model_validate(item)) for item in page["items"]]
        return ListPage(items, total=page["total"], offset=page["offset"], limit=page["limit"])

    def download(
        self, dataset_id: str, path: str | Path, *, progress: ProgressCallback | None = None
    ) -> Path:
        return self.get(dataset_id).download(path, progress=progress)


class Jobs:
    def __init__(self, client: Client) -> None:
        self._client = client

    def submit_compile(
        self,
        model: Any,
        device: Device | str | None = None,
        *,
        name: str | None = None,
        input_specs: InputSpecs | None = None,
        options: str = "",
        calibration_data: DatasetEntries | str | Path | Dataset | None = None,
        verification_data: DatasetEntries | str | Path | Dataset | None = None,
        progress: ProgressCallback | None = None,
    ) -> CompileJob:
        """Upload what is needed and start a compile job; arguments are all checked before uploading.

        `verification_data` (same form as `calibration_data`, a few samples) is what the farm runs the source and
        the compiled model on to verify the conversion; without it, the calibration samples or seeded random
        inputs. `device` names a pool the farm knows; None compiles for no particular device (the target depends
        only on the options)."""
        CompileOptions.parse(options)
        specs = normalize_input_specs(input_specs)
        selector = (Device() if device is None else as_device(device)).to_wire()
        with ExitStack() as stack:
            model_file = None if isinstance(model, Model) else stack.enter_context(open_model_file(model))
            files: dict[str, DatasetFile | None] = {}
            for what, data in (("calibration_data", calibration_data), ("verification_data", verification_data)):
                files[what] = None
                if data is not None and not isinstance(data, Dataset):
                    files[what] = stack.enter_context(open_dataset_file(data))
                _check_dataset_names(what, data, files[what], specs)
            if model_file is not None:
                # An in-memory model has no file name to be known by, so it takes the job's name.
                from_path = isinstance(model, (str, Path))
                source = self._client.models._upload(
                    *model_file, name=None if from_path else name, progress=progress
                )
            else:
                source = model
            calibration = self._dataset(calibration_data, files["calibration_data"], name, "calibration", progress)
            verification = self._dataset(verification_data, files["verification_data"], name, "verification",
                                         progress)
        request = CompileJobIn(
            model_id=source.id,
            device=selector,
            name=name,
            input_specs=specs,
            options=options,
            calibration_dataset_id=calibration.id if calibration else None,
            verification_dataset_id=verification.id if verification else None,
        )
        # Not idempotent: sent again only when the farm cannot have created the job (see _http).
        body = self._client._transport.post("/jobs/compile", request.model_dump(mode="json"))
        return CompileJob(self._client, JobOut.model_validate(body))

    def _dataset(self, data: object, file: DatasetFile | None, name: str | None, purpose: str,
                 progress: ProgressCallback | None) -> Dataset | None:
        """The Dataset a job argument stands for: uploaded from its file, or the one given."""
        if file is not None:
            return self._client.datasets._upload(file, name=f"{name} {purpose}" if name else None, progress=progress)
        return data if isinstance(data, Dataset) else None

    def submit_profile(
        self,
        model: Any,
        device: Device | str,
        *,
        name: str | None = None,
        options: str = "",
        input_data: InputData | None = None,
        progress: ProgressCallback | None = None,
    ) -> ProfileJob:
        """Measure a model on a device of the pool `device` selects; arguments are all checked first.

        `model`: a compiled model (`Model`, the `CompileJob` that makes it, whose target is awaited) or a
        TFLite/ONNX file, bytes or ModelProto, uploaded first. `input_data`: optional real inputs in the
        source model's terms; without them the device feeds random inputs of the right shape and dtype.
        """
        ProfileOptions.parse(options)
        body = self._submit_on_device(
            "/jobs/profile",
            ProfileJobIn,
            model,
            device,
            input_data,
            name=name,
            options=options,
            progress=progress,
            argument="input_data",
        )
        return ProfileJob(self._client, JobOut.model_validate(body))

    def submit_inference(
        self,
        model: Any,
        device: Device | str,
        inputs: InputData,
        *,
        name: str | None = None,
        options: str = "",
        progress: ProgressCallback | None = None,
    ) -> InferenceJob:
        """Run a model on a device of the pool `device` selects and keep its outputs.

        `inputs` are what the SOURCE model takes (`{"image": [array, ...]}`, an .npz path or a `Dataset`):
        the farm converts them for a quantized or NHWC target and converts the outputs back.
        """
        RuntimeOptions.parse(options)
        if inputs is None:
            raise ValueError("an inference job needs inputs, e.g. {'image': [array, ...]}")
        body = self._submit_on_device(
            "/jobs/inference",
            InferenceJobIn,
            model,
            device,
            inputs,
            name=name,
            options=options,
            progress=progress,
            argument="inputs",
        )
        return InferenceJob(self._client, JobOut.model_validate(body))

    def _submit_on_device(
        self,
        endpoint: str,
        request_type: type[ProfileJobIn | InferenceJobIn],
        model: Any,
        device: Device | str,
        inputs: InputData | None,
        *,
        name: str | None,
        options: str,
        progress: ProgressCallback | None,
        argument: str,
    ) -> Any:
        """Check, upload what is needed, post the job. Checks that need no request all come first."""
        selector = as_device(device).to_wire()
        if isinstance(model, Job) and not isinstance(model, CompileJob):
            raise TypeError(
                f"model may be a CompileJob (its target model is used), not a {type(model).__name__}"
            )
        if isinstance(model, Model):
            _refuse_torchscript(model.format, endpoint)
        with ExitStack() as stack:
            model_file = None
            if not isinstance(model, (Model, CompileJob)):
                model_file = stack.enter_context(open_model_file(model))
                _refuse_torchscript(MODEL_SUFFIXES.get(Path(model_file[0]).suffix.lower(), ""), endpoint)
            inputs_file: DatasetFile | None = None
            if inputs is not None and not isinstance(inputs, Dataset):
                inputs_file = stack.enter_context(open_dataset_file(inputs))
            if isinstance(model, CompileJob):
                target = model.get_target_model()
            elif model_file is not None:
                from_path = isinstance(model, (str, Path))
                target = self._client.models._upload(
                    *model_file, name=None if from_path else name, progress=progress
                )
                _refuse_torchscript(target.format, endpoint)
            else:
                target = model
            if inputs is not None:
                if isinstance(inputs, Dataset):
                    entries = {n: (e.shape, e.dtype) for n, e in inputs.entries.items()}
                else:
                    assert inputs_file is not None
                    entries = {n: (shape, dtype) for n, (_, shape, dtype) in inputs_file.entries.items()}
                expected = self._source_inputs(model if isinstance(model, CompileJob) else None, target)
                if expected:
                    check_inputs(entries, expected, argument=argument)
            dataset: Dataset | None
            if inputs_file is not None:
                dataset = self._client.datasets._upload(
                    inputs_file, name=f"{name} inputs" if name else None, progress=progress
                )
            else:
                dataset = inputs if isinstance(inputs, Dataset) else None
        request = request_type(
            model_id=target.id,
            device=selector,
            name=name,
            options=options,
            input_dataset_id=dataset.id if dataset else None,
        )
        # Not idempotent: sent again only when the farm cannot have created the job (see _http).
        return self._client._transport.post(endpoint, request.model_dump(mode="json"))

    def _source_inputs(self, compile_job: CompileJob | None, target: Model) -> list[TensorInfo]:
        """What users feed a model: its source model's inputs when it is a compiled target (as the farm)."""
        if compile_job is None and target.producer_job_id:
            try:
                producer = self.get(target.producer_job_id)
            except NotFoundError:  # the job is gone; the farm falls back to the model's own tensors too
                producer = None
            compile_job = producer if isinstance(producer, CompileJob) else None
        result = compile_job.result if compile_job is not None else None
        return result.source_inputs if result is not None else target.inputs

    def get(self, job_id: str) -> Job:
        """The job as its own class (CompileJob, ...), by the type the farm reports."""
        return job_from_wire(
            self._client, JobOut.model_validate(self._client._transport.get(f"/jobs/{_id(job_id)}"))
        )

    def list(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        type: JobType | str | None = None,
        state: JobState | str | None = None,
        name: str | None = None,
        model_id: str | None = None,
    ) -> ListPage[Job]:
        """Newest first; every filter given must match. `model_id` finds the jobs submitted with a model."""
        params = {
            "offset": offset,
            "limit": limit,
            "type": JobType(type).value if type is not None else None,
            "state": JobState(state).value if state is not None else None,
            "name": name,
            "model_id": model_id,
        }
        page = self._client._transport.get("/jobs", params)
        items = [job_from_wire(self._client, JobOut.model_validate(item)) for item in page["items"]]
        return ListPage(items, total=page["total"], offset=page["offset"], limit=page["limit"])

    def cancel(self, job_id: str) -> Job:
        body = self._client._transport.post(f"/jobs/{_id(job_id)}/cancel")
        return job_from_wire(self._client, JobOut.model_validate(body))


def _check_dataset_names(
    what: str, data: object, dataset_file: DatasetFile | None, specs: dict[str, TensorSpec] | None
) -> None:
    """Samples for an input the job does not declare are a typo that would only surface in the worker."""
    if specs is None:
        return
    if isinstance(data, Dataset):
        names = set(data.entries)
    elif dataset_file is not None:
        names = set(dataset_file.entries)
    else:
        return
    unknown = sorted(names - set(specs))
    if unknown:
        raise ValueError(
            f"{what} has inputs {unknown} that input_specs does not name ({sorted(specs)}); "
            "use the same input names in both"
        )


def _refuse_torchscript(format: str, endpoint: str) -> None:
    if format == "torchscript":
        kind = endpoint.rsplit("/", 1)[-1]
        raise ValueError(
            f"a TorchScript model cannot run on a device as it is: compile it first (submit_compile_job), "
            f"then {kind} the compiled target (pass the CompileJob itself)"
        )


class Devices:
    """The devices the farm's agents have registered."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self, *, name: str = "", os: str = "", attributes: str | Iterable[str] = ()) -> list[Device]:
        """Devices matching every filter given: a pool name, an os (exact, or a range such as "[12,14)")
        and attributes (all must match). Offline devices are listed too (see `Device.state`)."""
        selector = Device(name, os, list(attributes) if not isinstance(attributes, str) else attributes)
        if any("," in a for a in selector.attributes):
            raise ValueError(f"device attributes cannot contain ','; got {selector.attributes!r}")
        params = {
            "name": selector.name or None,
            "os": selector.os or None,
            "attributes": ",".join(selector.attributes) or None,
        }
        return [
            Device.from_out(DeviceOut.model_validate(d))
            for d in self._client._transport.get("/devices", params)
        ]


class Tokens:
    """API tokens (admin only): the secret is in `TokenOut.token` once, on creation."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, name: str, *, role: Literal["admin", "user", "agent", "fleet"] = "user",
               agent: str | None = None, pools: list[str] | None = None) -> TokenOut:
        """`agent` and `pools` bind an agent token to one agent and to the device pools it may serve."""
        request = TokenIn(name=name, role=role, agent=agent, pools=pools)
        body = self._client._transport.post("/tokens", request.model_dump(mode="json", exclude_none=True))
        return TokenOut.model_validate(body)

    def list(self) -> list[TokenOut]:
        return [TokenOut.model_validate(item) for item in self._client._transport.get("/tokens")]

    def delete(self, token_id: str) -> None:
        self._client._transport.delete(f"/tokens/{_id(token_id)}")


# -- qai_hub-style module functions --------------------------------------------------------------------------

_default: Client | None = None
_default_lock = threading.Lock()


def _default_client() -> Client:
    """Created on first use, so `import edgefarm` works before anything is configured."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def upload_model(model: Any, name: str | None = None) -> Model:
    return _default_client().models.upload(model, name=name)


def get_model(model_id: str) -> Model:
    return _default_client().models.get(model_id)


def get_models(limit: int = 50, offset: int = 0, *, name: str | None = None) -> ListPage[Model]:
    return _default_client().models.list(offset=offset, limit=limit, name=name)


def upload_dataset(data: DatasetEntries | str | Path, name: str | None = None) -> Dataset:
    return _default_client().datasets.upload(data, name=name)


def get_dataset(dataset_id: str) -> Dataset:
    return _default_client().datasets.get(dataset_id)


def get_datasets(limit: int = 50, offset: int = 0, *, name: str | None = None) -> ListPage[Dataset]:
    return _default_client().datasets.list(offset=offset, limit=limit, name=name)


def submit_compile_job(
    model: Any,
    device: Device | str | None = None,
    name: str | None = None,
    input_specs: InputSpecs | None = None,
    options: str = "",
    calibration_data: DatasetEntries | str | Path | Dataset | None = None,
    verification_data: DatasetEntries | str | Path | Dataset | None = None,
) -> CompileJob:
    return _default_client().jobs.submit_compile(
        model, device, name=name, input_specs=input_specs, options=options, calibration_data=calibration_data,
        verification_data=verification_data,
    )


def submit_profile_job(
    model: Any,
    device: Device | str,
    name: str | None = None,
    options: str = "",
    input_data: InputData | None = None,
) -> ProfileJob:
    return _default_client().jobs.submit_profile(
        model, device, name=name, options=options, input_data=input_data
    )


def submit_inference_job(
    model: Any,
    device: Device | str,
    inputs: InputData,
    name: str | None = None,
    options: str = "",
) -> InferenceJob:
    return _default_client().jobs.submit_inference(model, device, inputs, name=name, options=options)


def get_devices(name: str = "", os: str = "", attributes: str | list[str] | None = None) -> list[Device]:
    """qai_hub's `get_devices`: the farm's devices matching every filter given."""
    return _default_client().devices.list(name=name, os=os, attributes=attributes or ())


def get_job(job_id: str) -> Job:
    return _default_client().jobs.get(job_id)


def get_jobs(
    limit: int = 50,
    offset: int = 0,
    *,
    type: JobType | str | None = None,
    state: JobState | str | None = None,
    name: str | None = None,
    model_id: str | None = None,
) -> ListPage[Job]:
    return _default_client().jobs.list(
        offset=offset, limit=limit, type=type, state=state, name=name, model_id=model_id
    )


# -- pipelines -----------------------------------------------------------------------------------------------


def submit_pipeline(
    model: Any,
    name: str,
    devices: Device | str | list[Device | str],
    *,
    eval_inputs: PipelineData,
    metric: str | dict[str, Any],
    gates: dict[str, Any],
    ground_truth: PipelineData | None = None,
    reference: PipelineData | None = None,
    input_specs: InputSpecs | None = None,
    compile_options: str = "",
    calibration_data: PipelineData | None = None,
    profile_options: str = "",
    inference_options: str = "",
) -> Pipeline:
    """Compile → profile and run on each device → compare with FP32 → gate → register. See docs/pipelines.md."""
    return _default_client().pipelines.submit(
        model, name, devices, eval_inputs=eval_inputs, metric=metric, gates=gates, ground_truth=ground_truth,
        reference=reference, input_specs=input_specs, compile_options=compile_options,
        calibration_data=calibration_data, profile_options=profile_options, inference_options=inference_options)


def get_pipeline(pipeline_id: str) -> Pipeline:
    return _default_client().pipelines.get(pipeline_id)


def get_pipelines(limit: int = 50, offset: int = 0, *, name: str | None = None) -> ListPage[Pipeline]:
    return _default_client().pipelines.list(offset=offset, limit=limit, name=name)


# -- the model registry --------------------------------------------------------------------------------------


def get_registered_models(
    limit: int = 50, offset: int = 0, *, name: str | None = None
) -> ListPage[RegisteredModel]:
    return _default_client().registry.list(offset=offset, limit=limit, name=name)


def get_registered_model(name: str) -> RegisteredModel:
    return _default_client().registry.get(name)


def get_model_version(name: str, number: int) -> ModelVersion:
    return _default_client().registry.version(name, number)


def promote_model_version(name: str, version: int, channel: str = "production", reason: str = "") -> ChannelOut:
    return _default_client().registry.promote(name, version, channel, reason=reason)


def rollback_model(name: str, channel: str = "production", *, reason: str) -> ChannelOut:
    return _default_client().registry.rollback(name, channel, reason=reason)


def download_release(
    name: str,
    path: str | Path,
    *,
    channel: str | None = None,
    version: int | None = None,
    device: str | None = None,
    etag: str | None = None,
) -> ReleaseFile:
    return _default_client().registry.download(
        name, path, channel=channel, version=version, device=device, etag=etag
    )

"""`ef.Client(...)` with resources as attributes, and qai_hub's module-level functions on a default client.

client = ef.Client("http://farm:8000", "ef_...")
model = client.models.upload("net.onnx")
job = client.jobs.submit_compile(model, ef.Device("Pixel 8"), options="--target_runtime tflite")

ef.submit_compile_job(model="net.onnx", device=ef.Device("Pixel 8"))   # qai_hub style, configured client
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, Generic, Literal, Self, TypeVar
from urllib.parse import quote

import httpx

from edgefarm._http import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, ProgressCallback, Transport
from edgefarm.config import load_config
from edgefarm.datasets import DatasetEntries, DatasetFile, open_dataset_file
from edgefarm.devices import Device, as_device
from edgefarm.jobs import CompileJob, InputSpecs, Job, job_from_wire, normalize_input_specs
from edgefarm.models import Dataset, Model, open_model_file
from edgefarm.options import CompileOptions
from edgefarm.wire import (
    CompileJobIn,
    DatasetOut,
    JobOut,
    JobState,
    JobType,
    ModelOut,
    TensorSpec,
    TokenIn,
    TokenOut,
)

T = TypeVar("T")


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
        self.tokens = Tokens(self)

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
        body = self._client._transport.upload(
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
        body = self._client._transport.upload(
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
        device: Device | str,
        *,
        name: str | None = None,
        input_specs: InputSpecs | None = None,
        options: str = "",
        calibration_data: DatasetEntries | str | Path | Dataset | None = None,
        progress: ProgressCallback | None = None,
    ) -> CompileJob:
        """Upload what is needed and start a compile job; arguments are all checked before uploading."""
        CompileOptions.parse(options)
        specs = normalize_input_specs(input_specs)
        selector = as_device(device).to_wire()
        with ExitStack() as stack:
            model_file = None if isinstance(model, Model) else stack.enter_context(open_model_file(model))
            dataset_file: DatasetFile | None = None
            if calibration_data is not None and not isinstance(calibration_data, Dataset):
                dataset_file = stack.enter_context(open_dataset_file(calibration_data))
            _check_calibration_names(calibration_data, dataset_file, specs)
            if model_file is not None:
                # An in-memory model has no file name to be known by, so it takes the job's name.
                from_path = isinstance(model, (str, Path))
                source = self._client.models._upload(
                    *model_file, name=None if from_path else name, progress=progress
                )
            else:
                source = model
            calibration: Dataset | None
            if dataset_file is not None:
                calibration_name = f"{name} calibration" if name else None
                calibration = self._client.datasets._upload(
                    dataset_file, name=calibration_name, progress=progress
                )
            else:
                calibration = calibration_data if isinstance(calibration_data, Dataset) else None
        request = CompileJobIn(
            model_id=source.id,
            device=selector,
            name=name,
            input_specs=specs,
            options=options,
            calibration_dataset_id=calibration.id if calibration else None,
        )
        # Not idempotent: sent again only when the farm cannot have created the job (see _http).
        body = self._client._transport.post("/jobs/compile", request.model_dump(mode="json"))
        return CompileJob(self._client, JobOut.model_validate(body))

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


def _check_calibration_names(
    calibration_data: object, dataset_file: DatasetFile | None, specs: dict[str, TensorSpec] | None
) -> None:
    """Calibration for an input the job does not declare is a typo that would only surface in the worker."""
    if specs is None:
        return
    if isinstance(calibration_data, Dataset):
        names = set(calibration_data.entries)
    elif dataset_file is not None:
        names = set(dataset_file.entries)
    else:
        return
    unknown = sorted(names - set(specs))
    if unknown:
        raise ValueError(
            f"calibration_data has inputs {unknown} that input_specs does not name ({sorted(specs)}); "
            "use the same input names in both"
        )


class Tokens:
    """API tokens (admin only): the secret is in `TokenOut.token` once, on creation."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, name: str, *, role: Literal["admin", "user", "agent"] = "user") -> TokenOut:
        body = self._client._transport.post("/tokens", TokenIn(name=name, role=role).model_dump(mode="json"))
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
    device: Device | str,
    name: str | None = None,
    input_specs: InputSpecs | None = None,
    options: str = "",
    calibration_data: DatasetEntries | str | Path | Dataset | None = None,
) -> CompileJob:
    return _default_client().jobs.submit_compile(
        model, device, name=name, input_specs=input_specs, options=options, calibration_data=calibration_data
    )


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

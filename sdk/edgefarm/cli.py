"""The `edgefarm` command: configure, models, datasets, jobs, compile, tokens.

Results (ids, tables) go to stdout so scripts can capture them; progress bars, spinners and errors go to
stderr. Every command shares one error policy through `_OneLineErrors`: a failure the user can fix prints as
one line and exits 1; usage errors exit 2 (typer's default). New commands (`edgefarm up`, `edgefarm agent`)
get it by being registered on `app` with `@app.command()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from edgefarm._http import ProgressCallback
from edgefarm.client import Client
from edgefarm.config import write_config
from edgefarm.datasets import describe_npz
from edgefarm.errors import EdgeFarmError, NotFoundError
from edgefarm.jobs import CompileJob, Job, JobStatus
from edgefarm.models import Dataset, Model
from edgefarm.options import CompileOptions
from edgefarm.wire import JobState, JobType, TensorInfo, TensorSpec

console = Console()
err_console = Console(stderr=True)


class _OneLineErrors(TyperGroup):
    """Turns the errors a user can act on into one red line and exit code 1, instead of a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (EdgeFarmError, ValueError, OSError, TimeoutError) as exc:
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_OneLineErrors,
    name="edgefarm",
    help="EdgeFarm: compile, profile and run models on your own edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Models stored on the farm.", no_args_is_help=True)
datasets_app = typer.Typer(
    help="Datasets (calibration data, inference inputs) stored on the farm.", no_args_is_help=True
)
jobs_app = typer.Typer(help="Compile (and soon profile and inference) jobs.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (admin only).", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(datasets_app, name="datasets")
app.add_typer(jobs_app, name="jobs")
app.add_typer(tokens_app, name="tokens")

Offset = Annotated[int, typer.Option(min=0, help="Skip this many results.")]
Limit = Annotated[int, typer.Option(min=1, max=200, help="Show at most this many results.")]


# -- helpers -------------------------------------------------------------------------------------------------


@contextmanager
def _transfer(description: str) -> Iterator[ProgressCallback]:
    """A progress bar on stderr for one upload or download; yields the SDK's progress callback."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(description, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def _wait(job: Job, timeout: float | None) -> JobStatus:
    """Wait with a spinner that shows the job's state as it changes."""
    with err_console.status(f"{job.id}: waiting") as spinner:

        def show(status: JobStatus) -> None:
            spinner.update(f"{job.id}: [bold]{status.code.value}[/bold] {escape(status.message)}")

        return job.wait(timeout=timeout, on_status=show)


def _finish(job: Job, status: JobStatus) -> None:
    """Print the outcome; a job that did not succeed is an error (exit 1) so scripts can `&&` on it."""
    if status.success:
        target = f" → target model {job.target_model_id}" if isinstance(job, CompileJob) else ""
        console.print(f"{job.id} SUCCESS{target}", highlight=False)
        return
    err_console.print(f"[red]{job.id} {status.code.value}[/red]: {escape(status.message)}", highlight=False)
    raise typer.Exit(1)


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


def _when(moment: datetime | None, *, seconds: bool = False) -> str:
    """The farm's UTC timestamps in the reader's local time."""
    if moment is None:
        return ""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _tensor(t: TensorInfo) -> str:
    text = f"{t.name}: {t.dtype}{list(t.shape)}"
    if t.layout:
        text += f" {t.layout}"
    if t.quantization:
        text += f" (scale {t.quantization.scale:g}, zero point {t.quantization.zero_point})"
    return text


def _fields(rows: list[tuple[str, Any]]) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        if value not in (None, "", []):
            table.add_row(key, escape(str(value)))
    console.print(table)


def _parse_input_spec(text: str) -> tuple[str, TensorSpec]:
    """`image=1,3,224,224:float32` (dtype defaults to float32)."""
    name, eq, rest = text.partition("=")
    shape_text, _, dtype = rest.partition(":")
    try:
        if not (eq and name and shape_text):
            raise ValueError
        return name, TensorSpec(shape=[int(d) for d in shape_text.split(",")], dtype=dtype or "float32")
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not NAME=D1,D2,...[:DTYPE], e.g. image=1,3,224,224:float32"
        ) from None


# -- configure -----------------------------------------------------------------------------------------------


@app.command()
def configure(
    api_url: Annotated[
        str | None, typer.Option("--api_url", "--api-url", help="The farm, e.g. http://farm:8000")
    ] = None,
    api_token: Annotated[
        str | None, typer.Option("--api_token", "--api-token", help="Your API token.")
    ] = None,
) -> None:
    """Save the farm's URL and your token to ~/.edgefarm/client.ini (or $EDGEFARM_CONFIG), mode 0600."""
    if not api_url and not api_token:
        raise typer.BadParameter("give --api_url, --api_token or both")
    path = write_config(api_url=api_url, api_token=api_token)
    console.print(f"saved to {path}", highlight=False)


# -- models --------------------------------------------------------------------------------------------------


def _model_table(models: list[Model]) -> Table:
    table = Table("ID", "NAME", "FORMAT", "SIZE", "CREATED", box=None, header_style="bold")
    for m in models:
        table.add_row(m.id, escape(m.name), m.format, _size(m.size), _when(m.created_at))
    return table


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Option(help="Only models with this name.")] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> None:
    """List models, newest first."""
    page = Client().models.list(offset=offset, limit=limit, name=name)
    console.print(_model_table(page))
    err_console.print(f"{offset + 1 if page else 0}-{offset + len(page)} of {page.total}", highlight=False)


@models_app.command("upload")
def models_upload(
    path: Annotated[Path, typer.Argument(help="An .onnx, TorchScript .pt or .tflite file.")],
    name: Annotated[str | None, typer.Option(help="Name on the farm (default: the file name).")] = None,
) -> None:
    """Upload a model; prints its id (the same bytes always get the same id)."""
    with _transfer(f"uploading {path.name}") as progress:
        model = Client().models.upload(path, name=name, progress=progress)
    console.print(model.id)


@models_app.command("show")
def models_show(model_id: Annotated[str, typer.Argument(help="Model id.")]) -> None:
    """Show a model's details and tensors."""
    m = Client().models.get(model_id)
    _fields(
        [
            ("id", m.id),
            ("name", m.name),
            ("format", m.format),
            ("size", _size(m.size)),
            ("sha256", m.sha256),
            ("made by job", m.producer_job_id),
            ("created", _when(m.created_at, seconds=True)),
            ("inputs", "\n".join(map(_tensor, m.inputs))),
            ("outputs", "\n".join(map(_tensor, m.outputs))),
        ]
    )


@models_app.command("download")
def models_download(
    model_id: Annotated[str, typer.Argument(help="Model id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File or directory.")] = Path("."),
) -> None:
    """Download a model's file; prints where it was saved."""
    model = Client().models.get(model_id)
    with _transfer(f"downloading {model.name}") as progress:
        path = model.download(output, progress=progress)
    console.print(str(path), highlight=False)


# -- datasets ------------------------------------------------------------------------------------------------


@datasets_app.command("list")
def datasets_list(
    name: Annotated[str | None, typer.Option(help="Only datasets with this name.")] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> None:
    """List datasets, newest first."""
    page = Client().datasets.list(offset=offset, limit=limit, name=name)
    table = Table("ID", "NAME", "INPUTS", "SAMPLES", "SIZE", "CREATED", box=None, header_style="bold")
    for d in page:
        counts = {entry.count for entry in d.entries.values()}
        table.add_row(
            d.id,
            escape(d.name),
            ", ".join(d.entries),
            ",".join(map(str, sorted(counts))),
            _size(d.size),
            _when(d.created_at),
        )
    console.print(table)
    err_console.print(f"{offset + 1 if page else 0}-{offset + len(page)} of {page.total}", highlight=False)


@datasets_app.command("upload")
def datasets_upload(
    path: Annotated[Path, typer.Argument(help="An .npz with one array (N, *sample_shape) per input name.")],
    name: Annotated[str | None, typer.Option(help="Name on the farm (default: the file name).")] = None,
) -> None:
    """Upload a dataset; prints its id."""
    with _transfer(f"uploading {path.name}") as progress:
        dataset = Client().datasets.upload(path, name=name, progress=progress)
    console.print(dataset.id)


@datasets_app.command("show")
def datasets_show(dataset_id: Annotated[str, typer.Argument(help="Dataset id.")]) -> None:
    """Show a dataset's details and inputs."""
    d = Client().datasets.get(dataset_id)
    entries = "\n".join(f"{n}: {e.count} × {e.dtype}{e.shape}" for n, e in d.entries.items())
    _fields(
        [
            ("id", d.id),
            ("name", d.name),
            ("size", _size(d.size)),
            ("sha256", d.sha256),
            ("created", _when(d.created_at, seconds=True)),
            ("inputs", entries),
        ]
    )


# -- jobs ----------------------------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(
    type: Annotated[JobType | None, typer.Option(help="Only jobs of this type.")] = None,
    state: Annotated[JobState | None, typer.Option(help="Only jobs in this state.")] = None,
    name: Annotated[str | None, typer.Option(help="Only jobs with this name.")] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> None:
    """List jobs, newest first."""
    page = Client().jobs.list(offset=offset, limit=limit, type=type, state=state, name=name)
    table = Table("ID", "TYPE", "NAME", "STATE", "DEVICE", "CREATED", box=None, header_style="bold")
    for job in page:
        table.add_row(
            job.id,
            job.data.type.value,
            escape(job.name),
            job.state.value,
            escape(job.device.name),
            _when(job.created_at),
        )
    console.print(table)
    err_console.print(f"{offset + 1 if page else 0}-{offset + len(page)} of {page.total}", highlight=False)


@jobs_app.command("show")
def jobs_show(job_id: Annotated[str, typer.Argument(help="Job id.")]) -> None:
    """Show a job: state, failure reason, history and (for a finished compile job) its result."""
    job = Client().jobs.get(job_id)
    data = job.data
    compile_job = job if isinstance(job, CompileJob) else None
    device = ", ".join(filter(None, [job.device.name, job.device.os, *job.device.attributes]))
    rows: list[tuple[str, Any]] = [
        ("id", job.id),
        ("type", data.type.value),
        ("name", job.name),
        ("state", job.state.value),
        ("failure reason", job.failure_reason),
        ("model", job.model_id),
        ("target model", compile_job.target_model_id if compile_job else None),
        ("calibration", compile_job.calibration_dataset_id if compile_job else None),
        ("device", device),
        ("options", job.options),
        ("cache hit", "yes" if data.cache_hit else None),
        ("created", _when(data.created_at, seconds=True)),
        ("started", _when(data.started_at, seconds=True)),
        ("finished", _when(data.finished_at, seconds=True)),
    ]
    result = compile_job.result if compile_job else None
    if result is not None:
        sizes = f"{_size(result.source_size)} → {_size(result.target_size)} ({result.target_format})"
        rows += [
            ("converter", result.converter),
            ("seconds", f"{result.seconds:.1f}"),
            ("size", sizes),
            ("target inputs", "\n".join(map(_tensor, result.target_inputs))),
            ("target outputs", "\n".join(map(_tensor, result.target_outputs))),
        ]
    history = (f"{_when(e.at, seconds=True)} {e.state.value} {e.message}".rstrip() for e in job.events)
    rows.append(("history", "\n".join(history)))
    _fields(rows)


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[str, typer.Argument(help="Job id.")]) -> None:
    """Cancel a job that has not finished."""
    job = Client().jobs.cancel(job_id)
    console.print(f"{job.id} {job.state.value}", highlight=False)


@jobs_app.command("wait")
def jobs_wait(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds (exit 1).")] = None,
) -> None:
    """Wait for a job to finish; exits 1 unless it succeeded."""
    job = Client().jobs.get(job_id)
    _finish(job, _wait(job, timeout))


# -- compile -------------------------------------------------------------------------------------------------


@app.command("compile")
def compile_(
    model: Annotated[
        str, typer.Argument(help="A model file (.onnx, .pt, .tflite) or the id of an uploaded model.")
    ],
    device: Annotated[str, typer.Option(help="Device name (a pool of identical devices).")] = "",
    input_spec: Annotated[
        list[str] | None,
        typer.Option(
            "--input-spec", help="NAME=D1,D2,...[:DTYPE], e.g. image=1,3,224,224:float32; repeatable."
        ),
    ] = None,
    options: Annotated[str, typer.Option(help='Compile options, e.g. "--target_runtime tflite".')] = "",
    calibration: Annotated[
        str | None, typer.Option(help="Calibration data: an .npz file or the id of an uploaded dataset.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Job name.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the job to finish.")] = True,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Save the compiled model here.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop waiting after this many seconds (exit 1).")
    ] = None,
) -> None:
    """Compile a model for a device's runtime; prints the job id, then (with --wait) the target model."""
    specs = dict(_parse_input_spec(text) for text in input_spec or []) or None
    CompileOptions.parse(options)  # before any upload, like the SDK
    calibration_path = Path(calibration) if calibration and Path(calibration).is_file() else None
    if calibration_path is not None:
        describe_npz(calibration_path)
    client = Client()
    source = _model_argument(client, model)
    dataset: Dataset | None = None
    if calibration_path is not None:
        with _transfer(f"uploading {calibration_path.name}") as progress:
            dataset = client.datasets.upload(calibration_path, progress=progress)
    elif calibration:
        dataset = client.datasets.get(calibration)
    job = client.jobs.submit_compile(
        source, device, name=name, input_specs=specs, options=options, calibration_data=dataset
    )
    err_console.print(f"submitted compile job {job.id} ({job.url})", highlight=False)
    console.print(job.id)
    if not wait and output is None:
        return
    _finish(job, _wait(job, timeout))
    if output is not None:
        with _transfer("downloading target model") as progress:
            path = job.download_target_model(output, progress=progress)
        console.print(str(path), highlight=False)


def _model_argument(client: Client, model: str) -> Model:
    """A file is uploaded (with a progress bar); anything else must be the id of a model on the farm."""
    path = Path(model)
    if path.is_file():
        with _transfer(f"uploading {path.name}") as progress:
            return client.models.upload(path, progress=progress)
    try:
        return client.models.get(model)
    except NotFoundError:
        raise FileNotFoundError(
            f"{model} is neither a model file nor the id of a model on the farm"
        ) from None


# -- tokens --------------------------------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="Who or what the token is for.")],
    role: Annotated[Literal["admin", "user", "agent"], typer.Option(help="What the token may do.")] = "user",
) -> None:
    """Create a token; prints the secret, which is shown only this once."""
    token = Client().tokens.create(name, role=role)
    err_console.print(f"token {token.id} ({token.role}); store the secret now, it is not shown again:")
    console.print(token.token, highlight=False)


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (without their secrets)."""
    table = Table("ID", "NAME", "ROLE", "CREATED", box=None, header_style="bold")
    for t in Client().tokens.list():
        table.add_row(t.id, escape(t.name), t.role, _when(t.created_at))
    console.print(table)


@tokens_app.command("delete")
def tokens_delete(token_id: Annotated[str, typer.Argument(help="Token id.")]) -> None:
    """Revoke a token."""
    Client().tokens.delete(token_id)
    console.print(f"deleted {token_id}", highlight=False)


# -- running a farm ------------------------------------------------------------------------------------------


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(envvar="EDGEFARM_DATA_DIR", help="Database, artifacts, logs.")] = Path(
        "~/.edgefarm"),
    host: Annotated[str, typer.Option(help="Address the gateway listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the gateway listens on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Compile worker processes.")] = 1,
) -> None:
    """Start a farm on this machine: migrate, then run the gateway and compile workers until Ctrl-C."""
    from edgefarm.config import config_path, read_config_file
    from edgefarm.farm import LocalFarm, watch

    farm = LocalFarm(data_dir=data_dir.expanduser().resolve(), host=host, port=port, workers=workers)
    with err_console.status("starting the farm (the first start imports TensorFlow, ~10 s)…"):
        token = farm.start()
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if not read_config_file().get("api_token"):
        write_config(api_url=url, api_token=token)
        where = f"written to {config_path()}: the SDK and CLI use it"
    else:
        where = f"{config_path()} already has a token and was left alone"
    console.print(f"[green]EdgeFarm is up[/green] at {url}  ({workers} compile worker(s); logs in {farm.log_dir})")
    console.print(f"admin token: {token}  ({where})")
    console.print("Ctrl-C stops the farm.")
    stopped = watch(farm)
    farm.stop()
    if stopped is not None:
        err_console.print(f"[red]error:[/red] {stopped.name} exited with {stopped.popen.returncode}; "
                          f"the farm was stopped. Last lines of {stopped.log}:\n{stopped.tail()}")
        raise typer.Exit(1)

"""The `edgefarm` command: configure, models, datasets, jobs, compile, profile, infer, devices, tokens, agent,
registry.

Results (ids, tables) go to stdout so scripts can capture them; progress bars, spinners and errors go to
stderr. Every command shares one error policy through `_OneLineErrors`: a failure the user can fix prints as
one line and exits 1; usage errors exit 2 (typer's default). New commands (`edgefarm up`, `edgefarm agent`)
get it by being registered on `app` with `@app.command()`.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
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
from edgefarm.devices import Device
from edgefarm.errors import EdgeFarmError, NotFoundError
from edgefarm.jobs import CompileJob, InferenceJob, Job, JobStatus, ProfileJob
from edgefarm.models import Dataset, Model
from edgefarm.options import CompileOptions, ProfileOptions, RuntimeOptions
from edgefarm.pipeline_spec import load_spec
from edgefarm.pipelines import Pipeline
from edgefarm.registry import ModelVersion
from edgefarm.report import render_report
from edgefarm.wire import (CompileResult, JobState, JobType, OutputCheck, PipelineState, Profile, TensorInfo,
                           TensorSpec)

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
jobs_app = typer.Typer(help="Compile, profile and inference jobs.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (admin only).", no_args_is_help=True)
registry_app = typer.Typer(
    help="The model registry: versions with their evidence, release channels, promote, rollback, download.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")
app.add_typer(datasets_app, name="datasets")
app.add_typer(jobs_app, name="jobs")
app.add_typer(tokens_app, name="tokens")
app.add_typer(registry_app, name="registry")
pipeline_app = typer.Typer(
    help="Pipelines: compile → profile and run on devices → compare with FP32 → gate → register.",
    no_args_is_help=True,
)
app.add_typer(pipeline_app, name="pipeline")

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
        made = ""
        if isinstance(job, CompileJob):
            made = f" → target model {job.target_model_id}"
        elif isinstance(job, InferenceJob):
            made = f" → outputs dataset {job.output_dataset_id}"
        console.print(f"{job.id} SUCCESS{made}", highlight=False)
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


def _ago(moment: datetime | None) -> str:
    """How long ago, compactly ("4 s ago", "3 d ago"); a date when it is months ago."""
    if moment is None:
        return "never"
    # The farm's clock may run a little ahead of this machine's: that is "just now", not the future.
    seconds = max(0.0, (datetime.now(UTC) - moment).total_seconds())
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    if seconds < 60 * 86400:
        return f"{seconds / 86400:.0f} d ago"
    return moment.astimezone().strftime("%Y-%m-%d")


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


def _dataset_argument(client: Client, argument: str | None) -> Dataset | None:
    """An .npz file (uploaded now, with progress) or the id of an uploaded dataset."""
    if not argument:
        return None
    path = Path(argument)
    if not path.is_file():
        return client.datasets.get(argument)
    with _transfer(f"uploading {path.name}") as progress:
        return client.datasets.upload(path, progress=progress)


def _verification_rows(result: CompileResult) -> list[tuple[str, Any]]:
    """How the target was checked against the source, and which conversion strategy made it."""
    strategy = result.strategy or None
    if len(result.attempts) > 1:
        strategy = f"{strategy}; tried: " + ", ".join(f"{a.strategy} ({a.outcome})" for a in result.attempts)
    rows: list[tuple[str, Any]] = [("strategy", strategy)]
    check = result.verification
    if check is None:
        return rows + [("verification", "not recorded (compiled before the farm verified conversions)")]
    how = f"{check.verdict}: {check.precision}, {check.samples} sample(s) of {check.inputs}"
    if check.tolerance:
        how += ", tolerance " + ", ".join(f"{k} {v:g}" for k, v in check.tolerance.items())
    lines = [how, *(f"{o.name}: {_check_figures(o)}" for o in check.outputs), *(f"! {w}" for w in check.warnings)]
    return rows + [("verification", "\n".join(lines))]


def _check_figures(check: OutputCheck) -> str:
    figures = [f"{label} {value:{spec}}" for label, value, spec in (
        ("rel", check.relative_error, ".2e"), ("max abs", check.max_abs_error, ".2e"), ("cosine", check.cosine, ".6f"),
        ("SNR", check.snr_db, ".1f"), ("top-1", check.top1_agreement, ".0%")) if value is not None]
    if check.target_shape != check.shape:
        figures.insert(0, f"shape {tuple(check.target_shape or ())} vs {tuple(check.shape)}")
    verdict = {True: "ok", False: "FAILED", None: ""}[check.passed]
    return ", ".join(figures) + (f" {verdict}" if verdict else "")


@jobs_app.command("show")
def jobs_show(job_id: Annotated[str, typer.Argument(help="Job id.")]) -> None:
    """Show a job: state, failure reason, history and (for a finished compile job) its result."""
    job = Client().jobs.get(job_id)
    data = job.data
    compile_job = job if isinstance(job, CompileJob) else None
    device = ", ".join(filter(None, [job.device.name, job.device.os, *job.device.attributes]))
    if data.device_id:
        device += f" (ran on {data.device_id})"
    rows: list[tuple[str, Any]] = [
        ("id", job.id),
        ("type", data.type.value),
        ("name", job.name),
        ("state", job.state.value),
        ("failure reason", job.failure_reason),
        ("model", job.model_id),
        ("target model", compile_job.target_model_id if compile_job else None),
        ("calibration", compile_job.calibration_dataset_id if compile_job else None),
        ("verification inputs" if compile_job else "inputs", data.input_dataset_id),
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
        rows += _verification_rows(result)
    if isinstance(job, InferenceJob) and job.result is not None:
        rows += [
            ("outputs", f"dataset {job.result.output_dataset_id}"),
            ("conversions", "\n".join(job.result.conversions)),
        ]
    history = (f"{_when(e.at, seconds=True)} {e.state.value} {e.message}".rstrip() for e in job.events)
    rows.append(("history", "\n".join(history)))
    _fields(rows)
    if isinstance(job, ProfileJob) and job.profile is not None:
        console.print()
        _print_profile(job.profile)


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
    verification: Annotated[
        str | None, typer.Option(help="A few inputs to verify the conversion on (.npz file or dataset id); "
                                      "default: the calibration samples, else seeded random inputs.")
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
    for argument in (calibration, verification):
        if argument and Path(argument).is_file():
            describe_npz(Path(argument))
    client = Client()
    source = _model_argument(client, model)
    job = client.jobs.submit_compile(
        source, device, name=name, input_specs=specs, options=options,
        calibration_data=_dataset_argument(client, calibration),
        verification_data=_dataset_argument(client, verification),
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


# -- profile and inference -----------------------------------------------------------------------------------

DeviceName = Annotated[str, typer.Option(help="Device name (a pool of identical devices).")]
DeviceOs = Annotated[str, typer.Option(help='Only devices with this os, e.g. "android 14" or "[12,14)".')]
DeviceAttributes = Annotated[
    list[str] | None,
    typer.Option("--attribute", help="Only devices with this attribute, e.g. framework:tflite; repeatable."),
]
# A compile job id means "its target model": the ids the farm hands out start with their kind's letter.
JOB_ID_PREFIX = "j"


def _device_model_argument(client: Client, model: str, timeout: float | None) -> Model:
    """A file, a model id, or a compile job id (its target model, waited for with a spinner)."""
    if Path(model).is_file() or not model.startswith(JOB_ID_PREFIX):
        return _model_argument(client, model)
    try:
        job = client.jobs.get(model)
    except NotFoundError:
        raise FileNotFoundError(
            f"{model} is neither a model file, nor the id of a model or a compile job on the farm"
        ) from None
    if not isinstance(job, CompileJob):
        raise typer.BadParameter(
            f"{model} is a {job.data.type.value} job; give a model or a compile job", param_hint="MODEL"
        )
    if not job.get_status().finished:
        _wait(job, timeout)
    return job.get_target_model()  # JobFailedError (one line, exit 1) when it did not succeed


def _upload_progress(input_data: Path | Dataset | None) -> AbstractContextManager[ProgressCallback | None]:
    """A progress bar only when there is a file to upload."""
    return _transfer(f"uploading {input_data.name}") if isinstance(input_data, Path) else nullcontext()


def _inputs_argument(client: Client, inputs: str | None) -> Path | Dataset | None:
    """An .npz file (checked now, uploaded with the job) or the id of a dataset on the farm."""
    if inputs is None:
        return None
    path = Path(inputs)
    if path.is_file():
        describe_npz(path)
        return path
    try:
        return client.datasets.get(inputs)
    except NotFoundError:
        raise FileNotFoundError(
            f"{inputs} is neither an .npz file nor the id of a dataset on the farm"
        ) from None


def _ms(microseconds: float | None) -> str:
    """The farm's µs as ms with three significant digits (0.542 ms, 12.3 ms), whole ms from 100 up."""
    if microseconds is None:
        return ""
    ms = microseconds / 1000
    return f"{ms:,.0f} ms" if ms >= 99.95 else f"{ms:.3g} ms"


def _print_profile(profile: Profile) -> None:
    """The numbers people look at first, then where the time went."""
    summary = profile.execution_summary
    stats = summary.inference_stats
    device = profile.device
    delegate = summary.delegate or "none (plain CPU)"
    if summary.delegated_ops is not None and summary.total_ops:
        delegate += f", {summary.delegated_ops} of {summary.total_ops} ops"
    threads = f", {summary.threads} threads" if summary.threads else ""
    latency = (
        f"median {_ms(stats.median)}  min {_ms(stats.min)}  p90 {_ms(stats.p90)}  p99 {_ms(stats.p99)}\n"
        f"mean {_ms(stats.mean)}  std {_ms(stats.std)}"
    )
    _fields(
        [
            ("device", " ".join(filter(None, [device.name, f"({device.serial})", device.os]))),
            ("runtime", profile.runtime),
            ("compute unit", f"{summary.compute_unit} asked; delegate {delegate}"),
            ("inference", latency),
            ("iterations", f"{summary.iterations} timed, {summary.warmup_iterations} warm-up{threads}"),
            ("first inference", _ms(summary.first_inference_time)),
            ("load", f"first {_ms(summary.first_load_time)}, warm {_ms(summary.warm_load_time)}"),
            ("peak memory", f"{summary.estimated_inference_peak_memory / 1e6:.1f} MB"),
        ]
    )
    warnings = list(profile.warnings)
    if summary.cpu_fallback and not any("cpu" in w.lower() for w in warnings):
        warnings.append(
            f"part of the model ran on the CPU although --compute_unit {summary.compute_unit} was asked"
        )
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    ops = profile.execution_detail
    if not ops:
        return
    units: dict[str, int] = {}
    for op in ops:
        units[op.compute_unit] = units.get(op.compute_unit, 0) + 1
    console.print("ops: " + ", ".join(f"{n} on {unit}" for unit, n in sorted(units.items())), highlight=False)
    timed = sorted(
        (op for op in ops if op.execution_time is not None), key=lambda op: -(op.execution_time or 0)
    )
    if not timed:
        return
    total = sum(op.execution_time or 0 for op in timed) or 1.0
    table = Table(
        "OP",
        "TYPE",
        "UNIT",
        "TIME",
        "SHARE",
        box=None,
        header_style="bold",
        title_justify="left",
        title=f"top {min(TOP_OPS, len(timed))} ops by time",
    )
    for op in timed[:TOP_OPS]:
        time_us = op.execution_time or 0.0
        table.add_row(
            escape(op.name), escape(op.type), op.compute_unit, _ms(time_us), f"{time_us / total:.0%}"
        )
    console.print(table)


TOP_OPS = 10


@app.command("profile")
def profile_(
    model: Annotated[
        str,
        typer.Argument(
            help="A compiled model: a .tflite/.onnx file, a model id, or a compile job id (its target)."
        ),
    ],
    device: DeviceName = "",
    os_: Annotated[str, typer.Option("--os", help='Only devices with this os, e.g. "android 14".')] = "",
    attribute: DeviceAttributes = None,
    options: Annotated[
        str, typer.Option(help='Profile options, e.g. "--compute_unit npu --max_profiler_iterations 50".')
    ] = "",
    inputs: Annotated[
        str | None,
        typer.Option(
            help="Real inputs (source model's terms): an .npz file or a dataset id. Default: random."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Job name.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the job to finish.")] = True,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Save the profile here as JSON (AI Hub's shape).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop waiting after this many seconds (exit 1).")
    ] = None,
) -> None:
    """Measure a model on a device; prints the job id, then (with --wait) latency, memory and the top ops."""
    ProfileOptions.parse(options)  # before any upload, like the SDK
    selector = Device(device, os_, attribute or [])
    client = Client()
    input_data = _inputs_argument(client, inputs)  # a bad file fails now, not after waiting for a compile job
    source = _device_model_argument(client, model, timeout)
    with _upload_progress(input_data) as progress:
        job = client.jobs.submit_profile(
            source, selector, name=name, options=options, input_data=input_data, progress=progress
        )
    err_console.print(f"submitted profile job {job.id} ({job.url})", highlight=False)
    console.print(job.id)
    if not wait and output is None:
        return
    _finish(job, _wait(job, timeout))
    profile = job.download_profile(output)
    _print_profile(Profile.model_validate(profile))
    if output is not None:
        console.print(f"saved {output}", highlight=False)


@app.command("infer")
def infer(
    model: Annotated[
        str,
        typer.Argument(
            help="A compiled model: a .tflite/.onnx file, a model id, or a compile job id (its target)."
        ),
    ],
    inputs: Annotated[
        str,
        typer.Option(
            help="Inputs as the source model takes them: an .npz file (N samples each) or a dataset id."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Save the outputs here (.npz).")],
    device: DeviceName = "",
    os_: Annotated[str, typer.Option("--os", help='Only devices with this os, e.g. "android 14".')] = "",
    attribute: DeviceAttributes = None,
    options: Annotated[str, typer.Option(help='Runtime options, e.g. "--compute_unit cpu".')] = "",
    name: Annotated[str | None, typer.Option(help="Job name.")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop waiting after this many seconds (exit 1).")
    ] = None,
) -> None:
    """Run a model on a device and save its outputs (.npz keyed by the source model's output names)."""
    RuntimeOptions.parse(options)
    selector = Device(device, os_, attribute or [])
    client = Client()
    input_data = _inputs_argument(client, inputs)  # a bad file fails now, not after waiting for a compile job
    source = _device_model_argument(client, model, timeout)
    assert input_data is not None
    with _upload_progress(input_data) as progress:
        job = client.jobs.submit_inference(
            source, selector, input_data, name=name, options=options, progress=progress
        )
    err_console.print(f"submitted inference job {job.id} ({job.url})", highlight=False)
    console.print(job.id)
    _finish(job, _wait(job, timeout))
    with _transfer("downloading outputs") as progress:
        path = job.get_output_dataset().download(output, progress=progress)
    result = job.result
    if result is not None:
        outputs = "\n".join(f"{n}: {e.count} × {e.dtype}{e.shape}" for n, e in result.outputs.items())
        _fields(
            [
                ("outputs", outputs),
                ("runtime", result.runtime),
                ("seconds", f"{result.seconds:.2f}"),
                ("conversions", "\n".join(result.conversions)),
            ]
        )
    console.print(str(path), highlight=False)


# -- devices -------------------------------------------------------------------------------------------------

STATE_STYLE = {"online": "green", "busy": "yellow", "offline": "red"}


@app.command("devices")
def devices(
    name: Annotated[str, typer.Option(help="Only devices of this pool.")] = "",
    os_: Annotated[
        str, typer.Option("--os", help='Only this os: exact ("android 14") or a range ("[12,14)").')
    ] = "",
    attribute: DeviceAttributes = None,
) -> None:
    """List the devices agents have registered, with their state and current job."""
    found = Client().devices.list(name=name, os=os_, attributes=attribute or [])
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("NAME", "SERIAL", "OS", "STATE", "LAST SEEN", "ATTRIBUTES", "JOB"):
        # A narrow terminal folds long values onto more lines rather than cutting them ("framework:tf…").
        table.add_column(header, overflow="fold")
    for d in found:
        style = STATE_STYLE.get(d.state or "", "")
        table.add_row(
            escape(d.name),
            escape(d.serial or ""),
            escape(d.os),
            f"[{style}]{d.state}[/{style}]" if style else str(d.state or ""),
            _ago(d.last_seen_at),
            escape("\n".join(d.attributes)),
            d.current_job_id or "",
        )
    console.print(table)
    if not found:
        filtered = name or os_ or attribute
        err_console.print(
            "no device matches these filters"
            if filtered
            else "no devices registered yet: start an agent on the host they are attached to "
            "(`edgefarm agent --server URL --token T --config agent.toml`)",
            highlight=False,
        )


# -- agent ---------------------------------------------------------------------------------------------------


@app.command(
    "agent",
    add_help_option=False,  # `edgefarm agent --help` is the agent's own help
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def agent(ctx: typer.Context) -> None:
    """Run this host's device agent: `python -m edgefarm_agent` with the same arguments.

    edgefarm agent --server URL --token T --config agent.toml   (the agent replaces this process)
    """
    # find_spec locates the package without importing it: the SDK never loads agent code.
    if importlib.util.find_spec("edgefarm_agent") is None:
        raise EdgeFarmError("the device agent is not installed here: pip install 'edgefarm[agent]'")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "edgefarm_agent", *ctx.args])


# -- tokens --------------------------------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="Who or what the token is for.")],
    role: Annotated[
        Literal["admin", "user", "agent", "fleet"],
        typer.Option(help="What the token may do (fleet: devices that only fetch released models)."),
    ] = "user",
    agent: Annotated[
        str | None, typer.Option(help="Agent tokens: the one agent it may register (default: the first to).")
    ] = None,
    pools: Annotated[
        str | None, typer.Option(help="Agent tokens: the device pools it may serve, comma-separated (default: any).")
    ] = None,
) -> None:
    """Create a token; prints the secret, which is shown only this once."""
    token = Client().tokens.create(
        name, role=role, agent=agent, pools=[p.strip() for p in pools.split(",")] if pools is not None else None
    )
    err_console.print(f"token {token.id} ({token.role}); store the secret now, it is not shown again:")
    console.print(token.token, highlight=False)


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (without their secrets)."""
    table = Table("ID", "NAME", "ROLE", "SERVES", "CREATED", box=None, header_style="bold")
    for t in Client().tokens.list():
        serves = ""
        if t.role == "agent":
            serves = f"agent {t.agent or '(first to register)'}, pools {', '.join(t.pools) if t.pools else 'any'}"
        table.add_row(t.id, escape(t.name), t.role, escape(serves), _when(t.created_at))
    console.print(table)


@tokens_app.command("delete")
def tokens_delete(token_id: Annotated[str, typer.Argument(help="Token id.")]) -> None:
    """Revoke a token."""
    Client().tokens.delete(token_id)
    console.print(f"deleted {token_id}", highlight=False)


# -- registry ------------------------------------------------------------------------------------------------

Channel = Annotated[str, typer.Option(help="Release channel, e.g. production or staging.")]


def _channels_text(channels: dict[str, int | None]) -> str:
    return ", ".join(f"{name}: v{number}" if number else f"{name}: -" for name, number in channels.items())


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _gates_table(gates: list[Any]) -> Table | None:
    rows = [g for g in gates if isinstance(g, dict)]
    if not rows:
        return None
    table = Table(
        "GATE", "DEVICE", "MEASURED", "THRESHOLD", "RESULT", box=None, header_style="bold",
        title="gates", title_justify="left",
    )
    for g in rows:
        passed = g.get("passed")
        result = "[green]pass[/green]" if passed else "[red]FAIL[/red]" if passed is not None else ""
        table.add_row(
            escape(str(g.get("gate", ""))), escape(str(g.get("device") or "(model)")),
            _number(g.get("measured")), _number(g.get("threshold")), result,
        )
    return table


def _metrics_table(evidence: dict[str, Any]) -> Table | None:
    """evidence["metrics"] ({name: value} or {device: {name: value}}), else each device's "metrics" in
    evidence["devices"] (what the farm's pipelines record)."""
    metrics = evidence.get("metrics")
    per_device: dict[str, dict[str, Any]] = {}
    if isinstance(metrics, dict) and metrics and all(isinstance(v, dict) for v in metrics.values()):
        per_device = {str(k): v for k, v in metrics.items()}
    elif isinstance(metrics, dict) and metrics:
        table = Table("METRIC", "VALUE", box=None, header_style="bold", title="metrics", title_justify="left")
        for name, value in metrics.items():
            table.add_row(escape(str(name)), escape(_number(value)))
        return table
    elif isinstance(evidence.get("devices"), list):
        for entry in evidence["devices"]:
            if isinstance(entry, dict) and isinstance(entry.get("metrics"), dict):
                per_device[str(entry.get("device", "?"))] = entry["metrics"]
    if not per_device:
        return None
    names = list(dict.fromkeys(k for scores in per_device.values() for k, v in scores.items()
                               if not isinstance(v, dict | list)))
    table = Table("DEVICE", *[n.upper() for n in names], box=None, header_style="bold", title="metrics",
                  title_justify="left")
    for device, scores in per_device.items():
        table.add_row(escape(device), *[escape(_number(scores.get(n))) for n in names])
    return table


@registry_app.command("list")
def registry_list(
    name: Annotated[str | None, typer.Option(help="Only models whose name contains this.")] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> None:
    """List registered models, newest first, with their latest version and what each channel serves."""
    page = Client().registry.list(offset=offset, limit=limit, name=name)
    table = Table("NAME", "LATEST", "CHANNELS", "CREATED", box=None, header_style="bold")
    for m in page:
        latest = f"v{m.latest_version}" if m.latest_version else "-"
        table.add_row(escape(m.name), latest, escape(_channels_text(m.channels)), _when(m.created_at))
    console.print(table)
    err_console.print(f"{offset + 1 if page else 0}-{offset + len(page)} of {page.total}", highlight=False)


@registry_app.command("show")
def registry_show(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int | None, typer.Option(help="Show this version: targets, gates, metrics.")] = None,
) -> None:
    """Show a registered model (versions, channels, history) or, with --version, one version's evidence."""
    client = Client()
    if version is not None:
        _print_version(client.registry.version(name, version))
        return
    m = client.registry.get(name)
    _fields(
        [
            ("name", m.name),
            ("id", m.id),
            ("created", _when(m.created_at, seconds=True)),
            ("latest", f"v{m.latest_version}" if m.latest_version else "no versions"),
            ("channels", _channels_text(m.channels) or "none (edgefarm registry promote NAME VERSION)"),
        ]
    )
    versions = Table(
        "VERSION", "CREATED", "BY", "PIPELINE", "DEVICES", box=None, header_style="bold",
        title="versions", title_justify="left",
    )
    for v in m.versions or []:
        versions.add_row(
            f"v{v.number}", _when(v.created_at), escape(v.submitted_by), v.pipeline_id or "",
            escape(", ".join(v.devices)),
        )
    console.print()
    console.print(versions)
    if m.events:
        history = Table(
            "WHEN", "CHANNEL", "ACTION", "CHANGE", "BY", "REASON", box=None, header_style="bold",
            title="channel history", title_justify="left",
        )
        for e in m.events:
            change = f"{'v' + str(e.from_version) if e.from_version else '-'} → v{e.to_version}"
            history.add_row(
                _when(e.at, seconds=True), e.channel, e.action, change, escape(e.by), escape(e.reason)
            )
        console.print()
        console.print(history)


def _print_version(v: ModelVersion) -> None:
    _fields(
        [
            ("model", v.model),
            ("version", f"v{v.number}"),
            ("id", v.id),
            ("source model", v.source_model_id),
            ("pipeline", v.pipeline_id),
            ("submitted by", v.submitted_by),
            ("created", _when(v.created_at, seconds=True)),
            ("current on", ", ".join(v.channels)),
        ]
    )
    targets = Table(
        "DEVICE", "MODEL", "FORMAT", "SIZE", "SHA256", "JOBS", box=None, header_style="bold",
        title="targets", title_justify="left",
    )
    for t in v.targets:
        jobs = " ".join(filter(None, [t.compile_job_id, t.profile_job_id, t.inference_job_id]))
        targets.add_row(escape(t.device), t.model_id, t.format, _size(t.size), t.sha256[:12], jobs)
    console.print()
    console.print(targets)
    for table in (_gates_table(v.gates), _metrics_table(v.evidence)):
        if table is not None:
            console.print()
            console.print(table)


@registry_app.command("promote")
def registry_promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="The version number to serve.")],
    channel: Channel = "production",
    reason: Annotated[str, typer.Option(help="Why (kept in the channel's history).")] = "",
) -> None:
    """Make a version what a channel serves to devices."""
    moved = Client().registry.promote(name, version, channel, reason=reason)
    before = f"v{moved.event.from_version}" if moved.event and moved.event.from_version else "nothing"
    console.print(f"{moved.model} {moved.name}: {before} → v{moved.version}", highlight=False)


@registry_app.command("rollback")
def registry_rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why the current version is taken back (required).")],
    channel: Channel = "production",
) -> None:
    """Put back the version a channel served before its current one was promoted."""
    moved = Client().registry.rollback(name, channel, reason=reason)
    before = f"v{moved.event.from_version}" if moved.event and moved.event.from_version else "?"
    console.print(f"{moved.model} {moved.name}: {before} → v{moved.version} (rolled back)", highlight=False)


@registry_app.command("download")
def registry_download(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    channel: Annotated[
        str | None, typer.Option(help="Release channel (default production unless --version is given).")
    ] = None,
    version: Annotated[int | None, typer.Option(help="A fixed version instead of a channel.")] = None,
    device: Annotated[
        str | None, typer.Option(help="Device pool whose target to fetch (needed when there are several).")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="File or directory.")] = Path("."),
    etag: Annotated[
        str | None, typer.Option(help="The ETag of the copy you have: nothing is fetched if it is current.")
    ] = None,
) -> None:
    """Download what a channel serves (or a version) for a device; prints the path, then the ETag on stderr."""
    with _transfer(f"downloading {name}") as progress:
        got = Client().registry.download(
            name, output, channel=channel, version=version, device=device, etag=etag, progress=progress
        )
    if not got.changed:
        err_console.print(f"unchanged: v{got.version} is what you have (ETag {got.etag})", highlight=False)
    else:
        err_console.print(f"v{got.version} ETag {got.etag}", highlight=False)
    console.print(str(got.path), highlight=False)


# -- running a farm ------------------------------------------------------------------------------------------


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(envvar="EDGEFARM_DATA_DIR", help="Database, artifacts, logs.")] = Path(
        "~/.edgefarm"),
    host: Annotated[str, typer.Option(help="Address the gateway listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the gateway listens on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Compile worker processes.")] = 1,
    agent: Annotated[bool, typer.Option(help="Offer this machine's CPU as a device ('Host CPU').")] = True,
) -> None:
    """Start a farm on this machine: migrate, then run the gateway, compile workers and a device agent."""
    from edgefarm.config import config_path, read_config_file
    from edgefarm.farm import LocalFarm, supervise

    farm = LocalFarm(data_dir=data_dir.expanduser().resolve(), host=host, port=port, workers=workers,
                     agent=agent)
    # A service manager stops with SIGTERM and a closed terminal sends SIGHUP: both must stop the farm as Ctrl-C
    # does, or the gateway, workers and agent (each in a session of its own) are left running as orphans.
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, signal.default_int_handler)
    with err_console.status("starting the farm (the first start imports TensorFlow, ~10 s)…"):
        token = farm.start()
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if not read_config_file().get("api_token"):
        write_config(api_url=url, api_token=token)
        where = f"written to {config_path()}: the SDK and CLI use it"
    else:
        where = f"{config_path()} already has a token and was left alone"
    device = ", device 'Host CPU' (this machine)" if agent else ""
    console.print(f"[green]EdgeFarm is up[/green] at {url}  ({workers} compile worker(s){device}; "
                  f"logs in {farm.log_dir})")
    console.print(f"admin token: {token}  ({where})")
    console.print(f"dashboard: {url}/  (sign in with the token)")
    console.print("Ctrl-C stops the farm; a process that exits is started again.")
    stopped = supervise(farm, lambda line: err_console.print(f"{time.strftime('%H:%M:%S')} {line}", highlight=False,
                                                             markup=False))
    farm.stop()
    if stopped is not None:
        err_console.print(f"[red]error:[/red] {stopped.name} keeps exiting (last with {stopped.popen.returncode}); "
                          f"the farm was stopped. Last lines of {stopped.log}:\n{escape(stopped.tail())}")
        raise typer.Exit(1)


# -- pipelines -----------------------------------------------------------------------------------------------


@pipeline_app.command("run")
def pipeline_run(
    spec: Annotated[Path, typer.Argument(help="The pipeline spec (YAML); see docs/pipelines.md.", exists=True,
                                         dir_okay=False)],
    wait: Annotated[bool, typer.Option(help="Wait for the verdict and print the report.")] = True,
    timeout: Annotated[float | None, typer.Option(help="Give up waiting after this many seconds.")] = None,
) -> None:
    """Submit a pipeline from a spec file; exits 1 when a gate (or a job) fails, so CI can gate on it."""
    arguments = load_spec(spec)
    with _transfer("uploading") as progress:
        pipeline = Client().pipelines.submit(**arguments, progress=progress)
    err_console.print(f"pipeline {pipeline.id} submitted: {pipeline.url}", highlight=False)
    if wait:
        _pipeline_verdict(_wait_pipeline(pipeline, timeout))
    else:
        console.print(pipeline.id, highlight=False)  # for scripts: ID=$(edgefarm pipeline run spec.yaml --no-wait)


@pipeline_app.command("show")
def pipeline_show(pipeline_id: Annotated[str, typer.Argument(help="Pipeline id.")]) -> None:
    """The pipeline's state, its jobs and its report."""
    pipeline = Client().pipelines.get(pipeline_id)
    jobs = pipeline.data.jobs
    rows = [("id", pipeline.id), ("name", pipeline.name), ("state", pipeline.state.value),
            ("stage", pipeline.stage), ("compile job", jobs.compile), ("reference job", jobs.reference),
            *((f"profile job ({device})", job) for device, job in jobs.profile.items()),
            *((f"inference job ({device})", job) for device, job in jobs.inference.items())]
    table = Table(box=None, show_header=False)
    for key, value in rows:
        if value:
            table.add_row(key, escape(str(value)))
    console.print(table)
    console.print(render_report(pipeline.report, name=pipeline.name))


@pipeline_app.command("list")
def pipeline_list(
    name: Annotated[str | None, typer.Option(help="Only pipelines for this registry model.")] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> None:
    """List pipelines, newest first."""
    page = Client().pipelines.list(name=name, offset=offset, limit=limit)
    table = Table("ID", "NAME", "STATE", "STAGE", "VERSION", "CREATED", box=None, header_style="bold")
    for pipeline in page:
        table.add_row(pipeline.id, escape(pipeline.name), pipeline.state.value, pipeline.stage,
                      str(pipeline.version or "—"), _when(pipeline.data.created_at))
    console.print(table)
    err_console.print(f"{offset + 1 if page else 0}-{offset + len(page)} of {page.total}", highlight=False)


@pipeline_app.command("cancel")
def pipeline_cancel(pipeline_id: Annotated[str, typer.Argument(help="Pipeline id.")]) -> None:
    """Stop a pipeline and its running jobs; nothing is registered."""
    pipeline = Client().pipelines.cancel(pipeline_id)
    console.print(f"{pipeline.id} {pipeline.state.value}", highlight=False)


def _wait_pipeline(pipeline: Pipeline, timeout: float | None) -> Pipeline:
    with err_console.status(f"{pipeline.id}: waiting") as spinner:
        try:
            pipeline.wait(timeout=timeout, on_change=lambda p: spinner.update(
                f"{p.id}: [bold]{p.state.value}[/bold] {escape(p.stage)}"))
        except TimeoutError:  # the SDK's message speaks of wait() and cancel(); this is the shell
            raise TimeoutError(f"pipeline {pipeline.id} is still {pipeline.stage} after {timeout:g} s; it goes "
                               f"on without you: `edgefarm pipeline show {pipeline.id}` for its state, "
                               f"`edgefarm pipeline cancel {pipeline.id}` to stop it") from None
    return pipeline


def _pipeline_verdict(pipeline: Pipeline) -> None:
    console.print(render_report(pipeline.report, name=pipeline.name))
    if pipeline.state != PipelineState.SUCCESS:
        raise typer.Exit(1)

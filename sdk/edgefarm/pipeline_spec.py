"""Pipeline spec files for `edgefarm pipeline run spec.yaml`: the arguments of `submit_pipeline`, in YAML.

    name: portrait-segmenter                 # the registry model name
    model: build/portrait_segmenter.onnx     # paths are relative to the spec file
    devices: ["Host CPU"]                    # or [{name: Pixel 8, os: "[13,15)", attributes: [chipset:sm8550]}]
    compile_options: --quantize_full_type int8 --quantize_io
    calibration: data/calibration.npz
    eval_inputs: data/eval.npz
    ground_truth: data/truth.npz             # optional
    metric: {name: iou, output: mask, threshold: 0.5}
    gates: {max_metric_drop: 0.01, max_latency_ms: 30}

Every key is checked before anything is uploaded; an unknown key names the known ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from edgefarm.devices import Device
from edgefarm.wire import Gates


class _DeviceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt `attributes` would silently widen the pool

    name: str
    os: str | None = None
    attributes: list[str] = []


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    model: str
    devices: list[str | _DeviceSpec]
    eval_inputs: str
    metric: str | dict[str, Any]
    gates: Gates
    ground_truth: str | None = None
    reference: str | None = None
    input_specs: dict[str, Any] | None = None
    compile_options: str = ""
    calibration: str | None = None
    profile_options: str = ""
    inference_options: str = ""


def load_spec(path: str | Path) -> dict[str, Any]:
    """The keyword arguments of `Pipelines.submit` (model and datasets as paths resolved against the file)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must be a YAML mapping of pipeline settings (name, model, devices, …)")
    try:
        spec = _Spec.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{path}: {'; '.join(_problems(exc.errors()))}") from None
    here = path.parent

    def local(value: str | None) -> Path | None:
        if value is None:
            return None
        given = Path(value).expanduser()
        return given if given.is_absolute() else here / given

    devices = [Device(d) if isinstance(d, str) else Device(d.name, os=d.os, attributes=d.attributes)
               for d in spec.devices]
    input_specs = {k: tuple(v) if isinstance(v, list) else v for k, v in (spec.input_specs or {}).items()} or None
    return {"model": local(spec.model), "name": spec.name, "devices": devices,
            "eval_inputs": str(local(spec.eval_inputs)), "ground_truth": _str(local(spec.ground_truth)),
            "reference": _str(local(spec.reference)), "calibration_data": _str(local(spec.calibration)),
            "metric": spec.metric, "gates": spec.gates, "input_specs": input_specs,
            "compile_options": spec.compile_options, "profile_options": spec.profile_options,
            "inference_options": spec.inference_options}


def _problems(errors: list[dict[str, Any]]) -> list[str]:
    """The validation errors as `where: what`; an unknown key also lists the keys known where it was found.

    A device is a name or a mapping: when the mapping has a mistake, the error that it is not a name either is
    noise, and pydantic's branch names ("str", "_DeviceSpec") are left out of the path.
    """
    branches = ("str", "_DeviceSpec")
    mapped = {e["loc"][:2] for e in errors if e["loc"][0] == "devices" and "_DeviceSpec" in e["loc"]}
    problems = []
    for error in errors:
        loc = error["loc"]
        if loc[:2] in mapped and "str" in loc:
            continue
        where = ".".join(str(p) for p in loc if p not in branches) or "spec"
        if error["type"] != "extra_forbidden":
            problems.append(f"{where}: {error['msg']}")
            continue
        section = loc[0] if len(loc) > 1 else None
        known = Gates if section == "gates" else _DeviceSpec if section == "devices" else _Spec
        problems.append(f"{where}: unknown key (known: {', '.join(known.model_fields)})")
    return problems


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)

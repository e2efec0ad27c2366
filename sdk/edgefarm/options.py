"""Job options: a CLI-style string (`"--target_runtime tflite --quantize_full_type int8"`), parsed strictly.

The SDK checks options before uploading anything and the gateway checks them again; both use this module,
so an unknown flag or a bad value gets the same message everywhere, naming the flag and what it accepts.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable


class OptionsError(ValueError):
    """An options string that cannot be accepted; the message names the flag and the fix."""


@dataclass(frozen=True)
class Flag:
    """One accepted flag. `parse` turns the raw value into the field's value (and raises OptionsError)."""

    name: str
    parse: Callable[[str], Any] | None  # None: a switch that takes no value
    help: str


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise OptionsError(f"must be one of {', '.join(allowed)}; got {value!r}")
        return value

    return parse


def name_list(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",")]
    if not value or any(not n for n in names):
        raise OptionsError(f"must be a comma-separated list of tensor names; got {value!r}")
    return names


def _parse(text: str, flags: dict[str, Flag]) -> dict[str, Any]:
    try:
        tokens = shlex.split(text or "")
    except ValueError as exc:  # unbalanced quotes
        raise OptionsError(f"cannot read the options string: {exc}") from None
    values: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            raise OptionsError(f"unexpected {token!r}: options are flags such as {next(iter(flags))}")
        name, eq, inline = token[2:].partition("=")
        flag = flags.get(name)
        if flag is None:
            known = ", ".join(f"--{f}" for f in flags)
            raise OptionsError(f"unknown option --{name}; accepted options are: {known}")
        if name in values:
            raise OptionsError(f"--{name} is given twice")
        if flag.parse is None:
            if eq:
                raise OptionsError(f"--{name} is a switch and takes no value")
            values[name] = True
            i += 1
            continue
        if eq:
            raw = inline
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            raw = tokens[i + 1]
            i += 2
        else:
            raise OptionsError(f"--{name} needs a value: {flag.help}")
        try:
            values[name] = flag.parse(raw)
        except OptionsError as exc:
            raise OptionsError(f"--{name} {exc}") from None
    return values


def _render(options: Any, flags: dict[str, Flag]) -> str:
    """The canonical string: flags in a fixed order, defaults left out. Equal options give equal strings."""
    parts: list[str] = []
    defaults = type(options)()
    for name, flag in flags.items():
        value = getattr(options, name)
        if value == getattr(defaults, name):
            continue
        if flag.parse is None:
            parts.append(f"--{name}")
        elif isinstance(value, list):
            parts.append(f"--{name} {','.join(value)}")
        else:
            parts.append(f"--{name} {value}")
    return " ".join(parts)


COMPILE_FLAGS: dict[str, Flag] = {
    f.name: f
    for f in [
        Flag("target_runtime", choice("tflite", "onnx"), "tflite or onnx"),
        Flag("quantize_full_type", choice("int8", "int16", "float16"),
             "int8 (full-integer, needs calibration data), int16 (int16 activations, int8 weights) or float16"),
        Flag("quantize_io", None, "quantize the model's inputs and outputs too (with int8 or int16)"),
        Flag("output_names", name_list, "a comma-separated list of the source model's outputs to keep"),
        Flag("force_channel_last_input", name_list, "a comma-separated list of 4-D inputs to make NHWC"),
        Flag("force_channel_last_output", name_list, "a comma-separated list of 4-D outputs to make NHWC"),
    ]
}


@dataclass(frozen=True)
class CompileOptions:
    target_runtime: str = "tflite"
    quantize_full_type: str | None = None
    quantize_io: bool = False
    output_names: list[str] | None = None
    force_channel_last_input: list[str] | None = None
    force_channel_last_output: list[str] | None = None

    @property
    def needs_calibration(self) -> bool:
        return self.quantize_full_type in ("int8", "int16")

    @classmethod
    def parse(cls, text: str) -> CompileOptions:
        options = cls(**_parse(text, COMPILE_FLAGS))
        options._check()
        return options

    def _check(self) -> None:
        if self.quantize_io and not self.needs_calibration:
            raise OptionsError("--quantize_io needs --quantize_full_type int8 or int16")
        if self.target_runtime == "onnx":
            if self.quantize_full_type not in (None, "int8"):
                raise OptionsError(
                    f"--quantize_full_type {self.quantize_full_type} is not available with --target_runtime onnx; "
                    "use int8 (QDQ) or no quantization"
                )
            if self.force_channel_last_input or self.force_channel_last_output:
                raise OptionsError("--force_channel_last_input/_output apply to --target_runtime tflite only")

    def canonical(self) -> str:
        return _render(self, COMPILE_FLAGS)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not value.isdigit() or not low <= int(value) <= high:
            raise OptionsError(f"must be a whole number from {low} to {high}; got {value!r}")
        return int(value)

    return parse


def seconds(high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not 0 < number <= high:  # also refuses nan and inf
            raise OptionsError(f"must be a number of seconds above 0 and at most {high:g}; got {value!r}")
        return number

    return parse


DELEGATES = ("xnnpack", "gpu", "nnapi", "external", "none")
TFLITE_OPTION_KEYS = {"number_of_threads": whole_number(1, 256)}


def tflite_options(value: str) -> dict[str, Any]:
    """`number_of_threads=4` (several as `a=1;b=2`)."""
    parsed: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in value.split(";"))):
        key, eq, raw = item.partition("=")
        if not eq or key not in TFLITE_OPTION_KEYS:
            raise OptionsError(f"takes key=value pairs separated by ';' with keys {', '.join(TFLITE_OPTION_KEYS)}; "
                               f"got {item!r}")
        try:
            parsed[key] = TFLITE_OPTION_KEYS[key](raw)
        except OptionsError as exc:
            raise OptionsError(f"{key} {exc}") from None
    return parsed


def delegate_list(value: str) -> list[str]:
    names = name_list(value)
    unknown = [n for n in names if n not in DELEGATES]
    if unknown:
        raise OptionsError(f"knows the delegates {', '.join(DELEGATES)}; got {', '.join(unknown)}")
    return names


_RUNTIME_FLAGS = [
    Flag("compute_unit", choice("all", "cpu", "gpu", "npu"),
         "all (the best the device has), cpu, gpu or npu; a device without that unit refuses the job"),
    Flag("tflite_delegates", delegate_list,
         f"a comma-separated list in order of preference from {', '.join(DELEGATES)}"),
    Flag("tflite_options", tflite_options, "runtime settings such as number_of_threads=4 (1 to 256)"),
]
PROFILE_FLAGS: dict[str, Flag] = {f.name: f for f in [
    # Bounded so that one job cannot hold a device for days: the defaults are far inside the bounds.
    Flag("max_profiler_iterations", whole_number(1, 100_000), "how many timed inferences, 1 to 100000 (default 100)"),
    Flag("max_profiler_time", seconds(3600), "stop timing after this many seconds, at most 3600 (default 600)"),
    Flag("warmup_iterations", whole_number(1, 10_000), "untimed inferences before timing, 1 to 10000 (default 5)"),
    *_RUNTIME_FLAGS,
]}
INFERENCE_FLAGS: dict[str, Flag] = {f.name: f for f in _RUNTIME_FLAGS}


@dataclass(frozen=True)
class RuntimeOptions:
    """How a device should run a model: shared by profile and inference jobs."""

    compute_unit: str = "all"
    tflite_delegates: list[str] | None = None
    tflite_options: dict[str, Any] | None = None

    @property
    def threads(self) -> int | None:
        return (self.tflite_options or {}).get("number_of_threads")

    @classmethod
    def parse(cls, text: str) -> RuntimeOptions:
        return cls(**_parse(text, INFERENCE_FLAGS))


@dataclass(frozen=True)
class ProfileOptions(RuntimeOptions):
    max_profiler_iterations: int = 100
    max_profiler_time: float = 600.0
    warmup_iterations: int = 5

    @classmethod
    def parse(cls, text: str) -> ProfileOptions:
        return cls(**_parse(text, PROFILE_FLAGS))


def describe(flags: dict[str, Flag]) -> list[tuple[str, str]]:
    """(flag, help) pairs for docs and `--help` texts."""
    return [(f"--{f.name}" + ("" if f.parse is None else " VALUE"), f.help) for f in flags.values()]


__all__ = ["OptionsError", "CompileOptions", "ProfileOptions", "RuntimeOptions", "COMPILE_FLAGS", "PROFILE_FLAGS",
           "INFERENCE_FLAGS", "describe"]

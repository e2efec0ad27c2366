"""The agent's configuration file: which devices this agent owns and how each one runs models.

    [agent]                      # optional; every key has a default
    name = "lab-bench-3"         # default: this machine's host name

    [[devices]]
    name = "Raspberry Pi 5"      # the pool users ask for
    serial = "rpi5-a"            # unique within this agent, stable across restarts
    os = "Debian 12"
    attributes = ["chipset:bcm2712", "framework:tflite"]
    backend = "host"             # shorthand for [devices.backend] type = "host"

    [[devices]]
    name = "Pixel 8"
    serial = "pixel8-a"
    attributes = ["accelerator:npu"]   # chipset:, os:, abi:… are read from the phone (getprop) and added
    [devices.backend]
    type = "android"
    address = "192.168.1.20:5555"      # ADB over TCP; or usb = true (usb_serial = "…" to pick one)
    benchmark_model = "/opt/tflite/android_aarch64_benchmark_model"

Each device's `backend` table is a tagged union on `type`: `host` and `android` each have their own settings.
docs/agent.md is the reference for every key.
"""

from __future__ import annotations

import re
import socket
import tempfile
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from edgefarm.wire import DeviceSpec
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

# key:value, with a lowercase key; the value may hold anything but whitespace (versions, chip names…).
ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_.-]*:\S+$")
BACKENDS = ("host", "android")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file, the key and the fix."""


class Strict(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExternalDelegate(Strict):
    """A TFLite external delegate (`tflite_plugin_create_delegate` in a shared library): how NPU and GPU
    boards are driven from LiteRT, e.g. libvx_delegate.so on i.MX 8M Plus."""

    library: Path
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.library.name


class HostBackend(Strict):
    """Runs models in-process on this machine: LiteRT for .tflite, ONNX Runtime (CPU) for .onnx."""

    type: Literal["host"] = "host"
    threads: int | None = Field(default=None, ge=1)  # when a job does not set number_of_threads
    npu: ExternalDelegate | None = None
    gpu: ExternalDelegate | None = None

    frameworks: ClassVar[tuple[str, ...]] = ("tflite", "onnx")

    def delegate_for(self, unit: str) -> ExternalDelegate | None:
        return {"npu": self.npu, "gpu": self.gpu}.get(unit)

    def offers(self, unit: str) -> bool:
        return unit == "cpu" or self.delegate_for(unit) is not None


class AndroidBackend(Strict):
    """An Android phone over ADB (adb-shell, no adb server): TFLite's `benchmark_model` runs on the phone.
    The phone's CPU (XNNPACK), GPU (`--use_gpu`) and NPU (an external delegate such as Qualcomm's QNN TFLite
    delegate when `npu` is set, NNAPI otherwise) are offered."""

    type: Literal["android"]
    address: str | None = Field(default=None, pattern=r"^[^\s:]+:\d+$")  # host:port of adbd over TCP
    usb: bool = False
    usb_serial: str | None = None  # with usb = true: which phone (default: the first one found)
    adb_key: Path | None = None  # default: <agent work_dir>/adbkey, generated on first run
    benchmark_model: Path  # on this machine, built for the phone's ABI; pushed for each job
    libraries: list[Path] = Field(default_factory=list)  # further .so pushed next to it (LD_LIBRARY_PATH)
    npu: ExternalDelegate | None = None  # a TFLite external delegate .so on this machine, pushed and loaded
    remote_dir: str = Field(default="/data/local/tmp/edgefarm", pattern=r"^/[^\s;&|'\"`$]*$")
    threads: int | None = Field(default=None, ge=1)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    auth_timeout_seconds: float = Field(default=60.0, gt=0)  # time to accept the key prompt on the phone

    frameworks: ClassVar[tuple[str, ...]] = ("tflite",)

    @model_validator(mode="after")
    def _one_way_to_reach_the_phone(self) -> AndroidBackend:
        if self.usb == (self.address is not None):
            raise ValueError("set either address = \"host:port\" (ADB over TCP) or usb = true")
        return self

    def delegate_for(self, unit: str) -> ExternalDelegate | None:
        return self.npu if unit == "npu" else None

    def offers(self, unit: str) -> bool:
        return unit in ("cpu", "gpu", "npu")  # GPU and NNAPI ship with Android; `npu` may name a vendor delegate


class DeviceConfig(Strict):
    name: str = Field(min_length=1)
    serial: str = Field(min_length=1)
    os: str = ""
    attributes: list[str] = Field(default_factory=list)
    backend: Annotated[HostBackend | AndroidBackend, Field(discriminator="type")]
    # What the backend found out about the device itself (an Android phone's getprop); see `identified`.
    _identified: tuple[str, list[str]] = PrivateAttr(default=("", []))
    _work_dir: Path | None = PrivateAttr(default=None)  # the agent's, set by AgentConfig

    @property
    def agent_work_dir(self) -> Path:
        return self._work_dir or AgentSettings().work_dir

    @field_validator("backend", mode="before")
    @classmethod
    def _backend_by_type(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = {"type": value}
        kind = value.get("type", "host") if isinstance(value, dict) else None
        if kind not in BACKENDS:
            raise ValueError(f"unknown backend {kind!r}; this agent knows: {', '.join(BACKENDS)}")
        return {**value, "type": kind}

    @field_validator("attributes")
    @classmethod
    def _attributes_are_key_value(cls, attributes: list[str]) -> list[str]:
        for attribute in attributes:
            if not ATTRIBUTE.match(attribute):
                raise ValueError(f"{attribute!r} is not key:value with a lowercase key, e.g. accelerator:npu")
        return attributes

    @model_validator(mode="after")
    def _attributes_match_backend(self) -> DeviceConfig:
        # A device that advertises a unit or framework it cannot run would take jobs only to fail them.
        for attribute in self.attributes:
            key, _, value = attribute.partition(":")
            if key == "accelerator" and value in ("npu", "gpu") and not self.backend.offers(value):
                raise ValueError(f"{attribute} needs a [devices.backend.{value}] delegate library to run on")
            if key == "framework" and value not in self.backend.frameworks:
                raise ValueError(f"{attribute}: the {self.backend.type} backend runs "
                                 f"{' and '.join(self.backend.frameworks)} models")
        return self

    def identified(self, *, os: str, attributes: list[str]) -> None:
        """Record what the backend read from the device (e.g. `chipset:sm8550`, `abi:arm64-v8a`). The operator's
        own attributes win over identified ones with the same key, and a configured `os` over the found one."""
        self._identified = (os, [a for a in attributes if ATTRIBUTE.match(a)])

    def spec(self) -> DeviceSpec:
        """What the gateway is told. Without any framework:* attribute, the backend's frameworks are declared,
        so `attributes="framework:tflite"` selectors find the device."""
        found_os, found = self._identified
        configured_keys = {a.partition(":")[0] for a in self.attributes}
        attributes = [a for a in found if a.partition(":")[0] not in configured_keys] + list(self.attributes)
        if not any(a.startswith("framework:") for a in attributes):
            attributes += [f"framework:{f}" for f in self.backend.frameworks]
        return DeviceSpec(name=self.name, serial=self.serial, os=self.os or found_os, attributes=attributes)


class AgentSettings(Strict):
    name: str = Field(default_factory=socket.gethostname, min_length=1)
    work_dir: Path = Field(default_factory=lambda: Path(tempfile.gettempdir()) / "edgefarm-agent")
    lease_wait_seconds: float = Field(default=20.0, ge=1, le=60)  # the gateway caps its long poll at 60 s
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)  # a running job's time to finish on SIGTERM


class AgentConfig(Strict):
    agent: AgentSettings = Field(default_factory=AgentSettings)
    devices: list[DeviceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _serials_unique(self) -> AgentConfig:
        seen: set[str] = set()
        for device in self.devices:
            if device.serial in seen:
                raise ValueError(f"serial {device.serial!r} is used by two devices; serials identify a device "
                                 "within its agent")
            seen.add(device.serial)
        for device in self.devices:
            device._work_dir = self.agent.work_dir  # where backends keep state (an Android backend's ADB key)
        return self


def parse_config(text: str, *, source: str = "<config>") -> AgentConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    try:
        return AgentConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(f"  {_where(err['loc'], raw)}: {err['msg'].removeprefix('Value error, ')}"
                             for err in exc.errors())
        raise ConfigError(f"{source} has {exc.error_count()} problem(s):\n{problems}") from None


def load_config(path: str | Path) -> AgentConfig:
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the agent config {path}: {exc.strerror}") from None
    return parse_config(text, source=str(path))


def _where(location: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """`devices[1] ("Raspberry Pi 5").backend.threads`: the path as the operator wrote it, not pydantic's."""
    parts: list[str] = []
    for index, key in enumerate(location):
        if index and location[index - 1] == "backend" and key in BACKENDS:
            continue  # pydantic names the union's member; the operator wrote no such key
        if isinstance(key, int):
            parts[-1] += f"[{key}]"
            if location[:index] == ("devices",):
                devices = raw.get("devices")
                if isinstance(devices, list) and key < len(devices) and isinstance(devices[key], dict):
                    parts[-1] += f" ({devices[key].get('name', '?')!r})"
        else:
            parts.append(str(key))
    return ".".join(parts) or "(top level)"

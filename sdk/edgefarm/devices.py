"""Devices: a selector naming a pool of identical devices, narrowed by os and attributes, as in qai_hub.

The same class describes the devices `get_devices()` lists: those carry what the farm knows about one
physical device (id, serial, state, last seen, agent, current job) as extra, optional attributes. Passing
such a device to `submit_*_job` selects its pool by name, os and attributes, as qai_hub does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime

from edgefarm.wire import DeviceOut, DeviceSelector, DeviceState


@dataclass
class Device:
    """`Device("Samsung Galaxy S24")`, `Device(attributes="framework:tflite")`: every given field must match.

    `attributes` takes one string or a list, as in qai_hub; it is always a list afterwards. `os` is a version
    ("android 14") or a range the farm understands ("[12,14)").

    The keyword-only fields after `attributes` are set on devices the farm lists (`get_devices()`) and are
    `None` on a selector you build yourself; they never take part in selecting.
    """

    name: str = ""
    os: str = ""
    attributes: str | list[str] = field(default_factory=list)
    id: str | None = field(default=None, kw_only=True)
    serial: str | None = field(default=None, kw_only=True)
    state: DeviceState | None = field(default=None, kw_only=True, compare=False)
    last_seen_at: datetime | None = field(default=None, kw_only=True, compare=False)
    agent_id: str | None = field(default=None, kw_only=True)
    agent_name: str | None = field(default=None, kw_only=True)
    current_job_id: str | None = field(default=None, kw_only=True, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.attributes, str):
            self.attributes = [self.attributes]
        else:
            self.attributes = list(self.attributes)
        if not all(isinstance(a, str) and a for a in self.attributes):
            raise ValueError(
                f"device attributes must be non-empty strings such as 'framework:tflite'; "
                f"got {self.attributes!r}"
            )

    @property
    def online(self) -> bool:
        """Registered and heard from recently (free or busy); False for an offline device or a selector."""
        return self.state in ("online", "busy")

    def to_wire(self) -> DeviceSelector:
        return DeviceSelector(name=self.name, os=self.os, attributes=list(self.attributes))

    @classmethod
    def from_wire(cls, selector: DeviceSelector) -> Device:
        return cls(name=selector.name, os=selector.os, attributes=list(selector.attributes))

    @classmethod
    def from_out(cls, device: DeviceOut) -> Device:
        """A device as the farm lists it."""
        return cls(
            name=device.name,
            os=device.os,
            attributes=list(device.attributes),
            id=device.id,
            serial=device.serial,
            state=device.state,
            last_seen_at=device.last_seen_at,
            agent_id=device.agent_id,
            agent_name=device.agent_name,
            current_job_id=device.current_job_id,
        )

    def __repr__(self) -> str:
        # A selector reads as it was written; a listed device adds only what the farm told about it.
        shown = (
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name in ("name", "os", "attributes") or getattr(self, f.name) is not None
        )
        return f"Device({', '.join(shown)})"


def as_device(device: Device | str) -> Device:
    """Scripts pass a Device; a bare name is accepted too, as the CLI and quick scripts do."""
    if isinstance(device, Device):
        return device
    if isinstance(device, str):
        return Device(name=device)
    raise TypeError(f"device must be an ef.Device or a device name; got {type(device).__name__}")

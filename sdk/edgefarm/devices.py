"""Devices: a selector naming a pool of identical devices, narrowed by os and attributes, as in qai_hub."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgefarm.wire import DeviceSelector


@dataclass
class Device:
    """`Device("Samsung Galaxy S24")`, `Device(attributes="framework:tflite")`: every given field must match.

    `attributes` takes one string or a list, as in qai_hub; it is always a list afterwards.
    """

    name: str = ""
    os: str = ""
    attributes: str | list[str] = field(default_factory=list)

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

    def to_wire(self) -> DeviceSelector:
        return DeviceSelector(name=self.name, os=self.os, attributes=list(self.attributes))

    @classmethod
    def from_wire(cls, selector: DeviceSelector) -> Device:
        return cls(name=selector.name, os=selector.os, attributes=list(selector.attributes))


def as_device(device: Device | str) -> Device:
    """Scripts pass a Device; a bare name is accepted too, as the CLI and quick scripts do."""
    if isinstance(device, Device):
        return device
    if isinstance(device, str):
        return Device(name=device)
    raise TypeError(f"device must be an ef.Device or a device name; got {type(device).__name__}")

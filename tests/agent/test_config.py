"""The agent's TOML configuration: what is accepted, and how problems are reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgefarm_agent.config import ConfigError, load_config, parse_config

GOOD = """
[agent]
name = "bench-3"
lease_wait_seconds = 10

[[devices]]
name = "Raspberry Pi 5"
serial = "rpi5-a"
os = "Debian 12"
attributes = ["chipset:bcm2712", "framework:tflite"]
backend = "host"

[[devices]]
name = "i.MX 8M Plus EVK"
serial = "imx8mp-1"
attributes = ["accelerator:npu"]
[devices.backend]
type = "host"
threads = 4
[devices.backend.npu]
library = "/usr/lib/libvx_delegate.so"
options = { cache_file_path = "/var/cache/vx", verbose = true }
"""


def test_a_good_file(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.agent.name == "bench-3" and config.agent.lease_wait_seconds == 10
    pi, imx = config.devices
    assert pi.backend.type == "host" and pi.backend.npu is None and pi.backend.threads is None
    assert imx.backend.threads == 4 and imx.backend.npu.library == Path("/usr/lib/libvx_delegate.so")
    assert imx.backend.npu.options == {"cache_file_path": "/var/cache/vx", "verbose": True}
    assert pi.spec().attributes == ["chipset:bcm2712", "framework:tflite"]
    # No framework:* given: the backend's frameworks are declared, so framework selectors find the device.
    assert imx.spec().attributes == ["accelerator:npu", "framework:tflite", "framework:onnx"]


def test_agent_name_defaults_to_the_host_name():
    import socket

    config = parse_config('[[devices]]\nname = "CPU"\nserial = "a"\nbackend = "host"')
    assert config.agent.name == socket.gethostname()


def test_unknown_backend_names_it_and_the_known_ones():
    with pytest.raises(ConfigError) as error:
        parse_config('[[devices]]\nname = "iPhone"\nserial = "p8"\nbackend = "ios"', source="agent.toml")
    assert "agent.toml" in str(error.value)
    assert "devices[0] ('iPhone').backend: unknown backend 'ios'; this agent knows: host, android" in str(error.value)


def test_bad_attribute_is_named():
    with pytest.raises(ConfigError, match="'npu' is not key:value"):
        parse_config('[[devices]]\nname = "X"\nserial = "x"\nattributes = ["npu"]\nbackend = "host"')


def test_accelerator_without_its_delegate_is_refused():
    with pytest.raises(ConfigError, match=r"accelerator:npu needs a \[devices.backend.npu\] delegate"):
        parse_config('[[devices]]\nname = "X"\nserial = "x"\nattributes = ["accelerator:npu"]\nbackend = "host"')


def test_a_framework_the_backend_cannot_run_is_refused():
    with pytest.raises(ConfigError, match="runs tflite and onnx models"):
        parse_config('[[devices]]\nname = "X"\nserial = "x"\nattributes = ["framework:qnn"]\nbackend = "host"')


def test_duplicate_serials_are_refused():
    with pytest.raises(ConfigError, match="serial 'x' is used by two devices"):
        parse_config('[[devices]]\nname = "A"\nserial = "x"\nbackend = "host"\n'
                     '[[devices]]\nname = "B"\nserial = "x"\nbackend = "host"')


def test_a_misspelt_key_is_an_error_not_ignored():
    with pytest.raises(ConfigError, match=r"devices\[0\] \('A'\)\.backend\.thread: Extra inputs are not permitted"):
        parse_config('[[devices]]\nname = "A"\nserial = "x"\n[devices.backend]\ntype = "host"\nthread = 2')


def test_no_devices_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="devices: Field required"):
        parse_config('[agent]\nname = "a"')
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[[devices]\n")
    with pytest.raises(ConfigError, match="cannot read the agent config"):
        load_config(tmp_path / "missing.toml")

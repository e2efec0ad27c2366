"""One ADB connection to a phone with adb-shell (no adb server, no adb binary): shell commands with their exit
status, pushes and pulls, the phone's identity (getprop) and its conditions (battery, thermal, CPU clocks).

adb-shell returns one stream with stdout and stderr mixed and no exit status, so each command that matters
ends with `; echo __EXIT__$?` and the status is read back from the output; a missing marker means the process
(or the connection) died.
"""

from __future__ import annotations

import logging
import re
import shlex
import threading
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

from adb_shell import exceptions as adb_errors
from adb_shell.adb_device import AdbDevice, AdbDeviceTcp, AdbDeviceUsb
from adb_shell.auth.keygen import keygen
from adb_shell.auth.sign_cryptography import CryptographySigner

from edgefarm_agent.backends import JobCancelled, JobFailure
from edgefarm_agent.config import AndroidBackend as AndroidSettings
from edgefarm_agent.config import DeviceConfig

logger = logging.getLogger(__name__)

EXIT_MARKER = "__EXIT__"
# What adb-shell and the socket under it raise when the link to the phone breaks.
LINK_ERRORS = (adb_errors.AdbConnectionError, adb_errors.AdbTimeoutError, adb_errors.TcpTimeoutException,
               adb_errors.InvalidResponseError, adb_errors.InvalidCommandError, adb_errors.InvalidChecksumError,
               adb_errors.UsbReadFailedError, adb_errors.UsbWriteFailedError, OSError)


class AdbSession:
    """One ADB connection to the phone: shell commands with exit status, pushes, conditions, identity."""

    def __init__(self, device: DeviceConfig, settings: AndroidSettings, key_path: Path) -> None:
        self.device = device
        self.settings = settings
        self.key_path = key_path
        self.where = f"phone {device.name!r} ({settings.address or 'USB ' + (settings.usb_serial or '')})"
        self._adb: AdbDevice | None = None

    def connect(self) -> None:
        signer = CryptographySigner(str(_ensure_key(self.key_path)))
        prompted = threading.Event()

        def on_prompt(_device: AdbDevice) -> None:
            prompted.set()
            logger.warning("%s asks to allow this agent's ADB key (%s.pub): unlock it and tap 'Allow' "
                           "(tick 'Always allow from this computer')", self.where, self.key_path)

        timeout = self.settings.connect_timeout_seconds
        try:
            self._adb = self._open_device()
            try:
                self._adb.connect(rsa_keys=[signer], transport_timeout_s=timeout, read_timeout_s=timeout,
                                  auth_timeout_s=self.settings.auth_timeout_seconds, auth_callback=on_prompt)
            except BaseException:
                self.close()  # the socket or the claimed USB interface, not left for the garbage collector
                raise
        except adb_errors.DeviceAuthError as exc:
            raise JobFailure(self._auth_text(f"the phone refused the key: {exc}")) from exc
        except LINK_ERRORS as exc:
            if prompted.is_set():
                raise JobFailure(self._auth_text(f"no answer within {self.settings.auth_timeout_seconds:g} s")) \
                    from exc
            hint = ("is it on, reachable, with ADB over TCP enabled (`adb tcpip 5555` once over USB, or wireless "
                    "debugging)?" if self.settings.address else
                    "is it plugged in with USB debugging on, and no adb server holding it (`adb kill-server`)?")
            raise JobFailure(f"cannot connect to {self.where}: {exc or type(exc).__name__}; {hint}") from exc

    def _open_device(self) -> AdbDevice:
        timeout = self.settings.connect_timeout_seconds
        if self.settings.address:
            host, _, port = self.settings.address.rpartition(":")
            return AdbDeviceTcp(host, int(port), default_transport_timeout_s=timeout)
        try:
            return AdbDeviceUsb(serial=self.settings.usb_serial, default_transport_timeout_s=timeout)
        except adb_errors.InvalidTransportError as exc:
            raise JobFailure(f"{self.where}: USB needs libusb1 on the agent's machine: pip install 'adb-shell[usb]' "
                             "(or use ADB over TCP: address = \"host:5555\")") from exc
        except adb_errors.UsbDeviceNotFoundError as exc:
            raise JobFailure(f"{self.where}: no phone with USB debugging found on USB: {exc}") from exc

    def _auth_text(self, detail: str) -> str:
        return (f"{self.where} did not authorise this agent's ADB key ({detail}). Unlock the phone, accept the "
                f"'Allow USB debugging?' prompt for the key {self.key_path}.pub (tick 'Always allow'), and retry")

    def close(self) -> None:
        if self._adb is not None:
            try:
                self._adb.close()
            except LINK_ERRORS:
                pass
            self._adb = None

    @property
    def adb(self) -> AdbDevice:
        if self._adb is None:
            raise JobFailure(f"{self.where}: not connected")
        return self._adb

    def shell(self, command: str, *, timeout: float | None = None) -> str:
        try:
            return self.adb.shell(command, read_timeout_s=timeout or self.settings.connect_timeout_seconds * 3)
        except LINK_ERRORS as exc:
            raise JobFailure(f"lost the connection to {self.where} running `{command[:60]}`: "
                             f"{exc or type(exc).__name__}") from exc

    def run_checked(self, command: str, what: str) -> str:
        output, status = _split_status(self.shell(f"{command}; echo {EXIT_MARKER}$?"))
        if status != 0:
            raise JobFailure(f"{self.where}: cannot {what} (`{command}` exited with {status}): {output.strip()}",
                             output)
        return output

    def run_streaming(self, command: str, *, timeout: float, cancelled: threading.Event,
                      on_line: Callable[[str], None]) -> tuple[str, int]:
        """Run a long command (benchmark_model), handing each output line to `on_line` as it arrives."""
        chunks: list[str] = []
        try:
            # adb-shell does not retry a transport read that times out: a silent stretch (a delegate compiling the
            # graph, the timed runs) must fit in one transport timeout, not only in read_timeout_s.
            for chunk in self.adb.streaming_shell(f"{command}; echo {EXIT_MARKER}$?", transport_timeout_s=timeout,
                                                  read_timeout_s=timeout):
                chunks.append(chunk)
                if cancelled.is_set():
                    self.close()  # closing the stream ends the shell on the phone
                    raise JobCancelled()
                for line in chunk.splitlines():
                    on_line(line)
        except LINK_ERRORS as exc:
            raise JobFailure(f"lost the connection to {self.where} while benchmark_model ran: "
                             f"{exc or type(exc).__name__}. Is the phone still connected and awake?",
                             "".join(chunks)) from exc
        text = "".join(chunks)
        if EXIT_MARKER not in text:
            raise JobFailure(f"benchmark_model on {self.where} ended without an exit status (killed?)", text)
        return _split_status(text)

    def push(self, local: Path, remote: str, *, executable: bool) -> None:
        try:
            self.adb.push(str(local), remote, st_mode=0o100755 if executable else 0o100644)
        except (adb_errors.PushFailedError, adb_errors.AdbCommandFailureException) as exc:
            raise JobFailure(f"cannot push {local} to {remote} on {self.where}: {exc}") from exc
        except LINK_ERRORS as exc:
            raise JobFailure(f"lost the connection to {self.where} pushing {local.name}: "
                             f"{exc or type(exc).__name__}") from exc

    def pull(self, remote: str) -> bytes | None:
        """The file's bytes, or None when the phone cannot give it (adbd answers FAIL: no such file)."""
        buffer = BytesIO()
        try:
            self.adb.pull(remote, buffer, read_timeout_s=self.settings.connect_timeout_seconds * 3)
        except adb_errors.AdbCommandFailureException:
            return None
        except LINK_ERRORS as exc:
            raise JobFailure(f"lost the connection to {self.where} pulling {remote}: "
                             f"{exc or type(exc).__name__}") from exc
        return buffer.getvalue()

    def remove(self, remote: str) -> None:
        """rm -rf the job directory; after a dropped link (cancel, cable, Wi-Fi) on one fresh connection."""
        command = f"rm -rf {shlex.quote(remote)}"
        for attempt in range(2):
            try:
                if self._adb is None:
                    self.connect()
                self.adb.shell(command, read_timeout_s=self.settings.connect_timeout_seconds)
                return
            except (JobFailure, *LINK_ERRORS) as exc:
                self.close()
                if attempt:
                    logger.warning("cannot remove %s on %s: %s", remote, self.where, getattr(exc, "reason", exc))

    def identify(self) -> dict[str, str]:
        """Read getprop, fill the device's identified attributes (chipset:, abi:, os:…), return the props."""
        props = parse_getprop(self.shell("getprop"))
        os_text, attributes = describe_phone(props)
        self.device.identified(os=os_text, attributes=attributes)
        return props

    def conditions(self) -> dict[str, Any]:
        battery = parse_dumpsys_battery(self.shell("dumpsys battery"))
        thermal = re.search(r"Thermal Status:\s*(\d+)", self.shell("dumpsys thermalservice"))
        zones = _grep_values(self.shell("grep -H . /sys/class/thermal/thermal_zone*/type "
                                        "/sys/class/thermal/thermal_zone*/temp 2>/dev/null"))
        temperatures = {}
        for path, kind in zones.items():
            if path.endswith("/type") and (raw := zones.get(path[:-len("type")] + "temp")) is not None:
                try:
                    value = float(raw)
                except ValueError:
                    continue
                temperatures[kind] = value / 1000 if abs(value) > 1000 else value  # millidegrees on most kernels
        freqs = _grep_values(self.shell("grep -H . /sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq "
                                        "2>/dev/null"))
        cpu_khz = {m.group(1): int(v) for p, v in freqs.items()
                   if (m := re.search(r"/(cpu\d+)/cpufreq", p)) and v.isdigit()}
        return {"battery": battery, "thermal_status": int(thermal.group(1)) if thermal else None,
                "temperatures_c": temperatures, "cpu_freq_khz": cpu_khz}


# -- parsing the phone's answers ----------------------------------------------------------------------------


def parse_getprop(text: str) -> dict[str, str]:
    return dict(re.findall(r"^\[([^\]]+)\]: \[([^\]]*)\]", text, flags=re.MULTILINE))


def describe_phone(props: dict[str, str]) -> tuple[str, list[str]]:
    def value(text: str) -> str:
        return re.sub(r"\s+", "-", text.strip().lower())

    attributes = ["os:android"]
    chipset = props.get("ro.soc.model") or props.get("ro.board.platform")
    if chipset:
        attributes.append(f"chipset:{value(chipset)}")
    for key, prop in (("platform", "ro.board.platform"), ("manufacturer", "ro.product.manufacturer"),
                      ("model", "ro.product.model"), ("abi", "ro.product.cpu.abi"),
                      ("android", "ro.build.version.release")):
        if props.get(prop):
            attributes.append(f"{key}:{value(props[prop])}")
    release = props.get("ro.build.version.release")
    return (f"Android {release}" if release else "Android"), attributes


def parse_dumpsys_battery(text: str) -> dict[str, Any]:
    fields = dict(re.findall(r"^\s*([A-Za-z ]+):\s*(\S+)\s*$", text, flags=re.MULTILINE))
    battery: dict[str, Any] = {}
    if (level := fields.get("level", "")).isdigit():
        battery["level_percent"] = int(level)
    if re.fullmatch(r"-?\d+", temperature := fields.get("temperature", "")):
        battery["temperature_c"] = int(temperature) / 10  # tenths of a degree
    plugged = [k.split()[0] for k in ("AC powered", "USB powered", "Wireless powered") if fields.get(k) == "true"]
    battery["charging_from"] = plugged
    return battery


def _grep_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        path, sep, value = line.partition(":")
        if sep and path.startswith("/"):
            values[path] = value.strip()
    return values


def _split_status(text: str) -> tuple[str, int]:
    body, _, status = text.rpartition(EXIT_MARKER)
    try:
        return body, int(status.strip().splitlines()[0])
    except (ValueError, IndexError):
        return body, 255


def _ensure_key(path: Path) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        keygen(str(path))
        logger.warning("generated this agent's ADB key %s (public part %s.pub). The first time the agent "
                       "connects, each phone shows 'Allow USB debugging?' with this key's fingerprint: unlock it "
                       "and tap Allow (tick 'Always allow from this computer')", path, path)
    return path



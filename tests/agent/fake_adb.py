"""A FAKE ADB for tests: a scripted transport under adb-shell and a stand-in for the phone behind it.

Only the byte pipe is fake. `FakeAdbTransport` implements adb_shell's transport interface (connect, close,
bulk_read, bulk_write), the way adb-shell's own tests replace the TCP socket; above it the real
`AdbDeviceTcp`, the real protocol (CNXN, AUTH, OPEN, OKAY, WRTE, CLSE) and the real FileSync push run unchanged.
The transport hands each complete ADB message to `FakePhone`, which answers as adbd would:

- CNXN → AUTH TOKEN; an AUTH SIGNATURE made with an authorised key → CNXN; otherwise AUTH TOKEN again; the
  public key (AUTH RSAPUBLICKEY) → CNXN only if `accept_new_keys` (the person at the phone tapped "Allow"),
  else nothing, so the host times out waiting as it would in front of an unanswered prompt;
- OPEN "sync:" → FileSync SEND/DATA/DONE into `files`; OPEN "shell:…" → a tiny shell over `files` (getprop,
  dumpsys, grep -H ., mkdir -p, chmod, rm -rf, `cd DIR && … ./benchmark_model …; echo __EXIT__$?`).

`benchmark_model` "runs" by printing RECORDED output (tests/agent/data/benchmark_model/) and exiting with
`benchmark_exit`; `disconnect_during_benchmark` drops the connection mid-run instead.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import struct
from dataclasses import dataclass, field

from adb_shell import constants
from adb_shell.adb_message import AdbMessage
from adb_shell.auth.sign_cryptography import CryptographySigner
from adb_shell.transport.base_transport import BaseTransport

HEADER = struct.calcsize(constants.MESSAGE_FORMAT)
TOKEN = b"\x5a" * 20  # adbd sends 20 random bytes to sign; fixed here so signatures can be compared

PIXEL_PROPS = {
    "ro.product.model": "Pixel 8",
    "ro.product.manufacturer": "Google",
    "ro.board.platform": "zuma",
    "ro.soc.model": "Tensor G3",
    "ro.soc.manufacturer": "Google",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.serialno": "38121FDJH000AB",
}
PIXEL_FILES = {
    "/sys/class/thermal/thermal_zone0/type": "BIG",
    "/sys/class/thermal/thermal_zone0/temp": "41250",
    "/sys/class/thermal/thermal_zone1/type": "battery",
    "/sys/class/thermal/thermal_zone1/temp": "31200",
    "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "1704000",
    "/sys/devices/system/cpu/cpu7/cpufreq/scaling_cur_freq": "2910000",
}
DUMPSYS_BATTERY = """Current Battery Service state:
  AC powered: false
  USB powered: true
  status: 2
  health: 2
  present: true
  level: 87
  scale: 100
  voltage: 4312
  temperature: 312
  technology: Li-ion
"""
DUMPSYS_THERMAL = """IsStatusOverride: false
ThermalEventListeners:
Thermal Status: 1
Cached temperatures:
"""


class PhoneGone(ConnectionResetError):
    """The USB cable was pulled / Wi-Fi dropped: what a socket raises then."""


@dataclass
class FakePhone:
    authorised_keys: list[str] = field(default_factory=list)  # private key paths whose signatures adbd accepts
    accept_new_keys: bool = False  # the prompt on the phone is answered "Allow"
    props: dict[str, str] = field(default_factory=lambda: dict(PIXEL_PROPS))
    files: dict[str, bytes] = field(default_factory=lambda: {k: v.encode() for k, v in PIXEL_FILES.items()})
    modes: dict[str, int] = field(default_factory=dict)
    benchmark_output: str = ""
    benchmark_exit: int = 0
    disconnect_during_benchmark: bool = False
    commands: list[str] = field(default_factory=list)  # every shell command, in order
    benchmark_argv: list[str] = field(default_factory=list)
    read_timeouts: list[float | None] = field(default_factory=list)  # transport_timeout_s of each bulk_read
    connected: bool = False
    _outbox: bytearray = field(default_factory=bytearray)
    _dirs: set[str] = field(default_factory=set)
    _streams: dict[int, dict] = field(default_factory=dict)
    _next_id: int = 100

    # -- ADB messages ------------------------------------------------------------------------------------

    def send(self, command: bytes, arg0: int, arg1: int, data: bytes = b"") -> None:
        message = AdbMessage(command, arg0, arg1, data)
        self._outbox += message.pack() + data

    def receive(self, command: bytes, arg0: int, arg1: int, data: bytes) -> None:
        if command == constants.CNXN:
            self.send(constants.AUTH, constants.AUTH_TOKEN, 0, TOKEN)
        elif command == constants.AUTH:
            self._auth(arg0, data)
        elif command == constants.OPEN:
            self._open(arg0, data.rstrip(b"\0").decode())
        elif command == constants.WRTE:
            self.send(constants.OKAY, arg1, arg0)
            self._sync_data(arg1, arg0, data)
        elif command == constants.CLSE:
            if self._streams.pop(arg1, None) is not None:
                self.send(constants.CLSE, arg1, arg0)
        # OKAY from the host acknowledges our WRTE: nothing to do

    def _auth(self, kind: int, data: bytes) -> None:
        if kind == constants.AUTH_SIGNATURE:
            if any(CryptographySigner(key).Sign(TOKEN) == bytes(data) for key in self.authorised_keys):
                self._connected()
            else:
                self.send(constants.AUTH, constants.AUTH_TOKEN, 0, TOKEN)
        elif kind == constants.AUTH_RSAPUBLICKEY and self.accept_new_keys:
            self._connected()
        # an unanswered prompt: silence

    def _connected(self) -> None:
        self.connected = True
        self.send(constants.CNXN, constants.VERSION, constants.MAX_ADB_DATA, b"device::ro.product.model=Pixel 8;\0")

    def _open(self, local_id: int, destination: str) -> None:
        remote_id = self._next_id
        self._next_id += 1
        self.send(constants.OKAY, remote_id, local_id)
        if destination == "sync:":
            self._streams[remote_id] = {"buffer": bytearray(), "path": None, "content": bytearray()}
            return
        service, _, command = destination.partition(":")
        assert service == "shell", destination
        output = self.shell(command)
        for start in range(0, len(output), 64 * 1024):
            self.send(constants.WRTE, remote_id, local_id, output[start:start + 64 * 1024])
        self.send(constants.CLSE, remote_id, local_id)

    def _sync_data(self, remote_id: int, local_id: int, data: bytes) -> None:
        stream = self._streams.get(remote_id)
        if stream is None or "buffer" not in stream:
            return
        buffer = stream["buffer"]
        buffer += data
        while len(buffer) >= 8:
            wire, size = struct.unpack("<2I", buffer[:8])
            command = constants.FILESYNC_WIRE_TO_ID[wire]
            if command == constants.DONE:  # its "size" is the mtime
                del buffer[:8]
                directory = stream["path"].rsplit("/", 1)[0]
                if directory not in self.directories():
                    fail = f"couldn't create file: {directory}: No such file or directory".encode()
                    self.send(constants.WRTE, remote_id, local_id, struct.pack("<2I", _wire(constants.FAIL),
                                                                               len(fail)) + fail)
                    continue
                self.files[stream["path"]] = bytes(stream["content"])
                self.modes[stream["path"]] = stream["mode"]
                self.send(constants.WRTE, remote_id, local_id, struct.pack("<2I", _wire(constants.OKAY), 0))
                continue
            if len(buffer) < 8 + size:
                return
            payload = bytes(buffer[8:8 + size])
            del buffer[:8 + size]
            if command == constants.SEND:
                path, _, mode = payload.decode().rpartition(",")
                stream["path"], stream["mode"], stream["content"] = path, int(mode) & 0o777, bytearray()
            elif command == constants.DATA:
                stream["content"] += payload

    # -- the shell ---------------------------------------------------------------------------------------

    def directories(self) -> set[str]:
        return {path.rsplit("/", 1)[0] for path in self.files} | set(self._dirs)

    def shell(self, command: str) -> bytes:
        self.commands.append(command)
        exit_marker = re.search(r";\s*echo __EXIT__\$\?\s*$", command)
        body = command[:exit_marker.start()] if exit_marker else command
        output, status = self._run(body.strip())
        if exit_marker:
            output += f"__EXIT__{status}\n"
        return output.encode()

    def _run(self, command: str) -> tuple[str, int]:
        if command == "getprop":
            return "".join(f"[{k}]: [{v}]\n" for k, v in self.props.items()), 0
        if command == "dumpsys battery":
            return DUMPSYS_BATTERY, 0
        if command == "dumpsys thermalservice":
            return DUMPSYS_THERMAL, 0
        words = shlex.split(command)
        if words[:2] == ["grep", "-H"]:
            lines = [f"{path}:{self.files[path].decode().strip()}\n" for pattern in words[3:]
                     for path in sorted(self.files) if fnmatch.fnmatch(path, pattern)]
            return "".join(lines), 0 if lines else 2
        if words[:2] == ["mkdir", "-p"]:
            for path in words[2:]:
                parts = path.strip("/").split("/")
                self._dirs.update("/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1))
            return "", 0
        if words[0] == "chmod":
            for path in words[2:]:
                if path not in self.files:
                    return f"chmod: {path}: No such file or directory\n", 1
                self.modes[path] = int(words[1], 8)
            return "", 0
        if words[:2] == ["rm", "-rf"]:
            for root in words[2:]:
                self.files = {p: c for p, c in self.files.items() if not (p == root or p.startswith(root + "/"))}
                self._dirs = {d for d in self._dirs if not (d == root or d.startswith(root + "/"))}
            return "", 0
        if words[0] == "cd" and "./benchmark_model" in words:
            return self._benchmark(words[1], words[words.index("./benchmark_model") + 1:])
        return f"/system/bin/sh: {words[0]}: inaccessible or not found\n", 127

    def _benchmark(self, directory: str, argv: list[str]) -> tuple[str, int]:
        binary = f"{directory}/benchmark_model"
        if binary not in self.files:
            return "/system/bin/sh: ./benchmark_model: inaccessible or not found\n", 127
        if not self.modes.get(binary, 0) & 0o100:
            return "/system/bin/sh: ./benchmark_model: can't execute: Permission denied\n", 126
        graph = next(a.split("=", 1)[1] for a in argv if a.startswith("--graph="))
        if graph not in self.files:
            return f"ERROR: Could not open '{graph}'.\n", 1
        self.benchmark_argv = argv
        if self.disconnect_during_benchmark:
            raise PhoneGone("Connection reset by peer")
        return self.benchmark_output, self.benchmark_exit


def _wire(command: bytes) -> int:
    return constants.FILESYNC_ID_TO_WIRE[command]


class FakeAdbTransport(BaseTransport):
    """adb_shell's transport interface over a FakePhone instead of a socket or USB endpoint."""

    def __init__(self, phone: FakePhone, *, refuse_connection: bool = False) -> None:
        self.phone = phone
        self.refuse_connection = refuse_connection
        self._inbox = bytearray()
        self._gone = False

    def connect(self, transport_timeout_s):
        if self.refuse_connection:
            raise ConnectionRefusedError(111, "Connection refused")
        self._gone = False

    def close(self):
        self._inbox.clear()

    def bulk_write(self, data, transport_timeout_s):
        if self._gone:
            raise PhoneGone("Broken pipe")
        self._inbox += data
        while len(self._inbox) >= HEADER:
            command, arg0, arg1, length, _, _ = struct.unpack(constants.MESSAGE_FORMAT, self._inbox[:HEADER])
            if len(self._inbox) < HEADER + length:
                break
            payload = bytes(self._inbox[HEADER:HEADER + length])
            del self._inbox[:HEADER + length]
            try:
                self.phone.receive(constants.WIRE_TO_ID[command], arg0, arg1, payload)
            except PhoneGone:
                self._gone = True
                self.phone._outbox.clear()
        return len(data)

    def bulk_read(self, numbytes, transport_timeout_s):
        self.phone.read_timeouts.append(transport_timeout_s)
        if self._gone:
            raise PhoneGone("Connection reset by peer")
        outbox = self.phone._outbox
        if not outbox:
            from adb_shell.exceptions import TcpTimeoutException

            raise TcpTimeoutException(f"Reading from the fake phone timed out ({transport_timeout_s} seconds)")
        chunk = bytes(outbox[:numbytes])
        del outbox[:numbytes]
        return chunk

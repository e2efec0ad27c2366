"""A FAKE ADB for tests: a scripted transport under adb-shell and a stand-in for the phone behind it.

Only the byte pipe is fake. `FakeAdbTransport` implements adb_shell's transport interface (connect, close,
bulk_read, bulk_write), the way adb-shell's own tests replace the TCP socket; above it the real
`AdbDeviceTcp`, the real protocol (CNXN, AUTH, OPEN, OKAY, WRTE, CLSE) and the real FileSync push run unchanged.
The transport hands each complete ADB message to `FakePhone`, which answers as adbd would:

- CNXN → AUTH TOKEN; an AUTH SIGNATURE made with an authorised key → CNXN; otherwise AUTH TOKEN again; the
  public key (AUTH RSAPUBLICKEY) → CNXN only if `accept_new_keys` (the person at the phone tapped "Allow"),
  else nothing, so the host times out waiting as it would in front of an unanswered prompt;
- OPEN "sync:" → FileSync as adbd speaks it (file_sync_service.cpp): SEND/DATA/DONE into `files` (answered OKAY,
  or FAIL when the directory is missing); RECV → the file as DATA packets of at most 64 KiB, then DONE, or
  FAIL "open failed: No such file or directory" and the stream closed; STAT → mode, size, mtime (zeros when
  missing);
- OPEN "shell:…" → a tiny shell over `files`: getprop, dumpsys, grep -H ., mkdir -p, chmod, rm -rf/-f, echo,
  `A && B && …` chains (stopping at the first failure, each command's output its own WRTE), `cd DIR`,
  `NAME=value ./benchmark_model … 2>&1`, and `; echo __EXIT__$?`.

THE FAKE benchmark_model:
- a profile run (no --input_layer / --output_filepath) prints RECORDED output (tests/agent/data/benchmark_model/)
  and exits with `benchmark_exit`;
- an inference run is a STAND-IN, not the real tool: it parses --input_layer, --input_layer_shape and
  --input_layer_value_files (with the '::' escape of SplitInputLayerNameAndValueFile), enforces what the real
  one enforces (as many names as the model has inputs, each file exactly the resized tensor's bytes, else a
  FATAL abort, exit 134; a name that differs from the tensor's only warns, as the real one does), runs the
  pushed model with LiteRT's Python interpreter ON THIS MACHINE, and writes every output tensor's bytes,
  concatenated in the interpreter's output order, to --output_filepath (what OutputSaver does). With
  `benchmark_writes_outputs = False` it plays a build older than TFLite 2.14: the flag is unknown, only warned
  about, and no file is written;
- run number `failing_run` (0-based, counting every benchmark_model run) prints `benchmark_output` and exits
  with `benchmark_exit` instead; `disconnect_during_benchmark` drops the connection mid-run.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import struct
from dataclasses import dataclass, field

import numpy as np

from adb_shell import constants
from adb_shell.adb_message import AdbMessage
from adb_shell.auth.sign_cryptography import CryptographySigner
from adb_shell.transport.base_transport import BaseTransport

HEADER = struct.calcsize(constants.MESSAGE_FORMAT)
TOKEN = b"\x5a" * 20  # adbd sends 20 random bytes to sign; fixed here so signatures can be compared
SYNC_DATA_MAX = 64 * 1024  # adbd's largest FileSync DATA packet
ABORTED = 134  # 128 + SIGABRT: what TFLITE_LOG(FATAL) and a failed TFLITE_TOOLS_CHECK end with

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
    benchmark_writes_outputs: bool = True  # False: a benchmark_model older than --output_filepath (TFLite 2.14)
    failing_run: int | None = None  # this benchmark_model run prints benchmark_output and exits benchmark_exit
    disconnect_during_benchmark: bool = False
    commands: list[str] = field(default_factory=list)  # every shell command, in order
    benchmark_argv: list[str] = field(default_factory=list)  # the last run's
    benchmark_runs: list[list[str]] = field(default_factory=list)  # every run's argv, in order
    read_timeouts: list[float | None] = field(default_factory=list)  # transport_timeout_s of each bulk_read
    connected: bool = False
    open_transports: int = 0  # sockets/USB handles the agent opened and has not closed yet
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
        for output in self.shell(command):
            for start in range(0, len(output), 64 * 1024):
                self.send(constants.WRTE, remote_id, local_id, output[start:start + 64 * 1024])
        self.send(constants.CLSE, remote_id, local_id)

    def _sync_reply(self, remote_id: int, local_id: int, command: bytes, data: bytes = b"") -> None:
        """One FileSync packet from adbd: `<2I` id and data length, then the data (DATA, DONE, FAIL, OKAY)."""
        self.send(constants.WRTE, remote_id, local_id, struct.pack("<2I", _wire(command), len(data)) + data)

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
            elif command == constants.RECV:
                self._recv(remote_id, local_id, payload.decode())
                return
            elif command == constants.STAT:  # `<4I` id, mode, size, mtime: all zeros for a missing file
                path = payload.decode()
                mode, size, mtime = ((0o100000 | self.modes.get(path, 0o644), len(self.files[path]), 1_700_000_000)
                                     if path in self.files else (0, 0, 0))
                self.send(constants.WRTE, remote_id, local_id,
                          struct.pack("<4I", _wire(constants.STAT), mode, size, mtime))

    def _recv(self, remote_id: int, local_id: int, path: str) -> None:
        """adbd's do_recv: the file in DATA packets, then DONE; a missing file is FAIL, and the service ends."""
        if path not in self.files:
            self._sync_reply(remote_id, local_id, constants.FAIL, b"open failed: No such file or directory")
            self._streams.pop(remote_id, None)
            self.send(constants.CLSE, remote_id, local_id)
            return
        content = self.files[path]
        for start in range(0, len(content), SYNC_DATA_MAX):
            chunk = content[start:start + SYNC_DATA_MAX]
            self._sync_reply(remote_id, local_id, constants.DATA, chunk)
        self._sync_reply(remote_id, local_id, constants.DONE)

    # -- the shell ---------------------------------------------------------------------------------------

    def directories(self) -> set[str]:
        return {path.rsplit("/", 1)[0] for path in self.files} | set(self._dirs)

    def shell(self, command: str) -> list[bytes]:
        """The outputs of the command, one chunk per command of an `&&` chain."""
        self.commands.append(command)
        exit_marker = re.search(r";\s*echo __EXIT__\$\?\s*$", command)
        body = command[:exit_marker.start()] if exit_marker else command
        outputs, status = self._run_chain(shlex.split(body))
        if exit_marker:
            outputs.append(f"__EXIT__{status}\n")
        return [output.encode() for output in outputs if output]

    def _run_chain(self, words: list[str]) -> tuple[list[str], int]:
        outputs, status, cwd = [], 0, "/"
        commands: list[list[str]] = [[]]
        for word in words:
            if word == "&&":
                commands.append([])
            else:
                commands[-1].append(word)
        for command in commands:
            if command[0] == "cd":
                cwd = command[1]
                output, status = ("", 0) if cwd in self.directories() else (f"cd: {cwd}: No such file or directory\n",
                                                                            2)
            else:
                output, status = self._run(command, cwd)
            outputs.append(output)
            if status != 0:
                break
        return outputs, status

    def _run(self, words: list[str], cwd: str) -> tuple[str, int]:
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # NAME=value before a command
            words = words[1:]
        if words[-1] == "2>&1":
            words = words[:-1]
        if words == ["getprop"]:
            return "".join(f"[{k}]: [{v}]\n" for k, v in self.props.items()), 0
        if words == ["dumpsys", "battery"]:
            return DUMPSYS_BATTERY, 0
        if words == ["dumpsys", "thermalservice"]:
            return DUMPSYS_THERMAL, 0
        if words[0] == "echo":
            return " ".join(words[1:]) + "\n", 0
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
        if words[0] == "rm" and words[1] in ("-rf", "-f"):
            for root in words[2:]:
                self.files = {p: c for p, c in self.files.items() if not (p == root or p.startswith(root + "/"))}
                self._dirs = {d for d in self._dirs if not (d == root or d.startswith(root + "/"))}
            return "", 0
        if words[0] == "./benchmark_model":
            return self._benchmark(cwd, words[1:])
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
        self.benchmark_runs.append(argv)
        if self.disconnect_during_benchmark:
            raise PhoneGone("Connection reset by peer")
        flags = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
        if len(self.benchmark_runs) - 1 == self.failing_run or not {"input_layer", "output_filepath"} & set(flags):
            return self.benchmark_output, self.benchmark_exit
        return StandInBenchmark(self, directory, flags).run()


class StandInBenchmark:
    """THE FAKE benchmark_model's inference run (see the module docstring): LiteRT on this machine, fed and
    read the way the real tool's flags say."""

    def __init__(self, phone: FakePhone, directory: str, flags: dict[str, str]) -> None:
        self.phone, self.directory, self.flags = phone, directory, flags
        self.log = [f"INFO: Graph: [{flags['graph']}]", f"INFO: Loaded model {flags['graph']}"]

    def run(self) -> tuple[str, int]:
        from ai_edge_litert.interpreter import Interpreter  # only the FAKE phone runs a model on this machine

        interpreter = Interpreter(model_content=self.phone.files[self.flags["graph"]])
        names = _split(self.flags.get("input_layer", ""), ",")
        shapes = _split(self.flags.get("input_layer_shape", ""), ":")
        if len(names) != len(shapes):
            return self.done(f"ERROR: The number of items in --input_layer_shape ({len(shapes)}) must match the "
                             f"number of items in --input_layer ({len(names)})", 1)
        details = interpreter.get_input_details()
        if names and len(names) != len(details):
            return self.done(f"ERROR: Inputs mismatch: Model inputs #:{len(names)} expected: {len(details)}",
                             ABORTED)
        files = {}
        for item in _split(self.flags.get("input_layer_value_files", ""), ","):
            if (pair := split_input_layer_name_and_value_file(item)) is None:
                return self.done(f"ERROR: Wrong input value file item specified: {item}", 1)
            name, path = pair
            if name not in names:
                return self.done(f"ERROR: Cannot find the corresponding input_layer name({name}) in --input_layer "
                                 f"as {self.flags['input_layer']}", ABORTED)
            files[name] = self.path(path)
        for name, shape, detail in zip(names, shapes, details):
            if name != detail["name"]:  # the real tool only warns, and runs on
                self.log.append(f"WARNING: Tensor # {detail['index']} is named {detail['name']} but flags call it "
                                f"{name}")
            interpreter.resize_tensor_input(detail["index"], [int(n) for n in _split(shape, ",")])
        interpreter.allocate_tensors()
        for name, detail in zip(names, interpreter.get_input_details()):
            data = self.phone.files.get(files.get(name, ""))
            size = int(np.prod(detail["shape"])) * np.dtype(detail["dtype"]).itemsize
            if data is None:
                return self.done(f"ERROR: Failed to read the input_layer_value_file:{files.get(name)}", ABORTED)
            if len(data) != size:
                return self.done(f"ERROR: The size of {files[name]} is {len(data)} bytes. It should be {size} bytes.",
                                 ABORTED)
            interpreter.set_tensor(detail["index"], np.frombuffer(data, detail["dtype"]).reshape(detail["shape"]))
        self.log.append("INFO: Running benchmark for at least 1 iterations and at least 0 seconds but terminate if "
                        "exceeding 150 seconds.")
        interpreter.invoke()
        self.log.append("INFO: count=1 curr=1234")
        self.save(b"".join(interpreter.get_tensor(d["index"]).tobytes() for d in interpreter.get_output_details()))
        return self.done("INFO: Inference timings in us: Init: 5000, First inference: 1234", 0)

    def save(self, outputs: bytes) -> None:
        if "output_filepath" not in self.flags:
            return
        if not self.phone.benchmark_writes_outputs:  # a build before TFLite 2.14 does not know the flag
            self.log.insert(0, f"WARN: Unconsumed cmdline flags: --output_filepath={self.flags['output_filepath']}")
            return
        path = self.path(self.flags["output_filepath"])
        if path.rsplit("/", 1)[0] in self.phone.directories():  # an ofstream that cannot open writes nothing
            self.phone.files[path] = outputs

    def path(self, path: str) -> str:
        return path if path.startswith("/") else f"{self.directory}/{path}"

    def done(self, last: str, status: int) -> tuple[str, int]:
        return "\n".join([*self.log, last]) + "\n", status


def split_input_layer_name_and_value_file(item: str) -> tuple[str, str] | None:
    """benchmark_model's SplitInputLayerNameAndValueFile: the one ':' not doubled splits; '::' means ':'.
    None where the real one fails (no delimiter, or more than one)."""
    delimiter = -1
    i = 0
    while i < len(item) - 1:
        if item[i] == ":":
            if item[i + 1] == ":":
                i += 1
            elif delimiter == -1:
                delimiter = i
            else:
                return None
        i += 1
    if delimiter == -1:
        return None
    return item[:delimiter].replace("::", ":"), item[delimiter + 1:].replace("::", ":")


def _split(text: str, separator: str) -> list[str]:
    return text.split(separator) if text else []


def _wire(command: bytes) -> int:
    return constants.FILESYNC_ID_TO_WIRE[command]


class FakeAdbTransport(BaseTransport):
    """adb_shell's transport interface over a FakePhone instead of a socket or USB endpoint."""

    def __init__(self, phone: FakePhone, *, refuse_connection: bool = False) -> None:
        self.phone = phone
        self.refuse_connection = refuse_connection
        self._inbox = bytearray()
        self._gone = False
        self._open = False

    def connect(self, transport_timeout_s):
        if self.refuse_connection:
            raise ConnectionRefusedError(111, "Connection refused")
        self._gone = False
        if not self._open:
            self._open = True
            self.phone.open_transports += 1

    def close(self):
        self._inbox.clear()
        if self._open:
            self._open = False
            self.phone.open_transports -= 1

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

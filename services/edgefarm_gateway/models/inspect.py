"""Read an uploaded model file: which format it is, its inputs and outputs, and whether it is safe to keep.

It parses but never executes: ONNX via protobuf, TFLite via the LiteRT interpreter's metadata (no tensors
allocated), TorchScript by looking inside its zip (torch is never imported here). The parsers are native code
fed a stranger's bytes, and LiteRT's reader crashes on corrupt files (a security sweep's fuzz of 45 truncated or
altered .tflite files gave 17 segfaults and a bus error, each of which killed the gateway). So the parsing runs
in a child process that limits its own memory and CPU time first, `python -m edgefarm_gateway.models.inspect
FILE`, and whatever happens to it is the upload's 400. The cost, measured on small models: 1-2 s and 90 MB per
new model (a Python start and the imports, under load); uploads of bytes the farm already holds skip it.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgefarm import torchscript
from edgefarm.wire import Quantization, TensorInfo
from edgefarm_gateway.errors import BadRequest

CPU_SECONDS = 60  # of parsing, at most: reading a model is a single pass over its bytes
WALL_SECONDS = 180  # the child's answer, at most (CPU time does not count a child stalled on I/O)
# Address space for the child: the interpreter and the imports (90 MB resident, more mapped), plus the file
# several times over (protobuf holds the bytes and the parsed message).
BASE_BYTES, PER_FILE_BYTE = 1 << 30, 4

UNREADABLE = ("not a model EdgeFarm can read: upload an ONNX model (.onnx), a TorchScript module "
              "(torch.jit.save / ScriptModule.save, .pt) or a TFLite model (.tflite)")


@dataclass
class ModelFacts:
    format: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]


def inspect_model(path: Path) -> ModelFacts:
    """The facts of an uploaded file, read in a child process; BadRequest says why a file cannot be kept."""
    try:
        child = subprocess.run([sys.executable, "-m", __name__, str(path)], capture_output=True, text=True,
                               timeout=WALL_SECONDS)
    except subprocess.TimeoutExpired:
        raise BadRequest(f"reading the model took longer than {WALL_SECONDS} s; the file is not a model EdgeFarm "
                         "can read as it is (corrupt, or built to stall its parser)") from None
    if child.returncode < 0:
        how = signal.Signals(-child.returncode).name
        cause = (f"took more than {CPU_SECONDS} s of CPU" if how == "SIGXCPU"
                 else f"crashed the parser ({how})")
        raise BadRequest(f"reading the model {cause}: the file is corrupt, truncated or hostile; upload the file "
                         "as the exporter or converter wrote it")
    answer = child.stdout.strip().splitlines()[-1:] if child.returncode == 0 else []
    if not answer:
        said = [line for line in child.stderr.splitlines() if line.strip()][-1:]
        raise BadRequest(f"the model could not be read (exit status {child.returncode}"
                         + (f": {said[0][:300]}" if said else "") + ")")
    facts = json.loads(answer[0])
    if "refused" in facts:
        raise BadRequest(facts["refused"])
    return ModelFacts(facts["format"], [TensorInfo(**t) for t in facts["inputs"]],
                      [TensorInfo(**t) for t in facts["outputs"]])


def _limit_self(path: Path) -> None:
    limit = BASE_BYTES + PER_FILE_BYTE * path.stat().st_size
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def _read(path: Path) -> ModelFacts:
    with path.open("rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        return _inspect_tflite(path)
    if zipfile.is_zipfile(path):
        return _inspect_torchscript(path)
    return _inspect_onnx(path)


def _inspect_onnx(path: Path) -> ModelFacts:
    import onnx
    from onnx import external_data_helper

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends for corrupt bytes
        raise BadRequest(f"{UNREADABLE} (ONNX parser: {exc})") from None
    if not model.graph.node and not model.graph.input:
        raise BadRequest(UNREADABLE)
    for tensor in external_data_helper._get_all_tensors(model):
        if external_data_helper.uses_external_data(tensor):
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            escapes = PurePosixPath(location).is_absolute() or ".." in PurePosixPath(location).parts
            why = "points outside the model's directory" if escapes else "lives in a separate file"
            raise BadRequest(
                f"ONNX initializer {tensor.name!r} references external data {location!r}, which {why}; "
                "upload a single self-contained file (onnx.save(model, path, save_as_external_data=False), "
                "models up to 2 GB)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise BadRequest(f"the ONNX model does not pass onnx.checker: {exc}") from None
    initializers = {t.name for t in model.graph.initializer}
    inputs = [_onnx_tensor(v) for v in model.graph.input if v.name not in initializers]
    outputs = [_onnx_tensor(v) for v in model.graph.output]
    return ModelFacts("onnx", inputs, outputs)


def _onnx_tensor(value) -> TensorInfo:
    from onnx import helper

    tensor_type = value.type.tensor_type
    shape: list[int | str] = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?")
                              for d in tensor_type.shape.dim]
    dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name if tensor_type.elem_type else "unknown"
    return TensorInfo(name=value.name, shape=shape, dtype=dtype)


def _inspect_tflite(path: Path) -> ModelFacts:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path))
    except Exception as exc:
        raise BadRequest(f"the TFLite model cannot be loaded by LiteRT: {exc}") from None
    return ModelFacts("tflite", [tflite_tensor(d) for d in interpreter.get_input_details()],
                      [tflite_tensor(d) for d in interpreter.get_output_details()])


def tflite_tensor(detail: dict) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quant = Quantization(scale=float(scale), zero_point=int(zero_point)) if scale else None
    return TensorInfo(name=detail["name"], shape=[int(d) for d in detail["shape"]],
                      dtype=detail["dtype"].__name__ if hasattr(detail["dtype"], "__name__") else str(detail["dtype"]),
                      quantization=quant)


def _inspect_torchscript(path: Path) -> ModelFacts:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as exc:
        raise BadRequest(f"{UNREADABLE} (zip: {exc})") from None
    has_code = any("/code/" in n for n in names)
    has_data = any(n.endswith("/data.pkl") for n in names)
    if has_data and not has_code:
        raise BadRequest("this is a torch.save() checkpoint, not TorchScript: export the module with "
                         "torch.jit.trace(model, example_inputs).save('model.pt') and upload that")
    if not has_code:
        raise BadRequest(UNREADABLE)
    try:
        torchscript.check_archive(path)
    except torchscript.TorchScriptRefused as refused:
        raise BadRequest(str(refused)) from None
    # Input names and shapes are not recorded in TorchScript; compile jobs take them from input_specs.
    return ModelFacts("torchscript", [], [])


def main() -> None:
    """The child: limits first, then the parser; one JSON line on stdout."""
    path = Path(sys.argv[1])
    _limit_self(path)
    try:
        facts = _read(path)
    except BadRequest as refused:
        print(json.dumps({"refused": str(refused)}))
        return
    except MemoryError:
        limit = BASE_BYTES + PER_FILE_BYTE * path.stat().st_size
        print(json.dumps({"refused": f"reading the model needs more than {limit >> 20} MB of memory (its size "
                                    f"{path.stat().st_size >> 20} MB): the file is corrupt or hostile"}))
        return
    print(json.dumps({"format": facts.format, "inputs": [t.model_dump() for t in facts.inputs],
                      "outputs": [t.model_dump() for t in facts.outputs]}))


if __name__ == "__main__":
    main()

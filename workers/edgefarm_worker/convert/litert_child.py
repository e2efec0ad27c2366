"""Runs a compiled TFLite model for verification, in a child process of the worker.

Why a child: LiteRT aborts the whole process on some models the TFLite converter writes (seen: a full-INT8
ResNet-18 from the corpus aborts in allocate_tensors with the builtin kernels, SIGABRT). In the worker that would
kill the Celery pool process and, with it, every later strategy of the job. In a child it is one attempt's named
failure. The cost, measured on MobileNetV2 INT8: ~0.5 s and 86 MB per attempt (a Python start, the imports,
the four samples and the XNNPACK check).

    python -m edgefarm_worker.convert.litert_child MODEL FEEDS.npz OUTPUTS.npz

FEEDS.npz holds "<sample>/<tensor name>" arrays in the target's terms; OUTPUTS.npz gets the same for every output
tensor. stdout: one JSON object, {"xnnpack": null or the reason LiteRT's default CPU delegate refused the model};
stderr: a line per step (STAGE), so that a child that dies says where.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .interface import first_line  # light: `-m` imports this package first in any case

STAGE = "litert-child stage: "


def run(model: Path, feeds: list[dict[str, np.ndarray]]) -> tuple[list[dict[str, np.ndarray]], str | None]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Builtin kernels without the default XNNPACK delegate: the numbers the model's ops define.
    _stage("loading the model")
    interpreter = Interpreter(model_path=str(model), num_threads=1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    _stage("allocating its tensors with the builtin kernels")
    interpreter.allocate_tensors()
    outputs = []
    for sample in feeds:
        _feed(interpreter, sample)
        _stage("running it with the builtin kernels")
        interpreter.invoke()
        outputs.append({d["name"]: interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()})
    return outputs, _xnnpack_refusal(model, feeds[0])


def _stage(what: str) -> None:
    """On stderr before each step: a process that dies leaves no message of its own (an abort prints none)."""
    print(f"{STAGE}{what}", file=sys.stderr, flush=True)


def _feed(interpreter, sample: dict[str, np.ndarray]) -> None:
    index = {d["name"]: d["index"] for d in interpreter.get_input_details()}
    for name, value in sample.items():
        interpreter.set_tensor(index[name], value)


def _xnnpack_refusal(model: Path, sample: dict[str, np.ndarray]) -> str | None:
    """XNNPACK is what LiteRT runs a model with on CPUs by default (the farm's agents included)."""
    from ai_edge_litert.interpreter import Interpreter

    _stage("running it with XNNPACK")
    try:
        interpreter = Interpreter(model_path=str(model), num_threads=1)
        interpreter.allocate_tensors()
        _feed(interpreter, sample)
        interpreter.invoke()
    except (RuntimeError, ValueError) as exc:
        return first_line(exc, 300)
    return None


def pack(samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {f"{i}/{name}": value for i, sample in enumerate(samples) for name, value in sample.items()}


def unpack(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    samples: dict[int, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        index, _, name = key.partition("/")
        samples.setdefault(int(index), {})[name] = value
    return [samples[i] for i in sorted(samples)]


def main() -> None:
    model, feeds_path, outputs_path = map(Path, sys.argv[1:4])
    with np.load(feeds_path, allow_pickle=False) as archive:
        feeds = unpack({name: archive[name] for name in archive.files})
    outputs, xnnpack = run(model, feeds)
    np.savez(outputs_path, **pack(outputs))
    print(json.dumps({"xnnpack": xnnpack}))


if __name__ == "__main__":
    main()
